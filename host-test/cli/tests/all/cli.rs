//! The `callrecords` binary as a user runs it.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use callrecords_conformance::scenarios::expected_shared_key;
use serde_json::Value;

use crate::temp_dir;

pub trait OutputText {
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
}

impl OutputText for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/graph");

fn example(path: &str) -> String {
    format!("{EXAMPLES}/{path}")
}

/// Run the CLI with `args` (and `stdin`, if any).
pub fn callrecords(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callrecords"))
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callrecords");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn assert_clean_failure(out: &Output, expect: &str) {
    assert!(!out.status.success(), "expected failure, got success: {}", out.stdout_text());
    let err = out.stderr_text();
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert!(err.contains(expect), "stderr {err:?} lacks {expect:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

fn ndjson(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", out.stderr_text());
    out.stdout_text().lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
}

fn count(lines: &[Value], table: &str) -> usize {
    lines.iter().filter(|l| l["table"] == table).count()
}

#[test]
fn expand_prints_one_row_per_line() {
    let lines = ndjson(&callrecords(&["expand", &example("callrecords/peer-to-peer.json")], None));
    assert_eq!(count(&lines, "TeamsCall_CL"), 1);
    assert_eq!(count(&lines, "TeamsCallLeg_CL"), 1);
    assert_eq!(count(&lines, "TeamsCallStream_CL"), 4);
    assert_eq!(count(&lines, "TeamsCallParticipant_CL"), 1, "organizer only: participants_v2 was not fetched");
    assert!(lines.iter().all(|l| l["row"]["CallId"] == "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01"));
}

#[test]
fn expand_merges_pages_and_adds_the_seed_row() {
    let args = [
        "expand",
        &example("callrecords/group-call.json"),
        "--session-page",
        &example("callrecords/group-call.sessions-2.json"),
        "--session-page",
        &example("callrecords/group-call.sessions-3.json"),
        "--participant-page",
        &example("callrecords/group-call.participants-1.json"),
        "--participant-page",
        &example("callrecords/group-call.participants-2.json"),
        "--seed",
    ];
    let lines = ndjson(&callrecords(&args.iter().map(|s| s.as_ref()).collect::<Vec<&str>>(), None));
    assert_eq!(count(&lines, "TeamsCallLeg_CL"), 90);
    assert_eq!(count(&lines, "TeamsCallStream_CL"), 180);
    assert_eq!(count(&lines, "TeamsCallParticipant_CL"), 13);
    assert_eq!(count(&lines, "TEAMSGraphCallRecords_CL"), 1);
}

#[test]
fn expand_reads_stdin_and_reports_bad_input() {
    let record = std::fs::read(example("callrecords/pstn.json")).unwrap();
    let lines = ndjson(&callrecords(&["expand", "-"], Some(&record)));
    assert_eq!(count(&lines, "TeamsCallLeg_CL"), 2);
    assert_clean_failure(&callrecords(&["expand", "-"], Some(b"{\"sessions\": ")), "invalid JSON");
    assert_clean_failure(&callrecords(&["expand", "-"], Some(&[0xff, 0xfe])), "not UTF-8");
    assert_clean_failure(&callrecords(&["expand", "/no/such/file.json"], None), "/no/such/file.json");
}

#[test]
fn webhook_answers_the_handshake_and_judges_deliveries() {
    let out = callrecords(
        &["webhook", "--client-state", "teams-sentinel-demo", &example("notifications/validation.http")],
        None,
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    let v: Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(v["response"]["status"], 200);
    assert_eq!(
        v["response"]["body"],
        "Validation: Testing client application reachability for subscription Request-Id: 3bc1e4a8-93b1-4b4f-9c3b-1f0c1f1e2d3c"
    );
    let raw = std::fs::read(example("notifications/two-tenants.http")).unwrap();
    let out = callrecords(
        &[
            "webhook",
            "--client-state",
            "teams-sentinel-demo",
            "--allowed-tenant",
            "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11",
            "-",
        ],
        Some(&raw),
    );
    let v: Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(v["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(v["rejected"][0]["reason"], "tenant-not-allowed");
    assert_eq!(v["rejected"][0]["index"], 1);
}

#[test]
fn webhook_reports_unreadable_requests() {
    assert_clean_failure(&callrecords(&["webhook", "--client-state", "x", "-"], Some(b"garbage")), "HTTP");
    assert_clean_failure(
        &callrecords(
            &["webhook", "--client-state", "x", "-"],
            Some(b"POST / HTTP/1.1\r\nContent-Length: 99\r\n\r\n{}"),
        ),
        "Content-Length",
    );
    let out = callrecords(&["webhook", "-"], Some(b""));
    assert!(!out.status.success(), "a clientState is required");
}

#[test]
fn sign_matches_an_independently_computed_hmac() {
    let key = base64::engine::general_purpose::STANDARD.encode(b"another made-up workspace key");
    let ws = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let date = "Fri, 27 Nov 2026 10:00:00 GMT";
    let out = callrecords(
        &["sign", "--workspace-id", ws, "--shared-key", &key, "--date", date, "--content-length", "4711"],
        None,
    );
    assert!(out.status.success(), "{}", out.stderr_text());
    assert_eq!(out.stdout_text().trim(), expected_shared_key(ws, &key, date, 4711));
    let secret = "c2VjcmV0IGtleQ";
    let out = callrecords(
        &[
            "sign",
            "--workspace-id",
            ws,
            "--shared-key",
            &format!("{secret}!!"),
            "--date",
            date,
            "--content-length",
            "1",
        ],
        None,
    );
    assert_clean_failure(&out, "base64");
    assert!(!out.stderr_text().contains(secret), "the key leaked into the error");
    assert_clean_failure(
        &callrecords(
            &["sign", "--workspace-id", ws, "--shared-key", &key, "--date", "today", "--content-length", "1"],
            None,
        ),
        "RFC 1123",
    );
}

#[test]
fn schema_prints_every_table() {
    let out = callrecords(&["schema"], None);
    assert!(out.status.success());
    let v: Value = serde_json::from_str(&out.stdout_text()).unwrap();
    let names: Vec<&str> = v["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "TeamsCall_CL",
            "TeamsCallLeg_CL",
            "TeamsCallStream_CL",
            "TeamsCallParticipant_CL",
            "TeamsPstnCall_CL",
            "TeamsDirectRoutingCall_CL",
            "TEAMSGraphCallRecords_CL"
        ]
    );
}

#[test]
fn replay_writes_rows_and_verifiable_requests() {
    let dir = temp_dir("replay");
    let out = callrecords(&["replay", "--examples", EXAMPLES, "--out", dir.to_str().unwrap()], None);
    assert!(out.status.success(), "{}\n{}", out.stdout_text(), out.stderr_text());
    let summary: Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let requests = std::fs::read_dir(std::path::Path::new(EXAMPLES).join("notifications"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "http"))
        .count();
    assert_eq!(summary["webhook_requests"], requests, "one per notifications/*.http");
    assert_eq!(summary["validations"], 1);
    assert_eq!(summary["calls"], 5, "five distinct sample calls are notified");
    assert_eq!(summary["failed_calls"].as_array().unwrap().len(), 0);
    assert_eq!(summary["rejected"]["client-state-mismatch"], 1);
    assert_eq!(summary["rows"]["TeamsCallLeg_CL"], 1 + 90 + 2 + 6 + 3);
    assert_eq!(summary["rows"]["TEAMSGraphCallRecords_CL"], 5);
    let legs = std::fs::read_to_string(dir.join("rows/TeamsCallLeg_CL.ndjson")).unwrap();
    assert_eq!(legs.lines().count(), 102);

    let mut saw_dc = false;
    let mut saw_li = false;
    for entry in std::fs::read_dir(dir.join("requests")).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let req = callrecords_host::rawhttp::parse_request(&raw).unwrap();
        let h = |n: &str| req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        if req.path_and_query.starts_with("/api/logs") {
            saw_dc = true;
            let date = h("x-ms-date").unwrap();
            let want = expected_shared_key(
                callrecords_test_kit::demo::DEMO_WORKSPACE,
                callrecords_test_kit::demo::DEMO_SHARED_KEY,
                &date,
                req.body.len() as u64,
            );
            assert_eq!(h("authorization"), Some(want));
            let rows: Vec<Value> = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(rows.len(), 5);
        } else {
            saw_li = true;
            assert!(req.path_and_query.contains("/dataCollectionRules/dcr-"), "{}", req.path_and_query);
            assert_eq!(h("content-encoding").as_deref(), Some("gzip"));
            assert!(req.body.len() <= 1_000_000);
            let mut json = vec![];
            flate2::read::GzDecoder::new(&req.body[..]).read_to_end(&mut json).unwrap();
            let rows: Vec<Value> = serde_json::from_slice(&json).unwrap();
            assert!(!rows.is_empty());
        }
    }
    assert!(saw_dc && saw_li);
}

#[test]
fn replay_reports_a_missing_examples_folder() {
    assert_clean_failure(&callrecords(&["replay", "--examples", "/no/such/folder"], None), "/no/such/folder");
}
