//! Queue mode's scale-out on an Azure Storage queue, against Azurite (the real emulator, which
//! checks every SharedKey signature) and the stand-ins at cloud latency: replicas sharing one
//! queue, one of them killed; and the service component under stock `wasmtime serve` as a
//! stateless edge that only enqueues.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callrecords_test_kit::azurite::{self, Azurite};
use callrecords_test_kit::demo::{CONTOSO, DEMO_CLIENT_STATE};

use crate::queue::{call_id, complete_calls, landed, spawn_cli};
use crate::service::{delivery, item};
use crate::stock::{ChildGuard, cloud_standins, free_port, now_secs, post, read_lossy, stock_wasmtime, wait_for_port};
use crate::temp_dir;

/// Shipped-call lines (`work: N calls: K shipped, …`) a process logged: the calls it shipped.
fn shipped_by(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split_once(" calls: ").and_then(|(_, r)| r.split_once(" shipped")).map(|(n, _)| n))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

fn wait_until(what: &str, limit: Duration, logs: &[&std::path::Path], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            let text: Vec<String> = logs.iter().map(|l| format!("== {}\n{}", l.display(), read_lossy(l))).collect();
            panic!("{what} within {limit:?}\n{}", text.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two replicas, `serve` (the edge and one worker) and `work`, share one Azurite queue at cloud
/// latency. `work` is killed with SIGKILL in the middle of the run; the messages it held come
/// back after their lease and `serve` ships them. Every call lands, both did part of the work,
/// and only the killed turn's calls can land twice.
#[test]
fn two_replicas_share_a_storage_queue_and_one_is_killed() {
    const N: u64 = 300;
    const BATCH: u64 = 20;
    let az = Azurite::start().expect("Azurite starts");
    let dir = temp_dir("storage-queue-replicas");
    let s = cloud_standins(N, now_secs() - 7200, 1);
    let mut env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    env.push(("CALLRECORDS_QUEUE_URL".into(), az.queue_url("callrecords")));
    env.push(("CALLRECORDS_QUEUE_KEY".into(), azurite::KEY.into()));
    let (serve_log, work_log) = (dir.join("serve.log"), dir.join("work.log"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let replica = ["--batch", "20", "--lease-seconds", "10"];
    let listen = addr.to_string();
    let ws = dir.join("ws");
    let serve_only = ["--keep-minutes", "0", "--pstn-minutes", "0", "--workspace", ws.to_str().unwrap()];
    let serve_args = [&["serve", "--listen", &listen][..], &serve_only[..], &replica[..]].concat();
    let _serve = spawn_cli(&serve_args, &env, &serve_log, Some(addr));
    let mut work = spawn_cli(&[&["work"][..], &replica[..]].concat(), &env, &work_log, None);

    let mut answer_ms = vec![];
    for chunk in (0..N).map(call_id).collect::<Vec<_>>().chunks(5) {
        let body = delivery(chunk.iter().map(|id| item(id, CONTOSO, DEMO_CLIENT_STATE)).collect()).to_string();
        let t = Instant::now();
        let r = post(addr, "/notify", Some("application/json"), body.as_bytes());
        answer_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.status, 202, "{}\n{}", r.text(), read_lossy(&serve_log));
    }
    answer_ms.sort_by(f64::total_cmp);
    println!(
        "{} deliveries put on Azurite, p50 {:.1} ms, max {:.1} ms",
        answer_ms.len(),
        answer_ms[answer_ms.len() / 2],
        answer_ms[answer_ms.len() - 1]
    );

    // Once `work` has shipped more than one turn: SIGKILL, most likely in the middle of its next.
    wait_until("work ships a turn", Duration::from_secs(120), &[&serve_log, &work_log], || {
        shipped_by(&read_lossy(&work_log)) > BATCH
    });
    work.0.kill().expect("SIGKILL work");
    work.0.wait().unwrap();
    let by_work = shipped_by(&read_lossy(&work_log));
    println!("work killed after shipping {by_work} calls");

    let all: BTreeSet<String> = (0..N).map(call_id).collect();
    // Turn lines come after their settle; the killed turn's calls are shipped by `serve` again.
    wait_until("every call lands", Duration::from_secs(180), &[&serve_log, &work_log], || {
        shipped_by(&read_lossy(&serve_log)) + by_work >= N
            && complete_calls(&s).intersection(&all).count() == N as usize
    });
    let by_serve = shipped_by(&read_lossy(&serve_log));
    println!("serve shipped {by_serve} calls");
    assert!(by_work > 0 && by_serve > 0, "both replicas work: work {by_work}, serve {by_serve}");
    let rows = landed(&s);
    let twice: Vec<&String> = all
        .iter()
        .filter(|c| rows.get(&((*c).clone(), "TeamsCall_CL".to_string())).copied().unwrap_or(0) > 1)
        .collect();
    println!("{} calls landed twice (the killed turn's)", twice.len());
    assert!(
        twice.len() as u64 <= BATCH,
        "{} calls landed twice: more than one turn of the killed replica",
        twice.len()
    );
    // /metrics reads the Storage queue's lengths: all settled, nothing given up.
    let metrics = crate::stock::get(addr, "/metrics").text();
    for line in
        ["callrecords_queue_depth 0", "callrecords_dead_letters 0", "callrecords_notifications_queued_total 300"]
    {
        assert!(metrics.lines().any(|l| l == line), "{line} not in\n{metrics}");
    }
    // Nothing was given up.
    for log in [&serve_log, &work_log] {
        let text = read_lossy(log);
        assert!(!text.lines().any(|l| l.contains(" poisoned") && !l.contains(" 0 poisoned")), "{text}");
    }
}

/// The service component under stock `wasmtime serve`, with CALLRECORDS_QUEUE_URL set, answers
/// Graph only after it put the notifications on the Storage queue, and fetches nothing itself;
/// `callrecords work` then ships them. A queue that refuses the key gets Graph a 503.
#[test]
fn stock_wasmtime_serve_is_a_stateless_edge_onto_the_storage_queue() {
    const N: u64 = 20;
    let az = Azurite::start().expect("Azurite starts");
    let wasmtime = stock_wasmtime();
    let dir = temp_dir("storage-queue-stock-edge");
    let wasm = dir.join("service.wasm");
    std::fs::write(&wasm, callrecords_host::artifacts::SERVICE).unwrap();
    let s = cloud_standins(N, now_secs() - 7200, 1);
    let mut env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    env.push(("CALLRECORDS_QUEUE_URL".into(), az.queue_url("edge-calls")));
    env.push(("CALLRECORDS_QUEUE_KEY".into(), azurite::KEY.into()));
    let edge = |env: &[(String, String)], name: &str| {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join(name);
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&wasmtime);
        cmd.args(["serve", "-Scli", "-Skeyvalue", "--addr", &addr.to_string()]);
        for (k, v) in env {
            cmd.arg("--env").arg(k);
            cmd.env(k, v);
        }
        cmd.arg(&wasm).stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
        let mut child = ChildGuard(cmd.spawn().expect("spawn wasmtime serve"));
        wait_for_port(addr, &mut child, Duration::from_secs(120), &log);
        (child, addr, log)
    };
    let (_edge, addr, edge_log) = edge(&env, "wasmtime.log");
    for chunk in (0..N).map(call_id).collect::<Vec<_>>().chunks(5) {
        let body = delivery(chunk.iter().map(|id| item(id, CONTOSO, DEMO_CLIENT_STATE)).collect()).to_string();
        let r = post(addr, "/notify", Some("application/json"), body.as_bytes());
        assert_eq!(r.status, 202, "{}\n{}", r.text(), read_lossy(&edge_log));
    }
    assert_eq!(s.counters().graph, 0, "the edge fetched from Graph: it should only enqueue");
    assert!(read_lossy(&edge_log).contains("queued=5"), "{}", read_lossy(&edge_log));

    let work_log = dir.join("work.log");
    let _work = spawn_cli(&["work", "--lease-seconds", "30"], &env, &work_log, None);
    let all: BTreeSet<String> = (0..N).map(call_id).collect();
    wait_until("every call is shipped", Duration::from_secs(120), &[&edge_log, &work_log], || {
        shipped_by(&read_lossy(&work_log)) >= N
    });
    let rows = landed(&s);
    for c in &all {
        assert_eq!(rows.get(&(c.clone(), "TeamsCall_CL".to_string())), Some(&1), "{c}");
    }

    // A wrong account key: Azurite refuses the signature (403), and Graph gets 503 to deliver again.
    let mut wrong = env.clone();
    wrong.retain(|(k, _)| k != "CALLRECORDS_QUEUE_KEY");
    wrong.push(("CALLRECORDS_QUEUE_KEY".into(), "d3Jvbmcga2V5IGZvciB0aGUgZW11bGF0b3I=".into()));
    let (_bad, addr, bad_log) = edge(&wrong, "wasmtime-wrong-key.log");
    let body = delivery(vec![item(&call_id(0), CONTOSO, DEMO_CLIENT_STATE)]).to_string();
    let r = post(addr, "/notify", Some("application/json"), body.as_bytes());
    assert_eq!(r.status, 503, "{}\n{}", r.text(), read_lossy(&bad_log));
    assert!(r.text().contains("could not be queued") && r.text().contains("403"), "{}", r.text());
}

/// Reconciliation across replicas: `serve` on the Storage queue records each shipped call in the
/// ledger table; 30 % of the notifications never arrive; `callrecords reconcile` (another
/// process) looks every listed call up in the ledger and queues exactly the missing ones, which
/// `serve` then ships, each once.
#[test]
fn a_sweep_on_the_storage_queue_queues_only_what_no_replica_shipped() {
    const N: u64 = 60;
    let az = Azurite::start().expect("Azurite starts");
    let dir = temp_dir("storage-queue-sweep");
    let now = now_secs();
    let s = cloud_standins(N, now - 7200, 30);
    let mut env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    env.push(("CALLRECORDS_QUEUE_URL".into(), az.queue_url("sweep-calls")));
    env.push(("CALLRECORDS_QUEUE_KEY".into(), azurite::KEY.into()));
    env.push(("CALLRECORDS_LEDGER_URL".into(), az.table_url("shipped")));
    let log = dir.join("serve.log");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let listen = addr.to_string();
    let ws = dir.join("ws");
    let args = [
        "serve",
        "--listen",
        &listen,
        "--keep-minutes",
        "0",
        "--sweep-minutes",
        "0",
        "--lease-seconds",
        "10",
        "--pstn-minutes",
        "0",
        "--workspace",
        ws.to_str().unwrap(),
    ];
    let _serve = spawn_cli(&args, &env, &log, Some(addr));
    let delivered: Vec<String> = (0..N).filter(|n| n % 10 >= 3).map(call_id).collect();
    for chunk in delivered.chunks(5) {
        let body = delivery(chunk.iter().map(|id| item(id, CONTOSO, DEMO_CLIENT_STATE)).collect()).to_string();
        assert_eq!(post(addr, "/notify", Some("application/json"), body.as_bytes()).status, 202);
    }
    // Each turn's line comes after its settle, ledger records included.
    wait_until("the delivered calls are shipped and recorded", Duration::from_secs(120), &[&log], || {
        shipped_by(&read_lossy(&log)) >= delivered.len() as u64
    });

    let since = crate::stock::iso(now - 3 * 3600);
    let until = crate::stock::iso(now);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(["reconcile", "--since", &since, "--until", &until]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    let out = cmd.envs(env.iter().map(|(k, v)| (k, v))).output().expect("run callrecords reconcile");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let missing = N as usize - delivered.len();
    let expect = format!("{N} calls listed, {missing} queued, {} shipped before", delivered.len());
    assert!(text.contains(&expect), "{text:?} lacks {expect:?}");

    let all: BTreeSet<String> = (0..N).map(call_id).collect();
    wait_until("every call is shipped", Duration::from_secs(120), &[&log], || shipped_by(&read_lossy(&log)) >= N);
    let rows = landed(&s);
    for c in &all {
        assert_eq!(rows.get(&(c.clone(), "TeamsCall_CL".to_string())), Some(&1), "{c}");
    }
}

/// A request to Azurite's queue service signed here, from the documented SharedKey layout with the
/// emulator's published key (independently of the code under test).
fn azurite_request(az: &Azurite, method: &str, path: &str, body: &str) -> crate::stock::Reply {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use hmac::{Hmac, KeyInit, Mac};
    let addr: SocketAddr = az.base.trim_start_matches("http://").parse().unwrap();
    let date = httpdate_now();
    let (resource, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|q| !q.is_empty())
        .map(|q| q.split_once('=').unwrap())
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    params.sort();
    let content_type = if body.is_empty() { "" } else { "application/xml" };
    let length = if body.is_empty() { String::new() } else { body.len().to_string() };
    let mut to_sign = format!(
        "{method}\n\n\n{length}\n\n{content_type}\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:2021-12-02\n/{}{resource}",
        azurite::ACCOUNT
    );
    for (k, v) in &params {
        to_sign += &format!("\n{k}:{v}");
    }
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&B64.decode(azurite::KEY).unwrap()).unwrap();
    mac.update(to_sign.as_bytes());
    let auth = format!("SharedKey {}:{}", azurite::ACCOUNT, B64.encode(mac.finalize().into_bytes()));
    let mut headers =
        vec![("x-ms-date", date.as_str()), ("x-ms-version", "2021-12-02"), ("Authorization", auth.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", content_type));
    }
    crate::stock::send(addr, method, path, &headers, body.as_bytes())
}

/// Now as an RFC 1123 date.
fn httpdate_now() -> String {
    let secs = now_secs();
    let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(secs / 86_400 % 7) as usize];
    let iso = crate::stock::iso(secs); // 2026-12-01T09:00:00Z
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = months[iso[5..7].parse::<usize>().unwrap() - 1];
    format!("{days}, {} {month} {} {} GMT", &iso[8..10], &iso[0..4], &iso[11..19])
}

/// Dead letters on the Storage queue: a message that is not this service's goes to the poison
/// queue with the reason; `callrecords dead-letters` lists the poison queue's messages with their
/// reasons and the queues' lengths; `--requeue` puts back the dead letters that hold a call, and
/// `work` ships them.
#[test]
fn storage_dead_letters_are_listed_with_their_reason_and_requeued() {
    use base64::Engine;
    let az = Azurite::start().expect("Azurite starts");
    let dir = temp_dir("storage-queue-dead-letters");
    let s = cloud_standins(1, now_secs() - 7200, 1);
    let mut env = callrecords_test_kit::demo::demo_env(s.base(), "logs-ingestion");
    env.push(("CALLRECORDS_QUEUE_URL".into(), az.queue_url("dl-calls")));
    env.push(("CALLRECORDS_QUEUE_KEY".into(), azurite::KEY.into()));
    let account = azurite::ACCOUNT;
    for q in ["dl-calls", "dl-calls-poison"] {
        let r = azurite_request(&az, "PUT", &format!("/{account}/{q}"), "");
        assert!(r.status == 201 || r.status == 204, "create {q}: {} {}", r.status, r.text());
    }
    // A foreign message on the queue, and a dead letter holding call 0 on the poison queue.
    let put = |q: &str, text: &str| {
        let body = format!("<QueueMessage><MessageText>{text}</MessageText></QueueMessage>");
        let r = azurite_request(&az, "POST", &format!("/{account}/{q}/messages"), &body);
        assert_eq!(r.status, 201, "{}", r.text());
    };
    put("dl-calls", "bm90IG91cnM=");
    let dead = serde_json::json!({"call": {"call_id": call_id(0), "tenant_id": CONTOSO, "received_ms": 1, "attempts": 12, "done_tables": []},
        "reason": "12 attempts failed; the last: 503", "dead_ms": 2});
    put("dl-calls-poison", &base64::engine::general_purpose::STANDARD.encode(dead.to_string()));

    let work_log = dir.join("work.log");
    let mut work = spawn_cli(&["work", "--lease-seconds", "10"], &env, &work_log, None);
    wait_until("the foreign message is poisoned", Duration::from_secs(60), &[&work_log], || {
        read_lossy(&work_log).contains("1 poisoned")
    });
    let _ = work.0.kill();
    let _ = work.0.wait();

    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
        cmd.args(args);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
            cmd.env_remove(k);
        }
        let out = cmd.envs(env.iter().map(|(k, v)| (k, v))).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let listed = run(&["dead-letters"]);
    let letters: Vec<serde_json::Value> =
        listed.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 2, "{listed}");
    assert!(
        letters.iter().any(|l| l["text"] == "bm90IG91cnM="
            && l["reason"].as_str().unwrap().contains("not a message this service wrote")),
        "{listed}"
    );
    assert!(
        letters
            .iter()
            .any(|l| l["call"]["call_id"] == call_id(0).as_str() && l["reason"] == "12 attempts failed; the last: 503"),
        "{listed}"
    );
    assert!(listed.contains("queue: about 0 messages; poison queue: about 2 dead letters"), "{listed}");

    let requeued = run(&["dead-letters", "--requeue"]);
    assert!(requeued.contains("requeued 1 dead letters"), "{requeued}");
    let _work = spawn_cli(&["work", "--lease-seconds", "10"], &env, &work_log, None);
    wait_until("the requeued call ships", Duration::from_secs(60), &[&work_log], || {
        shipped_by(&read_lossy(&work_log)) >= 1
    });
    assert_eq!(landed(&s).get(&(call_id(0), "TeamsCall_CL".to_string())), Some(&1));
}
