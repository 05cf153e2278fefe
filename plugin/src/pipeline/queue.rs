//! Queue mode: persist first, acknowledge after, process at the pipeline's own pace.
//!
//! - [`Job::Accept`](super::Job::Accept) is the webhook edge: the request is judged as the webhook
//!   job judges it (handshake, clientState, tenant; lifecycle events acted on), but the accepted
//!   notifications are only listed (`accepted`), for the host to commit to its queue before it
//!   answers Graph with the report's 202 (or [`commit_failed`] when the commit failed).
//! - [`Job::Drain`](super::Job::Drain) is a worker's turn: queued calls fetched and shipped with
//!   no deadline; the report's `outcomes` say what the queue does with each: forget it (shipped),
//!   try it again later (with the tables already accepted, so they are not sent twice), or move it
//!   to the dead letters with the reason.
//!
//! - [`Job::Sweep`](super::Job::Sweep) is reconciliation: List callRecords over a trailing window
//!   (List filters by start time; [`SWEEP_HOURS`] cover Graph's 150-minute delay) and report each
//!   `(id, version)` ([`Listed`]) for the host to queue what its shipped ledger lacks: the
//!   notifications that never arrived.
//!
//! Which failures are permanent, how long to wait before the next attempt, and when to give up
//! are decided here ([`outcome`]), so every host's queue keeps the same rules.

use serde::{Deserialize, Serialize};

use super::{CallDone, CallFailed, CallKey, Run};
use crate::http::Response;

/// Graph may publish a callRecord up to 150 minutes after the call ended: a 404 before then
/// means "not yet".
pub const RECORD_DELAY_MS: u64 = 150 * 60_000;
/// A call that has failed this many attempts goes to the dead letters.
pub const MAX_ATTEMPTS: u32 = 12;
/// A call claimed (a Storage message read) this many times without an outcome (the worker that
/// held it died, or its turn trapped, each time) goes to the dead letters.
pub const MAX_UNSETTLED_CLAIMS: u32 = 16;

/// Why a call claimed `times` times without an outcome is given up.
pub fn unsettled_reason(times: u32) -> String {
    format!("taken {times} times and never settled: each worker that took it died or trapped")
}

/// The first retry waits this long; each next one twice as long, up to [`MAX_RETRY_WAIT_MS`].
pub const FIRST_RETRY_WAIT_MS: u64 = 30_000;
/// The longest wait between two attempts.
pub const MAX_RETRY_WAIT_MS: u64 = 3_600_000;

/// A notification the webhook edge accepted, for the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// callRecord id.
    pub call_id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// `created`, `updated`, ...
    pub change_type: String,
}

/// A callRecord a reconciliation sweep listed: the host queues it unless its ledger shipped this
/// version (or, without a version, any version) of it, or it is queued already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// callRecord id.
    pub call_id: String,
    /// The tenant it was listed in (the app's own).
    pub tenant_id: String,
    /// Its version, when the List page gave it.
    pub version: Option<i64>,
}

/// How far back a sweep looks: Graph may publish a record up to 150 minutes after its call ended,
/// and calls last; six hours covers both, and an hourly sweep sees each call several times.
pub const SWEEP_HOURS: u32 = 6;

/// A call as a queue holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedCall {
    /// callRecord id.
    pub call_id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// When the notification was accepted (Unix ms).
    pub received_ms: u64,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Tables an earlier attempt shipped.
    pub done_tables: Vec<String>,
}

/// What the queue does with a call after an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Every table accepted: take it off the queue, and note `(call_id, version)` as shipped.
    Shipped {
        /// callRecord id.
        call_id: String,
        /// The tenant.
        tenant_id: String,
        /// The version that was shipped.
        version: i64,
        /// Rows this attempt shipped.
        rows: u32,
    },
    /// Try again at `not_before_ms`, not sending `done_tables` again.
    Retry {
        /// callRecord id.
        call_id: String,
        /// The tenant.
        tenant_id: String,
        /// Attempts made so far, this one included.
        attempts: u32,
        /// Not before this (Unix ms).
        not_before_ms: u64,
        /// Tables accepted so far.
        done_tables: Vec<String>,
        /// Why this attempt did not ship it.
        reason: String,
    },
    /// Give up: a dead letter, with the reason (`callrecords dead-letters --requeue` puts it back).
    Dead {
        /// callRecord id.
        call_id: String,
        /// The tenant.
        tenant_id: String,
        /// Attempts made, this one included.
        attempts: u32,
        /// Why.
        reason: String,
    },
}

/// The answer for Graph when the accepted notifications could not be committed: 503, so that
/// Graph delivers them again.
pub fn commit_failed(reason: &str) -> Response {
    let mut r = Response::text(503, format!("the notifications could not be queued: {reason}"));
    r.headers.push(("Retry-After".into(), "10".into()));
    r
}

/// The wait before attempt number `attempts + 1`.
pub fn retry_wait_ms(attempts: u32) -> u64 {
    (FIRST_RETRY_WAIT_MS << attempts.saturating_sub(1).min(16)).min(MAX_RETRY_WAIT_MS)
}

/// What this attempt at `call` leads to, given what the run did with it (`done`: expanded, and
/// shipped or not; `failed`: not fetched; neither: the run ended first, with `run_error`).
pub fn outcome(
    call: &QueuedCall,
    done: Option<&CallDone>,
    failed: Option<&CallFailed>,
    run_error: Option<&str>,
    now: u64,
) -> Outcome {
    let attempts = call.attempts + 1;
    let (call_id, tenant_id) = (call.call_id.clone(), call.tenant_id.clone());
    if let Some(d) = done.filter(|d| d.shipped) {
        return Outcome::Shipped { call_id, tenant_id, version: d.version, rows: d.rows };
    }
    let mut done_tables = call.done_tables.clone();
    if let Some(d) = done {
        for t in &d.tables_accepted {
            if !done_tables.contains(t) {
                done_tables.push(t.clone());
            }
        }
    }
    let reason = match (done, failed) {
        (Some(_), _) => format!("rows not accepted: {}", run_error.unwrap_or("an ingestion request failed")),
        (None, Some(f)) => {
            let permanent = match f.status {
                403 => Some(format!(
                    "403 Forbidden: the app may not read this callRecord (CallRecords.Read.All, admin consent in tenant {tenant_id}): {}",
                    f.reason
                )),
                404 if now >= call.received_ms + RECORD_DELAY_MS => Some(format!(
                    "404 Not Found {} minutes after the notification (Graph publishes a record within 150): {}",
                    (now - call.received_ms) / 60_000,
                    f.reason
                )),
                _ if f.malformed => Some(format!("malformed: {}", f.reason)),
                _ => None,
            };
            if let Some(reason) = permanent {
                return Outcome::Dead { call_id, tenant_id, attempts, reason };
            }
            f.reason.clone()
        }
        (None, None) => run_error.unwrap_or("the run ended before this call was done").to_string(),
    };
    if attempts >= MAX_ATTEMPTS {
        let reason = format!("{attempts} attempts failed; the last: {reason}");
        return Outcome::Dead { call_id, tenant_id, attempts, reason };
    }
    Outcome::Retry { call_id, tenant_id, attempts, not_before_ms: now + retry_wait_ms(attempts), done_tables, reason }
}

impl Run {
    /// A drain job's calls, queued to fetch. A call is its tenant's record of its id: the same id
    /// queued for two tenants is fetched for each (see [`CallKey`]).
    pub(super) fn add_drain(&mut self, calls: Vec<QueuedCall>) {
        for c in &calls {
            if !crate::graph::is_valid_call_id(&c.call_id) {
                continue; // its outcome says malformed (see `finish_drain`)
            }
            let key = CallKey::new(&c.tenant_id, &c.call_id);
            if self.fetches.contains_key(&key) {
                continue; // the same call twice in one turn: fetched once
            }
            self.done_tables.insert(key, c.done_tables.iter().cloned().collect());
            self.queue_call(c.call_id.clone(), c.tenant_id.clone());
        }
        self.drain.extend(calls);
    }

    /// Each queued call's outcome, into the report.
    pub(super) fn finish_drain(&mut self, now: u64) {
        let error = self.report.error.clone();
        let mut outcomes = vec![];
        for c in &self.drain {
            let key = CallKey::new(&c.tenant_id, &c.call_id);
            let done = self.report.calls.iter().rev().find(|d| key.is(&d.tenant_id, &d.id));
            let failed = self.report.failed.iter().rev().find(|f| key.is(&f.tenant_id, &f.id));
            let o = if crate::graph::is_valid_call_id(&c.call_id) {
                outcome(c, done, failed, error.as_deref(), now)
            } else {
                Outcome::Dead {
                    call_id: c.call_id.clone(),
                    tenant_id: c.tenant_id.clone(),
                    attempts: c.attempts + 1,
                    reason: "malformed: not a callRecord id (letters, digits, '-', '_')".into(),
                }
            };
            outcomes.push(o);
        }
        self.report.outcomes = outcomes;
    }

    /// Every queued call of the drain with this id (one per tenant) is shipped. A progress names
    /// only ids ([`super::Progress::shipped`]): a host that takes the calls it names off its queue
    /// must not take off another tenant's call of the same id that is still to ship.
    pub(super) fn drained_id_shipped(&self, id: &str) -> bool {
        let shipped = |c: &QueuedCall| {
            let key = CallKey::new(&c.tenant_id, &c.call_id);
            self.report.calls.iter().rev().find(|d| key.is(&d.tenant_id, &d.id)).is_some_and(|d| d.shipped)
        };
        self.drain.iter().filter(|c| c.call_id == id).all(shipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(attempts: u32) -> QueuedCall {
        QueuedCall { call_id: "c".into(), tenant_id: "t".into(), received_ms: 0, attempts, done_tables: vec![] }
    }

    #[test]
    fn waits_double_from_30_s_up_to_an_hour_and_the_twelfth_failure_is_dead() {
        assert_eq!([1, 2, 3, 4].map(retry_wait_ms), [30_000, 60_000, 120_000, 240_000]);
        assert_eq!(retry_wait_ms(8), 3_600_000);
        assert_eq!(retry_wait_ms(40), 3_600_000);
        let failed =
            CallFailed { id: "c".into(), tenant_id: "t".into(), reason: "503".into(), status: 503, malformed: false };
        assert!(matches!(outcome(&call(10), None, Some(&failed), None, 5), Outcome::Retry { attempts: 11, .. }));
        match outcome(&call(11), None, Some(&failed), None, 5) {
            Outcome::Dead { attempts: 12, reason, .. } => assert!(reason.starts_with("12 attempts failed"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // A run that ended (a token refused) before the call was tried: retried with that reason.
        match outcome(&call(0), None, None, Some("Graph token: 401"), 5) {
            Outcome::Retry { reason, not_before_ms: 30_005, .. } => assert_eq!(reason, "Graph token: 401"),
            other => panic!("{other:?}"),
        }
    }
}
