//! What a failed answer leads to. A 401 gets a new token once (`token.rs`); a 413 splits the batch
//! (`ship.rs`); a retryable failure (408, 429, 5xx, no answer: see [`crate::http::check_response`];
//! and IMDS's 404 / 410 while it updates)
//! is repeated after the service's `Retry-After` (which holds back the whole service:
//! `ratelimit.rs`), or else a backoff doubling from
//! `CALLRECORDS_RETRY_BASE_MS`, at most a minute and never past a webhook's deadline; anything else,
//! or too many attempts, gives the step up.

use super::Run;
use super::step::{Failure, Pending, Step};
use crate::error::{Error, ServiceError};

/// Attempts per request within a webhook's budget (retryable failures only).
const MAX_ATTEMPTS: u32 = 6;
/// Attempts per request in a job without a deadline (backfill, subscriptions).
const MAX_ATTEMPTS_UNBOUNDED: u32 = 10;
/// Longest wait between attempts.
pub(super) const MAX_BACKOFF_MS: u64 = 60_000;

impl Run {
    /// The service refused the request of `pending` (status 0: it gave no answer).
    pub(super) fn on_error(&mut self, mut pending: Pending, e: ServiceError, now: u64) {
        let message = Error::Service(e.clone()).to_string();
        // An expired or revoked token: get a new one once, then repeat the request.
        if e.status == 401 && self.drop_rejected_token(&mut pending) {
            self.report.retries += 1;
            self.queue.push_front(pending);
            return;
        }
        // Too large for the endpoint: split the batch and send the halves.
        if e.status == 413
            && let Step::Ship { table, rows, flush, .. } = &pending.step
            && rows.len() > 1
        {
            let (table, rows, flush) = (*table, rows.clone(), *flush);
            self.report.retries += 1;
            self.ship_halves(table, &rows, flush);
            return;
        }
        let limit = if self.deadline.is_some() { MAX_ATTEMPTS } else { MAX_ATTEMPTS_UNBOUNDED };
        let retryable = e.retryable
            || matches!(
                (&pending.step, &self.config.credentials.credential),
                (Step::Token { .. }, crate::entra::Credential::ManagedIdentity(m)) if m.retryable(e.status)
            );
        if retryable && pending.attempt + 1 < limit {
            let backoff = u64::from(self.config.retry_base_ms) << pending.attempt.min(16);
            let wait = e.retry_after_seconds.map_or(backoff, |s| u64::from(s) * 1000).min(MAX_BACKOFF_MS);
            if self.deadline.is_some_and(|d| now + wait >= d) {
                self.fail_deadline_because(&message);
                return;
            }
            if e.retry_after_seconds.is_some() {
                // The service said how long it wants: nothing else goes to it before then either.
                self.hold(&pending.step, now + wait);
            }
            pending.attempt += 1;
            pending.not_before = now + wait;
            self.report.retries += 1;
            self.queue.push_front(pending);
            return;
        }
        let why = if e.status == 0 { Failure::NoAnswer } else { Failure::Status(e.status) };
        self.step_failed(pending.step, message, why, now);
    }
}
