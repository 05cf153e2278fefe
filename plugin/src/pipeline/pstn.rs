//! The PSTN and Direct Routing poll: every row of both logs whose call started in
//! `[since, until)`, read in ranges of at most 90 days (`graph/pstn.rs`), each page's rows expanded
//! at once and shipped. These logs send no change notifications, so a host polls them on a
//! schedule over windows that overlap (`callrecords serve`: every hour, the last 48 hours), and
//! rows are deduplicated by key (`expand/pstn.rs`): the keys an earlier run shipped come in as
//! `skip`, and each progress names the keys shipped since the last one, so the host's checkpoint
//! grows row by row. A row seen twice in one run (adjacent ranges share their edge: getPstnCalls'
//! `toDateTime` is inclusive) is shipped once.
//!
//! Each (range, log) pair is a chain of pages. At most [`PAGES_AHEAD`] pages are asked for at once,
//! and none while [`FLUSHES_AHEAD`] flushes are being shipped, so memory holds a bounded number of
//! pages whatever the span; a chain's next page goes before the next chain's first. A page Graph
//! keeps refusing ends its chain; a 401 or 403 (the app may not read the log) ends every chain of
//! that log; either makes the job not `ok`, and the rest goes on. A next link this poll has
//! followed already ends the chain (Graph's own examples link a page to itself), and a chain that
//! goes past [`MAX_PAGES_PER_CHAIN`] pages fails instead of running for ever.

use std::collections::{BTreeMap, HashSet, VecDeque};

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

/// No page is asked for while this many flushes are being shipped.
pub const FLUSHES_AHEAD: usize = 4;
/// Pages asked for at once, at most.
pub const PAGES_AHEAD: usize = 4;
/// Pages of one (range, log) chain: 10 million rows of one log in 90 days at Graph's 1,000 per
/// page, far past any tenant (and 200 minutes at 50 requests a minute). A chain of new next links
/// that goes on (a bug, a hostile answer) fails there instead of holding the poll for ever.
pub const MAX_PAGES_PER_CHAIN: u32 = 10_000;

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
    /// Chains (range, log) that could not be read to their end, with why.
    pub failed: Vec<String>,
    /// Chains ended because a next link named a page already read.
    pub looped: u32,
}

/// A poll in progress.
pub(super) struct Poll {
    windows: Vec<(Instant, Instant)>,
    /// Keys shipped by earlier runs.
    skip: HashSet<String>,
    /// Keys seen in this run.
    seen: HashSet<String>,
    /// Pages not asked for yet: (log, window, next link; `None` for a chain's first page).
    held: VecDeque<(PstnLog, usize, Option<String>)>,
    /// Next links followed in this run.
    visited: HashSet<String>,
    /// Pages read per chain (log, window).
    chain_pages: BTreeMap<(PstnLog, usize), u32>,
    /// Logs the app may not read (401, 403): none of their pages is asked for.
    denied: HashSet<PstnLog>,
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
    let held = (0..windows.len()).flat_map(|w| PstnLog::ALL.map(|log| (log, w, None))).collect();
    Ok(Poll {
        windows,
        skip: skip.into_iter().collect(),
        seen: HashSet::new(),
        held,
        visited: HashSet::new(),
        chain_pages: BTreeMap::new(),
        denied: HashSet::new(),
        chains_left,
        report,
    })
}

impl Run {
    /// Start a poll: its first pages are asked for by [`Run::poll_ahead`].
    pub(super) fn start_poll(&mut self, poll: Poll) {
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
            Err(e) => return self.log_failed(log, window, e.to_string(), 0),
        };
        let own = self.config.credentials.tenant_id.clone();
        let table = log.table().name;
        let Some(p) = self.poll.as_mut() else { return };
        p.report.pages += 1;
        let read = p.chain_pages.entry((log, window)).or_default();
        *read += 1;
        let too_long = *read >= MAX_PAGES_PER_CHAIN;
        let mut cut = false;
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
            // A log the app may not read asks for nothing more.
            Some(_) if p.denied.contains(&log) => p.chains_left = p.chains_left.saturating_sub(1),
            // A link back to a page already read would be asked for forever.
            Some(next) if link.as_deref() == Some(next.as_str()) || !p.visited.insert(next.clone()) => {
                p.report.looped += 1;
                p.chains_left = p.chains_left.saturating_sub(1);
            }
            // The chain goes on before any other chain starts, unless it went on too long.
            Some(next) if !too_long => p.held.push_front((log, window, Some(next))),
            Some(_) => cut = true,
            None => p.chains_left = p.chains_left.saturating_sub(1),
        }
        if !rows.is_empty() {
            self.keep_unshipped(table, rows, now);
            for key in keys {
                self.expanded(&CallKey::new(&own, &key), vec![table]);
            }
        }
        if cut {
            let why = format!("Graph's @odata.nextLink chain goes past {MAX_PAGES_PER_CHAIN} pages");
            self.log_failed(log, window, why, 0);
        }
    }

    /// Ask for held pages while fewer than [`PAGES_AHEAD`] are asked for and shipping keeps up.
    pub(super) fn poll_ahead(&mut self) {
        if self.poll.as_ref().is_none_or(|p| p.held.is_empty()) || self.flushes.len() >= FLUSHES_AHEAD {
            return;
        }
        let is_page = |p: &Pending| matches!(p.step, Step::LogPage { .. });
        let mut pages = self.queue.iter().filter(|p| is_page(p)).count()
            + self.in_flight.values().filter(|(p, _)| is_page(p)).count();
        let Some(p) = self.poll.as_mut() else { return };
        while pages < PAGES_AHEAD
            && let Some((log, window, link)) = p.held.pop_front()
        {
            if p.denied.contains(&log) {
                p.chains_left = p.chains_left.saturating_sub(1);
                continue;
            }
            self.queue.push_back(Pending::new(Step::LogPage { log, window, link }));
            pages += 1;
        }
    }

    /// A page of chain (`log`, `window`) will not be read: the chain ends; a 401 or 403 ends
    /// every chain of the log (the app may not read it), anything else only this one.
    pub(super) fn log_failed(&mut self, log: PstnLog, window: usize, reason: String, status: u16) {
        let denied = matches!(status, 401 | 403);
        let hint = if denied {
            " (the app needs the Graph application permission CallRecords.Read.All with admin consent; \
             older Microsoft pages name CallRecord-PstnCalls.Read.All: grant that too, see \
             examples/sentinel/README.md)"
        } else {
            ""
        };
        let Some(p) = self.poll.as_mut() else { return };
        let (s, e) = p.windows[window];
        let line = format!("{} ({} .. {}): {reason}{hint}", log.function(), format_timestamp(s), format_timestamp(e));
        p.chains_left = p.chains_left.saturating_sub(1);
        p.report.failed.push(line.clone());
        if denied && p.denied.insert(log) {
            // Its chains still held or queued end here; those in flight end when they answer.
            let before = p.held.len();
            p.held.retain(|(l, _, _)| *l != log);
            let queued = self.queue.len();
            self.queue.retain(|q| !matches!(q.step, Step::LogPage { log: l, .. } if l == log));
            p.chains_left = p.chains_left.saturating_sub(before - p.held.len() + queued - self.queue.len());
        }
        self.report.ok = false;
        self.report.error.get_or_insert(line);
    }
}
