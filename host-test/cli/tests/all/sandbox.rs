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

/// CPU time this thread has used (utime + stime from /proc, in clock ticks of 10 ms).
fn thread_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name in parentheses; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) * 10
}

/// A service component whose guest never returns is stopped at the host's timeout: the request
/// gets a 503, and the guest no longer runs afterwards (it used to be detached and spin on). On a
/// single-thread runtime a guest that never yields would also block every other request.
#[test]
fn a_service_guest_that_never_returns_is_stopped_at_the_timeout() {
    use callrecords_host::service::{Outbound, ServiceHost};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _runtime = rt.enter();
        let env = callrecords_test_kit::demo::demo_env("https://stand-ins.test", "logs-ingestion");
        let outbound = Outbound::Network(callrecords_host::transport::HttpClient::new());
        let host = ServiceHost::new(callrecords_test_kit::MISBEHAVING_SERVICE, env, outbound)
            .unwrap()
            .with_timeout(std::time::Duration::from_secs(2));
        let started = std::time::Instant::now();
        let served = rt.block_on(host.handle_parts("POST", "/__spin", &[], vec![]));
        let answered = started.elapsed();
        // Afterwards the runtime idles for a second: a guest still alive would spend it on this thread.
        let before = thread_cpu_ms();
        rt.block_on(tokio::time::sleep(std::time::Duration::from_secs(1)));
        let _ = tx.send((served.status, served.body, answered, thread_cpu_ms() - before));
    });
    let (status, body, answered, cpu_ms) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the host answered (a spinning guest held its thread)");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(answered < std::time::Duration::from_secs(10), "answered after {answered:?}");
    assert!(cpu_ms < 300, "the guest kept running after the timeout: {cpu_ms} ms of CPU in 1 s");
}
