//! The PSTN and Direct Routing poll: every row of both logs whose call started in
//! `[since, until)`, read in ranges of at most 90 days (`graph/pstn.rs`), each page's rows expanded
//! at once and shipped. These logs send no change notifications, so a host polls them on a
//! schedule over windows that overlap (`callrecords serve`: every hour, the last 48 hours), and
//! rows are deduplicated by key (`expand/pstn.rs`): the keys an earlier run shipped come in as
//! `skip`, and each progress names the keys shipped since the last one, so the host's checkpoint
//! grows row by row. A row seen twice in one run (adjacent ranges share their edge: getPstnCalls'
//! `toDateTime` is inclusive) is shipped once.
//!
//! The next page of a log is asked for only while fewer than [`FLUSHES_AHEAD`] flushes are being
//! shipped, so memory holds a bounded number of pages whatever the span. A log that fails (a 403
//! for a missing permission, a page Graph keeps refusing) ends its chain and makes the job not
//! `ok`; the other log goes on.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::step::{Pending, Step};
use super::{CallKey, Run, instant};
use crate::entra::Scope;
use crate::error::Error;
use crate::expand::pstn::log_page;
use crate::graph::pstn::{MAX_WINDOW_DAYS, PstnLog, log_request};
use crate::graph::{self};
use crate::http::OutgoingRequest;
use crate::values::{Instant, format_timestamp, parse_timestamp};

/// The next page is read while fewer flushes than this are being shipped.
pub const FLUSHES_AHEAD: usize = 4;

/// What a poll read, for its report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    /// Ranges of at most 90 days the span was cut into (each read for both logs).
    pub windows: u32,
    /// Pages read.
    pub pages: u32,
    /// Rows Graph listed, per log (`pstn`, `directRouting`).
    pub listed: BTreeMap<String, u64>,
    /// Rows new to this poll and handed to shipping, per log.
    pub new: BTreeMap<String, u64>,
    /// Rows an earlier run shipped (the checkpoint's keys): not shipped again.
    pub skipped: u64,
    /// Rows listed twice within this run: shipped once.
    pub duplicates: u64,
    /// Logs that could not be read to the end, with why.
    pub failed: Vec<String>,
}

/// A poll in progress.
pub(super) struct Poll {
    windows: Vec<(Instant, Instant)>,
    /// Keys shipped by earlier runs.
    skip: HashSet<String>,
    /// Keys seen in this run.
    seen: HashSet<String>,
    /// Next pages held back while shipping catches up: (log, window, link).
    held: Vec<(PstnLog, usize, String)>,
    /// Logs whose chain failed: their held pages are dropped.
    failed: HashSet<PstnLog>,
    /// Chains (window × log) not finished yet.
    chains_left: usize,
    pub(super) report: PollReport,
}

impl Poll {
    /// Chains finished, for progress.
    pub(super) fn done_total(&self) -> (u32, u32) {
        let total = (self.windows.len() * PstnLog::ALL.len()) as u32;
        (total - self.chains_left as u32, total)
    }
}

/// The poll of `[since, until)` (`until` empty: `now`), in ranges of at most 90 days.
pub(super) fn poll_windows(since: &str, until: &str, skip: Vec<String>, now: u64) -> crate::Result<Poll> {
    let s = parse_timestamp(since).ok_or_else(|| Error::arg("since is not an ISO 8601 timestamp"))?;
    let e = if until.is_empty() {
        instant(now)
    } else {
        parse_timestamp(until).ok_or_else(|| Error::arg("until is not an ISO 8601 timestamp"))?
    };
    if e <= s {
        return Err(Error::arg("until must be after since"));
    }
    let step = (MAX_WINDOW_DAYS * 86_400) as i64;
    let mut windows = vec![];
    let mut start = s;
    while start < e {
        let end = Instant { secs: start.secs + step, ticks: start.ticks }.min(e);
        windows.push((start, end));
        start = end;
    }
    let chains_left = windows.len() * PstnLog::ALL.len();
    let report = PollReport { windows: windows.len() as u32, ..PollReport::default() };
    Ok(Poll {
        windows,
        skip: skip.into_iter().collect(),
        seen: HashSet::new(),
        held: vec![],
        failed: HashSet::new(),
        chains_left,
        report,
    })
}

impl Run {
    /// Queue the first page of every (window, log) chain.
    pub(super) fn start_poll(&mut self, poll: Poll) {
        for window in 0..poll.windows.len() {
            for log in PstnLog::ALL {
                self.queue.push_back(Pending::new(Step::LogPage { log, window, link: None }));
            }
        }
        self.poll = Some(poll);
    }

    pub(super) fn log_page_request(
        &self,
        log: PstnLog,
        window: usize,
        link: Option<&str>,
    ) -> crate::Result<OutgoingRequest> {
        let g = self.config.graph_url.as_str();
        let token = self.cached_token(Scope::Graph, &self.config.credentials.tenant_id);
        match link {
            Some(l) => graph::next_page_request(g, l, token),
            None => {
                let p = self.poll.as_ref().expect("log pages belong to a poll");
                let (s, e) = p.windows[window];
                log_request(g, log, &format_timestamp(s), &format_timestamp(e), token)
            }
        }
    }

    /// A page of a log: its rows kept for shipping (each once), its next page asked for or held.
    pub(super) fn on_log_page(&mut self, log: PstnLog, window: usize, link: Option<String>, body: &[u8], now: u64) {
        let page = match log_page(log, &String::from_utf8_lossy(body)) {
            Ok(p) => p,
            Err(e) => return self.log_failed(log, e.to_string(), 0),
        };
        let own = self.config.credentials.tenant_id.clone();
        let table = log.table().name;
        let Some(p) = self.poll.as_mut() else { return };
        p.report.pages += 1;
        *p.report.listed.entry(log.name().into()).or_default() += page.rows.len() as u64;
        let mut rows = vec![];
        let mut keys = vec![];
        for r in page.rows {
            if p.skip.contains(&r.key) {
                p.report.skipped += 1;
            } else if !p.seen.insert(r.key.clone()) {
                p.report.duplicates += 1;
            } else {
                rows.push(r.row);
                keys.push(r.key);
            }
        }
        *p.report.new.entry(log.name().into()).or_default() += rows.len() as u64;
        match page.next_link {
            // A link to the page just read would be asked for forever: it ends the chain, as does
            // the failure of the log's other chains.
            Some(next) if link.as_deref() != Some(next.as_str()) && !p.failed.contains(&log) => {
                p.held.push((log, window, next))
            }
            _ => p.chains_left = p.chains_left.saturating_sub(1),
        }
        if !rows.is_empty() {
            self.keep_unshipped(table, rows, now);
            for key in keys {
                self.expanded(&CallKey::new(&own, &key), vec![table]);
            }
        }
    }

    /// Ask for held next pages while shipping keeps up.
    pub(super) fn poll_ahead(&mut self) {
        if self.flushes.len() >= FLUSHES_AHEAD {
            return;
        }
        let Some(p) = self.poll.as_mut() else { return };
        for (log, window, link) in std::mem::take(&mut p.held) {
            self.queue.push_front(Pending::new(Step::LogPage { log, window, link: Some(link) }));
        }
    }

    /// A log could not be read to its end: its chains stop, the other log goes on.
    pub(super) fn log_failed(&mut self, log: PstnLog, reason: String, status: u16) {
        let hint = match status {
            401 | 403 => {
                " (the app needs the Graph application permission CallRecords.Read.All with admin consent; \
                 older Microsoft pages name CallRecord-PstnCalls.Read.All: grant that too, see \
                 examples/sentinel/README.md)"
            }
            _ => "",
        };
        let line = format!("{}: {reason}{hint}", log.function());
        self.report.ok = false;
        self.report.error.get_or_insert_with(|| line.clone());
        let Some(p) = self.poll.as_mut() else { return };
        p.chains_left = p.chains_left.saturating_sub(1);
        if p.failed.insert(log) {
            p.report.failed.push(line);
        }
        // The log's other chains end too: what failed here (a permission, a refused range) fails there.
        let before = p.held.len();
        p.held.retain(|(l, _, _)| *l != log);
        p.chains_left = p.chains_left.saturating_sub(before - p.held.len());
        let queued = self.queue.len();
        self.queue.retain(|q| !matches!(q.step, Step::LogPage { log: l, .. } if l == log));
        p.chains_left = p.chains_left.saturating_sub(queued - self.queue.len());
    }
}
