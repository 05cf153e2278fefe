//! The CLI's jobs (backfill, subscribe, subscriptions, renew, unsubscribe) and `serve`, through
//! the built binary, against stand-ins served over real HTTP by this test process.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use callrecords_test_kit::demo::{CONTOSO, DEMO_CLIENT_STATE};
use callrecords_test_kit::standin::{self, Faults, StandIns};
use serde_json::Value;

use crate::cli::OutputText;
use crate::service::{callrecords_dir, delivery, item};
use crate::stock::{ChildGuard, free_port, get, iso, now_secs, post, read_lossy, unix_secs, wait_for_port};
use crate::temp_dir;

const SECRET: &str = "demo-client-secret";
const GROUP: &str = "8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02";
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/graph");

/// Stand-ins over HTTP on a free port, rows also written under `workspace`.
fn standins(workspace: &Path) -> Arc<StandIns> {
    let ws = workspace.to_path_buf();
    let (_, s) = standin::start_http("127.0.0.1:0", move |base| {
        StandIns::new(base, &callrecords_dir(), Some(ws), Faults::default())
    })
    .expect("stand-ins start");
    s
}

/// The CLI with exactly `env` as its CALLRECORDS_* settings (none inherited).
fn run(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().expect("run callrecords");
    assert_no_secret(&out);
    out
}

fn assert_no_secret(out: &Output) {
    for text in [out.stdout_text(), out.stderr_text()] {
        assert!(!text.contains(SECRET), "the client secret was printed:\n{text}");
    }
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{:?}\nstdout: {}\nstderr: {}", out.status, out.stdout_text(), out.stderr_text());
}

/// Exit code 1, one clean `error:` line naming `expect`.
fn assert_fails_with(out: &Output, expect: &str) {
    assert_eq!(out.status.code(), Some(1), "stdout: {}\nstderr: {}", out.stdout_text(), out.stderr_text());
    let err = out.stderr_text();
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert!(err.contains(expect), "stderr {err:?} lacks {expect:?}");
    assert!(!err.contains("panicked"), "{err}");
}

fn summary_line(out: &Output) -> String {
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("backfill ")).collect();
    assert_eq!(lines.len(), 1, "one summary line expected in {text:?}");
    lines[0].to_string()
}

fn call_ids(s: &StandIns) -> BTreeSet<String> {
    s.accepted()
        .get("TeamsCall_CL")
        .into_iter()
        .flatten()
        .map(|r| r["CallId"].as_str().expect("CallId").to_string())
        .collect()
}

fn row_counts(s: &StandIns) -> Vec<(String, usize)> {
    s.accepted().into_iter().map(|(k, v)| (k, v.len())).collect()
}

/// The sample calls that started in `[since, until)`, read from the sample files here.
fn sample_calls_between(since: &str, until: &str) -> BTreeSet<String> {
    let (lo, hi) = (unix_secs(since), unix_secs(until));
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(callrecords_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let (Some(id), Some(start)) = (v["id"].as_str(), v["startDateTime"].as_str())
            && (lo..hi).contains(&unix_secs(start))
        {
            ids.insert(id.to_string());
        }
    }
    ids
}

fn checkpoint(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("the checkpoint was written")).expect("checkpoint is JSON")
}

#[test]
fn backfill_ships_every_call_then_resumes_from_its_checkpoint() {
    let dir = temp_dir("jobs-cli-backfill");
    let s = standins(&dir.join("ws"));
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let cp = dir.join("cp.json");
    let (since, until) = ("2026-11-20T00:00:00Z", "2026-11-28T00:00:00Z");
    let expected = sample_calls_between(since, until);
    assert_eq!(expected.len(), 6, "the six sample calls start in the window");
    let cp_arg = cp.to_str().unwrap();
    let backfill = |since: &str, until: &str| {
        run(&["backfill", "--since", since, "--until", until, "--window-hours", "24", "--checkpoint", cp_arg], &env)
    };

    let out = backfill(since, until);
    assert_ok(&out);
    // The window is more than 2 days old: Logs Ingestion will time these rows by their arrival.
    let note = out.stderr_text();
    assert!(note.contains("TimeGenerated older than 2 days") && note.contains("LegStart"), "{note}");
    let line = summary_line(&out);
    assert!(line.starts_with(&format!("backfill {since} .. {until}: 8 windows, 6 calls, ")), "{line}");
    assert!(line.ends_with(", 0 calls failed"), "{line}");
    assert_eq!(call_ids(&s), expected);
    assert_eq!(s.accepted()["TeamsCall_CL"].len(), 6, "one call row per call");
    // A DCR would drop a column the schema does not declare, silently: the core sends none.
    assert_eq!(s.dropped_columns(), Vec::<String>::new());
    let landed = std::fs::read_to_string(dir.join("ws/TeamsCall_CL.ndjson")).unwrap();
    assert_eq!(landed.lines().count(), 6);
    let c = checkpoint(&cp);
    assert_eq!(c["since"], since);
    assert_eq!(c["until"], until);
    assert_eq!(c["completed_until"], until);
    let rows: usize = s.accepted().values().map(Vec::len).sum();
    assert!(line.contains(&format!(" {rows} rows, ")), "{line} vs {rows} rows accepted");

    // The same window again: the checkpoint says it is done; nothing is asked or shipped.
    let before = row_counts(&s);
    let (graph, tokens) = (s.counters().graph, s.counters().tokens);
    let out = backfill(since, until);
    assert_ok(&out);
    let line = summary_line(&out);
    assert!(line.starts_with(&format!("backfill {until} .. {until}: 0 windows, 0 calls, 0 rows")), "{line}");
    assert_eq!(row_counts(&s), before);
    assert_eq!((s.counters().graph, s.counters().tokens), (graph, tokens));
    assert_eq!(checkpoint(&cp)["completed_until"], until);

    // Another window: the checkpoint is not for it, so it starts over from its own since.
    let later = "2026-11-28T12:00:00Z";
    let out = backfill(since, later);
    assert_ok(&out);
    let line = summary_line(&out);
    assert!(line.starts_with(&format!("backfill {since} .. {later}: 9 windows, 6 calls, ")), "{line}");
    assert_eq!(s.accepted()["TeamsCall_CL"].len(), 12, "every call shipped again");
    let c = checkpoint(&cp);
    assert_eq!((c["since"].as_str(), c["until"].as_str()), (Some(since), Some(later)));
    assert_eq!(c["completed_until"], later);
}

/// `kill -9` in the middle of a backfill at cloud latency, then the same command again: every call
/// lands, the calls the checkpoint named are never shipped twice, and what is redone is only what
/// had not been named yet (the calls in flight). The rerun's requests go over far fewer
/// connections than requests: the sender keeps them alive.
#[test]
fn backfill_killed_mid_run_resumes_and_redoes_only_the_calls_in_flight() {
    const CALLS: i64 = 300;
    let dir = temp_dir("jobs-cli-backfill-kill");
    let now = now_secs();
    let (since, until) = (iso(now - 3 * 3600), iso(now - 3600));
    let s = crate::stock::cloud_standins(CALLS as u64, now - 3 * 3600 + 30, 20);
    let mut env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    env.push(("CALLRECORDS_MAX_IN_FLIGHT".into(), "64".into()));
    let cp = dir.join("cp.json");
    let args =
        ["backfill", "--since", &since, "--until", &until, "--window-hours", "1", "--checkpoint", cp.to_str().unwrap()];
    let named = |c: &Value| -> BTreeSet<String> {
        c["shipped"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect()
    };

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = ChildGuard(cmd.spawn().expect("start the backfill"));
    // Kill it once the checkpoint names 60 calls of the first window, while it is busy.
    let started = std::time::Instant::now();
    loop {
        let c = std::fs::read(&cp).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        if c.as_ref().is_some_and(|c| c["completed_until"].is_null() && named(c).len() >= 60) {
            break;
        }
        assert!(child.0.try_wait().unwrap().is_none(), "the backfill ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint with 60 calls after 2 min");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().expect("SIGKILL");
    child.0.wait().unwrap();
    let at_kill = checkpoint(&cp);
    let checkpointed = named(&at_kill);
    let landed_before = call_ids(&s);
    assert!(checkpointed.is_subset(&landed_before), "the checkpoint names only calls whose rows were accepted");
    let (conns, requests) = (s.counters().connections, s.counters().graph + s.counters().ingestion);

    let out = run(&args, &env);
    assert_ok(&out);
    let line = summary_line(&out);
    assert!(line.contains(&format!(", {} calls skipped (shipped before)", checkpointed.len())), "{line}");
    let mut per_call: std::collections::BTreeMap<String, usize> = Default::default();
    for row in &s.accepted()["TeamsCall_CL"] {
        *per_call.entry(row["CallId"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let synthetic: BTreeSet<String> = (0..CALLS).map(|n| format!("5a1e0000-0000-4000-8000-{n:012x}")).collect();
    assert_eq!(per_call.keys().cloned().collect::<BTreeSet<_>>(), synthetic, "every call landed");
    for id in &checkpointed {
        assert_eq!(per_call[id], 1, "call {id} was in the checkpoint and shipped again");
    }
    let twice: BTreeSet<&String> = per_call.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    let not_named: BTreeSet<&String> = landed_before.difference(&checkpointed).collect();
    assert!(twice.is_subset(&not_named), "only calls the checkpoint had not named yet are redone");
    println!(
        "killed after {} calls named, {} landed; the rerun redid {} ({} calls in all)",
        checkpointed.len(),
        landed_before.len(),
        twice.len(),
        per_call.len()
    );
    let c = checkpoint(&cp);
    assert_eq!(c["completed_until"], until.as_str());
    assert!(named(&c).is_empty(), "a finished backfill names no calls beyond its end");

    // Connections kept alive: the rerun sent hundreds of requests over at most one per request in flight.
    let (conns, requests) = (s.counters().connections - conns, s.counters().graph + s.counters().ingestion - requests);
    assert!(requests >= 300, "{requests} requests");
    assert!(conns <= 64 + 8, "{conns} connections for {requests} requests");
    println!("rerun: {requests} requests over {conns} connections");
}

#[test]
fn backfill_refuses_a_start_beyond_graphs_30_days() {
    let dir = temp_dir("jobs-cli-backfill-30");
    let s = standins(&dir.join("ws"));
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let since = iso(now_secs() - 31 * 86_400);
    let cp = dir.join("cp.json");
    let out = run(&["backfill", "--since", &since, "--checkpoint", cp.to_str().unwrap()], &env);
    assert_fails_with(&out, "30 days");
    assert_eq!(s.counters().graph + s.counters().tokens, 0, "refused before any request");
    assert!(!cp.exists(), "no checkpoint for a refused run");
    // Just inside the limit is fine (nothing started then, so nothing ships).
    let since = iso(now_secs() - 29 * 86_400);
    let until = iso(unix_secs(&since) + 3600);
    let out = run(&["backfill", "--since", &since, "--until", &until, "--checkpoint", cp.to_str().unwrap()], &env);
    assert_ok(&out);
    assert!(summary_line(&out).contains(": 1 windows, 0 calls, 0 rows"), "{}", out.stdout_text());
}

#[test]
fn subscription_jobs_create_list_renew_and_delete() {
    let dir = temp_dir("jobs-cli-subscriptions");
    let s = standins(&dir.join("ws"));
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let notification_url = env.iter().find(|(k, _)| k == "CALLRECORDS_NOTIFICATION_URL").unwrap().1.clone();

    let before = now_secs();
    let out = run(&["subscribe"], &env);
    let after = now_secs();
    assert_ok(&out);
    let subs = s.subscriptions();
    assert_eq!(subs.len(), 1, "{subs:?}");
    let sub = &subs[0];
    let id = sub["id"].as_str().expect("subscription id").to_string();
    assert_eq!(sub["resource"], "/communications/callRecords");
    assert_eq!(sub["notificationUrl"], notification_url.as_str());
    let change = sub["changeType"].as_str().unwrap_or_default();
    // Graph's callRecords docs: an `updated` subscription also sends the notification for a
    // record's first version, so `updated` alone misses nothing (and `created` would repeat it).
    assert_eq!(change, "updated", "changeType");
    let expiry = sub["expirationDateTime"].as_str().expect("expirationDateTime").to_string();
    let expires = unix_secs(&expiry);
    // Graph's ceiling for callRecords subscriptions: 4230 minutes from now.
    assert!(expires <= after + 4230 * 60, "{expiry} is beyond now + 4230 minutes");
    assert!(expires > before + 4000 * 60, "{expiry}: the subscription should last close to the maximum");
    assert!(
        out.stdout_text().lines().any(|l| l.starts_with(&format!("created subscription {id} until "))),
        "{}",
        out.stdout_text()
    );

    let out = run(&["subscriptions"], &env);
    assert_ok(&out);
    let listed: Vec<Value> =
        out.stdout_text().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect();
    assert_eq!(listed.len(), 1, "{}", out.stdout_text());
    assert!(out.stdout_text().contains(&id));

    // Everything expires within 5000 minutes, so ours is renewed (to a later or equal ceiling).
    std::thread::sleep(Duration::from_millis(1100));
    let out = run(&["renew", "--margin-minutes", "5000"], &env);
    assert_ok(&out);
    let renewed_line = out.stdout_text().lines().any(|l| l.starts_with(&format!("renewed subscription {id} until ")));
    let new_expiry = s.subscriptions()[0]["expirationDateTime"].as_str().unwrap().to_string();
    assert!(renewed_line || new_expiry != expiry, "not renewed: {}", out.stdout_text());
    assert!(renewed_line, "no `renewed subscription` line: {}", out.stdout_text());
    assert!(unix_secs(&new_expiry) >= expires && unix_secs(&new_expiry) <= now_secs() + 4230 * 60, "{new_expiry}");
    // A margin that nothing falls in renews nothing.
    let out = run(&["renew", "--margin-minutes", "60"], &env);
    assert_ok(&out);
    assert!(!out.stdout_text().contains("renewed subscription"), "{}", out.stdout_text());

    let out = run(&["unsubscribe", &id], &env);
    assert_ok(&out);
    assert!(s.subscriptions().is_empty(), "{:?}", s.subscriptions());

    let graph = s.counters().graph;
    let out = run(&["unsubscribe", "not/a-guid"], &env);
    assert_fails_with(&out, "GUID");
    assert_eq!(s.counters().graph, graph, "an invalid id is refused before Graph is asked");
}

#[test]
fn jobs_without_settings_name_the_missing_one() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.arg("subscriptions").env_clear().stdin(Stdio::null());
    for k in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().unwrap();
    assert_no_secret(&out);
    assert_fails_with(&out, "CALLRECORDS_TENANT_ID");
}

#[test]
fn serve_runs_the_embedded_default_and_masks_the_secret() {
    let dir = temp_dir("jobs-cli-serve");
    let ws = dir.join("ws");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("serve.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    // The PSTN poll (its own test below) would share the tokens counted here.
    let args = ["--listen", &addr.to_string(), "--workspace", ws.to_str().unwrap(), "--examples", EXAMPLES];
    cmd.arg("serve").args(args).args(["--pstn-minutes", "0"]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    cmd.stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
    let mut child = ChildGuard(cmd.spawn().expect("spawn callrecords serve"));
    wait_for_port(addr, &mut child, Duration::from_secs(120), &log);

    let r = post(addr, "/notify?validationToken=hello%20graph", None, b"");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), read_lossy(&log));
    assert_eq!(r.text(), "hello graph");

    let body = delivery(vec![item(GROUP, CONTOSO, DEMO_CLIENT_STATE)]).to_string();
    let r = post(addr, "/notify", Some("application/json"), body.as_bytes());
    assert_eq!(r.status, 202, "{}\n{}", r.text(), read_lossy(&log));
    // Queue mode: the 202 says "queued"; the workers ship it right after.
    let landed = ws.join("TeamsCall_CL.ndjson");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&landed).map_or(true, |t| t.lines().count() < 1) {
        assert!(started.elapsed() < Duration::from_secs(60), "nothing landed in 60 s:\n{}", read_lossy(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    let health = get(addr, "/healthz");
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(serde_json::from_slice::<Value>(&health.body).unwrap()["ready"], true);
    // Once the worker's turn is counted.
    let mut metrics = get(addr, "/metrics").text();
    while !metrics.lines().any(|l| l == "callrecords_calls_shipped_total 1") {
        assert!(started.elapsed() < Duration::from_secs(60), "the turn was never counted:\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
        metrics = get(addr, "/metrics").text();
    }
    for line in ["callrecords_notifications_queued_total 1", "callrecords_deliveries_total 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in\n{metrics}");
    }
    // A Graph and a Monitor token in all (the keeper's Graph token, kept, serves the worker too),
    // or one Graph token more if the keeper and the worker asked at the same moment.
    let tokens = metrics.lines().find_map(|l| l.strip_prefix("callrecords_token_requests_total "));
    assert!(matches!(tokens, Some("2" | "3")), "token requests: {tokens:?}\n{metrics}");
    drop(child);

    let calls = std::fs::read_to_string(&landed).expect("rows landed in the workspace");
    let rows: Vec<Value> = calls.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{calls}");
    assert_eq!(rows[0]["CallId"], GROUP);

    let output = read_lossy(&log);
    assert!(!output.contains(SECRET), "the client secret was printed:\n{output}");
    let secret_line = output
        .lines()
        .find(|l| l.trim_start().starts_with("CALLRECORDS_CLIENT_SECRET"))
        .unwrap_or_else(|| panic!("no client secret setting in the banner:\n{output}"));
    assert!(secret_line.contains("<secret"), "{secret_line}");
    assert!(output.contains("settings in effect:"), "{output}");
    assert!(output.lines().any(|l| l.starts_with("POST /notify ") && l.contains(" 202 ")), "{output}");
}
