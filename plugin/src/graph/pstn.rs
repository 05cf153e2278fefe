//! The PSTN and Direct Routing call logs: Graph's `getPstnCalls` and `getDirectRoutingCalls`
//! functions on `/communications/callRecords`. They send no change notifications, so they are
//! polled (see `pipeline/pstn.rs`).
//!
//! Microsoft's rules, from the function and throttling pages:
//! - `fromDateTime` / `toDateTime` are UTC, on the call's start, "cannot be more than a date
//!   range of 90 days" (getPstnCalls; applied to both, as the Direct Routing page is silent);
//! - `toDateTime` is inclusive for getPstnCalls and exclusive for getDirectRoutingCalls, so
//!   adjacent windows can return a row twice: rows are deduplicated by id;
//! - more than 1,000 entries in the range bring an `@odata.nextLink`, followed as given;
//! - 200 requests per 60 s per app per tenant and 50 per collection (PSTN call records limits),
//!   429 with `Retry-After`.

use crate::error::{Error, Result};
use crate::http::OutgoingRequest;
use crate::schema::{DIRECT_ROUTING_CALL, PSTN_CALL, Table};

/// Longest range one request may ask for.
pub const MAX_WINDOW_DAYS: u64 = 90;
/// Graph's throttle for these logs: 200 requests per 60 s per app per tenant.
pub const PSTN_RATE_LIMIT: (usize, u64) = (200, 60_000);
/// Graph's throttle per collection (each function): 50 requests per 60 s.
pub const PSTN_COLLECTION_RATE_LIMIT: (usize, u64) = (50, 60_000);
/// Entries per page Graph sends before an `@odata.nextLink`.
pub const PAGE_SIZE: usize = 1_000;

/// One of the two logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PstnLog {
    /// Calling Plans and Operator Connect calls (`getPstnCalls`, `pstnCallLogRow`).
    Pstn,
    /// Direct Routing calls (`getDirectRoutingCalls`, `directRoutingLogRow`).
    DirectRouting,
}

impl PstnLog {
    /// Both logs, in the order a poll reads them.
    pub const ALL: [PstnLog; 2] = [PstnLog::Pstn, PstnLog::DirectRouting];

    /// The Graph function.
    pub fn function(self) -> &'static str {
        match self {
            PstnLog::Pstn => "getPstnCalls",
            PstnLog::DirectRouting => "getDirectRoutingCalls",
        }
    }

    /// Short name, the first part of a row's key: `pstn` or `directRouting`.
    pub fn name(self) -> &'static str {
        match self {
            PstnLog::Pstn => "pstn",
            PstnLog::DirectRouting => "directRouting",
        }
    }

    /// The table its rows go to.
    pub fn table(self) -> &'static Table {
        match self {
            PstnLog::Pstn => &PSTN_CALL,
            PstnLog::DirectRouting => &DIRECT_ROUTING_CALL,
        }
    }

    /// The log a name (`pstn`, `directRouting`, case-insensitive) names.
    pub fn parse(name: &str) -> Option<PstnLog> {
        PstnLog::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// `GET .../communications/callRecords/{function}(fromDateTime=…,toDateTime=…)` for calls that
/// started in the range (ISO 8601; at most [`MAX_WINDOW_DAYS`] apart).
pub fn log_request(graph_base_url: &str, log: PstnLog, from: &str, to: &str, token: &str) -> Result<OutgoingRequest> {
    let base = super::graph_base(graph_base_url)?;
    let s = crate::values::parse_timestamp(from).ok_or_else(|| Error::arg("from is not an ISO 8601 timestamp"))?;
    let e = crate::values::parse_timestamp(to).ok_or_else(|| Error::arg("to is not an ISO 8601 timestamp"))?;
    if e <= s {
        return Err(Error::arg("to must be after from"));
    }
    if (e.secs - s.secs) as u64 > MAX_WINDOW_DAYS * 86_400 {
        return Err(Error::arg(format!("{}: a range may span at most {MAX_WINDOW_DAYS} days", log.function())));
    }
    // Whole seconds: the OData DateTimeOffset literal, unquoted, as in Microsoft's examples.
    let second = |t: crate::values::Instant| crate::values::format_timestamp(crate::values::Instant { ticks: 0, ..t });
    super::get(
        format!(
            "{base}/communications/callRecords/{}(fromDateTime={},toDateTime={})",
            log.function(),
            second(s),
            second(e)
        ),
        token,
    )
}
