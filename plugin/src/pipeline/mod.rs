//! The pipeline as a sans-IO state machine: webhook → token → callRecord + every page → expand →
//! batch → ingestion → the answer for Graph; plus backfill, PSTN log poll and subscription jobs.
//!
//! A host owns the IO. It loops on [`Run::next`]: it starts sending each [`Action::Send`] request
//! and asks again at once, so that many requests are in flight; it feeds each answer back by the
//! request's id with [`Run::respond`] (or [`Run::transport_error`]), in whatever order they come;
//! on [`Action::Wait`] it waits for the next answer or the time given, shows each
//! [`Action::Progress`], and stops at [`Action::Done`]. The service component does this with
//! `wasi:http` and `wasi:io/poll`, the Envoy filter with `dispatch_http_call`, the harness with a
//! thread per request; the rules (how many requests fly at once, retries, `Retry-After`, token
//! refresh, 413 splitting, the deadline, Graph's rate limits, batching, when Graph gets its 2xx)
//! live only here. The clock is an argument (`now`, Unix milliseconds).
//!
//! | file | rules |
//! |---|---|
//! | `pipeline/mod.rs` | [`Run`], [`Job`], [`Action`], [`Report`]; the host's loop; the deadline; the final answer |
//! | `pipeline/step.rs` | the requests still to make, and which file builds, reads and gives up each |
//! | `pipeline/token.rs` | the token cache: which token a step needs, renewal before expiry, a new one after a 401 |
//! | `pipeline/ratelimit.rs` | Graph's limits: 40 requests per 20 s per call record and for List, 1,500 per 20 s per app per tenant; a `Retry-After` holds back a whole service |
//! | `pipeline/retry.rs` | what a failed answer leads to: 401 refresh, 413 split, backoff and `Retry-After` for 429, 5xx, timeouts |
//! | `pipeline/fetch.rs` | a callRecord and its session and participants_v2 pages, merged and expanded into rows |
//! | `pipeline/ship.rs` | rows into batches and ingestion requests (Logs Ingestion, Data Collector, forward) |
//! | `pipeline/webhook.rs` | the webhook job: notifications to fetch, lifecycle events to act on, resyncs |
//! | `pipeline/backfill.rs` | the backfill job: windows, List callRecords pages, progress |
//! | `pipeline/pstn.rs` | the PSTN and Direct Routing poll: 90-day ranges, log pages, rows deduplicated by key |
//! | `pipeline/queue.rs` | queue mode: the webhook edge that only accepts, the workers' drain job, and what a failed call leads to (retry, dead letter) |
//! | `pipeline/subscriptions.rs` | subscription jobs and lifecycle actions: create, renew, reauthorize, list, delete |

mod backfill;
mod fetch;
mod pstn;
pub mod queue;
mod ratelimit;
mod retry;
mod ship;
mod step;
mod storage;
mod subscriptions;
mod token;
mod webhook;

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::config::Config;
use crate::entra::Scope;
use crate::error::{Error, ServiceError};
use crate::graph;
use crate::graph::subscriptions::Subscription;
use crate::http::{IncomingRequest, OutgoingRequest, Response, check_response};
use crate::values::Instant;
pub use backfill::MAX_BACKFILL_DAYS;
use backfill::{Backfill, backfill_windows};
use fetch::Fetch;
pub use pstn::PollReport;
use pstn::{Poll, poll_windows};
pub use ratelimit::GRAPH_RATE_LIMIT;
use step::{Pending, Step};
pub use storage::StorageReport;
use subscriptions::{SubscriptionStep, subscription_urls};
use token::Token;
pub use token::{ReadFile, TOKEN_CACHE_KEY};

/// A backfill's report lists this many of the latest calls done and failed (all are counted).
pub const REPORT_CALLS_KEPT: usize = 1_000;

/// Per-request timeout when a job has no deadline.
const UNBOUNDED_TIMEOUT_MS: u32 = 100_000;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A request to the webhook (notification or lifecycle URL).
    Webhook(IncomingRequest),
    /// Ship every call that started in `[since, until)`, in windows of `window_hours`.
    Backfill {
        /// ISO 8601 start (at most 30 days back).
        since: String,
        /// ISO 8601 end; empty = now.
        until: String,
        /// Window length.
        window_hours: u32,
        /// Calls a previous run of this backfill shipped already (its checkpoint): not fetched again.
        skip: Vec<String>,
    },
    /// Ship every PSTN and Direct Routing log row of calls that started in `[since, until)`,
    /// except those an earlier poll shipped (see `pstn.rs`).
    Pstn {
        /// ISO 8601 start.
        since: String,
        /// ISO 8601 end; empty = now.
        until: String,
        /// Row keys an earlier poll shipped (its checkpoint): not shipped again.
        skip: Vec<String>,
    },
    /// Create the callRecords subscription.
    Subscribe,
    /// Renew this webhook's callRecords subscriptions that expire within the margin.
    Renew {
        /// Minutes.
        margin_minutes: u32,
    },
    /// List the app's subscriptions.
    Subscriptions,
    /// Delete a subscription.
    Unsubscribe(String),
    /// Queue mode's webhook edge: judge the request (and act on lifecycle events) like
    /// [`Job::Webhook`], but only list the accepted notifications ([`Report::accepted`]) for the
    /// host to commit before it answers.
    Accept(IncomingRequest),
    /// Queue mode's worker: fetch and ship these queued calls, with no deadline; the report's
    /// [`Report::outcomes`] say what becomes of each.
    Drain(Vec<queue::QueuedCall>),
    /// Reconciliation: list the calls that started in `[since, until)` without fetching them;
    /// [`Report::listed`] has each one's id and version.
    Sweep {
        /// ISO 8601 start (at most 30 days back).
        since: String,
        /// ISO 8601 end; empty = now.
        until: String,
    },
    /// Keep this webhook's callRecords subscription alive: renew it when it expires within the
    /// margin, create it when there is none (see `subscriptions.rs`).
    Keep {
        /// Minutes.
        margin_minutes: u32,
    },
    /// Queue mode's worker on the Azure Storage queue (`CALLRECORDS_QUEUE_URL`): read up to
    /// `max_calls` messages, each hidden for `lease_seconds` (renewed while they are worked on),
    /// drain them like [`Job::Drain`], and settle each message by its outcome (see `storage.rs`).
    DrainQueue {
        /// Messages to read.
        max_calls: u32,
        /// Visibility timeout of a read message (10 s to 7 days).
        lease_seconds: u32,
    },
    /// The Azure Storage queue's state: both queues' approximate lengths, the first `peek`
    /// dead letters (at most 32), and with `requeue` the dead letters put back on the queue.
    StorageQueue {
        /// Dead letters to show.
        peek: u32,
        /// Put the dead letters back.
        requeue: bool,
    },
}

/// The job for a request to the webhook: queue mode's edge ([`Job::Accept`]) when an Azure
/// Storage queue is configured (it enqueues, then answers), else the inline [`Job::Webhook`].
pub fn webhook_job(config: &Config, request: IncomingRequest) -> Job {
    if config.queue.is_some() { Job::Accept(request) } else { Job::Webhook(request) }
}

/// The next thing the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start sending this request, then call [`Run::next`] again at once; give its answer to
    /// [`Run::respond`] with this id.
    Send {
        /// Names the request in [`Run::respond`] / [`Run::transport_error`]; unique in the run.
        id: u64,
        /// The request.
        request: OutgoingRequest,
        /// Give up on the answer after this long and call [`Run::transport_error`].
        timeout_ms: u32,
    },
    /// Nothing to send now: wait until an answer to a request in flight arrives or this many
    /// milliseconds pass, whichever is first, then call [`Run::next`] again.
    Wait(u32),
    /// Progress of a long job (backfill); save `completed_until` as the checkpoint.
    Progress(Progress),
    /// Finished.
    Done(Box<Report>),
}

/// How far a backfill got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Windows finished.
    pub windows_done: u32,
    /// Windows in all.
    pub windows_total: u32,
    /// Every call that started before this instant has been shipped (the checkpoint).
    pub completed_until: Option<String>,
    /// Calls listed so far.
    pub calls_listed: u32,
    /// Calls fetched and expanded so far.
    pub calls_done: u32,
    /// Rows accepted so far.
    pub rows: u64,
    /// Bytes sent to ingestion so far.
    pub bytes: u64,
    /// Retries so far.
    pub retries: u32,
    /// Calls whose rows were all accepted since the previous progress. With `completed_until`
    /// (the checkpoint), they make a rerun skip them; a progress that moves `completed_until`
    /// starts the list afresh. In a drain, an id queued for several tenants is named once every
    /// one of them was shipped.
    pub shipped: Vec<String>,
}

/// A call that was fetched and expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallDone {
    /// callRecord id.
    pub id: String,
    /// The tenant whose record it is (lowercase): the same id may name a record in another tenant.
    pub tenant_id: String,
    /// callRecord version.
    pub version: i64,
    /// Rows it gave, all tables (without the tables an earlier attempt shipped).
    pub rows: u32,
    /// Every table's rows were accepted.
    pub shipped: bool,
    /// The tables whose rows were accepted (by this run or, for a queued call, an earlier one).
    pub tables_accepted: Vec<String>,
}

/// A call that could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallFailed {
    /// callRecord id.
    pub id: String,
    /// The tenant whose record it is (lowercase): the same id may name a record in another tenant.
    pub tenant_id: String,
    /// Why.
    pub reason: String,
    /// The HTTP status of the answer that decided it; 0 when there was none (no answer, or an
    /// answer that could not be read).
    pub status: u16,
    /// What Graph sent (or the id) is unusable: asking again cannot help.
    pub malformed: bool,
}

/// A resync the operator (or `callrecords serve`) must run: `callrecords backfill --since … --until …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resync {
    /// `missed` or `subscriptionRemoved`.
    pub reason: String,
    /// The subscription concerned.
    pub subscription_id: String,
    /// Window start.
    pub since: String,
    /// Window end.
    pub until: String,
}

/// What a job did. For a webhook job, `response` is the answer for Graph: 2xx only when every row
/// of every notification was accepted and every lifecycle action succeeded, else 503.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The HTTP answer (webhook jobs) or a summary answer (other jobs).
    #[serde(skip)]
    pub response: Response,
    /// True when the job did all it had to.
    pub ok: bool,
    /// Calls fetched and expanded (a backfill keeps the last [`REPORT_CALLS_KEPT`]).
    pub calls: Vec<CallDone>,
    /// How many calls were fetched and expanded, listed in `calls` or not.
    pub calls_done: u32,
    /// Calls not fetched (a backfill keeps the last [`REPORT_CALLS_KEPT`]).
    pub failed: Vec<CallFailed>,
    /// How many calls were not fetched, listed in `failed` or not.
    pub failed_count: u32,
    /// Calls a backfill did not fetch because its checkpoint says they were shipped.
    pub skipped: u32,
    /// Rows accepted by the ingestion endpoint, per table.
    pub rows: BTreeMap<String, u64>,
    /// Rows the ingestion endpoint did not accept.
    pub rows_not_accepted: u64,
    /// Ingestion requests accepted.
    pub ingestion_requests: u32,
    /// Bytes of their bodies.
    pub ingestion_bytes: u64,
    /// Requests sent to login and Graph.
    pub graph_requests: u32,
    /// Of those, token requests to Entra ID.
    pub token_requests: u32,
    /// Most requests that were in flight at once.
    pub max_in_flight: u32,
    /// Requests still in flight when the job ended (at its deadline, or on a fatal error); their
    /// answers are refused.
    pub abandoned: u32,
    /// Attempts repeated after a retryable failure (429, 5xx, timeouts, expired tokens).
    pub retries: u32,
    /// Notification items refused (forged clientState, tenant not allowed, malformed, ...).
    pub rejected: u32,
    /// Duplicate notification items folded.
    pub duplicates: u32,
    /// Lifecycle actions taken, as sentences.
    pub lifecycle: Vec<String>,
    /// A resync is needed.
    pub resync: Option<Resync>,
    /// Subscriptions created, renewed or listed.
    pub subscriptions: Vec<Subscription>,
    /// Why the job is not `ok`.
    pub error: Option<String>,
    /// Queue mode's edge: the notifications to commit to the queue.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<queue::Accepted>,
    /// Queue mode's drain: what becomes of each queued call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<queue::Outcome>,
    /// A sweep: the calls listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listed: Vec<queue::Listed>,
    /// Queue mode on an Azure Storage queue: what was put, read and settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageReport>,
    /// A PSTN log poll: what it read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<PollReport>,
}

impl Report {
    fn new() -> Self {
        Report {
            response: Response::text(200, ""),
            ok: true,
            calls: vec![],
            calls_done: 0,
            failed: vec![],
            failed_count: 0,
            skipped: 0,
            rows: BTreeMap::new(),
            rows_not_accepted: 0,
            ingestion_requests: 0,
            ingestion_bytes: 0,
            graph_requests: 0,
            token_requests: 0,
            max_in_flight: 0,
            abandoned: 0,
            retries: 0,
            rejected: 0,
            duplicates: 0,
            lifecycle: vec![],
            resync: None,
            subscriptions: vec![],
            error: None,
            accepted: vec![],
            outcomes: vec![],
            listed: vec![],
            storage: None,
            logs: None,
        }
    }

    /// Rows accepted, all tables.
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// A callRecord as the driver tracks it: its tenant and its id. One id may name a record in each
/// of several tenants (a cross-tenant call gives each organisation its own callRecord under the
/// same id), each read with that tenant's Graph token and shipped on its own; keyed by the id
/// alone, a second tenant's record would be folded into the first's and never fetched. The tenant
/// is kept in lowercase, as the webhook folds duplicates by (call, tenant) without case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CallKey {
    tenant: String,
    id: String,
}

impl CallKey {
    pub(super) fn new(tenant: &str, id: &str) -> Self {
        CallKey { tenant: tenant.to_ascii_lowercase(), id: id.to_string() }
    }

    /// Whether this is the record of `id` in `tenant`.
    pub(super) fn is(&self, tenant: &str, id: &str) -> bool {
        self.id == id && self.tenant.eq_ignore_ascii_case(tenant)
    }
}

/// One job in progress. See the module docs for the host's loop.
pub struct Run {
    config: Config,
    job_kind: JobKind,
    deadline: Option<u64>,
    queue: VecDeque<Pending>,
    /// Requests sent and not answered yet, by id, with the size of their bodies.
    in_flight: BTreeMap<u64, (Pending, usize)>,
    next_id: u64,
    tokens: HashMap<(Scope, String), Token>,
    /// A token was added or dropped since the run started (or restored its tokens).
    tokens_changed: bool,
    /// Calls being fetched, by tenant and id (see [`CallKey`]).
    fetches: HashMap<CallKey, Fetch>,
    unshipped: BTreeMap<&'static str, Vec<String>>,
    sent: HashMap<String, VecDeque<u64>>,
    /// Until when a service (a Graph tenant, the ingestion endpoint) is held back after a 429.
    holds: HashMap<String, u64>,
    /// Calls whose rows are in `unshipped`, with the tables they have rows in (see `ship.rs`).
    expanded_unshipped: Vec<(CallKey, Vec<&'static str>)>,
    /// Calls whose rows are being shipped.
    shipping: HashMap<CallKey, ship::Shipping>,
    /// Tables of a queued call that an earlier attempt shipped.
    done_tables: HashMap<CallKey, std::collections::BTreeSet<String>>,
    /// Flushes whose batches are not all accepted yet, by number.
    flushes: HashMap<u64, ship::Flush>,
    next_flush: u64,
    /// Ids of the calls shipped since the last progress ([`Progress::shipped`]).
    newly_shipped: Vec<String>,
    /// When the oldest rows left unshipped were expanded.
    unshipped_since: Option<u64>,
    /// Their size.
    unshipped_bytes: usize,
    backfill: Option<Backfill>,
    /// A PSTN log poll.
    poll: Option<Poll>,
    renew_margin_ms: u64,
    /// A webhook job that only lists what it accepts ([`Job::Accept`]).
    accept_only: bool,
    /// A sweep: list, do not fetch.
    sweep_only: bool,
    /// A sweep on the Storage queue looked its calls up in the ledger.
    swept: bool,
    /// A keep job, and whether its list found this webhook's subscription.
    keep: bool,
    keep_found: bool,
    /// A drain job's calls.
    drain: Vec<queue::QueuedCall>,
    /// A drain turn on the Storage queue: the messages it holds.
    storage: Option<storage::StorageDrain>,
    /// What this run did with the Storage queue.
    storage_report: Option<StorageReport>,
    /// The latest `now` a host gave.
    last_now: u64,
    /// The host's file reader, for credential files ([`Run::allow_files`]).
    files: Option<token::ReadFile>,
    /// Randomness for client assertions ([`Run::seed_entropy`]).
    rng: Option<rand_chacha::ChaCha20Rng>,
    /// The certificate credential, once read.
    signing: Option<crate::entra::certificate::SigningCertificate>,
    progress: Option<Progress>,
    report: Report,
    finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    Webhook,
    Backfill,
    /// A PSTN log poll: ships as it goes, like a backfill.
    Poll,
    Drain,
    Other,
}

impl Run {
    /// Start a job at `now` (Unix ms). A job that needs no remote call (a handshake, a refused
    /// request) is finished at once: the first [`Run::next`] returns [`Action::Done`].
    pub fn start(config: Config, job: Job, now: u64) -> crate::Result<Run> {
        let job_kind = match job {
            Job::Webhook(_) | Job::Accept(_) => JobKind::Webhook,
            Job::Backfill { .. } | Job::Sweep { .. } => JobKind::Backfill,
            Job::Drain(_) | Job::DrainQueue { .. } => JobKind::Drain,
            Job::Pstn { .. } => JobKind::Poll,
            _ => JobKind::Other,
        };
        let deadline = (job_kind == JobKind::Webhook).then(|| now + u64::from(config.deadline_ms));
        let mut run = Run {
            config,
            job_kind,
            deadline,
            queue: VecDeque::new(),
            in_flight: BTreeMap::new(),
            next_id: 1,
            tokens: HashMap::new(),
            tokens_changed: false,
            fetches: HashMap::new(),
            unshipped: BTreeMap::new(),
            sent: HashMap::new(),
            holds: HashMap::new(),
            expanded_unshipped: vec![],
            shipping: HashMap::new(),
            done_tables: HashMap::new(),
            flushes: HashMap::new(),
            next_flush: 1,
            newly_shipped: vec![],
            unshipped_since: None,
            unshipped_bytes: 0,
            backfill: None,
            poll: None,
            renew_margin_ms: 0,
            accept_only: false,
            sweep_only: false,
            swept: false,
            keep: false,
            keep_found: false,
            drain: vec![],
            storage: None,
            storage_report: None,
            last_now: now,
            files: None,
            rng: None,
            signing: None,
            progress: None,
            report: Report::new(),
            finished: false,
        };
        let own = run.config.credentials.tenant_id.clone();
        match job {
            Job::Webhook(request) => run.start_webhook(&request, now),
            Job::Accept(request) => {
                run.accept_only = true;
                run.start_webhook(&request, now);
                if run.config.queue.is_some() && !run.finished {
                    run.enqueue_accepted(now);
                }
            }
            Job::Drain(calls) => {
                run.add_drain(calls);
                if run.queue.is_empty() {
                    run.finish(now);
                }
            }
            Job::StorageQueue { peek, requeue } => {
                if run.config.queue.is_none() {
                    return Err(Error::arg("CALLRECORDS_QUEUE_URL is not set: no Storage queue"));
                }
                run.start_storage_info(peek, requeue, now);
            }
            Job::DrainQueue { max_calls, lease_seconds } => {
                if run.config.queue.is_none() {
                    return Err(Error::arg("CALLRECORDS_QUEUE_URL is not set: no Storage queue to work on"));
                }
                run.start_storage_drain(max_calls, lease_seconds, now);
            }
            Job::Backfill { since, until, window_hours, skip } => {
                run.backfill = Some(backfill_windows(&since, &until, window_hours, skip, now)?);
                run.queue.push_back(Pending::new(Step::ListPage { link: None }));
            }
            Job::Pstn { since, until, skip } => {
                let poll = poll_windows(&since, &until, skip, now)?;
                run.start_poll(poll);
            }
            Job::Subscribe => {
                subscription_urls(&run.config)?;
                run.queue.push_back(Pending::new(Step::Subscription(SubscriptionStep::Create { tenant: own })));
            }
            Job::Sweep { since, until } => {
                // One window for the whole span (at most 30 days; List pages through it).
                let hours = (MAX_BACKFILL_DAYS * 24) as u32;
                run.backfill = Some(backfill_windows(&since, &until, hours, vec![], now)?);
                run.sweep_only = true;
                run.queue.push_back(Pending::new(Step::ListPage { link: None }));
            }
            Job::Keep { margin_minutes } => {
                subscription_urls(&run.config)?;
                run.keep = true;
                run.renew_margin_ms = u64::from(margin_minutes.max(1)) * 60_000;
                run.queue.push_back(Pending::new(Step::Subscription(SubscriptionStep::List { link: None })));
            }
            Job::Renew { margin_minutes } => {
                run.renew_margin_ms = u64::from(margin_minutes) * 60_000;
                run.queue.push_back(Pending::new(Step::Subscription(SubscriptionStep::List { link: None })));
            }
            Job::Subscriptions => {
                run.queue.push_back(Pending::new(Step::Subscription(SubscriptionStep::List { link: None })))
            }
            Job::Unsubscribe(id) => {
                if !graph::is_valid_call_id(&id) {
                    return Err(Error::arg("subscription id must be a GUID"));
                }
                run.queue.push_back(Pending::new(Step::Subscription(SubscriptionStep::Delete { id })));
            }
        }
        Ok(run)
    }

    /// The next action, at `now` (Unix ms).
    pub fn next(&mut self, now: u64) -> Action {
        self.last_now = self.last_now.max(now);
        if let Some(mut p) = self.progress.take() {
            p.shipped = std::mem::take(&mut self.newly_shipped);
            return Action::Progress(p);
        }
        loop {
            self.list_ahead();
            self.poll_ahead();
            let renew_wait = self.renew_leases(now);
            if self.finished {
                // A progress the end produced goes first (a poll's last one).
                if let Some(mut p) = self.progress.take() {
                    p.shipped = std::mem::take(&mut self.newly_shipped);
                    return Action::Progress(p);
                }
                return Action::Done(Box::new(self.report.clone()));
            }
            if self.deadline.is_some_and(|d| now >= d) {
                self.fail_deadline();
                continue;
            }
            if self.queue.is_empty() && self.in_flight.is_empty() {
                if let Some(action) = self.advance(now) {
                    return action;
                }
                continue;
            }
            if self.should_flush(now) {
                self.queue_unshipped();
            }
            let mut wait = None;
            if self.in_flight.len() < self.config.max_in_flight as usize {
                match self.pick(now) {
                    Pick::Ready(index) => {
                        let pending = self.queue.remove(index).expect("picked from the queue");
                        match self.dispatch(pending, now) {
                            Some(send) => return send,
                            None => continue,
                        }
                    }
                    Pick::NeedsToken(scope, tenant) => {
                        self.queue.push_front(Pending::new(Step::Token { scope, tenant }));
                        continue;
                    }
                    Pick::Wait(ms) => wait = ms,
                }
            }
            if self.in_flight.is_empty() {
                // Nothing in flight can wake the host: a wait with no end would hang it.
                let Some(wait) = wait else {
                    self.fatal("the pipeline has nothing to send and nothing to wait for (a bug)".into());
                    continue;
                };
                // Nothing can answer before the wait is over: past the deadline, give up now.
                if self.deadline.is_some_and(|d| now + wait >= d) {
                    self.fail_deadline();
                    continue;
                }
            }
            let cap =
                self.deadline.map_or(u64::from(UNBOUNDED_TIMEOUT_MS), |d| d - now).min(renew_wait.unwrap_or(u64::MAX));
            return Action::Wait(wait.unwrap_or(cap).min(cap).min(u64::from(u32::MAX)) as u32);
        }
    }

    /// Send `pending` now: its request, with an id, counted against the rate limits.
    fn dispatch(&mut self, mut pending: Pending, now: u64) -> Option<Action> {
        match self.build(&pending.step, now) {
            Ok(request) => {
                pending.sent_token = self.token_for(&pending.step);
                self.note_sent(&pending.step, now);
                if !matches!(pending.step, Step::Ship { .. } | Step::Storage(_)) {
                    self.report.graph_requests += 1;
                }
                if matches!(pending.step, Step::Token { .. }) {
                    self.report.token_requests += 1;
                }
                let timeout_ms = match self.deadline {
                    Some(d) => (d - now).min(u64::from(u32::MAX)) as u32,
                    None => UNBOUNDED_TIMEOUT_MS,
                };
                let id = self.next_id;
                self.next_id += 1;
                self.in_flight.insert(id, (pending, request.body.len()));
                self.report.max_in_flight = self.report.max_in_flight.max(self.in_flight.len() as u32);
                Some(Action::Send { id, request, timeout_ms })
            }
            Err(e) => {
                self.step_failed(pending.step, e.to_string(), step::Failure::Unusable, now);
                None
            }
        }
    }

    /// The first step in the queue that may go now, else what it waits for.
    fn pick(&mut self, now: u64) -> Pick {
        let mut wait: Option<u64> = None;
        let mut soonest = |w: u64| wait = Some(wait.map_or(w, |x| x.min(w)));
        for index in 0..self.queue.len() {
            let step = &self.queue[index].step;
            let not_before = self.queue[index].not_before;
            if not_before > now {
                soonest(not_before - now);
                continue;
            }
            if let Some((scope, tenant)) = self.stale_token(step, now) {
                if self.token_pending(scope, &tenant) {
                    continue; // its answer wakes the host
                }
                return Pick::NeedsToken(scope, tenant);
            }
            let step = step.clone();
            if let Some(held) = self.held(&step, now) {
                soonest(held);
                continue;
            }
            if let Some(limited) = self.rate_wait(&step, now) {
                soonest(limited);
                continue;
            }
            return Pick::Ready(index);
        }
        Pick::Wait(wait)
    }

    /// The answer to the request sent with `id`.
    pub fn respond(
        &mut self,
        id: u64,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> crate::Result<()> {
        self.last_now = self.last_now.max(now);
        let (pending, sent_bytes) = self.take_in_flight(id)?;
        if let Step::Storage(step) = pending.step {
            let judged = if step.is_table() {
                crate::storage::table::check(status, headers, body)
            } else {
                crate::storage::queue::check(status, headers, body)
            };
            match judged {
                Ok(()) => self.on_storage(step, headers, body, now),
                Err(e) if self.storage_queue_missing(&step, &e, now) => {}
                Err(e) => self.on_error(Pending { step: Step::Storage(step), ..pending }, e, now),
            }
            return Ok(());
        }
        match check_response(status, headers, body, now / 1000) {
            Ok(()) => self.on_success(pending, sent_bytes, body, now),
            Err(Error::Service(e)) => self.on_error(pending, e, now),
            Err(other) => self.step_failed(pending.step, other.to_string(), step::Failure::Unusable, now),
        }
        Ok(())
    }

    /// The request sent with `id` got no answer (connection refused, reset, timeout).
    pub fn transport_error(&mut self, id: u64, reason: &str, now: u64) -> crate::Result<()> {
        self.last_now = self.last_now.max(now);
        let (pending, _) = self.take_in_flight(id)?;
        let e = ServiceError {
            status: 0,
            code: String::new(),
            message: format!("no answer: {reason}"),
            retry_after_seconds: None,
            retryable: true,
        };
        self.on_error(pending, e, now);
        Ok(())
    }

    fn take_in_flight(&mut self, id: u64) -> crate::Result<(Pending, usize)> {
        if self.finished {
            return Err(Error::arg(format!("request {id} was abandoned: the job has ended")));
        }
        self.in_flight.remove(&id).ok_or_else(|| Error::arg(format!("no request with id {id} is in flight")))
    }

    /// Requests in flight right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Nothing queued and nothing in flight: ship what was expanded, move to the next backfill
    /// window, or finish.
    fn advance(&mut self, now: u64) -> Option<Action> {
        if !self.unshipped.is_empty() || !self.expanded_unshipped.is_empty() {
            self.queue_unshipped();
            return None;
        }
        // A sweep lists in one window: once its pages are read, look the calls up in the ledger.
        if self.reconcile_storage() {
            return None;
        }
        if let Some(progress) = self.end_window(now) {
            return Some(progress);
        }
        if self.settle_storage(now) {
            return None;
        }
        self.finish(now);
        None
    }

    fn finish(&mut self, now: u64) {
        self.finished = true;
        if let Some(b) = &self.backfill {
            self.report.skipped = b.skipped;
        }
        if let Some(p) = &self.poll {
            self.report.logs = Some(p.report.clone());
            // The last progress counts every chain (the last ones may have ended without rows).
            self.progress = Some(self.progress_now(None));
        }
        // A Storage turn that settled has its outcomes already.
        if self.job_kind == JobKind::Drain && !self.storage.as_ref().is_some_and(|d| d.settling()) {
            self.finish_drain(now.max(self.last_now));
        }
        self.report.storage = self.storage_report.clone();
        let status = if self.report.ok { if self.job_kind == JobKind::Webhook { 202 } else { 200 } } else { 503 };
        let body = serde_json::to_vec(&self.report).unwrap_or_default();
        let mut response = Response { status, headers: vec![("Content-Type".into(), "application/json".into())], body };
        if status == 503 {
            // Graph redelivers on its own schedule; other clients get a hint.
            response.headers.push(("Retry-After".into(), "10".into()));
        }
        self.report.response = response;
    }

    fn fatal(&mut self, reason: String) {
        self.report.ok = false;
        self.report.error = Some(reason);
        self.queue.clear();
        self.report.abandoned += self.in_flight.len() as u32;
        self.in_flight.clear();
        self.unshipped.clear();
        self.expanded_unshipped.clear();
        self.shipping.clear();
        self.flushes.clear();
        self.fetches.clear();
        self.finish(0);
    }

    fn fail_deadline(&mut self) {
        self.fail_deadline_because("");
    }

    fn fail_deadline_because(&mut self, last: &str) {
        let mut reason = format!(
            "deadline of {} ms reached before every row was accepted; answering 503 so Graph redelivers",
            self.config.deadline_ms
        );
        if !last.is_empty() {
            reason = format!("{reason} (last answer: {last})");
        }
        self.fatal(reason);
    }
}

/// What [`Run::pick`] found.
enum Pick {
    /// This queue entry may be sent now.
    Ready(usize),
    /// It needs this token first, and none is on its way.
    NeedsToken(Scope, String),
    /// Nothing may go yet; the soonest one may after this many ms (`None`: only an answer helps).
    Wait(Option<u64>),
}

fn instant(now_ms: u64) -> Instant {
    Instant { secs: (now_ms / 1000) as i64, ticks: 0 }
}
