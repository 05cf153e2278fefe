//! `callrecords serve`: the Graph webhook on a local address, with the embedded default (local
//! Graph, token and ingestion stand-ins, rows into `./workspace/`) when no Azure settings are
//! given, and real Graph + Azure Monitor when they are.
//!
//! - **Queue mode** (the default): each delivery is judged by the core (`accept` job), its
//!   notifications committed to the SQLite queue, and only then answered 202 (503 if the commit
//!   failed); workers drain the queue with the concurrent pipeline (`drain` job), with no 3 s
//!   window. `GET /healthz` and `GET /metrics` tell how it goes.
//! - **Inline mode** (`--inline`): the service component fetches and ships inside the request and
//!   answers 202 only when every row was accepted (what `wasmtime serve` does).
//!
//! A resync the core asks for (after `missed` or a recreated subscription) is run as a backfill in
//! the background.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use callrecords_host::Runtime;
use callrecords_host::bindings::driver::{BackfillWindow, Job, Span};
use callrecords_host::edge;
use callrecords_host::jobs;
use callrecords_host::queue::Queue;
use callrecords_host::service::{OnServed, Outbound, Served, ServiceHost};
use callrecords_host::transport::{HttpClient, Network, Transport};
use callrecords_host::worker::{self, Metrics, WorkerOptions};
use callrecords_test_kit::demo::{self, DEMO_CLIENT_STATE};
use callrecords_test_kit::standin::{self, Faults, StandIns};

/// `--log-format json`: every line `serve` and `work` print becomes one JSON object.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Print every log line as a JSON object (`{"time", "time_ms", "event", "message"}`) instead of text.
pub fn set_json_logs(on: bool) {
    JSON_LOGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// One log line, as text or as JSON. Lines never hold a secret (settings are masked, tokens and
/// the clientState are never logged).
pub fn say(line: &str) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        let ms = jobs::now_ms();
        let event = line.split([' ', ':']).next().unwrap_or_default();
        let v = serde_json::json!({"time": iso((ms / 1000) as i64), "time_ms": ms, "event": event, "message": line});
        println!("{v}");
    } else {
        println!("{line}");
    }
}

macro_rules! say {
    ($($t:tt)*) => { say(&format!($($t)*)) };
}

/// Every Nth Graph request of the embedded default is throttled (429, `Retry-After: 1`), so the
/// retry path shows in the demo.
pub const DEMO_THROTTLE_EVERY: u32 = 7;

/// Options of `callrecords serve`.
pub struct Options {
    /// Where to listen.
    pub listen: String,
    /// `examples/graph` (the embedded default's callRecords).
    pub examples: PathBuf,
    /// Where the embedded default's ingestion stand-in writes rows.
    pub workspace: PathBuf,
    /// Queue mode's store (`None`: inline mode).
    pub queue: Option<PathBuf>,
    /// Queue mode's workers.
    pub workers: WorkerOptions,
    /// Run the subscription keeper this often (0: never).
    pub keep_minutes: u64,
    /// Queue mode: run a reconciliation sweep this often (0: never).
    pub sweep_minutes: u64,
    /// Poll the PSTN and Direct Routing logs this often (0: never).
    pub pstn_minutes: u64,
    /// Each poll reads calls that started within this many hours.
    pub pstn_hours: u64,
    /// The poll's checkpoint (keys of the rows shipped).
    pub pstn_checkpoint: PathBuf,
}

/// The keeper renews the subscription once it expires within this many minutes (a day: Graph's
/// callRecords subscriptions last at most 4230 minutes).
pub const KEEP_MARGIN_MINUTES: u32 = 24 * 60;

/// The Azure Storage queue queue mode shares, when `CALLRECORDS_QUEUE_URL` names one.
pub fn storage_queue(env: &[(String, String)]) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == "CALLRECORDS_QUEUE_URL")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The `CALLRECORDS_*` variables of this process, and those Azure sets for managed and workload
/// identity ([`callrecords::config::AZURE_VARIABLES`]).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("CALLRECORDS_") || callrecords::config::AZURE_VARIABLES.contains(&k.as_str()))
        .collect()
}

/// Start the embedded default's stand-ins on a free local port.
pub fn embedded_standins(examples: &Path, workspace: &Path) -> Result<Arc<StandIns>, String> {
    let faults = Faults { graph_429_every: Some(DEMO_THROTTLE_EVERY), ..Faults::default() };
    let records = examples.join("callrecords");
    let ws = workspace.to_path_buf();
    let (_, s) = standin::start_http("127.0.0.1:0", move |base| StandIns::new(base, &records, Some(ws), faults))?;
    Ok(s)
}

/// What the credential is, checked now (its files readable, a certificate current), or the one
/// error that names the setting to fix.
pub fn credential_line(env: &[(String, String)]) -> Result<String, String> {
    let config = callrecords::config::Config::from_env(env).map_err(|e| format!("settings: {e}"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let read = |p: &str| std::fs::read(p).map_err(|e| e.kind().to_string());
    config.credentials.describe(&read, now).map_err(|e| format!("credential: {e}"))
}

/// Run the service until the process is stopped.
pub fn run(opts: Options) -> Result<(), String> {
    let rt = Arc::new(Runtime::embedded().map_err(|e| e.to_string())?);
    let mut env = process_env();
    let demo = !env.iter().any(|(k, _)| k == "CALLRECORDS_TENANT_ID");
    let mut standins = None;
    if demo {
        let s = embedded_standins(&opts.examples, &opts.workspace)?;
        env = demo::demo_env(s.base(), "logs-ingestion");
        standins = Some(s);
    }
    let settings = rt.describe_settings(&env).map_err(|e| format!("settings: {e}"))?;
    let credential = credential_line(&env)?;
    let storage_queue = storage_queue(&env);
    let ledger = env.iter().any(|(k, v)| k == "CALLRECORDS_LEDGER_URL" && !v.trim().is_empty());
    let mut opts = opts;
    opts.workers.storage = storage_queue.is_some() && opts.queue.is_some();
    let queue = match &opts.queue {
        // On an Azure Storage queue the local store only backs /healthz and /metrics.
        Some(_) if opts.workers.storage => Some(Arc::new(Queue::open(Path::new(":memory:"))?)),
        Some(path) => Some(Arc::new(Queue::open(path)?)),
        None => None,
    };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind(&opts.listen))
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    let mut banner = match &queue {
        Some(_) if opts.workers.storage => vec![
            format!(
                "callrecords serve (queue mode): the webhook on http://{addr}/ (any path); GET /healthz, GET /metrics"
            ),
            format!(
                "  deliveries are put on the Azure Storage queue {} before the 202; {} workers here drain it, with every other replica",
                storage_queue.as_deref().unwrap_or_default(),
                opts.workers.workers
            ),
            if ledger {
                format!(
                    "  reconciliation sweeps every {} min look calls up in the shared ledger table",
                    opts.sweep_minutes
                )
            } else {
                "  reconciliation sweeps are off: set CALLRECORDS_LEDGER_URL for the shared ledger".into()
            },
        ],
        Some(q) => vec![
            format!(
                "callrecords serve (queue mode): the webhook on http://{addr}/ (any path); GET /healthz, GET /metrics"
            ),
            format!(
                "  deliveries are committed to {} before the 202; {} workers drain it",
                q.path().display(),
                opts.workers.workers
            ),
        ],
        None => vec![format!("callrecords serve (inline mode): the service component on http://{addr}/ (any path)")],
    };
    if let Some(s) = &standins {
        banner.push(format!(
            "embedded default: no CALLRECORDS_TENANT_ID, so Graph, login and ingestion are local stand-ins at {}",
            s.base()
        ));
        banner.push(format!(
            "  Graph serves the {} callRecords of {} (paged like Graph; every {DEMO_THROTTLE_EVERY}th request throttled)",
            s.call_ids().len(),
            opts.examples.join("callrecords").display()
        ));
        banner.push(format!("  accepted rows are appended to {}/<Table>.ndjson", opts.workspace.display()));
        banner.push(format!("  demo clientState: {}", DEMO_CLIENT_STATE));
    }
    if opts.pstn_minutes > 0 {
        banner.push(format!(
            "PSTN and Direct Routing logs: polled now and every {} min over the last {} h (checkpoint {})",
            opts.pstn_minutes,
            opts.pstn_hours,
            opts.pstn_checkpoint.display()
        ));
    }
    banner.push(format!("credential: {credential}"));
    banner.push("settings in effect:".into());
    for (k, v) in &settings {
        banner.push(format!("  {k:<32} {v}"));
    }
    if standins.is_some() {
        banner.push(format!("try:  curl -i -X POST 'http://{addr}/notify?validationToken=hello%20graph'"));
    }
    for line in banner {
        say!("{line}");
    }
    let _ = std::io::stdout().flush();

    let metrics = Arc::new(Metrics::default());
    if opts.keep_minutes > 0 && env.iter().any(|(k, _)| k == "CALLRECORDS_NOTIFICATION_URL") {
        metrics.keeping.store(true, std::sync::atomic::Ordering::Relaxed);
        let (rt, env, metrics) = (rt.clone(), env.clone(), metrics.clone());
        let every = std::time::Duration::from_secs(opts.keep_minutes * 60);
        std::thread::spawn(move || keeper(&rt, &env, &metrics, every));
    }
    if let Some(queue) = &queue
        && opts.sweep_minutes > 0
        && (!opts.workers.storage || ledger)
    {
        let (rt, env, queue) = (rt.clone(), env.clone(), queue.clone());
        let every = std::time::Duration::from_secs(opts.sweep_minutes * 60);
        std::thread::spawn(move || {
            let net = match Network::new() {
                Ok(n) => n,
                Err(e) => return say!("sweep: cannot start: {e}"),
            };
            loop {
                // A sweep right at start would find nothing the webhook missed yet: wait first.
                std::thread::sleep(every);
                let until = (jobs::now_ms() / 1000) as i64;
                let since = until - i64::from(callrecords::pipeline::queue::SWEEP_HOURS) * 3600;
                match sweep(&rt, &env, &queue, &net, &iso(since), &iso(until)) {
                    Ok(line) | Err(line) => say!("{line}"),
                }
            }
        });
    }
    if opts.pstn_minutes > 0 {
        let (rt, env) = (rt.clone(), env.clone());
        let (every, hours, checkpoint) =
            (std::time::Duration::from_secs(opts.pstn_minutes * 60), opts.pstn_hours, opts.pstn_checkpoint.clone());
        std::thread::spawn(move || pstn_poller(&rt, &env, every, hours, &checkpoint));
    }
    if let Some(queue) = queue {
        return run_queue_mode(rt, env, queue, opts.workers, metrics, &tokio, listener);
    }
    let host = Arc::new(ServiceHost::embedded(env.clone(), Outbound::Network(HttpClient::new()))?);
    let resync_env = env.clone();
    let on_served: OnServed = Arc::new(move |method, path, served| {
        say!("{}", console_line(method, path, served));
        if let Some(resync) = served.report().and_then(|r| r.get("resync").cloned()).filter(|r| !r.is_null()) {
            let since = resync["since"].as_str().unwrap_or_default().to_string();
            let until = resync["until"].as_str().unwrap_or_default().to_string();
            say!("resync: backfill {since} .. {until} scheduled ({})", resync["reason"].as_str().unwrap_or(""));
            let (rt, env) = (rt.clone(), resync_env.clone());
            std::thread::spawn(move || background_backfill(&rt, &env, since, until));
        }
    });
    tokio.block_on(host.serve(listener, on_served)).map_err(|e| e.to_string())
}

/// One console line per request: status, what the component logged (calls, rows, retries), time.
pub fn console_line(method: &str, path: &str, served: &Served) -> String {
    let log = served.log.lines().last().unwrap_or_default();
    // The component's own line starts with "METHOD /path -> status"; keep only what follows.
    let detail = log.split_once(" -> ").map(|(_, rest)| rest.split_once(' ').map_or("", |(_, d)| d)).unwrap_or(log);
    format!("{method} {path} {} {} ({} ms)", served.status, detail.trim(), served.elapsed.as_millis())
}

fn run_queue_mode(
    rt: Arc<Runtime>,
    env: Vec<(String, String)>,
    queue: Arc<Queue>,
    workers: WorkerOptions,
    metrics: Arc<Metrics>,
    tokio: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
) -> Result<(), String> {
    let net = Arc::new(Network::new()?);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(|line: &str| say(line));
    let handles = worker::Workers {
        rt: rt.clone(),
        env: env.clone(),
        queue: queue.clone(),
        transport: net.clone(),
        opts: workers,
        metrics: metrics.clone(),
        stop: stop.clone(),
        log,
    }
    .spawn();
    let resync_env = env.clone();
    let resync_rt = rt.clone();
    let on_line: edge::OnLine = Arc::new(move |line, resync| {
        say!("{line}");
        if let Some((since, until, reason)) = resync {
            say!("resync: backfill {since} .. {until} scheduled ({reason})");
            let (rt, env) = (resync_rt.clone(), resync_env.clone());
            std::thread::spawn(move || background_backfill(&rt, &env, since, until));
        }
    });
    let edge = Arc::new(edge::Edge { rt, env, queue: queue.clone(), transport: net, metrics, on_line });
    // SIGTERM (or Ctrl-C): stop accepting, answer what is being answered, let each worker finish
    // its turn, and leave the rest queued for the next start.
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tokio.block_on(edge.serve(listener, shutdown)).map_err(|e| e.to_string())?;
    say!("stopping: no new deliveries; the workers finish their turns");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let left = queue.stats(jobs::now_ms()).map(|s| s.depth).unwrap_or(0);
    say!("stopped: {left} calls left queued for the next start");
    Ok(())
}

fn iso(secs: i64) -> String {
    callrecords::values::format_timestamp(callrecords::values::Instant { secs, ticks: 0 })
}

/// A reconciliation sweep of the calls that started in `[since, until)`: the core lists them, and
/// every one the queue's ledger has not shipped (and that is not queued) is queued. One line.
pub fn sweep(
    rt: &Runtime,
    env: &[(String, String)],
    queue: &Queue,
    transport: &dyn Transport,
    since: &str,
    until: &str,
) -> Result<String, String> {
    let job = Job::Sweep(Span { since: since.into(), until: until.into() });
    let r = rt.run_job(&env.to_vec(), &job, transport, &mut |_| {}).map_err(|e| format!("sweep: {e}"))?;
    if let Some(e) = r.report.error {
        return Err(format!("sweep {since} .. {until}: {e}"));
    }
    let listed: Vec<callrecords::pipeline::queue::Listed> =
        serde_json::from_value(r.detail["listed"].clone()).unwrap_or_default();
    // On the Storage queue the core looked each call up in the shared ledger and queued the rest.
    if let Some(st) = r.detail.get("storage").filter(|s| !s.is_null()) {
        let n = |k: &str| st[k].as_u64().unwrap_or(0);
        return Ok(format!(
            "sweep {since} .. {until}: {} calls listed, {} queued, {} shipped before (the Storage queue's ledger)",
            listed.len(),
            n("enqueued"),
            n("shipped_before")
        ));
    }
    if env.iter().any(|(k, v)| k == "CALLRECORDS_QUEUE_URL" && !v.trim().is_empty()) {
        return Err(format!("sweep {since} .. {until}: the Storage queue's ledger was not consulted (a bug)"));
    }
    let (queued, shipped, waiting) = queue.reconcile(&listed, jobs::now_ms())?;
    Ok(format!(
        "sweep {since} .. {until}: {} calls listed, {queued} queued, {shipped} shipped before, {waiting} queued already",
        listed.len()
    ))
}

/// The subscription keeper: the core's keep job now and every `every`.
fn keeper(rt: &Runtime, env: &[(String, String)], metrics: &Metrics, every: std::time::Duration) {
    let net = match Network::new() {
        Ok(n) => n,
        Err(e) => return say!("keeper: cannot start: {e}"),
    };
    loop {
        match rt.run_job(&env.to_vec(), &Job::Keep(KEEP_MARGIN_MINUTES), &net, &mut |_| {}) {
            Ok(r) => {
                let tokens = r.detail["token_requests"].as_u64().unwrap_or(0);
                metrics.token_requests.fetch_add(tokens, std::sync::atomic::Ordering::Relaxed);
                for line in r.detail["lifecycle"].as_array().into_iter().flatten().filter_map(|l| l.as_str()) {
                    say!("keeper: {line}");
                }
                if let Some(e) = r.report.error {
                    say!("keeper: {e}");
                }
                let expiry = r.detail["subscriptions"][0]["expirationDateTime"]
                    .as_str()
                    .and_then(callrecords::values::parse_timestamp);
                if let Some(e) = expiry {
                    metrics
                        .subscription_expires_ms
                        .store(e.secs.max(0) as u64 * 1000, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(e) => say!("keeper: {e}"),
        }
        std::thread::sleep(every);
    }
}

/// `callrecords work`: queue mode's workers alone, until the process is stopped.
pub fn work(queue: &Path, mut workers: WorkerOptions) -> Result<(), String> {
    let rt = Arc::new(Runtime::embedded().map_err(|e| e.to_string())?);
    let env = process_env();
    if !env.iter().any(|(k, _)| k == "CALLRECORDS_TENANT_ID") {
        return Err("callrecords work needs the CALLRECORDS_* settings (CALLRECORDS_TENANT_ID is not set)".into());
    }
    rt.describe_settings(&env).map_err(|e| format!("settings: {e}"))?;
    let storage = storage_queue(&env);
    workers.storage = storage.is_some();
    let queue = Arc::new(Queue::open(if workers.storage { Path::new(":memory:") } else { queue })?);
    match &storage {
        Some(url) => say!("callrecords work: {} workers on the Azure Storage queue {url}", workers.workers),
        None => say!("callrecords work: {} workers on {}", workers.workers, queue.path().display()),
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // SIGTERM (or Ctrl-C): each worker finishes its turn, then the process exits.
    let on_signal = stop.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        });
        say!("stopping: the workers finish their turns");
        on_signal.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let handles = worker::Workers {
        rt,
        env,
        queue,
        transport: Arc::new(Network::new()?),
        opts: workers,
        metrics: Arc::new(Metrics::default()),
        stop,
        log: Arc::new(|line: &str| say(line)),
    }
    .spawn();
    for h in handles {
        let _ = h.join();
    }
    say!("stopped");
    Ok(())
}

/// One poll's outcome as a line, and its error.
pub struct PollLine {
    /// `pstn 2026-… .. 2026-…: …`.
    pub line: String,
    /// Why not every row was shipped.
    pub error: Option<String>,
    /// Rows shipped.
    pub shipped: u64,
}

/// Poll the PSTN and Direct Routing logs for calls that started in `[since, until)` with the
/// checkpoint at `checkpoint` (its folder created); a progress bar on stderr when `bar`.
pub fn pstn_poll(
    rt: &Runtime,
    env: &[(String, String)],
    since: &str,
    until: &str,
    checkpoint: &Path,
    transport: &dyn Transport,
    bar: bool,
) -> Result<PollLine, String> {
    if let Some(dir) = checkpoint.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let s = jobs::pstn_poll(rt, &env.to_vec(), since, until, checkpoint, transport, bar)?;
    let listed = |k: &str| s.listed.get(k).copied().unwrap_or(0);
    let line = format!(
        "pstn {since} .. {until}: {} PSTN and {} Direct Routing rows listed, {} shipped, {} shipped before \
         ({} range{}, {} pages, {} bytes, {} retries)",
        listed("pstn"),
        listed("directRouting"),
        s.shipped,
        s.skipped,
        s.windows,
        if s.windows == 1 { "" } else { "s" },
        s.pages,
        s.bytes,
        s.retries
    );
    Ok(PollLine { line, error: s.error, shipped: s.shipped })
}

/// `serve`'s PSTN poller: now, then every `every`, over the last `hours`, or from further back
/// when earlier polls have not read that far (it was down, or they failed: see
/// [`jobs::PollCheckpoint::next_since`]).
fn pstn_poller(rt: &Runtime, env: &[(String, String)], every: std::time::Duration, hours: u64, checkpoint: &Path) {
    let net = match Network::new() {
        Ok(n) => n,
        Err(e) => return say!("pstn: cannot start: {e}"),
    };
    // At most ten years (a larger --pstn-hours is no different, and must not overflow).
    let hours = hours.min(24 * 3660) as i64;
    let mut next = std::time::Instant::now();
    loop {
        let until = (jobs::now_ms() / 1000) as i64;
        let since = match jobs::PollCheckpoint::load(checkpoint) {
            Ok(cp) => cp.next_since(until, hours),
            Err(e) => {
                say!("pstn: {e}");
                until - hours * 3600
            }
        };
        // An hour or so more than the window is the usual overlap; more means polls stopped.
        if until - hours * 3600 - since > 2 * every.as_secs() as i64 {
            say!("pstn: earlier polls did not read past {}: this one reads from there", iso(since + hours * 3600));
        }
        match pstn_poll(rt, env, &iso(since), &iso(until), checkpoint, &net, false) {
            Ok(p) => {
                say!("{}", p.line);
                if let Some(e) = p.error {
                    say!("pstn: {e}");
                }
            }
            Err(e) => say!("pstn: {e}"),
        }
        // On the schedule, not `every` after a poll ends: a poll that overran starts the next now.
        next += every;
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        next = next.max(std::time::Instant::now());
    }
}

fn background_backfill(rt: &Runtime, env: &[(String, String)], since: String, until: String) {
    let transport: Box<dyn Transport> = match Network::new() {
        Ok(n) => Box::new(n),
        Err(e) => {
            say!("resync: cannot start: {e}");
            return;
        }
    };
    let job =
        Job::Backfill(BackfillWindow { since: since.clone(), until: until.clone(), window_hours: 24, skip: vec![] });
    match rt.run_job(&env.to_vec(), &job, transport.as_ref(), &mut |_| {}) {
        Ok(r) => say!(
            "resync {since} .. {until}: {} calls, {} rows, {} retries{}",
            r.report.calls,
            r.report.rows,
            r.report.retries,
            r.report.error.map(|e| format!(", error: {e}")).unwrap_or_default()
        ),
        Err(e) => say!("resync {since} .. {until} failed: {e}"),
    }
}
