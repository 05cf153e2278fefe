//! What is still to be sent. Each [`Step`] is one request, built only when it is its turn (so it
//! carries a current token); here each step's request, answer and failure go to the file of its
//! family.

use super::Run;
use super::fetch::CallStep;
use super::storage::StorageStep;
use super::subscriptions::SubscriptionStep;
use crate::entra::Scope;
use crate::graph::pstn::PstnLog;
use crate::http::OutgoingRequest;

/// One request to make.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// An Entra token (`token.rs`).
    Token { scope: Scope, tenant: String },
    /// A callRecord or one of its pages (`fetch.rs`).
    Call(CallStep),
    /// A page of List callRecords (`backfill.rs`).
    ListPage { link: Option<String> },
    /// A page of the PSTN or Direct Routing log, of the poll's range `window` (`pstn.rs`).
    LogPage { log: PstnLog, window: usize, link: Option<String> },
    /// A batch of rows for the sink (`ship.rs`), of the flush `flush` (which calls it holds rows of).
    Ship { table: &'static str, rows: Vec<String>, body: Vec<u8>, flush: u64 },
    /// A subscription request (`subscriptions.rs`).
    Subscription(SubscriptionStep),
    /// A request to the Azure Storage queue (`storage.rs`).
    Storage(StorageStep),
}

/// Why a step gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The service answered with this HTTP status (after the retries it allows).
    Status(u16),
    /// No answer came (refused, reset, timed out), after the retries.
    NoAnswer,
    /// The request could not be built, or the answer could not be used: asking again cannot help.
    Unusable,
}

impl Failure {
    /// The HTTP status, 0 for none.
    pub(super) fn status(self) -> u16 {
        match self {
            Failure::Status(s) => s,
            _ => 0,
        }
    }
}

/// A step in the queue, with its attempts so far.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) step: Step,
    pub(super) attempt: u32,
    pub(super) refreshed: bool,
    pub(super) not_before: u64,
    /// The token its last request carried (so a late 401 drops that token, not a newer one).
    pub(super) sent_token: Option<String>,
}

impl Pending {
    pub(super) fn new(step: Step) -> Self {
        Pending { step, attempt: 0, refreshed: false, not_before: 0, sent_token: None }
    }
}

impl Run {
    /// The request of `step`, at `now`.
    pub(super) fn build(&mut self, step: &Step, now: u64) -> crate::Result<OutgoingRequest> {
        match step {
            Step::Token { scope, tenant } => self.token_request(*scope, tenant, now),
            Step::Call(call) => self.call_request(call),
            Step::ListPage { link } => self.list_page_request(link.as_deref()),
            Step::LogPage { log, window, link } => self.log_page_request(*log, *window, link.as_deref()),
            Step::Ship { table, body, .. } => self.ship_request(table, body, now),
            Step::Subscription(s) => self.subscription_request(s, now),
            Step::Storage(s) => self.storage_request(s, now),
        }
    }

    /// A 2xx answer to `pending`, whose request body was `sent_bytes` long.
    pub(super) fn on_success(&mut self, pending: Pending, sent_bytes: usize, body: &[u8], now: u64) {
        match pending.step {
            Step::Token { scope, tenant } => self.on_token(scope, tenant, body, now),
            Step::Call(call) => self.on_call_page(call, body, now),
            Step::ListPage { .. } => self.on_list_page(body),
            Step::LogPage { log, window, link } => self.on_log_page(log, window, link, body, now),
            Step::Ship { table, rows, flush, .. } => self.on_shipped(table, rows.len(), sent_bytes, flush),
            Step::Subscription(s) => self.on_subscription(s, body, now),
            Step::Storage(s) => self.on_storage(s, &[], body, now),
        }
    }

    /// `step` will not succeed (`why`, described by `reason`): what that means for the job.
    pub(super) fn step_failed(&mut self, step: Step, reason: String, why: Failure, now: u64) {
        match step {
            Step::Token { scope, .. } => {
                self.token_failed(scope, reason, matches!(why, Failure::Status(400..=499) | Failure::Unusable))
            }
            Step::Call(call) => self.call_step_failed(call, reason, why, now),
            Step::ListPage { .. } => self.fatal(format!("List callRecords: {reason}")),
            Step::LogPage { log, window, .. } => self.log_failed(log, window, reason, why.status()),
            Step::Ship { table, rows, flush, .. } => {
                self.ship_failed(rows.len(), format!("{table}: {reason}"));
                self.batch_settled(flush, table, false);
            }
            Step::Subscription(s) => self.subscription_failed(s, reason),
            Step::Storage(s) => self.storage_failed(s, reason, why),
        }
    }
}
