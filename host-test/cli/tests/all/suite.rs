//! The conformance suite against the built component, and `check` against good and bad ones.

use callrecords_conformance as conformance;
use callrecords_host::artifacts::PLUGIN as EMBEDDED_PLUGIN;
use callrecords_test_kit::MISBEHAVING_PLUGIN;

use crate::cli::{OutputText, callrecords};
use crate::{RT, temp_dir};

#[test]
fn built_component_passes_every_scenario() {
    let failed: Vec<String> =
        conformance::run_all(&RT).into_iter().filter_map(|o| o.failure.map(|f| format!("{}: {f}", o.name))).collect();
    assert!(failed.is_empty(), "failed scenarios:\n{}", failed.join("\n"));
}

#[test]
fn check_passes_on_the_built_component() {
    let dir = temp_dir("check-good");
    let wasm = dir.join("plugin.wasm");
    std::fs::write(&wasm, EMBEDDED_PLUGIN).unwrap();
    let out = callrecords(&["check", wasm.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", out.stdout_text());
    let last = out.stdout_text().lines().last().unwrap_or_default().to_string();
    assert_eq!(last, format!("{} passed, 0 failed", conformance::SCENARIOS.len()));
}

#[test]
fn check_fails_on_a_misbehaving_component_and_names_the_scenario() {
    let dir = temp_dir("check-bad");
    let wasm = dir.join("misbehaving.wasm");
    std::fs::write(&wasm, MISBEHAVING_PLUGIN).unwrap();
    let out = callrecords(&["check", wasm.to_str().unwrap()], None);
    assert!(!out.status.success(), "check passed a broken component:\n{}", out.stdout_text());
    let text = out.stdout_text();
    assert!(text.contains("FAIL shared-key-signature"), "{text}");
    assert!(text.contains("PASS webhook-validation"), "the other scenarios still run: {text}");
    let last = text.lines().last().unwrap_or_default().to_string();
    assert_eq!(last, format!("{} passed, 1 failed", conformance::SCENARIOS.len() - 1));
}

#[test]
fn check_fails_cleanly_on_something_that_is_not_a_component() {
    let dir = temp_dir("check-junk");
    for (name, bytes) in [("text.wasm", b"hello".as_slice()), ("core.wasm", b"\0asm\x01\0\0\0".as_slice())] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = callrecords(&["check", path.to_str().unwrap()], None);
        assert!(!out.status.success());
        assert!(out.stdout_text().contains("FAIL load"), "{name}: {}", out.stdout_text());
        assert!(!out.stderr_text().contains("panicked"), "{}", out.stderr_text());
    }
    let out = callrecords(&["check", dir.join("missing.wasm").to_str().unwrap()], None);
    assert!(!out.status.success());
}
