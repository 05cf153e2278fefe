//! Queue mode through the built `callrecords serve`, against stand-ins over HTTP at cloud latency:
//! a SIGKILL in the middle of a 1,000-notification run, then a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callrecords_test_kit::demo::{CONTOSO, DEMO_CLIENT_STATE};
use callrecords_test_kit::standin::{self, Faults, StandIns};

use crate::service::{callrecords_dir, delivery, item};
use crate::stock::{ChildGuard, cloud_standins, free_port, get, iso, now_secs, post, read_lossy, wait_for_port};
use crate::temp_dir;

const CALLS: u64 = 1_000;
const PER_POST: usize = 5;

pub fn call_id(n: u64) -> String {
    format!("5a1e0000-0000-4000-8000-{n:012x}")
}

fn start_serve(
    addr: SocketAddr,
    env: &[(String, String)],
    queue: &std::path::Path,
    log: &std::path::Path,
) -> ChildGuard {
    // Its own workspace; no PSTN poll (`pstn.rs` tests it): these tests count Graph's requests.
    let ws = queue.parent().unwrap().join("ws");
    let args = [
        "serve",
        "--listen",
        &addr.to_string(),
        "--queue",
        queue.to_str().unwrap(),
        "--lease-seconds",
        "2",
        "--workspace",
        ws.to_str().unwrap(),
        "--pstn-minutes",
        "0",
    ];
    spawn_cli(&args, env, log, Some(addr))
}

/// `callrecords ARGS` with exactly `env` as its CALLRECORDS_* settings, its output appended to
/// `log`; once `addr` (if any) takes connections.
pub fn spawn_cli(
    args: &[&str],
    env: &[(String, String)],
    log: &std::path::Path,
    addr: Option<SocketAddr>,
) -> ChildGuard {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
    let mut child = ChildGuard(cmd.spawn().expect("spawn callrecords"));
    if let Some(addr) = addr {
        wait_for_port(addr, &mut child, Duration::from_secs(120), log);
    }
    child
}

/// The tables a callRecord's rows go to (not the PSTN logs, which `serve` polls beside them).
const CALL_TABLES: [&str; 4] = ["TeamsCall_CL", "TeamsCallLeg_CL", "TeamsCallStream_CL", "TeamsCallParticipant_CL"];

/// callRecord rows accepted per (CallId, table).
pub fn landed(s: &StandIns) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (table, rows) in s.accepted().into_iter().filter(|(t, _)| CALL_TABLES.contains(&t.as_str())) {
        for r in rows {
            *out.entry((r["CallId"].as_str().unwrap_or_default().to_string(), table.clone())).or_default() += 1;
        }
    }
    out
}

/// The calls with rows in every callRecord table that has rows (a call's tables are POSTed
/// together, so one may be in before another).
pub fn complete_calls(s: &StandIns) -> BTreeSet<String> {
    let rows = landed(s);
    let tables: BTreeSet<&String> = rows.keys().map(|(_, t)| t).collect();
    let mut per: BTreeMap<&String, usize> = BTreeMap::new();
    for (c, _) in rows.keys() {
        *per.entry(c).or_default() += 1;
    }
    per.into_iter().filter(|(_, n)| *n == tables.len()).map(|(c, _)| c.clone()).collect()
}

/// Every notification that got a 202 lands, although `serve` was killed with SIGKILL while its
/// workers were busy; the rerun's duplicates are at most the calls that were being worked on.
#[test]
fn serve_killed_mid_run_loses_no_notification_it_answered_202() {
    let dir = temp_dir("queue-crash");
    let now = now_secs();
    let s = cloud_standins(CALLS, now - 7200, 1);
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let (queue, log) = (dir.join("queue.sqlite3"), dir.join("serve.log"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut serve = start_serve(addr, &env, &queue, &log);

    // Graph's deliveries: POSTs of 5 notifications; a POST not answered 202 is delivered again.
    let posts: Vec<Vec<String>> =
        (0..CALLS).map(call_id).collect::<Vec<_>>().chunks(PER_POST).map(|c| c.to_vec()).collect();
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let mut answer_ms: Vec<f64> = vec![];
    let mut pending: std::collections::VecDeque<Vec<String>> = posts.into_iter().collect();
    let mut killed = false;
    let mut redeliveries = 0;
    let started = Instant::now();
    while let Some(ids) = pending.pop_front() {
        let body = delivery(ids.iter().map(|id| item(id, CONTOSO, DEMO_CLIENT_STATE)).collect()).to_string();
        let t = Instant::now();
        let ok = std::panic::catch_unwind(|| post(addr, "/notify", Some("application/json"), body.as_bytes()))
            .is_ok_and(|r| r.status == 202);
        if ok {
            answer_ms.push(t.elapsed().as_secs_f64() * 1e3);
            acknowledged.extend(ids);
        } else {
            redeliveries += 1;
            pending.push_back(ids);
            std::thread::sleep(Duration::from_millis(100));
        }
        // Half way, once the workers have shipped some calls: SIGKILL, then start again.
        if !killed && acknowledged.len() >= CALLS as usize / 2 {
            let shipped_before = s.accepted().get("TeamsCall_CL").map_or(0, Vec::len);
            if shipped_before >= 20 {
                serve.0.kill().expect("SIGKILL");
                serve.0.wait().unwrap();
                killed = true;
                println!(
                    "killed after {} notifications acknowledged, {shipped_before} calls landed",
                    acknowledged.len()
                );
                serve = start_serve(addr, &env, &queue, &log);
            }
        }
    }
    if !killed {
        // Every POST was answered before 20 calls shipped (a busy machine): kill while the
        // worker is draining.
        let deadline = Instant::now() + Duration::from_secs(120);
        while s.accepted().get("TeamsCall_CL").map_or(0, Vec::len) < 20 {
            assert!(Instant::now() < deadline, "nothing shipped in 2 min:\n{}", read_lossy(&log));
            std::thread::sleep(Duration::from_millis(10));
        }
        serve.0.kill().expect("SIGKILL");
        serve.0.wait().unwrap();
        println!("killed after every notification was acknowledged, while the worker drained");
        serve = start_serve(addr, &env, &queue, &log);
    }
    let _serve = serve;
    // Everything acknowledged lands.
    let want: BTreeSet<String> = (0..CALLS).map(call_id).collect();
    assert_eq!(acknowledged, want, "every notification was acknowledged in the end");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let calls = complete_calls(&s);
        if want.is_subset(&calls) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {CALLS} calls landed after 4 min\n{}",
            want.intersection(&calls).count(),
            read_lossy(&log).lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let secs = started.elapsed().as_secs_f64();
    // Each table of each call once, except those being worked on at the kill (the worker holds at
    // most a batch of 100, and takes each call off the queue as soon as it is shipped).
    let rows = landed(&s);
    let once = rows.get(&(call_id(0), "TeamsCall_CL".to_string())).copied().unwrap_or(0);
    assert_eq!(once.min(1), 1);
    let twice: BTreeSet<&String> =
        rows.iter().filter(|((_, t), n)| t == "TeamsCall_CL" && **n > 1).map(|((c, _), _)| c).collect();
    // At most the one turn that was being worked on (the batch of 100) is shipped again.
    assert!(twice.len() <= 100, "{} calls shipped twice", twice.len());
    answer_ms.sort_by(f64::total_cmp);
    let p99 = answer_ms[(answer_ms.len() * 99 / 100).min(answer_ms.len() - 1)];
    println!(
        "{CALLS} notifications in {} POSTs ({redeliveries} redelivered around the kill); all landed in {secs:.1} s; \
         {} calls shipped twice (in flight at the kill); webhook answer p99 {p99:.1} ms",
        answer_ms.len(),
        twice.len()
    );
    // The queue empties once the last turn is settled.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = get(addr, "/metrics").text();
        if metrics.lines().any(|l| l == "callrecords_queue_depth 0") {
            break;
        }
        assert!(Instant::now() < deadline, "the queue never emptied:\n{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// 30 % of the notifications never reach the webhook. One reconciliation sweep (`callrecords
/// reconcile`, a second process on the same queue file) queues exactly those, `serve`'s workers
/// ship them, and no call is shipped twice.
#[test]
fn a_sweep_queues_the_calls_whose_notifications_never_arrived() {
    const N: u64 = 100;
    let dir = temp_dir("queue-sweep");
    let now = now_secs();
    let (since, until) = (iso(now - 3 * 3600), iso(now));
    let s = cloud_standins(N, now - 7200, 30);
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let (queue, log) = (dir.join("queue.sqlite3"), dir.join("serve.log"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _serve = start_serve(addr, &env, &queue, &log);
    let delivered: Vec<String> = (0..N).filter(|n| n % 10 >= 3).map(call_id).collect();
    for ids in delivered.chunks(PER_POST) {
        let body = delivery(ids.iter().map(|id| item(id, CONTOSO, DEMO_CLIENT_STATE)).collect()).to_string();
        assert_eq!(post(addr, "/notify", Some("application/json"), body.as_bytes()).status, 202);
    }
    let calls_landed = || complete_calls(&s);
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while calls_landed().intersection(&(0..N).map(call_id).collect()).count() < n {
            assert!(Instant::now() < deadline, "not {n} calls after 2 min\n{}", read_lossy(&log));
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(delivered.len());
    let graph_before = s.counters().graph;

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(["reconcile", "--since", &since, "--until", &until, "--queue", queue.to_str().unwrap()]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    let out = cmd.envs(env.iter().map(|(k, v)| (k, v))).output().expect("run callrecords reconcile");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let missing = N as usize - delivered.len();
    let expect = format!("{N} calls listed, {missing} queued, {} shipped before, 0 queued already", delivered.len());
    assert!(text.contains(&expect), "{text:?} lacks {expect:?}");

    wait_for(N as usize);
    let rows = landed(&s);
    for n in 0..N {
        assert_eq!(rows.get(&(call_id(n), "TeamsCall_CL".to_string())), Some(&1), "call {n}");
    }
    // Only the missing calls were fetched again: a record and a participants_v2 read each (plus List).
    let fetched = s.counters().graph - graph_before;
    assert!(fetched as usize >= 2 * missing && (fetched as usize) < 2 * missing + 10, "{fetched} Graph requests");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--log-format json`: every line `serve` prints is one JSON object, and none holds the secret.
#[test]
fn json_logs_are_one_object_per_line_without_secrets() {
    let dir = temp_dir("queue-json-logs");
    let (_, s) =
        standin::start_http("127.0.0.1:0", |base| StandIns::new(base, &callrecords_dir(), None, Faults::default()))
            .expect("stand-ins start");
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let secret = env.iter().find(|(k, _)| k == "CALLRECORDS_CLIENT_SECRET").map(|(_, v)| v.clone()).unwrap();
    let log = dir.join("serve.log");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    let queue = dir.join("q.sqlite3");
    cmd.args(["serve", "--listen", &addr.to_string(), "--queue", queue.to_str().unwrap(), "--log-format", "json"]);
    cmd.arg("--workspace").arg(dir.join("ws"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
    let mut child = ChildGuard(cmd.spawn().expect("spawn callrecords serve"));
    wait_for_port(addr, &mut child, Duration::from_secs(120), &log);
    let body = delivery(vec![item(crate::service::GROUP, CONTOSO, DEMO_CLIENT_STATE)]).to_string();
    assert_eq!(post(addr, "/notify", Some("application/json"), body.as_bytes()).status, 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !read_lossy(&log).contains("\"event\":\"work\"") {
        assert!(Instant::now() < deadline, "no work line:\n{}", read_lossy(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(child);
    let text = read_lossy(&log);
    assert!(!text.contains(&secret), "the secret was logged:\n{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["time"].is_string() && v["time_ms"].is_u64() && v["message"].is_string(), "{line}");
    }
    assert!(text.lines().any(|l| l.contains("\"event\":\"POST\"") && l.contains("202 queued=1")), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM while the worker is busy: `serve` stops accepting, finishes its turn, exits 0 and
/// leaves the rest queued; started again, it ships the rest, and nothing is shipped twice.
#[test]
fn sigterm_drains_the_turn_and_leaves_the_rest_queued() {
    const N: u64 = 300;
    let dir = temp_dir("queue-sigterm");
    let now = now_secs();
    let s = cloud_standins(N, now - 7200, 1);
    let env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    let (queue, log) = (dir.join("queue.sqlite3"), dir.join("serve.log"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut serve = start_serve(addr, &env, &queue, &log);
    let ids: Vec<String> = (0..N).map(call_id).collect();
    for chunk in ids.chunks(50) {
        let body = delivery(chunk.iter().map(|id| item(id, CONTOSO, DEMO_CLIENT_STATE)).collect()).to_string();
        assert_eq!(post(addr, "/notify", Some("application/json"), body.as_bytes()).status, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while complete_calls(&s).len() < 20 {
        assert!(Instant::now() < deadline, "nothing shipped:\n{}", read_lossy(&log));
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = serve.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(st) = serve.0.try_wait().unwrap() {
            break st;
        }
        assert!(stopped.elapsed() < Duration::from_secs(60), "serve did not stop:\n{}", read_lossy(&log));
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = read_lossy(&log);
    assert!(status.success(), "{status:?}\n{text}");
    let left: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("stopped: ").and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no `stopped:` line:\n{text}"));
    let shipped = complete_calls(&s).len() as u64;
    assert!(left > 0 && left + shipped == N, "{left} left + {shipped} shipped != {N}\n{text}");

    let _serve = start_serve(addr, &env, &queue, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    while complete_calls(&s).len() < N as usize {
        assert!(Instant::now() < deadline, "not all landed:\n{}", read_lossy(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
    let twice = landed(&s).iter().filter(|((_, t), n)| t == "TeamsCall_CL" && **n > 1).count();
    assert_eq!(twice, 0, "calls shipped twice");
    println!("SIGTERM after {shipped} calls: {left} left queued, all {N} landed after the restart, none twice");
    let _ = std::fs::remove_dir_all(&dir);
}
