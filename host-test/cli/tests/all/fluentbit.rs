//! The Fluent Bit `filter_wasm` module, driven the way Fluent Bit drives it: the same rows as the
//! component, large and hostile records, one long-lived instance, and `check` on good and bad
//! modules.

use callrecords_conformance::fluentbit::{self, CALL_ROW, FilterModule, Record, SEED_ROW, Verdict};
use callrecords_host::artifacts::FLUENT_BIT_FILTER as EMBEDDED_FILTER;
use callrecords_host::artifacts::PLUGIN as EMBEDDED_PLUGIN;
use callrecords_test_kit::fixtures;
use serde_json::Value;

use crate::cli::{OutputText, callrecords};
use crate::{FILTER, RT, temp_dir};

fn scenario(name: &str) {
    let s = fluentbit::SCENARIOS.iter().find(|s| s.name == name).expect("scenario exists");
    if let Err(why) = (s.run)(&FILTER, &RT) {
        panic!("{name}: {why}");
    }
}

#[test]
fn the_module_exports_the_filter_abi_and_imports_nothing() {
    let module = FILTER.module();
    assert_eq!(module.imports().count(), 0, "Fluent Bit's filter gives no imports the adapter needs");
    let mut names: Vec<&str> = module.exports().map(|e| e.name()).collect();
    names.sort_unstable();
    // __data_end / __heap_base are the linker's globals; nothing else may leak (no component glue).
    assert_eq!(names, ["__data_end", "__heap_base", CALL_ROW, SEED_ROW, "free", "malloc", "memory"]);
}

#[test]
fn call_rows_equal_the_components() {
    scenario("fluent-bit-call-rows");
}

#[test]
fn seed_rows_equal_the_components() {
    scenario("fluent-bit-seed-rows");
}

#[test]
fn a_record_over_1_mb_gives_the_components_rows() {
    scenario("fluent-bit-large-record");
}

#[test]
fn hostile_records_are_dropped_and_the_next_record_works() {
    scenario("fluent-bit-hostile-records");
}

#[test]
fn one_instance_serves_many_records_without_leaking_their_copies() {
    scenario("fluent-bit-long-lived-instance");
}

#[test]
fn rows_carry_the_sample_values() {
    // Read off examples/graph/callrecords/peer-to-peer.json, not from the code under test.
    let mut filter = FILTER.instance().unwrap();
    let call = filter.call(CALL_ROW, "t", (0, 0), Record::Json(fixtures::PEER_TO_PEER.as_bytes())).unwrap();
    let Verdict::Row(call) = Verdict::of(&call) else { panic!("no call row") };
    assert_eq!(call["CallId"], "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01");
    assert_eq!(call["CallType"], "peerToPeer");
    assert_eq!(call["StartDateTime"], "2026-11-20T09:14:03.217Z");
    let seed = filter.call(SEED_ROW, "t", (0, 0), Record::Json(fixtures::PEER_TO_PEER.as_bytes())).unwrap();
    let Verdict::Row(seed) = Verdict::of(&seed) else { panic!("no seed row") };
    assert_eq!(seed["organizer_user_displayName"], "Aiko Tanaka");
    let sessions: Value = serde_json::from_str(seed["sessions"].as_str().unwrap()).unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1);
}

/// What Fluent Bit should get for `record`: the component's row, or `""` where the component
/// refuses the record (or could not even be given it: invalid UTF-8).
fn components_verdict(function: &str, record: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(record) else { return Verdict::Dropped };
    let row = if function == CALL_ROW {
        RT.expand(text)
            .ok()
            .and_then(|tables| tables.into_iter().find(|t| t.table == "TeamsCall_CL"))
            .and_then(|t| t.rows.into_iter().next())
    } else {
        RT.seed_row(text).ok()
    };
    match row {
        Some(row) => Verdict::of(row.as_bytes()),
        None => Verdict::Dropped,
    }
}

#[test]
fn hostile_records_get_what_the_component_gives() {
    let mut filter = FILTER.instance().unwrap();
    for (name, record) in fluentbit::hostile_records() {
        for function in [CALL_ROW, SEED_ROW] {
            let out = filter.call(function, "t", (0, 0), Record::Json(&record)).unwrap();
            assert_eq!(Verdict::of(&out), components_verdict(function, &record), "{function} on {name}");
        }
    }
    for name in ["empty", "not JSON", "a JSON array", "invalid UTF-8", "cut short"] {
        let (_, record) = fluentbit::hostile_records().into_iter().find(|(n, _)| *n == name).unwrap();
        let out = filter.call(CALL_ROW, "t", (0, 0), Record::Json(&record)).unwrap();
        assert_eq!(out, b"", "{name} is dropped");
    }
    let out = filter.call(CALL_ROW, "t", (0, 0), Record::Null(1 << 20)).unwrap();
    assert_eq!(out, b"", "NULL record pointer");
}

/// A module with the right exports that answers wrongly: invalid JSON, a trap, and a `malloc`
/// that always returns the same small block.
const MISBEHAVING: &str = r#"(module
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"CallId\":\00")
  (func (export "malloc") (param i32) (result i32) i32.const 1024)
  (func (export "free") (param i32))
  (func (export "callrecords_call_row") (param i32 i32 i32 i32 i32 i32) (result i32) i32.const 16)
  (func (export "callrecords_seed_row") (param i32 i32 i32 i32 i32 i32) (result i32) unreachable))"#;

#[test]
fn the_checks_fail_a_misbehaving_module() {
    let module = FilterModule::new(MISBEHAVING.as_bytes()).unwrap();
    let outcomes = fluentbit::run_all(&module, &RT);
    for o in &outcomes {
        assert!(o.failure.is_some(), "{} passed a broken module", o.name);
    }
    let why = |name: &str| outcomes.iter().find(|o| o.name == name).unwrap().failure.clone().unwrap();
    assert!(why("fluent-bit-call-rows").contains("Invalid"), "{}", why("fluent-bit-call-rows"));
    assert!(why("fluent-bit-seed-rows").contains("trapped"), "{}", why("fluent-bit-seed-rows"));
    // The instance survives a trap, as in Fluent Bit: the next call still answers.
    let mut filter = module.instance().unwrap();
    assert!(filter.call(SEED_ROW, "t", (0, 0), Record::Json(b"{}")).is_err());
    let out = filter.call(CALL_ROW, "t", (0, 0), Record::Json(b"{}")).unwrap();
    assert_eq!(out, b"{\"CallId\":");
}

#[test]
fn loading_refuses_what_filter_wasm_cannot_call() {
    let refused = |bytes: &[u8], expect: &str| match FilterModule::new(bytes) {
        Err(e) => assert!(e.to_string().contains(expect), "{e} lacks {expect:?}"),
        Ok(_) => panic!("loaded a module that should be refused ({expect})"),
    };
    refused(EMBEDDED_PLUGIN, "not a core module");
    refused(br#"(module (import "env" "f" (func)) (memory (export "memory") 1))"#, "imports env::f");
    let no_malloc = MISBEHAVING.replace("(export \"malloc\")", "");
    refused(no_malloc.as_bytes(), "no `malloc` export");
    let wrong_type = MISBEHAVING.replace("(param i32 i32 i32 i32 i32 i32) (result i32) i32.const 16", "(param i32)");
    refused(wrong_type.as_bytes(), "callrecords_call_row");
}

#[test]
fn check_recognizes_a_fluent_bit_module() {
    let dir = temp_dir("check-fluent-bit");
    let good = dir.join("filter.wasm");
    std::fs::write(&good, EMBEDDED_FILTER).unwrap();
    let out = callrecords(&["check", good.to_str().unwrap()], None);
    assert!(out.status.success(), "{}{}", out.stdout_text(), out.stderr_text());
    let text = out.stdout_text();
    assert!(text.contains("PASS fluent-bit-hostile-records"), "{text}");
    assert!(text.contains("NOTE heap: the module exports malloc/free"), "{text}");
    // The emulated scenarios and the stack measured in a real Fluent Bit (a note where there is none).
    assert_eq!(text.lines().last(), Some(format!("{} passed, 0 failed", fluentbit::SCENARIOS.len() + 1).as_str()));

    let bad = dir.join("misbehaving.wasm");
    std::fs::write(&bad, wat::parse_str(MISBEHAVING).unwrap()).unwrap();
    let out = callrecords(&["check", bad.to_str().unwrap()], None);
    assert!(!out.status.success(), "check passed a broken module: {}", out.stdout_text());
    assert!(out.stdout_text().contains("FAIL fluent-bit-call-rows"), "{}", out.stdout_text());
}
