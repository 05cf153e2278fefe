//! Queue mode on an Azure Storage queue ([`crate::storage::queue`]), which any number of replicas
//! share: the edge that enqueues and the worker's turn that dequeues, drains and settles.
//!
//! - **The edge** ([`Job::Accept`](super::Job::Accept) with `CALLRECORDS_QUEUE_URL` set): each
//!   accepted notification is put as a message; Graph gets its 202 only when every put was
//!   answered 201, else 503 ([`super::queue::commit_failed`]) so that Graph delivers again. A
//!   missing queue is created once.
//! - **A worker's turn** ([`Job::DrainQueue`](super::Job::DrainQueue)): Get Messages (32 a
//!   request) hides each message for the lease; the calls are drained exactly as the SQLite
//!   queue's are, while every message's lease is renewed at half its length (Update Message with
//!   no text). Then each is settled by its [`Outcome`]: shipped → Delete; retry → Update with the
//!   new attempt count and accepted tables, hidden until the retry is due; dead → Put into
//!   `{queue}-poison` with the reason, then Delete.
//! - **A message read more than [`MAX_UNSETTLED_CLAIMS`] times** (its worker died or trapped every time,
//!   so it was never settled), or one that is not this service's, goes to the poison queue as it is.
//! - A message whose lease another reader took over (its renewal or settle answered 404 or 400)
//!   is left to that reader.
//! - **The shipped ledger** (`CALLRECORDS_LEDGER_URL`, a table in the same account): each shipped
//!   `(call, version)` is recorded there as its message is deleted, and a
//!   [`Job::Sweep`](super::Job::Sweep) looks each listed call up in it and puts a message for
//!   every one no replica shipped: reconciliation across replicas.

use serde::Serialize;

use super::queue::{MAX_UNSETTLED_CLAIMS, Outcome, QueuedCall, unsettled_reason};
use super::step::{Failure, Pending, Step};
use super::{Run, queue};
use crate::error::ServiceError;
use crate::http::{OutgoingRequest, header};
use crate::storage::queue::{
    self as sq, MAX_MESSAGES_PER_GET, MAX_VISIBILITY_SECONDS, Message, PoisonMessage, QueueTarget,
};
use crate::storage::table as sq_table;

/// One request to the Storage queue.
#[derive(Debug, Clone)]
pub(super) enum StorageStep {
    /// Create the queue (`poison`: the poison queue), then make `then`.
    Create { poison: bool, then: Box<StorageStep> },
    /// Put a message: an accepted notification, or (`poison`) a dead letter; after a dead letter,
    /// delete the held message `then_delete`.
    Put { text: String, poison: bool, then_delete: Option<usize> },
    /// Get up to `count` messages.
    Get { count: u32 },
    /// Renew the lease of held message `index`.
    Renew { index: usize },
    /// A retry: new text, hidden for `visibility_seconds`.
    Update { index: usize, text: String, visibility_seconds: u64 },
    /// Shipped (or moved to the poison queue): delete it.
    Delete { index: usize },
    /// Record a shipped `(call, version)` in the ledger.
    Record { call_id: String, tenant_id: String, version: i64 },
    /// Create the ledger's table, then make `then`.
    CreateTable { then: Box<StorageStep> },
    /// A sweep: look listed call `index` up in the ledger; queue it when no replica shipped it.
    Seen { index: usize },
    /// The approximate length of the queue (`poison`: of the poison queue).
    Depth { poison: bool },
    /// Peek at the first `count` dead letters.
    PeekPoison { count: u32 },
    /// Take up to `count` dead letters to put back on the queue.
    GetPoison { count: u32 },
    /// A dead letter back on the queue: put it (attempts anew), then delete held message `index`
    /// from the poison queue.
    Requeue { index: usize, text: String },
    /// Delete held message `index` from the poison queue.
    DeletePoison { index: usize },
}

impl StorageStep {
    /// Sent to the Table service (its answers are JSON, not XML).
    pub(super) fn is_table(&self) -> bool {
        matches!(self, StorageStep::Record { .. } | StorageStep::CreateTable { .. } | StorageStep::Seen { .. })
    }
}

/// What a worker's turn did with the Storage queue (in the report).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageReport {
    /// Messages put (an edge: accepted notifications queued).
    pub enqueued: u32,
    /// Messages read.
    pub dequeued: u32,
    /// Messages deleted (calls shipped, or moved to the poison queue).
    pub deleted: u32,
    /// Messages updated for a retry.
    pub updated: u32,
    /// Messages moved to the poison queue.
    pub poisoned: u32,
    /// Leases renewed.
    pub renewed: u32,
    /// Messages another reader took over (a lease that lapsed): left to it.
    pub lost: u32,
    /// Shipped calls recorded in the ledger.
    pub recorded: u32,
    /// A sweep: listed calls the ledger says were shipped already.
    pub shipped_before: u32,
    /// The queue's approximate length, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// The poison queue's approximate length, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_depth: Option<u64>,
    /// Dead letters peeked at.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<PoisonMessage>,
    /// Dead letters put back on the queue.
    pub requeued: u32,
}

/// A held message.
struct Held {
    message: Message,
    /// Settled or lost: renew it no more.
    done: bool,
}

/// A worker's turn on the Storage queue.
pub(super) struct StorageDrain {
    lease_ms: u64,
    held: Vec<Held>,
    /// For each entry of the run's `drain`, the held message it came from.
    of_call: Vec<usize>,
    next_renew_ms: u64,
    settling: bool,
}

impl StorageDrain {
    pub(super) fn new(lease_seconds: u32, now: u64) -> Self {
        let lease_ms = u64::from(lease_seconds.clamp(10, MAX_VISIBILITY_SECONDS as u32)) * 1000;
        StorageDrain { lease_ms, held: vec![], of_call: vec![], next_renew_ms: now + lease_ms / 2, settling: false }
    }

    /// The turn is settling its messages (its outcomes are in the report).
    pub(super) fn settling(&self) -> bool {
        self.settling
    }
}

fn storage_date(now: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(now))
}

impl Run {
    fn storage_target(&self, poison: bool) -> crate::Result<QueueTarget> {
        let q = self.config.queue.as_ref().ok_or_else(|| crate::Error::arg("CALLRECORDS_QUEUE_URL is not set"))?;
        Ok(if poison { q.poison() } else { q.clone() })
    }

    /// The request of a storage step.
    pub(super) fn storage_request(&self, step: &StorageStep, now: u64) -> crate::Result<OutgoingRequest> {
        let date = storage_date(now);
        let own = &self.config.credentials.tenant_id;
        let token = Some(self.cached_token(crate::entra::Scope::Storage, own)).filter(|t| !t.is_empty());
        let held = |i: &usize| {
            let d = self.storage.as_ref().ok_or_else(|| crate::Error::arg("no storage turn"))?;
            d.held.get(*i).map(|h| &h.message).ok_or_else(|| crate::Error::arg("no such message"))
        };
        let q = self.storage_target(false)?;
        let ledger =
            || self.config.ledger.as_ref().ok_or_else(|| crate::Error::arg("CALLRECORDS_LEDGER_URL is not set"));
        match step {
            StorageStep::Record { call_id, tenant_id, version } => {
                ledger()?.insert_request(call_id, *version, tenant_id, now, &date, token)
            }
            StorageStep::CreateTable { .. } => ledger()?.create_request(&date, token),
            StorageStep::Seen { index } => {
                let l = self.report.listed.get(*index).ok_or_else(|| crate::Error::arg("no such listed call"))?;
                ledger()?.query_request(&l.call_id, l.version, &date, token)
            }
            StorageStep::Create { poison, .. } => self.storage_target(*poison)?.create_request(&date, token),
            StorageStep::Put { text, poison, .. } => self.storage_target(*poison)?.put_request(text, &date, token),
            StorageStep::Get { count } => {
                let lease = self.storage.as_ref().map_or(60, |d| d.lease_ms / 1000);
                q.get_request(*count, lease, &date, token)
            }
            StorageStep::Renew { index } => {
                let lease = self.storage.as_ref().map_or(60, |d| d.lease_ms / 1000);
                q.update_request(held(index)?, lease, None, &date, token)
            }
            StorageStep::Update { index, text, visibility_seconds } => {
                q.update_request(held(index)?, *visibility_seconds, Some(text), &date, token)
            }
            StorageStep::Delete { index } => q.delete_request(held(index)?, &date, token),
            StorageStep::Depth { poison } => self.storage_target(*poison)?.metadata_request(&date, token),
            StorageStep::PeekPoison { count } => q.poison().peek_request(*count, &date, token),
            StorageStep::GetPoison { count } => q.poison().get_request(*count, 300, &date, token),
            StorageStep::Requeue { text, .. } => q.put_request(text, &date, token),
            StorageStep::DeletePoison { index } => q.poison().delete_request(held(index)?, &date, token),
        }
    }

    /// Queue mode's edge on a Storage queue: a message for each accepted notification.
    pub(super) fn enqueue_accepted(&mut self, now: u64) {
        self.storage_report.get_or_insert_with(StorageReport::default);
        for a in &self.report.accepted {
            let call = QueuedCall {
                call_id: a.call_id.clone(),
                tenant_id: a.tenant_id.clone(),
                received_ms: now,
                attempts: 0,
                done_tables: vec![],
            };
            let put = StorageStep::Put { text: sq::encode_call(&call), poison: false, then_delete: None };
            self.queue.push_back(Pending::new(Step::Storage(put)));
        }
    }

    /// A worker's turn: read up to `max_calls` messages.
    pub(super) fn start_storage_drain(&mut self, max_calls: u32, lease_seconds: u32, now: u64) {
        self.storage = Some(StorageDrain::new(lease_seconds, now));
        self.storage_report = Some(StorageReport::default());
        let mut left = max_calls.max(1);
        while left > 0 {
            let count = left.min(MAX_MESSAGES_PER_GET);
            self.queue.push_back(Pending::new(Step::Storage(StorageStep::Get { count })));
            left -= count;
        }
    }

    fn storage_counts(&mut self) -> &mut StorageReport {
        self.storage_report.get_or_insert_with(StorageReport::default)
    }

    /// A 2xx answer to a storage step.
    pub(super) fn on_storage(&mut self, step: StorageStep, headers: &[(String, String)], body: &[u8], now: u64) {
        match step {
            StorageStep::Create { then, .. } => self.queue.push_front(Pending::new(Step::Storage(*then))),
            StorageStep::Put { poison: false, .. } => self.storage_counts().enqueued += 1,
            StorageStep::Put { poison: true, then_delete, .. } => {
                self.storage_counts().poisoned += 1;
                if let Some(index) = then_delete {
                    self.queue.push_front(Pending::new(Step::Storage(StorageStep::Delete { index })));
                }
            }
            StorageStep::Get { .. } => match sq::parse_messages(body) {
                Ok(messages) => self.hold_messages(messages, now),
                Err(e) => self.fatal(format!("storage queue: {e}")),
            },
            StorageStep::Renew { index } | StorageStep::Update { index, .. } => {
                let renewed = matches!(step, StorageStep::Renew { .. });
                if let Some(h) = self.storage.as_mut().and_then(|d| d.held.get_mut(index)) {
                    if let Some(p) = header(headers, "x-ms-popreceipt") {
                        h.message.pop_receipt = p.to_string();
                    }
                    h.done |= !renewed;
                }
                if renewed {
                    self.storage_counts().renewed += 1;
                } else {
                    self.storage_counts().updated += 1;
                }
            }
            StorageStep::Delete { index } => {
                if let Some(h) = self.storage.as_mut().and_then(|d| d.held.get_mut(index)) {
                    h.done = true;
                }
                self.storage_counts().deleted += 1;
            }
            StorageStep::Record { .. } => self.storage_counts().recorded += 1,
            StorageStep::Depth { poison } => {
                let n = header(headers, "x-ms-approximate-messages-count").and_then(|v| v.trim().parse().ok());
                let counts = self.storage_counts();
                if poison { counts.dead_depth = n } else { counts.depth = n }
            }
            StorageStep::PeekPoison { .. } => match sq::parse_messages(body) {
                Ok(messages) => {
                    let letters = messages.iter().map(|m| {
                        sq::decode_poison(&m.text).unwrap_or_else(|e| PoisonMessage {
                            call: None,
                            text: Some(m.text.clone()),
                            reason: format!("unreadable: {e}"),
                            dead_ms: 0,
                        })
                    });
                    let letters: Vec<PoisonMessage> = letters.collect();
                    self.storage_counts().dead_letters = letters;
                }
                Err(e) => self.fatal(format!("poison queue: {e}")),
            },
            StorageStep::GetPoison { .. } => match sq::parse_messages(body) {
                Ok(messages) => self.requeue_poison(messages, now),
                Err(e) => self.fatal(format!("poison queue: {e}")),
            },
            StorageStep::Requeue { index, .. } => {
                self.storage_counts().requeued += 1;
                self.queue.push_front(Pending::new(Step::Storage(StorageStep::DeletePoison { index })));
            }
            StorageStep::DeletePoison { index } => {
                if let Some(h) = self.storage.as_mut().and_then(|d| d.held.get_mut(index)) {
                    h.done = true;
                }
            }
            StorageStep::CreateTable { then } => self.queue.push_front(Pending::new(Step::Storage(*then))),
            StorageStep::Seen { index } => {
                if sq_table::found(body) {
                    self.storage_counts().shipped_before += 1;
                } else {
                    self.queue_listed(index, now);
                }
            }
        }
    }

    /// Dead letters taken from the poison queue: each call back on the queue with its attempts
    /// anew (what `callrecords dead-letters --requeue` does); one that holds no call stays.
    fn requeue_poison(&mut self, messages: Vec<Message>, now: u64) {
        let Some(d) = self.storage.as_mut() else { return };
        let mut steps = vec![];
        for message in messages {
            let index = d.held.len();
            if let Ok(PoisonMessage { call: Some(call), .. }) = sq::decode_poison(&message.text) {
                let call = QueuedCall { received_ms: now, attempts: 0, done_tables: vec![], ..call };
                steps.push(StorageStep::Requeue { index, text: sq::encode_call(&call) });
            }
            d.held.push(Held { message, done: false });
        }
        for s in steps {
            self.queue.push_back(Pending::new(Step::Storage(s)));
        }
    }

    /// The Storage queue's lengths, its first `peek` dead letters, or (`requeue`) every dead
    /// letter put back on the queue (up to 32 a request, at most 10 requests a run).
    pub(super) fn start_storage_info(&mut self, peek: u32, requeue: bool, now: u64) {
        self.storage = Some(StorageDrain::new(300, now));
        self.storage_report = Some(StorageReport::default());
        if let Some(d) = self.storage.as_mut() {
            d.settling = true; // nothing to renew or settle
        }
        for poison in [false, true] {
            self.queue.push_back(Pending::new(Step::Storage(StorageStep::Depth { poison })));
        }
        if peek > 0 {
            self.queue.push_back(Pending::new(Step::Storage(StorageStep::PeekPoison { count: peek })));
        }
        if requeue {
            for _ in 0..10 {
                let get = StorageStep::GetPoison { count: MAX_MESSAGES_PER_GET };
                self.queue.push_back(Pending::new(Step::Storage(get)));
            }
        }
    }

    /// A sweep's listed call that no replica shipped: a message for it.
    fn queue_listed(&mut self, index: usize, now: u64) {
        let Some(l) = self.report.listed.get(index) else { return };
        let call = QueuedCall {
            call_id: l.call_id.clone(),
            tenant_id: l.tenant_id.clone(),
            received_ms: now,
            attempts: 0,
            done_tables: vec![],
        };
        let put = StorageStep::Put { text: sq::encode_call(&call), poison: false, then_delete: None };
        self.queue.push_back(Pending::new(Step::Storage(put)));
    }

    /// A sweep on the Storage queue with a ledger: once everything is listed, look each call up.
    /// False when there is nothing (left) to look up.
    pub(super) fn reconcile_storage(&mut self) -> bool {
        if !self.sweep_only || self.config.ledger.is_none() || self.config.queue.is_none() || self.swept {
            return false;
        }
        self.swept = true;
        self.storage_report.get_or_insert_with(StorageReport::default);
        for index in 0..self.report.listed.len() {
            self.queue.push_back(Pending::new(Step::Storage(StorageStep::Seen { index })));
        }
        !self.report.listed.is_empty()
    }

    /// Messages read: poison the unreadable and the too-often-read, drain the rest.
    fn hold_messages(&mut self, messages: Vec<Message>, now: u64) {
        let Some(d) = self.storage.as_mut() else { return };
        let mut calls = vec![];
        let mut poison = vec![];
        for message in messages {
            let index = d.held.len();
            let decoded = sq::decode_call(&message.text);
            let dequeues = message.dequeue_count;
            let text = message.text.clone();
            d.held.push(Held { message, done: false });
            match decoded {
                Ok(call) if dequeues > MAX_UNSETTLED_CLAIMS => {
                    let reason = unsettled_reason(dequeues - 1);
                    poison.push((index, PoisonMessage { call: Some(call), text: None, reason, dead_ms: now }));
                }
                Ok(call) => {
                    d.of_call.push(index);
                    calls.push(call);
                }
                Err(e) => {
                    let reason = format!("not a message this service wrote: {e}");
                    poison.push((index, PoisonMessage { call: None, text: Some(text), reason, dead_ms: now }));
                }
            }
        }
        self.storage_counts().dequeued += (calls.len() + poison.len()) as u32;
        for (index, p) in poison {
            let put = StorageStep::Put { text: sq::encode_poison(&p), poison: true, then_delete: Some(index) };
            self.queue.push_back(Pending::new(Step::Storage(put)));
        }
        self.add_drain(calls);
    }

    /// A storage step that will not succeed.
    pub(super) fn storage_failed(&mut self, step: StorageStep, reason: String, why: Failure) {
        match step {
            // Not recorded: a later sweep may queue it again (a duplicate, never a loss).
            StorageStep::Record { .. } | StorageStep::CreateTable { .. } => {
                self.report.ok = false;
                self.report.error.get_or_insert(format!("ledger: {reason}"));
            }
            StorageStep::Seen { .. } => self.fatal(format!("ledger: {reason}")),
            StorageStep::Depth { .. } | StorageStep::PeekPoison { .. } | StorageStep::GetPoison { .. } => {
                self.fatal(format!("storage queue: {reason}"))
            }
            // Not put back (it stays a dead letter), or put back and not deleted (it is put back
            // again next time: a duplicate, never a loss).
            StorageStep::Requeue { .. } | StorageStep::DeletePoison { .. } => {
                self.report.ok = false;
                self.report.error.get_or_insert(format!("requeue: {reason}"));
            }
            StorageStep::Create { .. } | StorageStep::Get { .. } => self.fatal(format!("storage queue: {reason}")),
            StorageStep::Put { poison: false, .. } => {
                self.fatal(format!("storage queue: {reason}"));
                self.report.response = queue::commit_failed(&reason);
            }
            StorageStep::Put { poison: true, .. } => {
                // Not deleted either: it comes back after its lease and is poisoned again.
                self.report.ok = false;
                self.report.error.get_or_insert(format!("poison queue: {reason}"));
            }
            StorageStep::Renew { index } | StorageStep::Update { index, .. } | StorageStep::Delete { index } => {
                if let Some(h) = self.storage.as_mut().and_then(|d| d.held.get_mut(index)) {
                    h.done = true;
                }
                // 404 / 400: the lease lapsed and another reader has it now.
                if matches!(why, Failure::Status(404 | 400)) {
                    self.storage_counts().lost += 1;
                } else {
                    self.report.ok = false;
                    self.report.error.get_or_insert(format!("storage queue: {reason}"));
                }
            }
        }
    }

    /// A missing queue (404 `QueueNotFound`) for a put or a get: create it, then try again.
    pub(super) fn storage_queue_missing(&mut self, step: &StorageStep, e: &ServiceError, now: u64) -> bool {
        match (step, e.status, e.code.as_str()) {
            // No table yet: nothing was shipped; a record creates it.
            (StorageStep::Seen { index }, 404, "TableNotFound" | "ResourceNotFound") => {
                self.queue_listed(*index, now);
                return true;
            }
            (StorageStep::Record { .. }, 404, "TableNotFound") => {
                let then = Box::new(step.clone());
                self.queue.push_front(Pending::new(Step::Storage(StorageStep::CreateTable { then })));
                return true;
            }
            // A queue that does not exist (yet) holds nothing.
            (StorageStep::Depth { poison }, 404, "QueueNotFound") => {
                let counts = self.storage_counts();
                if *poison {
                    counts.dead_depth = Some(0)
                } else {
                    counts.depth = Some(0)
                }
                return true;
            }
            (StorageStep::PeekPoison { .. } | StorageStep::GetPoison { .. }, 404, "QueueNotFound") => return true,
            // Created meanwhile by another replica.
            (StorageStep::CreateTable { then }, 409, "TableAlreadyExists") => {
                self.queue.push_front(Pending::new(Step::Storage((**then).clone())));
                return true;
            }
            _ => {}
        }
        if e.status != 404 || e.code != "QueueNotFound" {
            return false;
        }
        let poison = match step {
            StorageStep::Put { poison, .. } => *poison,
            StorageStep::Get { .. } => false,
            _ => return false,
        };
        let then = Box::new(step.clone());
        self.queue.push_front(Pending::new(Step::Storage(StorageStep::Create { poison, then })));
        true
    }

    /// While a turn works: renew every held message's lease at half its length. The wait until
    /// the next renewal, if one is due later.
    pub(super) fn renew_leases(&mut self, now: u64) -> Option<u64> {
        let d = self.storage.as_mut().filter(|d| !d.settling && !d.held.is_empty())?;
        if now < d.next_renew_ms {
            return Some(d.next_renew_ms - now);
        }
        d.next_renew_ms = now + d.lease_ms / 2;
        let due: Vec<usize> = (0..d.held.len()).filter(|i| !d.held[*i].done).collect();
        for index in due {
            self.queue.push_front(Pending::new(Step::Storage(StorageStep::Renew { index })));
        }
        None
    }

    /// The turn's work is done: settle each message by its call's outcome. False when there was
    /// nothing (left) to settle.
    pub(super) fn settle_storage(&mut self, now: u64) -> bool {
        match self.storage.as_mut() {
            Some(d) if !d.settling => d.settling = true,
            _ => return false,
        }
        self.finish_drain(now);
        let Some(d) = self.storage.as_ref() else { return false };
        let mut steps = vec![];
        for (i, o) in self.report.outcomes.iter().enumerate() {
            let Some(&index) = d.of_call.get(i) else { continue };
            if d.held[index].done {
                continue;
            }
            let step = match o {
                Outcome::Shipped { call_id, tenant_id, version, .. } => {
                    if self.config.ledger.is_some() {
                        let (call_id, tenant_id, version) = (call_id.clone(), tenant_id.clone(), *version);
                        steps.push(StorageStep::Record { call_id, tenant_id, version });
                    }
                    StorageStep::Delete { index }
                }
                Outcome::Retry { attempts, not_before_ms, done_tables, .. } => {
                    let call = &self.drain[i];
                    let next = QueuedCall { attempts: *attempts, done_tables: done_tables.clone(), ..call.clone() };
                    let visibility_seconds = not_before_ms.saturating_sub(now).div_ceil(1000).max(1);
                    StorageStep::Update { index, text: sq::encode_call(&next), visibility_seconds }
                }
                Outcome::Dead { attempts, reason, .. } => {
                    let call = QueuedCall { attempts: *attempts, ..self.drain[i].clone() };
                    let p = PoisonMessage { call: Some(call), text: None, reason: reason.clone(), dead_ms: now };
                    StorageStep::Put { text: sq::encode_poison(&p), poison: true, then_delete: Some(index) }
                }
            };
            steps.push(step);
        }
        let any = !steps.is_empty();
        for s in steps {
            self.queue.push_back(Pending::new(Step::Storage(s)));
        }
        any
    }
}
