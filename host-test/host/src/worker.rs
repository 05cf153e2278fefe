//! Queue mode's workers: threads that claim due calls from the [`Queue`], run the core's drain job
//! on them through the plugin component (many requests in flight, no deadline), and settle each
//! call with the outcome the core gave (shipped, retry later, dead letter). Plus the counters
//! `/metrics` shows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callrecords::pipeline::queue::Outcome;

use crate::Runtime;
use crate::bindings::driver::{DrainQueueOptions, Job, QueuedCall};
use crate::jobs::now_ms;
use crate::queue::{Queue, Stats};
use crate::transport::Transport;

/// How workers run.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Worker threads.
    pub workers: usize,
    /// Calls one worker takes per turn.
    pub batch: usize,
    /// How long a claim holds a call before another worker may take it (renewed while working).
    pub lease: Duration,
    /// Names this process's workers in the queue (`host:pid`).
    pub name: String,
    /// Work on the Azure Storage queue of `CALLRECORDS_QUEUE_URL` (the core's `drain-queue`
    /// job) instead of the SQLite file.
    pub storage: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        // One worker, whose turns carry Graph's per-tenant count from one to the next, keeps to
        // the limit exactly; its drain job keeps up to 64 requests in flight itself.
        WorkerOptions {
            workers: 1,
            batch: 100,
            lease: Duration::from_secs(60),
            name: format!("{host}:{}", std::process::id()),
            storage: false,
        }
    }
}

/// Counters for `/metrics` (monotonic since start, except the gauges the queue gives).
#[derive(Default)]
pub struct Metrics {
    /// Webhook requests with notifications.
    pub deliveries: AtomicU64,
    /// Notifications committed to the queue (new entries).
    pub queued: AtomicU64,
    /// Notifications folded into a waiting entry for the same call.
    pub folded: AtomicU64,
    /// Notification items refused (forged clientState, tenant not allowed, ...).
    pub rejected: AtomicU64,
    /// Deliveries answered 503 because the commit failed.
    pub commit_failures: AtomicU64,
    /// Calls shipped.
    pub shipped: AtomicU64,
    /// Attempts that ended in a retry.
    pub retries: AtomicU64,
    /// Calls given up (dead letters).
    pub dead: AtomicU64,
    /// Requests to Entra and Graph the workers made.
    pub graph_requests: AtomicU64,
    /// Token requests to Entra ID: the workers', the edge's and the subscription keeper's.
    pub token_requests: AtomicU64,
    /// Unix ms of the last delivery.
    pub last_delivery_ms: AtomicU64,
    /// Rows accepted, per table.
    pub rows: Mutex<BTreeMap<String, u64>>,
    /// The subscription keeper runs.
    pub keeping: AtomicBool,
    /// When this webhook's subscription expires (Unix ms; 0: not known yet).
    pub subscription_expires_ms: AtomicU64,
    /// The Azure Storage queue refused or did not answer the last turn.
    pub storage_failing: AtomicBool,
}

impl Metrics {
    /// The Prometheus text exposition of these counters and the queue's `stats` at `now`.
    pub fn render(&self, stats: &Stats, now: u64) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            out += &format!("# HELP callrecords_{name} {help}\n# TYPE callrecords_{name} {kind}\n");
            for (labels, v) in samples {
                out += &format!("callrecords_{name}{labels} {v}\n");
            }
        };
        let n = |a: &AtomicU64| vec![(String::new(), a.load(Ordering::Relaxed) as f64)];
        let g = |v: f64| vec![(String::new(), v)];
        metric("queue_depth", "gauge", "Calls waiting or being worked on.", &g(stats.depth as f64));
        metric("queue_in_progress", "gauge", "Calls being worked on.", &g(stats.in_progress as f64));
        let age = stats.oldest_ms.map_or(0.0, |o| now.saturating_sub(o) as f64 / 1000.0);
        metric("queue_oldest_age_seconds", "gauge", "Age of the oldest queued notification.", &g(age));
        metric("dead_letters", "gauge", "Calls given up (callrecords dead-letters).", &g(stats.dead as f64));
        metric("deliveries_total", "counter", "Webhook requests that carried notifications.", &n(&self.deliveries));
        metric(
            "notifications_queued_total",
            "counter",
            "Notifications committed as new queue entries.",
            &n(&self.queued),
        );
        metric("notifications_folded_total", "counter", "Notifications for a call already waiting.", &n(&self.folded));
        metric("notifications_rejected_total", "counter", "Notification items refused.", &n(&self.rejected));
        metric(
            "commit_failures_total",
            "counter",
            "Deliveries answered 503: the queue commit failed.",
            &n(&self.commit_failures),
        );
        metric("calls_shipped_total", "counter", "Calls whose every table was accepted.", &n(&self.shipped));
        metric("call_retries_total", "counter", "Attempts that ended in a retry later.", &n(&self.retries));
        metric("calls_dead_total", "counter", "Calls moved to the dead letters.", &n(&self.dead));
        metric(
            "graph_requests_total",
            "counter",
            "Requests the workers sent to Entra ID and Graph.",
            &n(&self.graph_requests),
        );
        metric(
            "token_requests_total",
            "counter",
            "Token requests to Entra ID (workers, edge, keeper); a kept token makes them rare.",
            &n(&self.token_requests),
        );
        let rows: Vec<(String, f64)> = self
            .rows
            .lock()
            .map(|r| r.iter().map(|(t, v)| (format!("{{table=\"{t}\"}}"), *v as f64)).collect())
            .unwrap_or_default();
        metric("rows_total", "counter", "Rows accepted by the ingestion endpoint, per table.", &rows);
        let last = self.last_delivery_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        metric("last_delivery_timestamp_seconds", "gauge", "Unix time of the last delivery.", &g(last));
        let expires = self.subscription_expires_ms.load(Ordering::Relaxed);
        if expires > 0 {
            let left = (expires as f64 - now as f64) / 1000.0;
            metric(
                "subscription_expiry_seconds",
                "gauge",
                "Seconds until the webhook's subscription expires.",
                &g(left),
            );
        }
        out
    }

    /// The subscription's state for `/healthz`: (alive, description). Alive unless the keeper
    /// runs and the subscription it last saw has expired.
    pub fn subscription(&self, now: u64) -> (bool, String) {
        if !self.keeping.load(Ordering::Relaxed) {
            return (true, "not kept (CALLRECORDS_NOTIFICATION_URL is not set)".into());
        }
        match self.subscription_expires_ms.load(Ordering::Relaxed) {
            0 => (true, "not seen yet".into()),
            e if e > now => (true, format!("expires in {} s", (e - now) / 1000)),
            _ => (false, "expired".into()),
        }
    }
}

/// Everything the worker threads share.
pub struct Workers {
    /// The plugin component.
    pub rt: Arc<Runtime>,
    /// The `CALLRECORDS_*` settings.
    pub env: Vec<(String, String)>,
    /// The queue.
    pub queue: Arc<Queue>,
    /// How requests are sent.
    pub transport: Arc<dyn Transport>,
    /// How many, how much at a time.
    pub opts: WorkerOptions,
    /// Counters to move.
    pub metrics: Arc<Metrics>,
    /// Set it to stop them after their turn.
    pub stop: Arc<AtomicBool>,
    /// Where each turn's line goes.
    pub log: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Workers {
    /// Start `opts.workers` worker threads.
    pub fn spawn(self) -> Vec<std::thread::JoinHandle<()>> {
        let shared = Arc::new(self);
        (0..shared.opts.workers.max(1))
            .map(|i| {
                let w = shared.clone();
                let name = format!("{}/{i}", w.opts.name);
                std::thread::Builder::new()
                    .name(format!("callrecords-worker-{i}"))
                    .spawn(move || {
                        // What this worker's last turn sent to Graph, counted by its next one.
                        let mut limits = None;
                        while !w.stop.load(Ordering::Relaxed) {
                            if w.opts.storage {
                                match storage_turn(
                                    &w.rt,
                                    &w.env,
                                    w.transport.as_ref(),
                                    &w.opts,
                                    &w.metrics,
                                    &mut limits,
                                ) {
                                    Ok(Some(line)) => (w.log)(&line),
                                    // An empty queue: look again in a second.
                                    Ok(None) => std::thread::sleep(Duration::from_secs(1)),
                                    Err(e) => {
                                        (w.log)(&format!("work: {e}"));
                                        std::thread::sleep(Duration::from_secs(1));
                                    }
                                }
                                continue;
                            }
                            let t = turn(
                                &w.rt,
                                &w.env,
                                &w.queue,
                                w.transport.as_ref(),
                                &w.opts,
                                &name,
                                &w.metrics,
                                &mut limits,
                            );
                            match t {
                                Ok(Some(line)) => (w.log)(&line),
                                Ok(None) => w.queue.wait_for_work(Duration::from_millis(500)),
                                Err(e) => {
                                    (w.log)(&format!("work: {e}"));
                                    std::thread::sleep(Duration::from_secs(1));
                                }
                            }
                        }
                    })
                    .expect("spawn a worker thread")
            })
            .collect()
    }
}

/// One turn: claim, drain, settle. `None` when nothing was due. `limits` carries Graph's
/// per-tenant count from the previous turn to this one.
#[allow(clippy::too_many_arguments)]
pub fn turn(
    rt: &Runtime,
    env: &Vec<(String, String)>,
    queue: &Queue,
    transport: &dyn Transport,
    opts: &WorkerOptions,
    name: &str,
    metrics: &Metrics,
    limits: &mut Option<Vec<u8>>,
) -> Result<Option<String>, String> {
    let claimed = queue.claim(name, opts.batch, now_ms(), opts.lease)?;
    if claimed.is_empty() {
        return Ok(None);
    }
    let started = Instant::now();
    let ids: Vec<i64> = claimed.iter().map(|(id, _)| *id).collect();
    let calls: Vec<QueuedCall> = claimed
        .iter()
        .map(|(_, c)| QueuedCall {
            call_id: c.call_id.clone(),
            tenant_id: c.tenant_id.clone(),
            received_ms: c.received_ms,
            attempts: c.attempts,
            done_tables: c.done_tables.clone(),
        })
        .collect();
    // The lease is renewed while the turn runs, so a long one keeps its calls.
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= opts.lease / 3 {
                    let _ = queue.renew(name, &ids, now_ms(), opts.lease);
                    last = Instant::now();
                }
            }
        });
        // Calls shipped during the turn leave the queue at once. One call can be queued once per
        // tenant; the core names its id when every one of them has shipped.
        let mut by_call: std::collections::HashMap<&str, Vec<i64>> = Default::default();
        for (id, c) in &claimed {
            by_call.entry(c.call_id.as_str()).or_default().push(*id);
        }
        let mut shipped = |p: &crate::bindings::driver::Progress| {
            let ids: Vec<i64> = p.shipped.iter().filter_map(|c| by_call.get(c.as_str())).flatten().copied().collect();
            // If this fails, the settle at the end of the turn takes them off instead.
            if !ids.is_empty() {
                let _ = queue.shipped_early(&ids);
            }
        };
        let r = rt.run_job_with_limits(env, &Job::Drain(calls), transport, &mut shipped, limits);
        done.store(true, Ordering::Relaxed);
        r
    });
    let report = result.map_err(|e| format!("the drain job failed: {e}"))?;
    let outcomes: Vec<Outcome> = serde_json::from_value(report.detail["outcomes"].clone())
        .map_err(|e| format!("the drain report has no outcomes: {e}"))?;
    if outcomes.len() != ids.len() {
        return Err(format!("{} outcomes for {} calls", outcomes.len(), ids.len()));
    }
    let settled: Vec<(i64, Outcome)> = ids.into_iter().zip(outcomes).collect();
    queue.settle(&settled, now_ms())?;
    let outcomes: Vec<Outcome> = settled.into_iter().map(|(_, o)| o).collect();
    Ok(Some(tally(metrics, &report, &outcomes, started)))
}

/// One turn on the Azure Storage queue: the core reads, drains and settles the messages itself.
/// `None` when the queue had nothing visible.
pub fn storage_turn(
    rt: &Runtime,
    env: &Vec<(String, String)>,
    transport: &dyn Transport,
    opts: &WorkerOptions,
    metrics: &Metrics,
    limits: &mut Option<Vec<u8>>,
) -> Result<Option<String>, String> {
    let started = Instant::now();
    let job = Job::DrainQueue(DrainQueueOptions {
        max_calls: opts.batch.min(u32::MAX as usize) as u32,
        lease_seconds: opts.lease.as_secs().min(u64::from(u32::MAX)) as u32,
    });
    let report = rt.run_job_with_limits(env, &job, transport, &mut |_| {}, limits);
    let report = report.map_err(|e| format!("the drain-queue job failed: {e}"))?;
    let storage = &report.detail["storage"];
    let dequeued = storage["dequeued"].as_u64().unwrap_or(0);
    metrics.storage_failing.store(!report.report.ok && dequeued == 0, Ordering::Relaxed);
    if dequeued == 0 {
        return match report.detail["error"].as_str() {
            Some(e) => Err(e.to_string()),
            None => Ok(None),
        };
    }
    let outcomes: Vec<Outcome> = serde_json::from_value(report.detail["outcomes"].clone()).unwrap_or_default();
    let mut line = tally(metrics, &report, &outcomes, started);
    let n = |k: &str| storage[k].as_u64().unwrap_or(0);
    line += &format!(
        "; queue: {} read, {} deleted, {} updated, {} poisoned, {} lost",
        dequeued,
        n("deleted"),
        n("updated"),
        n("poisoned"),
        n("lost")
    );
    Ok(Some(line))
}

/// Count a turn's outcomes into `metrics`; its log line.
fn tally(metrics: &Metrics, report: &crate::jobs::JobReport, outcomes: &[Outcome], started: Instant) -> String {
    let (mut shipped, mut retry, mut dead, mut why) = (0u64, 0u64, 0u64, vec![]);
    for o in outcomes {
        match o {
            Outcome::Shipped { .. } => shipped += 1,
            Outcome::Retry { reason, .. } => {
                retry += 1;
                why.push(reason.clone());
            }
            Outcome::Dead { reason, .. } => {
                dead += 1;
                why.push(reason.clone());
            }
        }
    }
    metrics.shipped.fetch_add(shipped, Ordering::Relaxed);
    metrics.retries.fetch_add(retry, Ordering::Relaxed);
    metrics.dead.fetch_add(dead, Ordering::Relaxed);
    metrics.graph_requests.fetch_add(report.detail["graph_requests"].as_u64().unwrap_or(0), Ordering::Relaxed);
    metrics.token_requests.fetch_add(report.detail["token_requests"].as_u64().unwrap_or(0), Ordering::Relaxed);
    let mut rows = 0;
    if let (Ok(mut m), Some(per)) = (metrics.rows.lock(), report.detail["rows"].as_object()) {
        for (t, v) in per {
            let v = v.as_u64().unwrap_or(0);
            rows += v;
            *m.entry(t.clone()).or_default() += v;
        }
    }
    let mut line = format!(
        "work: {} calls: {shipped} shipped, {retry} to retry, {dead} dead; {rows} rows ({} ms)",
        outcomes.len(),
        started.elapsed().as_millis()
    );
    if let Some(first) = why.first() {
        line += &format!("; {first}");
    }
    line
}
