//! Jobs the CLI runs through the `plugin` component's `driver` (backfill, subscribe, renew,
//! subscriptions, unsubscribe): the component decides every request, retry and wait; the host
//! only sends the requests (through a [`Transport`]), keeps time, and keeps the tokens a job
//! saved for the next job of the same [`Runtime`] (in memory only).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bindings::driver::{Action, Job, Progress, Report};
use crate::calls::Error;
use crate::runtime::{Instance, Runtime};
use crate::transport::{Reply, Transport};

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The job's report: the WIT record and its JSON detail.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// The summary record.
    pub report: Report,
    /// Everything the driver recorded.
    pub detail: serde_json::Value,
}

impl Runtime {
    /// The settings in effect, secrets masked.
    pub fn describe_settings(&self, env: &Vec<(String, String)>) -> Result<Vec<(String, String)>, Error> {
        let r = self.call(|p, s| p.teams_sentinel_callrecords_driver().call_describe_settings(s, env));
        r?.map_err(Error::Plugin)
    }

    /// Run a driver job to its end in one instance, with every request the driver hands out in
    /// flight at once: each `send` is started on the transport (a tokio task on the network's
    /// pooled client), answers are delivered by id in the order they arrive, and `wait` blocks
    /// until the next answer or its timeout.
    pub fn run_job(
        &self,
        env: &Vec<(String, String)>,
        job: &Job,
        transport: &dyn Transport,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<JobReport, Error> {
        self.run_job_with_limits(env, job, transport, progress, &mut None)
    }

    /// [`Runtime::run_job`] for a host that runs jobs one after the other: `limits` holds what
    /// the previous job sent to Graph (its `saved-limits`), is counted by this one, and is
    /// replaced by this one's at its end.
    pub fn run_job_with_limits(
        &self,
        env: &Vec<(String, String)>,
        job: &Job,
        transport: &dyn Transport,
        progress: &mut dyn FnMut(&Progress),
        limits: &mut Option<Vec<u8>>,
    ) -> Result<JobReport, Error> {
        let mut i = self.instance_for(env)?;
        let timeout = self.limits().call_timeout;
        let run = match i.plugin.teams_sentinel_callrecords_driver().run().call_start(&mut i.store, env, job, now_ms())
        {
            Ok(Ok(run)) => run,
            Ok(Err(e)) => return Err(Error::Plugin(e)),
            Err(e) => return Err(Error::Call(i.fail(e))),
        };
        let saved = self.tokens.lock().ok().and_then(|t| t.clone());
        if let Some(saved) = saved {
            let driver = i.plugin.teams_sentinel_callrecords_driver().run();
            driver.call_restore_tokens(&mut i.store, run, &saved, now_ms()).map_err(|e| Error::Call(i.fail(e)))?;
        }
        if let Some(saved) = limits.as_ref() {
            let driver = i.plugin.teams_sentinel_callrecords_driver().run();
            driver.call_restore_limits(&mut i.store, run, saved, now_ms()).map_err(|e| Error::Call(i.fail(e)))?;
        }
        let (tx, rx) = std::sync::mpsc::channel::<Answer>();
        {
            let driver = i.plugin.teams_sentinel_callrecords_driver().run();
            let mut in_flight = 0usize;
            loop {
                Instance::refresh_deadline(&mut i.store, timeout);
                let action = driver.call_next(&mut i.store, run, now_ms()).map_err(|e| Error::Call(i.fail(e)))?;
                Instance::refresh_deadline(&mut i.store, timeout);
                match action {
                    Action::Send(s) => {
                        let (tx, limit) = (tx.clone(), Duration::from_millis(u64::from(s.timeout_ms)));
                        in_flight += 1;
                        let id = s.id;
                        transport.start(
                            s.request,
                            limit,
                            Box::new(move |answer| {
                                let _ = tx.send((id, answer));
                            }),
                        );
                    }
                    Action::Wait(ms) => {
                        let wait = Duration::from_millis(u64::from(ms));
                        if in_flight == 0 {
                            std::thread::sleep(wait);
                            continue;
                        }
                        // The first answer to come, then every other one that has arrived meanwhile.
                        let mut next = rx.recv_timeout(wait).ok();
                        while let Some(answer) = next {
                            in_flight -= 1;
                            deliver(&mut i.store, &driver, run, answer).map_err(|e| Error::Call(i.fail(e)))?;
                            next = rx.try_recv().ok();
                        }
                    }
                    Action::Progress(p) => progress(&p),
                    Action::Done(report) => {
                        if let Ok(Some(saved)) = driver.call_saved_tokens(&mut i.store, run, now_ms())
                            && let Ok(mut t) = self.tokens.lock()
                        {
                            *t = Some(saved);
                        }
                        if let Ok(saved) = driver.call_saved_limits(&mut i.store, run, now_ms()) {
                            *limits = Some(saved);
                        }
                        let _ = run.resource_drop(&mut i.store);
                        let detail = serde_json::from_str(&report.json).unwrap_or(serde_json::Value::Null);
                        // Requests still being sent end by their timeouts; their answers are dropped.
                        return Ok(JobReport { report, detail });
                    }
                }
            }
        }
    }
}

/// An answer from a sending thread: the driver's request id and what came back.
type Answer = (u64, Result<Reply, String>);

/// Give `answer` to the run. A refused id is the driver's own business (it abandoned that
/// request); only a trap is an error.
fn deliver(
    store: &mut wasmtime::Store<crate::runtime::HostState>,
    driver: &crate::bindings::driver::GuestRun,
    run: wasmtime::component::ResourceAny,
    (id, answer): Answer,
) -> wasmtime::Result<()> {
    let r = match answer {
        Ok((status, headers, body)) => driver.call_respond(&mut *store, run, id, status, &headers, &body, now_ms()),
        Err(reason) => driver.call_transport_error(&mut *store, run, id, &reason, now_ms()),
    };
    r.map(|_| ())
}

/// What `callrecords backfill` keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The requested start.
    pub since: String,
    /// The requested end.
    pub until: String,
    /// Every call that started before this was shipped.
    pub completed_until: Option<String>,
    /// Calls after `completed_until` that were shipped too (a rerun skips them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shipped: Vec<String>,
}

/// Totals of a backfill.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    /// Where this run started (the checkpoint, or `since`).
    pub resumed_from: String,
    /// Windows run.
    pub windows: u32,
    /// Calls shipped.
    pub calls: u32,
    /// Calls that failed.
    pub failed: u32,
    /// Calls not fetched because the checkpoint says they were shipped.
    pub skipped: u32,
    /// Rows accepted.
    pub rows: u64,
    /// Bytes sent to ingestion.
    pub bytes: u64,
    /// Retries.
    pub retries: u32,
    /// Why not everything worked.
    pub error: Option<String>,
}

/// What to backfill.
#[derive(Debug, Clone)]
pub struct BackfillRequest<'a> {
    /// ISO 8601 start.
    pub since: &'a str,
    /// ISO 8601 end.
    pub until: &'a str,
    /// Window length.
    pub window_hours: u32,
    /// Checkpoint file.
    pub checkpoint: &'a std::path::Path,
    /// Draw a progress bar on stderr (else a line per window).
    pub bar: bool,
}

/// Ship every call that started in `[since, until)`, resuming from the checkpoint when it holds
/// the same window, saving it whenever calls were shipped: the window reached and the calls after
/// it already shipped, so that a rerun after a crash redoes only the calls that were in flight.
pub fn backfill(
    rt: &Runtime,
    env: &Vec<(String, String)>,
    req: &BackfillRequest<'_>,
    transport: &dyn Transport,
) -> Result<BackfillSummary, String> {
    let BackfillRequest { since, until, window_hours, checkpoint, bar } = *req;
    let saved: Option<Checkpoint> = std::fs::read(checkpoint)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &Checkpoint| c.since == since && c.until == until);
    let start = saved.as_ref().and_then(|c| c.completed_until.clone()).unwrap_or_else(|| since.to_string());
    let mut cp = Checkpoint {
        since: since.into(),
        until: until.into(),
        completed_until: saved.as_ref().and_then(|c| c.completed_until.clone()),
        shipped: saved.map(|c| c.shipped).unwrap_or_default(),
    };
    let mut summary = BackfillSummary { resumed_from: start.clone(), ..Default::default() };
    let done = |a: &str, b: &str| {
        let (a, b) = (callrecords::values::parse_timestamp(a), callrecords::values::parse_timestamp(b));
        matches!((a, b), (Some(a), Some(b)) if a >= b)
    };
    if done(&start, until) {
        return Ok(summary);
    }
    let job = Job::Backfill(crate::bindings::driver::BackfillWindow {
        since: start,
        until: until.to_string(),
        window_hours,
        skip: cp.shipped.clone(),
    });
    let pb = if bar { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} windows {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut save_error = None;
    let mut windows = 0;
    let result = rt.run_job(env, &job, transport, &mut |p| {
        windows = p.windows_done;
        pb.set_length(u64::from(p.windows_total));
        pb.set_position(u64::from(p.windows_done));
        pb.set_message(format!("{} calls, {} rows, {} bytes, {} retries", p.calls_done, p.rows, p.bytes, p.retries));
        if let Some(c) = &p.completed_until {
            if !bar {
                eprintln!(
                    "backfill: {}/{} windows, up to {c}: {} calls, {} rows",
                    p.windows_done, p.windows_total, p.calls_done, p.rows
                );
            }
            cp.completed_until = Some(c.clone());
            cp.shipped.clear();
        }
        cp.shipped.extend(p.shipped.iter().cloned());
        if p.completed_until.is_some() || !p.shipped.is_empty() {
            match write_atomic(checkpoint, &serde_json::to_vec_pretty(&cp).unwrap_or_default()) {
                Ok(()) => save_error = None,
                Err(e) => save_error = Some(e),
            }
        }
    });
    pb.finish_and_clear();
    let r = result.map_err(|e| e.to_string())?;
    let d = &r.detail;
    summary.calls = r.report.calls;
    summary.failed = r.report.failed_calls;
    summary.skipped = d["skipped"].as_u64().unwrap_or(0) as u32;
    summary.rows = r.report.rows;
    summary.retries = r.report.retries;
    summary.bytes = d["ingestion_bytes"].as_u64().unwrap_or(0);
    summary.windows = windows;
    summary.error = r.report.error.or(save_error);
    Ok(summary)
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot save the checkpoint {}: {e}", path.display()))
}

/// What a PSTN log poll keeps between runs (`callrecords pstn`, and `serve`'s hourly poll): the
/// keys of the rows it shipped (`{log}:{id}@{start}`), so that the overlapping windows of later
/// polls ship each row once.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PollCheckpoint {
    /// The end of the last poll that read both logs to their end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polled_until: Option<String>,
    /// Keys of the rows shipped, sorted.
    #[serde(default)]
    pub shipped: Vec<String>,
}

/// A checkpoint keeps the keys of rows that started within this many days, or since the poll's
/// start when that is earlier: `serve`'s 48-hour polls, and a narrower `callrecords pstn` run
/// beside them, never forget a key a later poll can list again.
pub const POLL_KEYS_KEPT_DAYS: i64 = 7;

impl PollCheckpoint {
    /// Keys of rows that started before `before` are forgotten (no poll from then on lists them).
    fn forget_before(&mut self, before: i64) {
        self.shipped.retain(|k| {
            let start = k.rsplit_once('@').and_then(|(_, s)| callrecords::values::parse_timestamp(s));
            start.is_none_or(|s| s.secs >= before)
        });
    }
}

/// Totals of a PSTN log poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollSummary {
    /// Rows listed per log (`pstn`, `directRouting`).
    pub listed: std::collections::BTreeMap<String, u64>,
    /// Rows shipped by this poll.
    pub shipped: u64,
    /// Rows earlier polls had shipped (the checkpoint).
    pub skipped: u64,
    /// Ranges of at most 90 days read.
    pub windows: u32,
    /// Pages read.
    pub pages: u32,
    /// Bytes sent to ingestion.
    pub bytes: u64,
    /// Retries.
    pub retries: u32,
    /// Why not everything worked.
    pub error: Option<String>,
}

/// Ship the PSTN and Direct Routing log rows of calls that started in `[since, until)`, skipping
/// the keys of `checkpoint` and adding each shipped row's key to it as soon as it was accepted
/// (the file is rewritten after every progress). One poll at a time uses a checkpoint: another
/// (a `callrecords pstn` beside `serve`) is refused while it runs, instead of overwriting its keys.
/// With `bar`, a progress bar on stderr.
pub fn pstn_poll(
    rt: &Runtime,
    env: &Vec<(String, String)>,
    since: &str,
    until: &str,
    checkpoint: &std::path::Path,
    transport: &dyn Transport,
    bar: bool,
) -> Result<PollSummary, String> {
    let lock_path = checkpoint.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(format!(
                "another PSTN poll is using the checkpoint {} (a `serve` or `callrecords pstn`); try again when it ends",
                checkpoint.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(format!("{}: {e}", lock_path.display())),
    }
    let mut cp: PollCheckpoint = match std::fs::read(checkpoint) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            format!("{}: not a PSTN poll checkpoint ({e}); move it away to start afresh", checkpoint.display())
        })?,
        Err(_) => PollCheckpoint::default(),
    };
    let since_secs = callrecords::values::parse_timestamp(since).map_or(i64::MAX, |t| t.secs);
    cp.forget_before(since_secs.min((now_ms() / 1000) as i64 - POLL_KEYS_KEPT_DAYS * 86_400));
    let job = Job::Pstn(crate::bindings::driver::PstnPoll {
        since: since.into(),
        until: until.into(),
        skip: cp.shipped.clone(),
    });
    let pb = if bar { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} log ranges {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut save_error = None;
    let result = rt.run_job(env, &job, transport, &mut |p| {
        pb.set_length(u64::from(p.windows_total));
        pb.set_position(u64::from(p.windows_done));
        pb.set_message(format!("{} rows shipped", p.rows));
        if !p.shipped.is_empty() {
            cp.shipped.extend(p.shipped.iter().cloned());
            match write_atomic(checkpoint, &serde_json::to_vec(&cp).unwrap_or_default()) {
                Ok(()) => save_error = None,
                Err(e) => save_error = Some(e),
            }
        }
    });
    pb.finish_and_clear();
    let r = result.map_err(|e| e.to_string())?;
    let logs = &r.detail["logs"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let summary = PollSummary {
        listed: logs["listed"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), n(v))).collect(),
        shipped: r.report.rows,
        skipped: n(&logs["skipped"]),
        windows: n(&logs["windows"]) as u32,
        pages: n(&logs["pages"]) as u32,
        bytes: n(&r.detail["ingestion_bytes"]),
        retries: r.report.retries,
        error: r.report.error.or(save_error),
    };
    if summary.error.is_none() {
        cp.polled_until = Some(until.to_string());
    }
    cp.shipped.sort();
    cp.shipped.dedup();
    write_atomic(checkpoint, &serde_json::to_vec_pretty(&cp).unwrap_or_default())?;
    drop(lock);
    Ok(summary)
}
