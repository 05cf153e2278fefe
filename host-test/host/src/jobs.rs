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

/// Write `bytes` to `path.tmp`, sync it and rename it to `path`: a crash leaves the old file or
/// the new one, never half of one.
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = beside(path, ".tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot save the checkpoint {}: {e}", path.display()))
}

/// What a PSTN log poll keeps between runs (`callrecords pstn`, and `serve`'s hourly poll): the
/// keys of the rows it shipped (`{log}:{id}@{start}`), so that the overlapping windows of later
/// polls ship each row once, and how far polls have read without a gap, so that `serve` catches
/// up after it was down (or every poll failed) for longer than its window.
///
/// On disk: `FILE` (this, JSON, rewritten at the end of each poll) and `FILE.journal`, to which
/// each accepted row's key is appended as soon as ingestion accepted it (one line each, synced);
/// the next poll reads both, and the end of a poll folds the journal into `FILE`. So a poll
/// writes each key once, not the whole list at every progress, and a crash loses no key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PollCheckpoint {
    /// Where polls have read to, with no gap since `first_since`: the end of the last poll that
    /// read both logs to their end and began at or before the previous `polled_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polled_until: Option<String>,
    /// The start of the first poll this checkpoint saw (successful or not): rows since then are
    /// what `serve` must not lose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_since: Option<String>,
    /// Keys of the rows shipped, sorted.
    #[serde(default)]
    pub shipped: Vec<String>,
}

/// A checkpoint keeps the keys of rows that started within this many days, or since the poll's
/// start when that is earlier: `serve`'s 48-hour polls, and a narrower `callrecords pstn` run
/// beside them, never forget a key a later poll can list again.
pub const POLL_KEYS_KEPT_DAYS: i64 = 7;

/// How far back `serve` goes to catch up after polls stopped (it was down, or every poll failed):
/// one Graph range.
pub const POLL_CATCH_UP_DAYS: i64 = 90;

fn secs_of(t: &str) -> Option<i64> {
    callrecords::values::parse_timestamp(t).map(|t| t.secs)
}

/// `path` with `suffix` added to its whole name (`pstn.json` → `pstn.json.lock`).
fn beside(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

impl PollCheckpoint {
    /// The checkpoint at `path` with the keys its journal holds; none yet: empty. A file that
    /// cannot be read is an error (starting afresh would ship the whole window again).
    pub fn load(path: &std::path::Path) -> Result<PollCheckpoint, String> {
        let mut cp: PollCheckpoint = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                format!("{}: not a PSTN poll checkpoint ({e}); move it away to start afresh", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PollCheckpoint::default(),
            Err(e) => return Err(format!("cannot read the checkpoint {}: {e}", path.display())),
        };
        let journal = beside(path, ".journal");
        match std::fs::read(&journal) {
            // Whole lines only: a line a crash cut short is no key.
            Ok(b) => cp.shipped.extend(
                String::from_utf8_lossy(&b)
                    .split_inclusive('\n')
                    .filter_map(|l| l.strip_suffix('\n'))
                    .filter(|k| !k.is_empty())
                    .map(str::to_string),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read the checkpoint's journal {}: {e}", journal.display())),
        }
        cp.shipped.sort();
        cp.shipped.dedup();
        Ok(cp)
    }

    /// Keys of rows that started before `before` are forgotten (no poll from then on lists them).
    fn forget_before(&mut self, before: i64) {
        self.shipped.retain(|k| {
            let start = k.rsplit_once('@').and_then(|(_, s)| secs_of(s));
            start.is_none_or(|s| s >= before)
        });
    }

    /// A poll of `[since, until)` read everything: `polled_until` moves to `until` if the poll
    /// began at or before it (or, before any complete poll, at or before `first_since`): no gap;
    /// and never back.
    fn polled(&mut self, since: &str, until: &str) {
        let (Some(s), Some(u)) = (secs_of(since), secs_of(until)) else { return };
        let done = self.polled_until.as_deref().and_then(secs_of);
        let reach = done.or_else(|| self.first_since.as_deref().and_then(secs_of));
        if reach.is_some_and(|r| s > r) || done.is_some_and(|d| u <= d) {
            return;
        }
        self.polled_until = Some(until.to_string());
    }

    /// Where `serve`'s next poll over the last `hours` should start at `now`. A row may appear up
    /// to `hours` after its call started, so the last complete poll saw every row that started
    /// after `polled_until - hours` and had appeared by then: the next poll starts there (an hour
    /// before `now - hours` when polls keep up hourly; days before after an outage), or at
    /// `first_since` when no poll has read everything yet; never later than `now - hours`, and
    /// at most [`POLL_CATCH_UP_DAYS`] back.
    pub fn next_since(&self, now: i64, hours: i64) -> i64 {
        let usual = now - hours * 3600;
        let read_to = match self.polled_until.as_deref().and_then(secs_of) {
            Some(p) => Some(p - hours * 3600),
            None => self.first_since.as_deref().and_then(secs_of),
        };
        read_to.map_or(usual, |r| r.min(usual)).max(now - POLL_CATCH_UP_DAYS * 86_400)
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

/// Append `keys` to the journal, one line each, and sync it.
fn journal_keys(journal: &mut std::fs::File, keys: &[String]) -> std::io::Result<()> {
    use std::io::Write;
    let mut text = String::with_capacity(keys.iter().map(|k| k.len() + 1).sum());
    for k in keys {
        // A key is one line: Graph's ids have no line breaks, a hostile one is written without.
        text.extend(k.chars().filter(|c| *c != '\n' && *c != '\r'));
        text.push('\n');
    }
    journal.write_all(text.as_bytes())?;
    journal.sync_data()
}

/// Ship the PSTN and Direct Routing log rows of calls that started in `[since, until)`, skipping
/// the keys of `checkpoint` and journaling each shipped row's key as soon as it was accepted
/// (see [`PollCheckpoint`]). One poll at a time uses a checkpoint: another (a `callrecords pstn`
/// beside `serve`) is refused while it runs, instead of overwriting its keys. With `bar`, a
/// progress bar on stderr.
pub fn pstn_poll(
    rt: &Runtime,
    env: &Vec<(String, String)>,
    since: &str,
    until: &str,
    checkpoint: &std::path::Path,
    transport: &dyn Transport,
    bar: bool,
) -> Result<PollSummary, String> {
    let lock_path = beside(checkpoint, ".lock");
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
    let mut cp = PollCheckpoint::load(checkpoint)?;
    if cp.first_since.is_none() {
        cp.first_since = Some(since.to_string());
    }
    let since_secs = secs_of(since).unwrap_or(i64::MAX);
    cp.forget_before(since_secs.min((now_ms() / 1000) as i64 - POLL_KEYS_KEPT_DAYS * 86_400));
    // A journal a crashed poll left is folded in first: this poll's keys must not be appended to
    // a line the crash cut short.
    let journal_path = beside(checkpoint, ".journal");
    if journal_path.exists() {
        fold(checkpoint, &journal_path, &cp)?;
    }
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| format!("cannot write the checkpoint's journal {}: {e}", journal_path.display()))?;
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
            if let Err(e) = journal_keys(&mut journal, &p.shipped) {
                save_error.get_or_insert(format!("cannot save the checkpoint {}: {e}", journal_path.display()));
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
        cp.polled(since, until);
    }
    cp.shipped.sort();
    cp.shipped.dedup();
    drop(journal);
    fold(checkpoint, &journal_path, &cp)?;
    drop(lock);
    Ok(summary)
}

/// Write `cp` (which holds the journal's keys) to `checkpoint`, then remove the journal: its keys
/// are in the file once it is renamed into place, and only then is it removed.
fn fold(checkpoint: &std::path::Path, journal: &std::path::Path, cp: &PollCheckpoint) -> Result<(), String> {
    write_atomic(checkpoint, &serde_json::to_vec_pretty(cp).unwrap_or_default())?;
    match std::fs::remove_file(journal) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove the checkpoint's journal {}: {e}", journal.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    fn iso_secs(secs: i64) -> String {
        callrecords::values::format_timestamp(callrecords::values::Instant { secs, ticks: 0 })
    }
    /// 2026-11-28T00:00:00Z.
    const NOW: i64 = 1_795_824_000;

    fn cp(polled_until: Option<i64>, first_since: Option<i64>) -> PollCheckpoint {
        PollCheckpoint {
            polled_until: polled_until.map(iso_secs),
            first_since: first_since.map(iso_secs),
            shipped: vec![],
        }
    }

    #[test]
    fn serve_polls_the_usual_window_while_polls_keep_up() {
        assert_eq!(cp(None, None).next_since(NOW, 48), NOW - 48 * H);
        // An hour after the last poll: from its end minus the window, so that a row that appeared
        // just after that poll, 47.5 hours after its call, is still read.
        assert_eq!(cp(Some(NOW - H), Some(NOW - 100 * H)).next_since(NOW, 48), NOW - 49 * H);
    }

    #[test]
    fn serve_catches_up_after_polls_stopped_for_longer_than_the_window() {
        // Down for three days: from the last complete poll's end, minus the window.
        assert_eq!(cp(Some(NOW - 72 * H), None).next_since(NOW, 48), NOW - 120 * H);
        // No poll ever read everything (a 403 for days): from the first poll's start.
        assert_eq!(cp(None, Some(NOW - 96 * H)).next_since(NOW, 48), NOW - 96 * H);
        // At most 90 days back.
        assert_eq!(cp(Some(NOW - 400 * 24 * H), None).next_since(NOW, 48), NOW - 90 * 24 * H);
    }

    #[test]
    fn polled_until_moves_forward_only_and_not_over_a_gap() {
        let mut c = cp(Some(NOW - 10 * H), None);
        // A narrower poll that ends earlier does not move it back.
        c.polled(&iso_secs(NOW - 20 * H), &iso_secs(NOW - 12 * H));
        assert_eq!(c.polled_until, Some(iso_secs(NOW - 10 * H)));
        // A poll that starts after it leaves a gap: not moved.
        c.polled(&iso_secs(NOW - 2 * H), &iso_secs(NOW));
        assert_eq!(c.polled_until, Some(iso_secs(NOW - 10 * H)));
        // One that overlaps it moves it.
        c.polled(&iso_secs(NOW - 48 * H), &iso_secs(NOW));
        assert_eq!(c.polled_until, Some(iso_secs(NOW)));
        let mut first = cp(None, Some(NOW - 48 * H));
        first.polled(&iso_secs(NOW - 48 * H), &iso_secs(NOW));
        assert_eq!(first.polled_until, Some(iso_secs(NOW)));
        // Before any complete poll, one that starts after the first poll's start leaves a gap.
        let mut failed_before = cp(None, Some(NOW - 96 * H));
        failed_before.polled(&iso_secs(NOW - 2 * H), &iso_secs(NOW));
        assert_eq!(failed_before.polled_until, None);
    }

    #[test]
    fn the_journal_adds_whole_lines_only_and_a_missing_file_is_a_fresh_start() {
        let dir = std::env::temp_dir().join(format!("callrecords-pstn-cp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pstn.json");
        assert_eq!(PollCheckpoint::load(&path).unwrap(), PollCheckpoint::default());
        std::fs::write(&path, r#"{"shipped":["pstn:b@2026-11-27T00:00:00Z"]}"#).unwrap();
        std::fs::write(
            beside(&path, ".journal"),
            "pstn:a@2026-11-27T01:00:00Z\npstn:b@2026-11-27T00:00:00Z\npstn:c@2026-1",
        )
        .unwrap();
        let c = PollCheckpoint::load(&path).unwrap();
        assert_eq!(c.shipped, ["pstn:a@2026-11-27T01:00:00Z", "pstn:b@2026-11-27T00:00:00Z"]);
        // A checkpoint that is a folder (or unreadable) is an error, not a fresh start.
        let e = PollCheckpoint::load(&dir).unwrap_err();
        assert!(e.contains("cannot read the checkpoint"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
