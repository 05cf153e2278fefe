//! `callrecords pstn` and `serve`'s PSTN poll, through the built binary, against the Graph
//! stand-in's logs (Microsoft's paging, ranges and limits: `standin/logs.rs`) at cloud latency.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use callrecords_test_kit::standin::{self, Faults, Latency, StandIns};
use serde_json::{Value, json};

use crate::cli::OutputText;
use crate::service::callrecords_dir;
use crate::stock::{ChildGuard, free_port, iso, now_secs, read_lossy, wait_for_port};
use crate::temp_dir;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/graph");

fn pstn_entry(n: usize, start: i64) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{n:012}"), "startDateTime": iso(start), "endDateTime": iso(start + 60),
        "duration": 60, "charge": 0.12, "currency": "EUR", "callType": "user_out",
        "callerNumber": "+4930555000", "calleeNumber": format!("+4989555{n:04}"),
        "userId": "394bbf1c-cdaa-59bf-9983-4820be1ca69a", "userPrincipalName": "aiko.tanaka@contoso.com",
    })
}

fn dr_entry(n: usize, start: i64) -> Value {
    json!({
        "id": format!("11111111-0000-4000-8000-{n:012}"), "startDateTime": iso(start),
        "failureDateTime": iso(start + 2), "endDateTime": "0001-01-01T00:00:00Z", "duration": 0,
        "callType": "ByotOut", "successfulCall": false, "finalSipCode": 503, "callEndSubReason": 560503,
        "trunkFullyQualifiedDomainName": "sbc2.contoso.com",
    })
}

/// The CLI with exactly `env` as its settings.
fn run(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("run callrecords")
}

fn ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter().map(|r| r["Id"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn polls_over_overlapping_windows_ship_each_row_once_at_cloud_latency() {
    let dir = temp_dir("cli-pstn");
    let now = now_secs();
    // 2,300 PSTN rows in the last 40 hours (three pages), 40 Direct Routing rows, and one PSTN row
    // 60 hours back that only the wider second poll reaches.
    let mut pstn: Vec<Value> = (0..2_300).map(|n| pstn_entry(n, now - 40 * 3600 + n as i64 * 60)).collect();
    pstn.push(pstn_entry(9_999, now - 60 * 3600));
    let dr: Vec<Value> = (0..40).map(|n| dr_entry(n, now - 30 * 3600 + n as i64 * 600)).collect();
    let (_, s) = standin::start_http("127.0.0.1:0", move |base| {
        let mut s = StandIns::new(base, &callrecords_dir(), None, Faults::default())?;
        s.set_logs(pstn, dr);
        s.set_latency(Latency::CLOUD);
        Ok(s)
    })
    .expect("stand-ins start");
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let cp = dir.join("state/pstn.json");
    let cp_arg = cp.to_str().unwrap();

    let out = run(&["pstn", "--since", "48h", "--checkpoint", cp_arg], &env);
    assert!(out.status.success(), "{}{}", out.stdout_text(), out.stderr_text());
    let line = out.stdout_text();
    assert!(
        line.contains(
            ": 2300 PSTN and 40 Direct Routing rows listed, 2340 shipped, 0 shipped before (1 range, 4 pages,"
        ),
        "{line}"
    );
    let accepted = s.accepted();
    assert_eq!(ids(&accepted["TeamsPstnCall_CL"]).len(), 2_300);
    assert_eq!(accepted["TeamsPstnCall_CL"].len(), 2_300, "each row once");
    assert_eq!(accepted["TeamsDirectRoutingCall_CL"].len(), 40);
    // Direct Routing's failure has no end: Graph's 0001-01-01 is stored as null.
    assert_eq!(accepted["TeamsDirectRoutingCall_CL"][0]["EndDateTime"], Value::Null);
    let c: Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    assert_eq!(c["shipped"].as_array().unwrap().len(), 2_340);
    assert!(c["polled_until"].is_string());

    // A crashed poll's journal (a key moved out of the file into it, then a line the crash cut
    // short) is read: that row is not shipped again, and the torn line becomes no key.
    let mut c: Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    let moved = c["shipped"].as_array_mut().unwrap().pop().unwrap();
    std::fs::write(&cp, c.to_string()).unwrap();
    let journal = dir.join("state/pstn.json.journal");
    std::fs::write(&journal, format!("{}\npstn:00000000-0000-4000-8000-0000000", moved.as_str().unwrap())).unwrap();

    // A wider poll an instant later: only the row 60 hours back is new.
    let out = run(&["pstn", "--since", "3d", "--checkpoint", cp_arg], &env);
    assert!(out.status.success(), "{}{}", out.stdout_text(), out.stderr_text());
    let line = out.stdout_text();
    assert!(line.contains(": 2301 PSTN and 40 Direct Routing rows listed, 1 shipped, 2340 shipped before"), "{line}");
    // Rows from more than 2 days back: the note on Logs Ingestion's TimeGenerated.
    assert!(out.stderr_text().contains("TeamsPstnCalls each log row by its StartDateTime"), "{}", out.stderr_text());
    let accepted = s.accepted();
    assert_eq!(accepted["TeamsPstnCall_CL"].len(), 2_301);
    assert!(ids(&accepted["TeamsPstnCall_CL"]).contains("00000000-0000-4000-8000-000000009999"));
    assert!(!journal.exists(), "the journal is folded into the checkpoint");
    let c: Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    let keys = c["shipped"].as_array().unwrap();
    assert_eq!(keys.len(), 2_341);
    assert!(keys.contains(&moved) && keys.iter().all(|k| k.as_str().unwrap().contains('@')), "{c}");

    // A narrower poll beside them keeps every key a 48-hour poll may list again; keys of rows that
    // started more than 7 days back are forgotten. Plant one such key.
    let mut c: Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    let old = format!("pstn:00000000-0000-4000-8000-000000777777@{}", iso(now - 8 * 86_400));
    c["shipped"].as_array_mut().unwrap().push(json!(old));
    std::fs::write(&cp, c.to_string()).unwrap();
    let out = run(&["pstn", "--since", "2h", "--checkpoint", cp_arg], &env);
    assert!(out.status.success(), "{}", out.stderr_text());
    let c: Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    let kept: BTreeSet<&str> = c["shipped"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(kept.len(), 2_341);
    assert!(!kept.contains(old.as_str()));

    // 100 days: two ranges (the stand-in answers 406 past 90 days, as Graph does); nothing new.
    let out = run(&["pstn", "--since", "100d", "--checkpoint", cp_arg], &env);
    assert!(out.status.success(), "{}{}", out.stdout_text(), out.stderr_text());
    let line = out.stdout_text();
    assert!(
        line.contains(": 2301 PSTN and 40 Direct Routing rows listed, 0 shipped, 2341 shipped before (2 ranges,"),
        "{line}"
    );

    // While another poll holds the checkpoint, a second one is refused instead of overwriting it.
    let lock = std::fs::File::options().write(true).open(dir.join("state/pstn.json.lock")).unwrap();
    lock.lock().unwrap();
    let out = run(&["pstn", "--since", "2h", "--checkpoint", cp_arg], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr_text().contains("another PSTN poll is using the checkpoint"), "{}", out.stderr_text());
    drop(lock);
}

#[test]
fn pstn_refuses_a_bad_since_and_names_the_form() {
    let out = run(&["pstn", "--since", "yesterday"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr_text().contains("48h, 7d"), "{}", out.stderr_text());
}

/// Until `serve` logged its first poll's line.
fn wait_for_a_poll(log: &std::path::Path) {
    let started = std::time::Instant::now();
    while !read_lossy(log).lines().any(|l| l.starts_with("pstn ")) {
        assert!(started.elapsed() < Duration::from_secs(60), "no poll in 60 s:\n{}", read_lossy(log));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_polls_the_logs_at_start() {
    let dir = temp_dir("cli-pstn-serve");
    let ws = dir.join("ws");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("serve.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(["serve", "--listen", &addr.to_string(), "--workspace", ws.to_str().unwrap(), "--examples", EXAMPLES]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    cmd.stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
    let mut child = ChildGuard(cmd.spawn().expect("spawn callrecords serve"));
    wait_for_port(addr, &mut child, Duration::from_secs(120), &log);
    wait_for_a_poll(&log);
    drop(child);
    let output = read_lossy(&log);
    assert!(output.contains("polled now and every 60 min over the last 48 h"), "{output}");
    // The sample logs: 8 PSTN and 5 Direct Routing rows (examples/graph/README.md), moved to the last hours.
    let line = output.lines().find(|l| l.starts_with("pstn ")).unwrap();
    assert!(line.contains(": 8 PSTN and 5 Direct Routing rows listed, 13 shipped, 0 shipped before"), "{line}");
    let count = |t: &str| std::fs::read_to_string(ws.join(format!("{t}.ndjson"))).map_or(0, |s| s.lines().count());
    assert_eq!((count("TeamsPstnCall_CL"), count("TeamsDirectRoutingCall_CL")), (8, 5));
    assert!(ws.join("pstn.checkpoint.json").is_file());
}

#[test]
fn serve_catches_up_when_its_polls_stopped_for_longer_than_the_window() {
    // The last complete poll ended 72 hours ago (serve was down for three days): a row of a call
    // 80 hours back that only appeared later is past the usual 48 hours, and still shipped.
    let dir = temp_dir("cli-pstn-catch-up");
    let now = now_secs();
    let pstn = vec![pstn_entry(1, now - 80 * 3600), pstn_entry(2, now - 30 * 3600), pstn_entry(3, now - 130 * 3600)];
    let (_, s) = standin::start_http("127.0.0.1:0", move |base| {
        let mut s = StandIns::new(base, &callrecords_dir(), None, Faults::default())?;
        s.set_logs(pstn, vec![]);
        Ok(s)
    })
    .expect("stand-ins start");
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let cp = ws.join("pstn.checkpoint.json");
    std::fs::write(&cp, json!({"polled_until": iso(now - 72 * 3600), "shipped": []}).to_string()).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("serve.log");
    let args = ["serve", "--listen", &addr.to_string(), "--workspace", ws.to_str().unwrap(), "--sweep-minutes", "0"];
    let child = crate::queue::spawn_cli(&args, &env, &log, Some(addr));
    wait_for_a_poll(&log);
    drop(child);
    let output = read_lossy(&log);
    // From the last poll's end minus the window: 120 hours back, so the row 130 hours back stays out.
    assert!(output.contains(&format!("pstn: earlier polls did not read past {}", iso(now - 72 * 3600))), "{output}");
    let line = output.lines().find(|l| l.starts_with("pstn ")).unwrap();
    assert!(line.starts_with(&format!("pstn {} .. ", iso(now - 120 * 3600))), "{line}");
    assert!(line.contains(": 2 PSTN and 0 Direct Routing rows listed, 2 shipped, 0 shipped before"), "{line}");
    assert_eq!(ids(&s.accepted()["TeamsPstnCall_CL"]).len(), 2);
    // The checkpoint now reads to this poll's end, with both keys; the journal is folded in.
    let c: Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    let until = callrecords::values::parse_timestamp(c["polled_until"].as_str().unwrap()).unwrap().secs;
    assert!(until >= now, "{c}");
    assert_eq!(c["shipped"].as_array().unwrap().len(), 2);
    assert!(!ws.join("pstn.checkpoint.json.journal").exists());
}
