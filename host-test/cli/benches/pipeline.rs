//! `cargo bench -p callrecords-cli`: the four figures of the foundation, measured in one run.
//!
//! 1. expansion throughput through the component vs native (ratio; goal >= 0.8)
//! 2. native expansion vs a plain serde_json::Value parse + serialize of the same bytes (goal >= 1.5x)
//! 3. webhook handling latency through the component, per-call instantiation included (goal p99 < 1 ms)
//! 4. component size (goal <= 400 KB)
//! 5. the service: notification -> rows accepted, through the service component under
//!    wasmtime-wasi-http with intercepted stand-ins (token, Graph, Logs Ingestion), one request at a
//!    time on one core: p50/p99 latency and notifications/s

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
use callrecords_test_kit::standin::{Faults, StandIns};
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
}

/// One notification (the peer-to-peer sample) per request: webhook -> token -> callRecord ->
/// participants -> expand -> gzip -> Logs Ingestion -> 202, all inside the component.
fn service_latency() -> (f64, f64, f64, usize) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph/callrecords");
    let base = "http://stand-ins.bench";
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
