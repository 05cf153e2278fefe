//! The sandbox: limits hold, and the host survives what the component does.

use callrecords_host::Limits;
use callrecords_host::artifacts::PLUGIN as EMBEDDED_PLUGIN;
use callrecords_host::{CallError, Error, Runtime};
use callrecords_test_kit::synth;

use crate::RT;

#[test]
fn a_call_over_its_memory_cap_fails_cleanly_and_the_next_call_works() {
    let rt = Runtime::new(EMBEDDED_PLUGIN, Limits { memory_bytes: 8 << 20, ..Limits::default() }, true).unwrap();
    let big = synth::group_call(3000);
    assert!(big.len() > 8 << 20, "input must exceed the cap: {} bytes", big.len());
    match rt.expand(&big) {
        Err(Error::Call(CallError::MemoryLimit(_))) => {}
        other => panic!("expected a memory-limit error, got {:?}", other.map(|t| t.len())),
    }
    let small = callrecords_test_kit::fixtures::PEER_TO_PEER;
    assert_eq!(rt.expand(small).unwrap().len(), 4, "the runtime survives");
}

#[test]
fn a_call_past_its_deadline_is_interrupted() {
    let rt = Runtime::new(
        EMBEDDED_PLUGIN,
        Limits { call_timeout: std::time::Duration::from_millis(1), ..Limits::default() },
        true,
    )
    .unwrap();
    let big = synth::group_call(3000);
    match rt.expand(&big) {
        Err(Error::Call(CallError::Timeout(_))) => {}
        other => panic!("expected a timeout, got {:?}", other.map(|t| t.len())),
    }
}

#[test]
fn large_calls_work_within_the_default_limits() {
    let big = synth::group_call(600);
    let tables = RT.expand(&big).unwrap();
    let legs = tables.iter().find(|t| t.table == "TeamsCallLeg_CL").unwrap();
    assert_eq!(legs.rows.len(), 600);
}
