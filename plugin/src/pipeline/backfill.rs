//! The backfill job: every call that started in `[since, until)` (Graph keeps 30 days), listed
//! window by window with List callRecords, each listed call fetched once per window.
//!
//! It streams: rows ship as calls complete (`ship.rs`), and each progress names the calls shipped
//! since the last one, so the host's checkpoint (the window reached, and the calls of that window
//! already shipped) moves call by call; a rerun skips those calls. The next List page is read only
//! when fewer than [`LIST_AHEAD`] calls are being fetched, so memory holds a bounded number of
//! calls whatever the window's size (plus one id per call of the window, to fetch each once).

use std::collections::HashSet;

use super::queue::Listed;
use super::step::{Pending, Step};
use super::{Action, Progress, Run, instant};
use crate::entra::Scope;
use crate::error::Error;
use crate::graph;
use crate::http::OutgoingRequest;
use crate::values::{Instant, format_timestamp, parse_timestamp};

/// Graph keeps callRecords for 30 days.
pub const MAX_BACKFILL_DAYS: u64 = 30;

/// The next List page is read once fewer calls than this are being fetched.
pub const LIST_AHEAD: usize = 256;

/// The windows of a backfill and how far it got.
pub(super) struct Backfill {
    windows: Vec<(Instant, Instant)>,
    current: usize,
    listed: HashSet<String>,
    /// Calls shipped by an earlier run (the checkpoint): never fetched.
    skip: HashSet<String>,
    /// The current window's next List page, read when the calls being fetched run low.
    next_page: Option<String>,
    /// Calls skipped because the checkpoint had them.
    pub(super) skipped: u32,
}

impl Run {
    pub(super) fn list_page_request(&self, link: Option<&str>) -> crate::Result<OutgoingRequest> {
        let g = self.config.graph_url.as_str();
        let token = self.cached_token(Scope::Graph, &self.config.credentials.tenant_id);
        match link {
            Some(l) => graph::next_page_request(g, l, token),
            None => {
                let b = self.backfill.as_ref().expect("list pages belong to a backfill");
                let (s, e) = b.windows[b.current];
                graph::list_call_records_request(g, &format_timestamp(s), &format_timestamp(e), token)
            }
        }
    }

    /// A List page: its next page first, then each call not listed before in this window.
    pub(super) fn on_list_page(&mut self, body: &[u8]) {
        match graph::parse_list_page(&String::from_utf8_lossy(body)) {
            Ok(page) => {
                let own = self.config.credentials.tenant_id.clone();
                let b = self.backfill.as_mut().expect("list pages belong to a backfill");
                b.next_page = page.next_link;
                let mut new = vec![];
                for (id, version) in page.ids.into_iter().zip(page.versions) {
                    if !graph::is_valid_call_id(&id) || !b.listed.insert(id.clone()) {
                        continue;
                    }
                    if self.sweep_only {
                        // A reconciliation sweep lists; the host queues what its ledger lacks.
                        self.report.listed.push(Listed { call_id: id, tenant_id: own.clone(), version });
                        continue;
                    }
                    if b.skip.contains(&id) {
                        b.skipped += 1;
                    } else {
                        new.push(id);
                    }
                }
                for id in new {
                    self.queue_call(id, own.clone());
                }
            }
            Err(e) => self.fatal(format!("List callRecords: {e}")),
        }
    }

    /// Read the window's next List page when the calls being fetched run low.
    pub(super) fn list_ahead(&mut self) {
        if self.fetches.len() >= LIST_AHEAD {
            return;
        }
        if let Some(link) = self.backfill.as_mut().and_then(|b| b.next_page.take()) {
            self.queue.push_front(Pending::new(Step::ListPage { link: Some(link) }));
        }
    }

    /// In a backfill whose queue is empty, the current window is done: list the next one, or
    /// finish after the last. The progress, with the window's end as the checkpoint.
    pub(super) fn end_window(&mut self, now: u64) -> Option<Action> {
        if let Some(b) = &mut self.backfill
            && !self.finished
        {
            let end = b.windows[b.current].1;
            b.current += 1;
            b.listed.clear();
            let more = b.current < b.windows.len();
            if more {
                self.queue.push_back(Pending::new(Step::ListPage { link: None }));
            }
            let p = self.progress_now(Some(format_timestamp(end)));
            if !more {
                self.finish(now);
            }
            return Some(Action::Progress(p));
        }
        None
    }

    pub(super) fn progress_now(&self, completed_until: Option<String>) -> Progress {
        let b = self.backfill.as_ref();
        // A poll counts its (range, log) chains as windows.
        let (done, total) = match (b, &self.poll) {
            (Some(b), _) => (b.current as u32, b.windows.len() as u32),
            (None, Some(p)) => p.done_total(),
            (None, None) => (0, 0),
        };
        Progress {
            windows_done: done,
            windows_total: total,
            completed_until,
            calls_listed: self.report.calls_done + self.report.failed_count + self.fetches.len() as u32,
            calls_done: self.report.calls_done,
            rows: self.report.total_rows(),
            bytes: self.report.ingestion_bytes,
            retries: self.report.retries,
            shipped: vec![],
        }
    }
}

/// The windows of `[since, until)` (`until` empty: `now`), refusing what Graph no longer keeps.
pub(super) fn backfill_windows(
    since: &str,
    until: &str,
    window_hours: u32,
    skip: Vec<String>,
    now: u64,
) -> crate::Result<Backfill> {
    let s = parse_timestamp(since).ok_or_else(|| Error::arg("since is not an ISO 8601 timestamp"))?;
    let e = if until.is_empty() {
        instant(now)
    } else {
        parse_timestamp(until).ok_or_else(|| Error::arg("until is not an ISO 8601 timestamp"))?
    };
    let oldest = instant(now).secs - (MAX_BACKFILL_DAYS * 86_400) as i64;
    if s.secs < oldest {
        return Err(Error::arg(format!(
            "since is more than {MAX_BACKFILL_DAYS} days ago; Graph keeps callRecords for {MAX_BACKFILL_DAYS} days"
        )));
    }
    if e <= s {
        return Err(Error::arg("until must be after since"));
    }
    if window_hours == 0 {
        return Err(Error::arg("window-hours must be at least 1"));
    }
    let step = i64::from(window_hours) * 3600;
    let mut windows = vec![];
    let mut start = s;
    while start < e {
        let end = Instant { secs: start.secs + step, ticks: start.ticks }.min(e);
        windows.push((start, end));
        start = end;
    }
    let skip = skip.into_iter().collect();
    Ok(Backfill { windows, current: 0, listed: HashSet::new(), skip, next_page: None, skipped: 0 })
}
