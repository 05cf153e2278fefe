//! `cargo bench -p callrecords-cli`: the four figures of the foundation, measured in one run.
//!
//! 1. expansion throughput through the component vs native (ratio; goal >= 0.8)
//! 2. native expansion vs a plain serde_json::Value parse + serialize of the same bytes (goal >= 1.5x)
//! 3. webhook handling latency through the component, per-call instantiation included (goal p99 < 1 ms)
//! 4. component size (goal <= 400 KB)
//! 5. the service: notification -> rows accepted, through the service component under
//!    wasmtime-wasi-http with intercepted stand-ins (token, Graph, Logs Ingestion), one request at a
//!    time on one core: p50/p99 latency and notifications/s (instant stand-ins: CPU cost)
//! 6. at cloud round-trip times (`Latency::CLOUD`: token 150 ms, GET 600 ms, page 400 ms,
//!    participants 300 ms, ingestion 250 ms, +/-20 %, Graph's 1,500 / 20 s per tenant enforced):
//!    the inline webhook for a peer-to-peer call (with the tokens kept between requests, as
//!    `callrecords serve` keeps them, and without, as stock `wasmtime serve` does), a 200-session
//!    call and a 10-notification POST; round trips and token requests per notification; a
//!    backfill of 1,000 calls (calls/s, 429s provoked, tokens)
//! 7. credentials (`CALLRECORDS_BENCH_ONLY=credentials`): what a certificate costs per token
//!    request, natively and through the plugin component (file read through WASI included)
//! 8. the PSTN poll (`CALLRECORDS_BENCH_ONLY=pstn`): 48 hours of a busy tenant's PSTN and Direct
//!    Routing logs through the plugin component's driver at cloud latency, with Graph's PSTN
//!    limits enforced by the stand-in, through the host's checkpoint as `serve` polls; then the
//!    next hourly poll, where every row is known

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callrecords_host::Runtime;
use callrecords_host::artifacts::PLUGIN as EMBEDDED_PLUGIN;
use callrecords_host::artifacts::SERVICE as EMBEDDED_SERVICE;
use callrecords_host::rawhttp::parse_request;
use callrecords_host::service::{Outbound, ServiceHost};
use callrecords_test_kit::demo::demo_settings;
use callrecords_test_kit::fixtures;
use callrecords_test_kit::standin::{Faults, Latency, StandIns};
use callrecords_test_kit::synth;

const SESSIONS: usize = 500;
const MEASURE: Duration = Duration::from_secs(3);
const WEBHOOK_CALLS: usize = 5000;
const NOTIFICATIONS: usize = 300;

/// Runs `f` repeatedly for about `MEASURE`; returns MB/s over `bytes` per run.
fn throughput(bytes: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < MEASURE {
        f();
        runs += 1;
    }
    bytes as f64 * f64::from(runs) / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    // CALLRECORDS_BENCH_ONLY=service | queue measures only that part (a quick check).
    match std::env::var("CALLRECORDS_BENCH_ONLY").as_deref() {
        Ok("service") => {
            let (p50, p99, rate, rows) = service_latency();
            println!(
                "service: notification -> {rows} rows, p50 {p50:.2} ms, p99 {p99:.2} ms, {rate:.0} notifications/s"
            );
            return;
        }
        Ok("queue") => return queue_mode(),
        Ok("storage") => return storage_mode(),
        Ok("flood") => return stalled_clients(),
        Ok("fluent-bit") => return real_fluent_bit(),
        Ok("credentials") => return credentials(),
        Ok("pstn") => return pstn_poll(),
        _ => {}
    }
    // CALLRECORDS_BENCH_WASM=path.wasm measures another build of the component.
    let wasm = match std::env::var_os("CALLRECORDS_BENCH_WASM") {
        Some(path) => std::fs::read(&path).expect("read CALLRECORDS_BENCH_WASM"),
        None => EMBEDDED_PLUGIN.to_vec(),
    };
    let rt = Runtime::new(&wasm, callrecords_host::Limits::default(), false).expect("component loads");
    let record = synth::group_call(SESSIONS);
    let bytes = record.len();
    let rows: usize = callrecords::expand::expand(&record).unwrap().iter().map(|t| t.rows.len()).sum();
    println!("input: generated group call, {SESSIONS} sessions, {:.2} MB, {rows} rows", bytes as f64 / 1e6);

    let native = throughput(bytes, || {
        black_box(callrecords::expand::expand(black_box(&record)).unwrap());
    });
    let value = throughput(bytes, || {
        let v: serde_json::Value = serde_json::from_str(black_box(&record)).unwrap();
        black_box(serde_json::to_string(&v).unwrap());
    });
    let component = throughput(bytes, || {
        black_box(rt.expand(black_box(&record)).unwrap());
    });

    let mut instance = rt.instance().expect("instantiate");
    let reused = throughput(bytes, || {
        let expand = instance.plugin.teams_sentinel_callrecords_expand();
        black_box(expand.call_expand(&mut instance.store, black_box(&record)).unwrap().unwrap());
    });

    let request = parse_request(fixtures::CREATED.as_bytes()).unwrap();
    let settings = demo_settings(&[]);
    for _ in 0..200 {
        rt.handle(&settings, &request).unwrap();
    }
    let mut lat: Vec<Duration> = (0..WEBHOOK_CALLS)
        .map(|_| {
            let t = Instant::now();
            black_box(rt.handle(&settings, &request).unwrap());
            t.elapsed()
        })
        .collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;

    let (svc_p50, svc_p99, svc_rate, svc_rows) = service_latency();

    println!();
    println!("| figure | measured | goal |");
    println!("|---|---|---|");
    println!("| expansion, native | {native:.1} MB/s | |");
    println!("| expansion, through the component (fresh instance per call) | {component:.1} MB/s | |");
    println!("| component / native | {:.2} | >= 0.8 |", component / native);
    println!("| expansion, through one reused instance | {reused:.1} MB/s ({:.2} of native) | |", reused / native);
    println!("| serde_json::Value parse + serialize | {value:.1} MB/s | |");
    println!("| native expansion / Value round-trip | {:.2}x | >= 1.5x |", native / value);
    println!("| webhook through the component, instantiation included: p50 | {:.3} ms | |", pct(0.50));
    println!("| webhook p99 ({WEBHOOK_CALLS} calls) | {:.3} ms | < 1 ms |", pct(0.99));
    println!("| component size | {} bytes ({:.0} KB) | <= 400 KB |", wasm.len(), wasm.len() as f64 / 1e3);
    println!("| service: notification -> {svc_rows} rows accepted, p50 | {svc_p50:.2} ms | |");
    println!(
        "| service p99 ({NOTIFICATIONS} notifications, one at a time) | {svc_p99:.2} ms | < 2900 ms (Graph's slow line) |"
    );
    println!("| service throughput, one core | {svc_rate:.0} notifications/s | |");
    println!(
        "| service component size | {} bytes ({:.0} KB) | |",
        EMBEDDED_SERVICE.len(),
        EMBEDDED_SERVICE.len() as f64 / 1e3
    );
    cloud();
    queue_mode();
    storage_mode();
    stalled_clients();
    real_fluent_bit();
    pstn_poll();
}

/// 48 hours of logs (60,000 PSTN rows, 5,000 Direct Routing rows: 65 pages) polled through the
/// plugin component at cloud latency, then polled again an hour later with the checkpoint's keys.
fn pstn_poll() {
    const PSTN: usize = 60_000;
    const DR: usize = 5_000;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph/callrecords");
    let base = "https://stand-ins.pstn";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let iso = |secs: i64| callrecords::values::format_timestamp(callrecords::values::Instant { secs, ticks: 0 });
    let since = now - 48 * 3600;
    let row = |n: usize, start: i64, dr: bool| {
        let mut v = serde_json::json!({
            "id": format!("{:08x}-0000-4000-8000-{n:012}", u32::from(dr)), "startDateTime": iso(start),
            "endDateTime": iso(start + 95), "duration": 95, "callType": if dr { "ByotOut" } else { "user_out" },
            "callerNumber": "+493055500101", "calleeNumber": format!("+4989555{:05}", n % 100_000),
            "userId": "394bbf1c-cdaa-59bf-9983-4820be1ca69a", "userPrincipalName": "aiko.tanaka@contoso.com",
            "userDisplayName": "Aiko Tanaka",
        });
        if dr {
            v["successfulCall"] = true.into();
            v["finalSipCode"] = 0.into();
            v["trunkFullyQualifiedDomainName"] = "sbc1.contoso.com".into();
        } else {
            v["charge"] = 0.07.into();
            v["currency"] = "EUR".into();
            v["destinationContext"] = "Domestic".into();
            v["destinationName"] = "Germany".into();
        }
        v
    };
    let span = 47 * 3600;
    let pstn: Vec<serde_json::Value> =
        (0..PSTN).map(|n| row(n, since + 60 + (n as i64 * span) / PSTN as i64, false)).collect();
    let dr: Vec<serde_json::Value> =
        (0..DR).map(|n| row(n, since + 60 + (n as i64 * span) / DR as i64, true)).collect();
    let mut standins = StandIns::new(base, &dir, None, Faults::default()).expect("stand-ins");
    standins.set_logs(pstn, dr);
    standins.set_latency(Latency::CLOUD);
    let standins = Arc::new(standins);
    let rt = Runtime::embedded().expect("plugin component");
    let env = callrecords_test_kit::demo::demo_env(base, "logs-ingestion");
    // As `callrecords pstn` and `serve` poll: through the host's checkpoint (its journal synced at
    // each progress, folded in at the end).
    let dir = std::env::temp_dir().join(format!("callrecords-bench-pstn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("pstn.checkpoint.json");
    let poll = |since: i64, until: i64| {
        callrecords_host::jobs::pstn_poll(&rt, &env, &iso(since), &iso(until), &checkpoint, &standins, false)
            .expect("the poll runs")
    };

    let started = Instant::now();
    let first = poll(since, now);
    let secs = started.elapsed().as_secs_f64();
    assert!(first.error.is_none(), "poll: {:?}", first.error);
    let c = standins.counters();
    let landed: usize = standins.accepted().values().map(Vec::len).sum();
    assert_eq!(landed, PSTN + DR, "every row landed once");
    let cp_bytes = std::fs::metadata(&checkpoint).map(|m| m.len()).unwrap_or(0);

    // The next hourly poll: the same 48 hours moved by an hour, every row known.
    let started = Instant::now();
    let again = poll(since + 3600, now + 3600);
    let again_secs = started.elapsed().as_secs_f64();
    assert!(again.error.is_none(), "re-poll: {:?}", again.error);
    let landed_after: usize = standins.accepted().values().map(Vec::len).sum();

    // The checkpoint's own cost: reading 65,000 keys back (each poll starts with it).
    let started = Instant::now();
    let loaded = callrecords_host::jobs::PollCheckpoint::load(&checkpoint).expect("the checkpoint reads");
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(loaded.shipped.len(), PSTN + DR);
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!("| PSTN poll at cloud latency ({PSTN} PSTN + {DR} Direct Routing rows over 48 h) | measured |");
    println!("|---|---|");
    println!(
        "| first poll: rows shipped, time | {} rows in {secs:.1} s ({:.0} rows/s) |",
        first.shipped,
        first.shipped as f64 / secs
    );
    println!("| pages read, Graph 429s provoked, token requests | {}, {}, {} |", first.pages, c.throttled, c.tokens);
    println!(
        "| bytes sent to ingestion (gzip) | {} ({:.0} bytes/row) |",
        first.bytes,
        first.bytes as f64 / first.shipped as f64
    );
    println!(
        "| next hourly poll: rows listed again and skipped, rows shipped, time | {}, {}, {again_secs:.1} s |",
        again.skipped,
        landed_after - landed
    );
    println!(
        "| checkpoint after the polls: keys, bytes, time to read it | {}, {cp_bytes}, {load_ms:.1} ms |",
        loaded.shipped.len()
    );
}

/// Records per second through a real Fluent Bit (`FLUENT_BIT`, else ../shared/tools/fluent-bit)
/// running the shipped `fluent-bit.yaml` (both wasm filters, file outputs), against the same
/// pipeline without the filters. Wall time from start to the last row written, startup included.
fn real_fluent_bit() {
    use callrecords_conformance::real_fluent_bit as fb;
    const RECORDS: usize = 5000;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binary = match fb::locate(&[root.join("../shared/tools/fluent-bit/fluent-bit")]) {
        Ok(Some(binary)) => binary,
        Ok(None) => return println!("\nReal Fluent Bit: skipped (set FLUENT_BIT)"),
        Err(why) => panic!("{why}"),
    };
    let dir = std::env::temp_dir().join(format!("callrecords-bench-fluent-bit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("callrecords_fluent_bit.wasm");
    std::fs::write(&module, callrecords_host::artifacts::FLUENT_BIT_FILTER).unwrap();
    let input = dir.join("records.ndjson");
    let mut text = String::new();
    for n in 0..RECORDS as u64 {
        let (record, _) = synth::peer_to_peer(n, "2026-11-20T09:14:03.217Z");
        text += &serde_json::from_str::<serde_json::Value>(&record).unwrap().to_string();
        text.push('\n');
    }
    std::fs::write(&input, &text).unwrap();
    let shipped = std::fs::read_to_string(root.join("examples/fluent-bit/fluent-bit.yaml")).unwrap();
    let mut rates = vec![];
    for filters in [true, false] {
        let config = fb::adapt_shipped(&shipped, &module, filters).unwrap();
        let t = Instant::now();
        let run = fb::run(&binary, &dir, &config, &[("CALLRECORDS_NDJSON", &input)], Duration::from_secs(600), |r| {
            ["callrecord.call", "callrecord.seed"].iter().all(|t| r.records(t).len() >= RECORDS)
        })
        .unwrap();
        assert!(run.finished && !run.trapped(), "Fluent Bit did not pass every record:\n{}", run.log);
        rates.push(2.0 * RECORDS as f64 / t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!(
        "Real Fluent Bit ({}), the shipped fluent-bit.yaml, {RECORDS} peer-to-peer callRecords ({:.1} MB) read twice (call and seed tags):",
        std::fs::canonicalize(&binary).unwrap_or(binary).display(),
        text.len() as f64 / 1e6
    );
    println!();
    println!("| figure | measured |");
    println!("|---|---|");
    println!("| records/s, both tags, with the wasm filters (rows out) | {:.0} |", rates[0]);
    println!("| records/s, both tags, without them (records passed through) | {:.0} |", rates[1]);
    println!("| with / without | {:.2} |", rates[0] / rates[1]);
}

/// Resident memory of process `pid` (kB), from /proc.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 1,500 clients that start an upload and stall, against the built `callrecords serve` (queue
/// mode, embedded default): its memory while they hang, how many it has cut off after its 10 s
/// timeout, and a real delivery's answer meanwhile.
fn stalled_clients() {
    use std::io::{Read, Write};
    const CLIENTS: usize = 1500;
    let dir = std::env::temp_dir().join(format!("callrecords-bench-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(["serve", "--listen", &addr.to_string(), "--keep-minutes", "0", "--sweep-minutes", "0"]);
    cmd.arg("--examples").arg(&examples).arg("--workspace").arg(dir.join("ws"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CALLRECORDS_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id();
    let idle = rss_kb(pid);
    // Each client sends its head and 10 bytes of a 100,000-byte body, then nothing.
    let head = "POST /notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"value\":[";
    let mut conns: Vec<std::net::TcpStream> = (0..CLIENTS)
        .filter_map(|_| {
            let mut c = std::net::TcpStream::connect(addr).ok()?;
            c.write_all(head.as_bytes()).ok()?;
            Some(c)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let held = rss_kb(pid);
    // A real delivery while they hang.
    let body = callrecords_test_kit::demo::delivery_body(&["8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02"]);
    let t = Instant::now();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    let req = format!(
        "POST /notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(req.as_bytes()).unwrap();
    c.write_all(&body).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    let meanwhile_ms = t.elapsed().as_secs_f64() * 1e3;
    let status = answer.split(' ').nth(1).unwrap_or("?").to_string();
    // Past the 10 s timeout: how many did serve cut off (408 or closed)?
    std::thread::sleep(Duration::from_secs(11));
    let mut cut = 0;
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 256];
        match c.read(&mut buf) {
            Ok(0) => cut += 1,
            Ok(n) if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408") => cut += 1,
            _ => {}
        }
    }
    let after = rss_kb(pid);
    drop(conns);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("Stalled uploads against the built `callrecords serve` (queue mode, embedded default):");
    println!();
    println!("| figure | measured |");
    println!("|---|---|");
    println!(
        "| resident memory: idle / {CLIENTS} stalled uploads held 2 s / 11 s later | {:.0} / {:.0} / {:.0} MB |",
        idle as f64 / 1024.0,
        held as f64 / 1024.0,
        after as f64 / 1024.0
    );
    println!("| stalled uploads cut off (408 or closed) after the 10 s timeout | {cut} of {CLIENTS} |");
    println!("| a real delivery while they hang: answer | {status} in {meanwhile_ms:.1} ms |");
}

/// Round trip assumed for an Azure Storage queue or table request from a replica in the same
/// region (not measured here: Azurite answers at once, so a delay is added before each request).
const STORAGE_RTT_MS: u64 = 15;

/// Graph and ingestion from the stand-ins at cloud latency; the Storage queue and ledger from
/// Azurite over real HTTP, each request delayed by `STORAGE_RTT_MS` ±20 %.
struct Routed {
    standins: Arc<StandIns>,
    net: Arc<callrecords_host::transport::Network>,
    storage: String,
}

impl callrecords_host::transport::Transport for Routed {
    fn start(
        &self,
        request: callrecords_host::bindings::types::OutgoingRequest,
        timeout: Duration,
        done: callrecords_host::transport::Done,
    ) {
        if !request.url.starts_with(&self.storage) {
            return self.standins.start(request, timeout, done);
        }
        let net = self.net.clone();
        std::thread::spawn(move || {
            let jitter = (jobs_now() % 41) as f64 / 100.0 - 0.2;
            std::thread::sleep(Duration::from_micros((STORAGE_RTT_MS as f64 * 1000.0 * (1.0 + jitter)) as u64));
            callrecords_host::transport::Network::start(&net, request, timeout, done);
        });
    }
}

/// Queue mode on an Azure Storage queue (Azurite, delayed as above) with Graph at cloud latency:
/// the edge's answer (it puts each notification before it answers), then 1,000 queued calls
/// drained by one replica and by two (each keeps Graph's per-tenant count for itself).
fn storage_mode() {
    use callrecords_host::edge::Edge;
    use callrecords_host::queue::Queue;
    use callrecords_host::worker::{Metrics, WorkerOptions, storage_turn};
    let az = callrecords_test_kit::azurite::Azurite::start().expect("Azurite starts (npm ci in host-test/azurite)");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph/callrecords");
    let base = "https://stand-ins.storage";
    let mut standins = StandIns::new(base, &dir, None, Faults::default()).expect("stand-ins");
    standins.set_latency(Latency::CLOUD);
    const DRAIN: u64 = 1000;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let iso = |secs: i64| callrecords::values::format_timestamp(callrecords::values::Instant { secs, ticks: 0 });
    let ids: Vec<String> = (0..2 * DRAIN)
        .map(|n| {
            let (record, participants) = synth::peer_to_peer(n, &iso(now - 7200 + n as i64));
            standins.add_call(&record, participants).unwrap();
            serde_json::from_str::<serde_json::Value>(&record).unwrap()["id"].as_str().unwrap().to_string()
        })
        .collect();
    let standins = Arc::new(standins);
    let mut env = callrecords_test_kit::demo::demo_env(base, "logs-ingestion");
    env.push(("CALLRECORDS_QUEUE_URL".into(), az.queue_url("bench")));
    env.push(("CALLRECORDS_QUEUE_KEY".into(), callrecords_test_kit::azurite::KEY.into()));
    env.push(("CALLRECORDS_LEDGER_URL".into(), az.table_url("benchshipped")));
    let transport = Arc::new(Routed {
        standins: standins.clone(),
        net: Arc::new(callrecords_host::transport::Network::new().expect("network")),
        storage: "http://127.0.0.1:".into(),
    });
    let rt = Arc::new(Runtime::embedded().expect("plugin component"));
    let metrics = Arc::new(Metrics::default());
    let edge = Arc::new(Edge {
        rt: rt.clone(),
        env: env.clone(),
        queue: Arc::new(Queue::open(std::path::Path::new(":memory:")).unwrap()),
        transport: transport.clone(),
        metrics: metrics.clone(),
        on_line: Arc::new(|_, _| {}),
    });
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let post = |ids: &[&str]| {
        let body = callrecords_test_kit::demo::delivery_body(ids);
        let t = Instant::now();
        let (status, _) = tokio.block_on(edge.clone().handle_parts("POST", "/notify", &headers, body));
        (status, t.elapsed().as_secs_f64() * 1e3)
    };
    // 1. The edge: 2,000 distinct calls in deliveries of 1, 10 and 100.
    let mut edge_rows = vec![];
    let mut next = 0usize;
    for (label, size, n) in
        [("1 notification", 1usize, 100usize), ("10 notifications", 10, 40), ("100 notifications", 100, 15)]
    {
        let (mut ms, mut bad) = (vec![], 0);
        for _ in 0..n {
            let batch: Vec<&str> = (0..size).map(|i| ids[next + i].as_str()).collect();
            next += size;
            let (status, t) = post(&batch);
            bad += usize::from(status != 202);
            ms.push(t);
        }
        ms.sort_by(f64::total_cmp);
        edge_rows.push((label, n, percentile(&ms, 0.5), percentile(&ms, 0.99), bad));
    }
    // 2. Drain: one replica until half is shipped, then two together for the rest.
    let shipped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let drain = |replicas: usize, until: u64| {
        let started = Instant::now();
        let throttled_before = standins.counters().throttled;
        std::thread::scope(|s| {
            for _ in 0..replicas {
                let (rt, env, transport, shipped) = (rt.clone(), env.clone(), transport.clone(), shipped.clone());
                s.spawn(move || {
                    let opts = WorkerOptions { storage: true, ..WorkerOptions::default() };
                    let (m, mut limits) = (Metrics::default(), None);
                    while shipped.load(std::sync::atomic::Ordering::Relaxed) < until {
                        let before = m.shipped.load(std::sync::atomic::Ordering::Relaxed);
                        match storage_turn(&rt, &env, transport.as_ref(), &opts, &m, &mut limits) {
                            Ok(Some(_)) => {
                                let n = m.shipped.load(std::sync::atomic::Ordering::Relaxed) - before;
                                shipped.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
                            Err(e) => panic!("turn: {e}"),
                        }
                    }
                });
            }
        });
        let secs = started.elapsed().as_secs_f64();
        (secs, standins.counters().throttled - throttled_before)
    };
    let queued = next as u64;
    let (one_secs, one_429) = drain(1, queued / 2);
    let first = shipped.load(std::sync::atomic::Ordering::Relaxed);
    let (two_secs, two_429) = drain(2, queued);
    let second = shipped.load(std::sync::atomic::Ordering::Relaxed) - first;

    println!();
    println!(
        "Queue mode on an Azure Storage queue (Azurite + {STORAGE_RTT_MS} ms ±20 % per Storage request, assumed), Graph at cloud round-trip times:"
    );
    println!();
    println!("| figure | measured | goal |");
    println!("|---|---|---|");
    for (label, n, p50, p99, bad) in edge_rows {
        println!(
            "| webhook answer, {label}: p50 / p99 ({n} POSTs, {bad} not 202) | {p50:.1} / {p99:.1} ms | p99 <= 50 ms, 100 % 2xx |"
        );
    }
    println!(
        "| drain, one replica: {first} calls in {one_secs:.1} s ({one_429} 429s) | {:.1} calls/s | report |",
        first as f64 / one_secs
    );
    println!(
        "| drain, two replicas: {second} calls in {two_secs:.1} s ({two_429} 429s) | {:.1} calls/s | report |",
        second as f64 / two_secs
    );
}

/// Queue mode at cloud round-trip times: the edge's answer for deliveries of 1, 10 and 100
/// notifications and for a 200-session call (the workers idle, so only the edge is timed); then
/// one peer-to-peer notification at a time, from the POST to its rows accepted, with the workers
/// running; then 1,000 queued calls drained.
fn queue_mode() {
    use callrecords_host::edge::Edge;
    use callrecords_host::queue::Queue;
    use callrecords_host::worker::{Metrics, WorkerOptions, Workers};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph/callrecords");
    let base = "https://stand-ins.queue";
    let mut standins = StandIns::new(base, &dir, None, Faults::default()).expect("stand-ins");
    standins.set_latency(Latency::CLOUD);
    let big: serde_json::Value = serde_json::from_str(&synth::group_call(200)).unwrap();
    standins.add_call(&synth::group_call(200), vec![]).expect("the 200-session call");
    const DRAIN: u64 = 1000;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let iso = |secs: i64| callrecords::values::format_timestamp(callrecords::values::Instant { secs, ticks: 0 });
    let ids: Vec<String> = (0..DRAIN + 40)
        .map(|n| {
            let (record, participants) = synth::peer_to_peer(n, &iso(now - 7200 + n as i64));
            standins.add_call(&record, participants).unwrap();
            serde_json::from_str::<serde_json::Value>(&record).unwrap()["id"].as_str().unwrap().to_string()
        })
        .collect();
    let standins = Arc::new(standins);
    let tmp = std::env::temp_dir().join(format!("callrecords-bench-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let queue = Arc::new(Queue::open(&tmp.join("queue.sqlite3")).expect("queue"));
    let rt = Arc::new(Runtime::embedded().expect("plugin component"));
    let env = callrecords_test_kit::demo::demo_env(base, "logs-ingestion");
    let metrics = Arc::new(Metrics::default());
    let edge = Arc::new(Edge {
        rt: rt.clone(),
        env: env.clone(),
        queue: queue.clone(),
        transport: Arc::new(standins.clone()),
        metrics: metrics.clone(),
        on_line: Arc::new(|_, _| {}),
    });
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let post = |ids: &[&str]| {
        let body = callrecords_test_kit::demo::delivery_body(ids);
        let t = Instant::now();
        let (status, _) = tokio.block_on(edge.clone().handle_parts("POST", "/notify", &headers, body));
        (status, t.elapsed().as_secs_f64() * 1e3)
    };
    // 1. The edge alone (nothing drains): deliveries of 1, 10 and 100 notifications, and a 200-session call.
    let big_id = big["id"].as_str().unwrap().to_string();
    let mut edge_rows = vec![];
    let mut next = 0usize;
    for (label, size, n) in
        [("1 notification", 1usize, 200usize), ("10 notifications", 10, 100), ("100 notifications", 100, 10)]
    {
        let mut ms = vec![];
        let mut bad = 0;
        for _ in 0..n {
            let batch: Vec<&str> = (0..size).map(|i| ids[(next + i) % DRAIN as usize].as_str()).collect();
            next += size;
            let (status, t) = post(&batch);
            bad += usize::from(status != 202);
            ms.push(t);
        }
        ms.sort_by(f64::total_cmp);
        edge_rows.push((label, n, percentile(&ms, 0.5), percentile(&ms, 0.99), bad));
    }
    let mut ms = vec![];
    let mut bad = 0;
    for _ in 0..50 {
        let (status, t) = post(&[big_id.as_str()]);
        bad += usize::from(status != 202);
        ms.push(t);
    }
    ms.sort_by(f64::total_cmp);
    edge_rows.push(("a 200-session call", 50, percentile(&ms, 0.5), percentile(&ms, 0.99), bad));

    // 2. Drain what the edge queued (1,000 distinct calls and the 200-session one; repeats folded).
    let depth = queue.stats(0).unwrap().depth;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let handles = Workers {
        rt: rt.clone(),
        env: env.clone(),
        queue: queue.clone(),
        transport: Arc::new(standins.clone()),
        opts: WorkerOptions::default(),
        metrics: metrics.clone(),
        stop: stop.clone(),
        log: Arc::new(|_: &str| {}),
    }
    .spawn();
    while queue.stats(jobs_now()).unwrap().depth > 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let drain_secs = started.elapsed().as_secs_f64();
    let throttled = standins.counters().throttled;

    // 3. One notification at a time, the workers waiting: from the POST to its call's rows accepted.
    let mut e2e = vec![];
    for id in &ids[DRAIN as usize..] {
        let t = Instant::now();
        let (status, _) = post(&[id.as_str()]);
        assert_eq!(status, 202);
        loop {
            let landed = standins
                .accepted()
                .get("TeamsCall_CL")
                .is_some_and(|rows| rows.iter().any(|r| r["CallId"] == id.as_str()));
            if landed {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        e2e.push(t.elapsed().as_secs_f64() * 1e3);
    }
    e2e.sort_by(f64::total_cmp);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let _ = std::fs::remove_dir_all(&tmp);

    println!();
    println!(
        "Queue mode at cloud round-trip times (SQLite queue, WAL, synchronous=FULL; one worker, 100 calls a turn):"
    );
    println!();
    println!("| figure | measured | goal |");
    println!("|---|---|---|");
    for (label, n, p50, p99, bad) in edge_rows {
        println!(
            "| webhook answer, {label}: p50 / p99 ({n} POSTs, {bad} not 202) | {p50:.1} / {p99:.1} ms | p99 <= 50 ms, 100 % 2xx |"
        );
    }
    println!(
        "| notification -> rows accepted, peer-to-peer: p50 / p90 / max ({} notifications, one at a time) | {:.0} / {:.0} / {:.0} ms | p50 <= 1200 ms |",
        e2e.len(),
        percentile(&e2e, 0.5),
        percentile(&e2e, 0.9),
        percentile(&e2e, 1.0)
    );
    println!(
        "| queue drain: {depth} calls in {drain_secs:.1} s ({throttled} 429s from Graph's throttle) | {:.1} calls/s | report |",
        depth as f64 / drain_secs
    );
}

fn jobs_now() -> u64 {
    callrecords_host::jobs::now_ms()
}

/// `p` (0..=1) of sorted milliseconds.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// The figures at cloud round-trip times.
fn cloud() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph/callrecords");
    let base = "https://stand-ins.bench";
    let mut standins = StandIns::new(base, &dir, None, Faults::default()).expect("stand-ins");
    standins.set_latency(Latency::CLOUD);
    standins.add_call(&synth::group_call(200), vec![]).expect("the 200-session call");
    let big: serde_json::Value = serde_json::from_str(&synth::group_call(200)).unwrap();
    let big_id = big["id"].as_str().unwrap().to_string();
    let ten: Vec<String> = (0..10)
        .map(|n| {
            let (record, participants) = synth::peer_to_peer(n, "2026-11-20T09:00:00Z");
            standins.add_call(&record, participants).unwrap();
            serde_json::from_str::<serde_json::Value>(&record).unwrap()["id"].as_str().unwrap().to_string()
        })
        .collect();
    let standins = Arc::new(standins);
    let host = ServiceHost::embedded(
        callrecords_test_kit::demo::demo_env(base, "logs-ingestion"),
        Outbound::Intercept(standins.clone()),
    )
    .expect("service component loads");
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let post = |ids: &[&str]| {
        let body = callrecords_test_kit::demo::delivery_body(ids);
        let served = tokio.block_on(host.handle_parts("POST", "/notify", &headers, body));
        (served.status, served.elapsed.as_secs_f64() * 1e3)
    };
    let p2p = "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01";
    let runs = |ids: &[&str], n: usize, keep_tokens: bool| {
        let before = standins.counters();
        let mut ms: Vec<f64> = vec![];
        let mut not_2xx = 0;
        for _ in 0..n {
            if !keep_tokens {
                host.keyvalue().clear();
            }
            let (status, t) = post(ids);
            not_2xx += usize::from(status / 100 != 2);
            ms.push(t);
        }
        ms.sort_by(f64::total_cmp);
        let after = standins.counters();
        let trips = (after.tokens + after.graph + after.ingestion) - (before.tokens + before.graph + before.ingestion);
        let per = (n * ids.len()) as f64;
        (ms, not_2xx, f64::from(trips) / per, f64::from(after.tokens - before.tokens) * 100.0 / per)
    };
    let (cold_ms, cold_bad, cold_trips, _) = runs(&[p2p], 30, false);
    // One POST to fill the host's store, then every request finds its tokens there.
    let _ = post(&[p2p]);
    let (p2p_ms, p2p_bad, p2p_trips, _) = runs(&[p2p], 30, true);
    let (big_ms, big_bad, _, _) = runs(&[big_id.as_str()], 5, true);
    let ten_ids: Vec<&str> = ten.iter().map(String::as_str).collect();
    let (ten_ms, ten_bad, ten_trips, _) = runs(&ten_ids, 5, true);
    let (_, _, _, service_tokens) = runs(&ten_ids, 10, true);
    let (calls, secs, throttled, tokens, rows) = cloud_backfill();

    println!();
    println!(
        "At cloud round-trip times (stand-ins' Latency::CLOUD), inline webhook, one service instance per request \
         (tokens in the host's wasi:keyvalue store, shared across requests unless said):"
    );
    println!();
    println!("| figure | measured | goal |");
    println!("|---|---|---|");
    println!(
        "| peer-to-peer notification: p50 / p90 / max (30 POSTs, {p2p_bad} not 2xx) | {:.0} / {:.0} / {:.0} ms | p50 <= 1000 ms |",
        percentile(&p2p_ms, 0.5),
        percentile(&p2p_ms, 0.9),
        percentile(&p2p_ms, 1.0)
    );
    println!("| round trips per peer-to-peer notification | {p2p_trips:.1} | report |");
    println!(
        "| the same, the store emptied before each request (stock `wasmtime serve`): p50 / p90 / max ({cold_bad} not 2xx) | {:.0} / {:.0} / {:.0} ms, {cold_trips:.1} round trips | |",
        percentile(&cold_ms, 0.5),
        percentile(&cold_ms, 0.9),
        percentile(&cold_ms, 1.0)
    );
    println!("| service: token requests per 100 notifications (10 POSTs of 10) | {service_tokens:.2} | <= 2 |");
    println!(
        "| 200-session call: median / max (5 POSTs, {big_bad} not 2xx) | {:.0} / {:.0} ms | <= 2000 ms |",
        percentile(&big_ms, 0.5),
        percentile(&big_ms, 1.0)
    );
    println!(
        "| 10-notification POST: median / max (5 POSTs, {ten_bad} not 2xx) | {:.0} / {:.0} ms | <= 2000 ms |",
        percentile(&ten_ms, 0.5),
        percentile(&ten_ms, 1.0)
    );
    println!("| round trips per notification in a 10-notification POST | {ten_trips:.1} | report |");
    println!(
        "| backfill: {calls} peer-to-peer calls ({rows} rows) landed in {secs:.1} s | {:.1} calls/s | >= 30 |",
        f64::from(calls) / secs
    );
    println!("| backfill: 429s provoked beyond Graph's 1,500 / 20 s | {throttled} | 0 |");
    println!(
        "| backfill: token requests per 100 notifications (one long-lived run) | {:.2} | <= 2 |",
        f64::from(tokens) * 100.0 / f64::from(calls.max(1))
    );
}

/// A backfill of 1,000 peer-to-peer calls through the plugin component's driver (the harness's
/// job host), at cloud round-trip times: (calls landed, seconds, 429s, tokens, rows).
fn cloud_backfill() -> (u32, f64, u32, u32, usize) {
    const CALLS: u64 = 1000;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph/callrecords");
    let base = "https://stand-ins.backfill";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let iso = |secs: i64| callrecords::values::format_timestamp(callrecords::values::Instant { secs, ticks: 0 });
    let (since, until) = (now - 3 * 3600, now - 3600);
    let mut standins = StandIns::new(base, &dir, None, Faults::default()).expect("stand-ins");
    for n in 0..CALLS {
        let (record, participants) = synth::peer_to_peer(n, &iso(since + 60 + n as i64 * 7));
        standins.add_call(&record, participants).unwrap();
    }
    standins.set_latency(Latency::CLOUD);
    let standins = Arc::new(standins);
    let rt = Runtime::embedded().expect("plugin component");
    let env = callrecords_test_kit::demo::demo_env(base, "logs-ingestion");
    let job = callrecords_host::bindings::driver::Job::Backfill(callrecords_host::bindings::driver::BackfillWindow {
        since: iso(since),
        until: iso(until),
        window_hours: 2,
        skip: vec![],
    });
    let started = Instant::now();
    let r = rt.run_job(&env, &job, &standins, &mut |_| {}).expect("the backfill runs");
    let secs = started.elapsed().as_secs_f64();
    assert!(r.report.ok, "backfill: {:?}", r.report.error);
    let c = standins.counters();
    let rows = standins.accepted().values().map(Vec::len).sum();
    (r.report.calls, secs, c.throttled, c.tokens, rows)
}

/// One notification (the peer-to-peer sample) per request: webhook -> token -> callRecord ->
/// participants -> expand -> gzip -> Logs Ingestion -> 202, all inside the component.
fn service_latency() -> (f64, f64, f64, usize) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph/callrecords");
    let base = "https://stand-ins.bench";
    let standins = Arc::new(StandIns::new(base, &dir, None, Faults::default()).expect("stand-ins"));
    let host = ServiceHost::embedded(
        callrecords_test_kit::demo::demo_env(base, "logs-ingestion"),
        Outbound::Intercept(standins.clone()),
    )
    .expect("service component loads");
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body = fixtures::CREATED.split("\r\n\r\n").nth(1).unwrap().as_bytes().to_vec();
    let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let post = || tokio.block_on(host.handle_parts("POST", "/notify", &headers, body.clone()));
    for _ in 0..20 {
        assert_eq!(post().status, 202);
    }
    let before: usize = standins.accepted().values().map(Vec::len).sum();
    let started = Instant::now();
    let mut lat: Vec<Duration> = (0..NOTIFICATIONS)
        .map(|_| {
            let served = post();
            assert_eq!(served.status, 202, "{}", served.log);
            served.elapsed
        })
        .collect();
    let rate = NOTIFICATIONS as f64 / started.elapsed().as_secs_f64();
    let rows = (standins.accepted().values().map(Vec::len).sum::<usize>() - before) / NOTIFICATIONS;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    (pct(0.50), pct(0.99), rate, rows)
}

/// What a certificate credential costs: reading the key (PEM, PKCS#12) and signing one assertion,
/// natively; and from a fresh component instance to its first token request (the file read through
/// the WASI preopen, parsed and signed), against a client secret's.
fn credentials() {
    use callrecords::entra::certificate::{Algorithm, SigningCertificate};
    use callrecords_host::bindings::driver::{Action, Job};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugin/tests/fixtures/credentials");
    let pem = std::fs::read(format!("{dir}/app.pem")).unwrap();
    let p12 = std::fs::read(format!("{dir}/app.p12")).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mean_us = |n: u32, f: &mut dyn FnMut()| {
        f();
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    };
    let pem_load = mean_us(200, &mut || {
        black_box(SigningCertificate::from_bytes(&pem, "", now).unwrap());
    });
    let p12_load = mean_us(50, &mut || {
        black_box(SigningCertificate::from_bytes(&p12, "correct-horse", now).unwrap());
    });
    let cert = SigningCertificate::from_bytes(&pem, "", now).unwrap();
    let mut rng = {
        use rand_chacha::rand_core::SeedableRng;
        rand_chacha::ChaCha20Rng::from_seed([1; 32])
    };
    let aud = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
    let ps256 = mean_us(200, &mut || {
        black_box(cert.assertion(Algorithm::Ps256, "c", aud, now, &mut rng));
    });
    let rs256 = mean_us(200, &mut || {
        black_box(cert.assertion(Algorithm::Rs256, "c", aud, now, &mut rng));
    });
    let rt = Runtime::new(EMBEDDED_PLUGIN, callrecords_host::Limits::default(), false).expect("component loads");
    let first_token = |extra: &[(&str, &str)]| -> f64 {
        let mut env = callrecords_test_kit::demo::demo_env("https://stand-ins.test", "logs-ingestion");
        env.retain(|(k, _)| k != "CALLRECORDS_CLIENT_SECRET");
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut once = || {
            let mut i = rt.instance_for(&env).unwrap();
            let driver = i.plugin.teams_sentinel_callrecords_driver();
            let run = driver.run().call_start(&mut i.store, &env, &Job::Subscriptions, now * 1000).unwrap().unwrap();
            match driver.run().call_next(&mut i.store, run, now * 1000).unwrap() {
                Action::Send(s) => assert!(s.request.url.contains("oauth2")),
                other => panic!("{other:?}"),
            }
        };
        mean_us(50, &mut once) / 1e3
    };
    let pem_path = format!("{dir}/app.pem");
    let p12_path = format!("{dir}/app.p12");
    let secret = first_token(&[("CALLRECORDS_CLIENT_SECRET", "s")]);
    let with_pem =
        first_token(&[("CALLRECORDS_CREDENTIAL", "certificate"), ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", &pem_path)]);
    let with_p12 = first_token(&[
        ("CALLRECORDS_CREDENTIAL", "certificate"),
        ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", &p12_path),
        ("CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD", "correct-horse"),
    ]);
    println!("| figure | measured |");
    println!("|---|---|");
    println!("| native: read the PEM key and certificate | {pem_load:.0} µs |");
    println!("| native: read the PKCS#12 file (its MAC key and 2 PBKDF2 keys, 2,048 rounds each) | {p12_load:.0} µs |");
    println!("| native: sign one assertion, PS256 / RS256 (RSA-2048) | {ps256:.0} / {rs256:.0} µs |");
    println!("| component, fresh instance → first token request: client secret | {secret:.2} ms |");
    println!("| component, same with a certificate: PEM file / PKCS#12 file | {with_pem:.2} / {with_p12:.2} ms |");
}
