//! The pipeline as a sans-IO state machine: webhook → token → callRecord + every page → expand →
//! batch → ingestion → the answer for Graph; plus backfill and subscription jobs.
//!
//! A host owns the IO. It loops on [`Run::next`]: it sends each [`Action::Send`] request and feeds
//! the answer back with [`Run::respond`] (or [`Run::transport_error`]), waits out each
//! [`Action::Sleep`], shows each [`Action::Progress`], and stops at [`Action::Done`]. The service
//! component does this with `wasi:http`, the Envoy filter with `dispatch_http_call`, the harness
//! with its own HTTP client; the rules (retries, `Retry-After`, token refresh, 413 splitting, the
//! deadline, rate limits, when Graph gets its 2xx) live only here. The clock is an argument
//! (`now`, Unix milliseconds).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::config::{Config, SinkConfig};
use crate::entra::{self, Credentials, Scope};
use crate::error::{Error, ServiceError};
use crate::graph;
use crate::graph::subscriptions::{self, NewSubscription, Subscription};
use crate::graph::webhook::{self, LifecycleKind, RequestKind};
use crate::http::{IncomingRequest, OutgoingRequest, Response, check_response};
use crate::values::{Instant, format_timestamp, parse_timestamp};
use crate::{expand, monitor, schema};

/// Graph's throttle for callRecords: 40 requests per 20 s per call record, and for List.
pub const GRAPH_RATE_LIMIT: (usize, u64) = (40, 20_000);
/// Graph keeps callRecords for 30 days.
pub const MAX_BACKFILL_DAYS: u64 = 30;
/// Attempts per request within a webhook's budget (retryable failures only).
const MAX_ATTEMPTS: u32 = 6;
/// Attempts per request in a job without a deadline (backfill, subscriptions).
const MAX_ATTEMPTS_UNBOUNDED: u32 = 10;
/// Longest wait between attempts.
const MAX_BACKOFF_MS: u64 = 60_000;
/// Per-request timeout when a job has no deadline.
const UNBOUNDED_TIMEOUT_MS: u32 = 100_000;
/// A token is renewed this long before it expires.
const TOKEN_MARGIN_MS: u64 = 60_000;

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
}

/// The next thing the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this request and give the answer to [`Run::respond`].
    Send {
        /// The request.
        request: OutgoingRequest,
        /// Give up on the answer after this long and call [`Run::transport_error`].
        timeout_ms: u32,
    },
    /// Wait this many milliseconds, then call [`Run::next`] again.
    Sleep(u32),
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
}

/// A call that was fetched and expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallDone {
    /// callRecord id.
    pub id: String,
    /// callRecord version.
    pub version: i64,
    /// Rows it gave, all tables.
    pub rows: u32,
}

/// A call that could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallFailed {
    /// callRecord id.
    pub id: String,
    /// Why.
    pub reason: String,
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
    /// Calls fetched and expanded.
    pub calls: Vec<CallDone>,
    /// Calls not fetched.
    pub failed: Vec<CallFailed>,
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
}

impl Report {
    fn new() -> Self {
        Report {
            response: Response::text(200, ""),
            ok: true,
            calls: vec![],
            failed: vec![],
            rows: BTreeMap::new(),
            rows_not_accepted: 0,
            ingestion_requests: 0,
            ingestion_bytes: 0,
            graph_requests: 0,
            retries: 0,
            rejected: 0,
            duplicates: 0,
            lifecycle: vec![],
            resync: None,
            subscriptions: vec![],
            error: None,
        }
    }

    /// Rows accepted, all tables.
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// One request to make, built when it is its turn (so it carries a current token).
#[derive(Debug, Clone)]
enum Step {
    Token { scope: Scope, tenant: String },
    Record { id: String, tenant: String },
    SessionPage { id: String, tenant: String, link: String },
    Participants { id: String, tenant: String, link: Option<String> },
    ListPage { link: Option<String> },
    Ship { table: &'static str, rows: Vec<String>, body: Vec<u8> },
    Reauthorize { id: String, tenant: String },
    RenewOne { id: String, tenant: String },
    Create { tenant: String },
    ListSubscriptions { link: Option<String> },
    Delete { id: String },
}

impl Step {
    /// The token a step needs: (scope, tenant).
    fn token(&self, own_tenant: &str, sink: &SinkConfig) -> Option<(Scope, String)> {
        let own = || own_tenant.to_string();
        match self {
            Step::Token { .. } => None,
            Step::Record { tenant, .. }
            | Step::SessionPage { tenant, .. }
            | Step::Participants { tenant, .. }
            | Step::Reauthorize { tenant, .. }
            | Step::RenewOne { tenant, .. }
            | Step::Create { tenant } => Some((Scope::Graph, tenant.clone())),
            Step::ListPage { .. } | Step::ListSubscriptions { .. } | Step::Delete { .. } => Some((Scope::Graph, own())),
            Step::Ship { .. } => matches!(sink, SinkConfig::LogsIngestion { .. }).then(|| (Scope::Monitor, own())),
        }
    }

    /// The resource a rate limit counts the step against.
    fn rate_key(&self) -> Option<String> {
        match self {
            Step::Record { id, .. } | Step::SessionPage { id, .. } | Step::Participants { id, .. } => {
                Some(format!("callRecords/{id}"))
            }
            Step::ListPage { .. } => Some("callRecords".into()),
            _ => None,
        }
    }

    fn call_id(&self) -> Option<&str> {
        match self {
            Step::Record { id, .. } | Step::SessionPage { id, .. } | Step::Participants { id, .. } => Some(id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    step: Step,
    attempt: u32,
    refreshed: bool,
    not_before: u64,
}

impl Pending {
    fn new(step: Step) -> Self {
        Pending { step, attempt: 0, refreshed: false, not_before: 0 }
    }
}

#[derive(Default)]
struct Fetch {
    record: String,
    sessions: Vec<String>,
    participants: Vec<String>,
}

struct Token {
    value: String,
    expires_at: u64,
}

struct Backfill {
    windows: Vec<(Instant, Instant)>,
    current: usize,
    listed: HashSet<String>,
}

/// One job in progress. See the module docs for the host's loop.
pub struct Run {
    config: Config,
    job_kind: JobKind,
    deadline: Option<u64>,
    queue: VecDeque<Pending>,
    in_flight: Option<(Pending, usize)>,
    tokens: HashMap<(Scope, String), Token>,
    fetches: HashMap<String, Fetch>,
    unshipped: BTreeMap<&'static str, Vec<String>>,
    sent: HashMap<String, VecDeque<u64>>,
    backfill: Option<Backfill>,
    renew_margin_ms: u64,
    progress: Option<Progress>,
    report: Report,
    finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    Webhook,
    Backfill,
    Other,
}

impl Run {
    /// Start a job at `now` (Unix ms). A job that needs no remote call (a handshake, a refused
    /// request) is finished at once: the first [`Run::next`] returns [`Action::Done`].
    pub fn start(config: Config, job: Job, now: u64) -> crate::Result<Run> {
        let job_kind = match job {
            Job::Webhook(_) => JobKind::Webhook,
            Job::Backfill { .. } => JobKind::Backfill,
            _ => JobKind::Other,
        };
        let deadline = (job_kind == JobKind::Webhook).then(|| now + u64::from(config.deadline_ms));
        let mut run = Run {
            config,
            job_kind,
            deadline,
            queue: VecDeque::new(),
            in_flight: None,
            tokens: HashMap::new(),
            fetches: HashMap::new(),
            unshipped: BTreeMap::new(),
            sent: HashMap::new(),
            backfill: None,
            renew_margin_ms: 0,
            progress: None,
            report: Report::new(),
            finished: false,
        };
        let own = run.config.credentials.tenant_id.clone();
        match job {
            Job::Webhook(request) => run.start_webhook(&request, now),
            Job::Backfill { since, until, window_hours } => {
                run.backfill = Some(backfill_windows(&since, &until, window_hours, now)?);
                run.queue.push_back(Pending::new(Step::ListPage { link: None }));
            }
            Job::Subscribe => {
                subscription_urls(&run.config)?;
                run.queue.push_back(Pending::new(Step::Create { tenant: own }));
            }
            Job::Renew { margin_minutes } => {
                run.renew_margin_ms = u64::from(margin_minutes) * 60_000;
                run.queue.push_back(Pending::new(Step::ListSubscriptions { link: None }));
            }
            Job::Subscriptions => run.queue.push_back(Pending::new(Step::ListSubscriptions { link: None })),
            Job::Unsubscribe(id) => {
                if !graph::is_valid_call_id(&id) {
                    return Err(Error::arg("subscription id must be a GUID"));
                }
                run.queue.push_back(Pending::new(Step::Delete { id }));
            }
        }
        Ok(run)
    }

    fn start_webhook(&mut self, request: &IncomingRequest, now: u64) {
        let outcome = webhook::handle(&self.config.webhook, request);
        self.report.rejected = outcome.rejected.len() as u32;
        self.report.duplicates = outcome.duplicates;
        if outcome.kind != RequestKind::Delivery {
            self.report.ok = outcome.response.status < 400;
            if !self.report.ok {
                self.report.error = Some(String::from_utf8_lossy(&outcome.response.body).into_owned());
            }
            self.report.response = outcome.response;
            self.finished = true;
            return;
        }
        let mut seen = HashSet::new();
        for n in outcome.notifications {
            if seen.insert(n.call_id.clone()) {
                self.queue.push_back(Pending::new(Step::Record { id: n.call_id, tenant: n.tenant_id }));
            }
        }
        for l in outcome.lifecycle {
            let (id, tenant) = (l.subscription_id, l.tenant_id);
            match l.kind {
                LifecycleKind::ReauthorizationRequired => {
                    self.queue.push_back(Pending::new(Step::Reauthorize { id: id.clone(), tenant: tenant.clone() }));
                    self.queue.push_back(Pending::new(Step::RenewOne { id, tenant }));
                }
                LifecycleKind::SubscriptionRemoved => {
                    self.set_resync("subscriptionRemoved", &id, now);
                    self.queue.push_back(Pending::new(Step::Create { tenant }));
                }
                LifecycleKind::Missed => {
                    self.set_resync("missed", &id, now);
                    self.report.lifecycle.push(format!("missed notifications on subscription {id}: resync needed"));
                }
                LifecycleKind::Unknown => {
                    self.report.lifecycle.push(format!("ignored unknown lifecycle event {:?} on {id}", l.event));
                }
            }
        }
    }

    fn set_resync(&mut self, reason: &str, subscription_id: &str, now: u64) {
        let until = instant(now);
        let since = Instant { secs: until.secs - i64::from(self.config.resync_hours) * 3600, ticks: 0 };
        let since = match &self.report.resync {
            Some(r) => parse_timestamp(&r.since).map_or(since, |s| s.min(since)),
            None => since,
        };
        self.report.resync = Some(Resync {
            reason: reason.into(),
            subscription_id: subscription_id.into(),
            since: format_timestamp(since),
            until: format_timestamp(until),
        });
    }

    /// The next action, at `now` (Unix ms).
    pub fn next(&mut self, now: u64) -> Action {
        if let Some(p) = self.progress.take() {
            return Action::Progress(p);
        }
        loop {
            if self.finished {
                return Action::Done(Box::new(self.report.clone()));
            }
            if self.in_flight.is_some() {
                // The host asked again without answering: treat the request as lost.
                self.transport_error("the host did not deliver an answer", now);
                continue;
            }
            let Some(pending) = self.queue.front() else {
                if let Some(action) = self.advance(now) {
                    return action;
                }
                continue;
            };
            if let Some(d) = self.deadline
                && (now >= d || pending.not_before >= d)
            {
                self.fail_deadline();
                continue;
            }
            if pending.not_before > now {
                return Action::Sleep((pending.not_before - now).min(u64::from(u32::MAX)) as u32);
            }
            // A current token first.
            if let Some(key) = pending.step.token(&self.config.credentials.tenant_id, &self.config.sink)
                && self.tokens.get(&key).is_none_or(|t| t.expires_at <= now)
            {
                let (scope, tenant) = key;
                self.queue.push_front(Pending::new(Step::Token { scope, tenant }));
                continue;
            }
            if let Some(key) = pending.step.rate_key()
                && let Some(wait) = self.rate_wait(&key, now)
            {
                if self.deadline.is_some_and(|d| now + wait >= d) {
                    self.fail_deadline();
                    continue;
                }
                return Action::Sleep(wait as u32);
            }
            let pending = self.queue.pop_front().expect("front exists");
            match self.build(&pending.step, now) {
                Ok(request) => {
                    if let Some(key) = pending.step.rate_key() {
                        self.sent.entry(key).or_default().push_back(now);
                    }
                    if !matches!(pending.step, Step::Ship { .. }) {
                        self.report.graph_requests += 1;
                    }
                    let timeout_ms = match self.deadline {
                        Some(d) => (d - now).min(u64::from(u32::MAX)) as u32,
                        None => UNBOUNDED_TIMEOUT_MS,
                    };
                    self.in_flight = Some((pending, request.body.len()));
                    return Action::Send { request, timeout_ms };
                }
                Err(e) => self.step_failed(pending.step, e.to_string()),
            }
        }
    }

    /// The answer to the request of the last [`Action::Send`].
    pub fn respond(&mut self, status: u16, headers: &[(String, String)], body: &[u8], now: u64) {
        let Some((pending, sent_bytes)) = self.in_flight.take() else { return };
        match check_response(status, headers, body, now / 1000) {
            Ok(()) => self.on_success(pending, sent_bytes, body, now),
            Err(Error::Service(e)) => self.on_error(pending, e, now),
            Err(other) => self.step_failed(pending.step, other.to_string()),
        }
    }

    /// The request of the last [`Action::Send`] got no answer (connection refused, reset, timeout).
    pub fn transport_error(&mut self, reason: &str, now: u64) {
        let Some((pending, _)) = self.in_flight.take() else { return };
        let e = ServiceError {
            status: 0,
            code: String::new(),
            message: format!("no answer: {reason}"),
            retry_after_seconds: None,
            retryable: true,
        };
        self.on_error(pending, e, now);
    }

    fn build(&self, step: &Step, now: u64) -> crate::Result<OutgoingRequest> {
        let c = &self.config;
        let g = c.graph_url.as_str();
        let token = |tenant: &str, scope| {
            self.tokens.get(&(scope, tenant.to_string())).map(|t| t.value.as_str()).unwrap_or_default()
        };
        let own = c.credentials.tenant_id.as_str();
        match step {
            Step::Token { scope, tenant } => {
                let creds = Credentials { tenant_id: tenant.clone(), ..c.credentials.clone() };
                entra::token_request(&creds, *scope)
            }
            Step::Record { id, tenant } => graph::call_record_request(g, id, token(tenant, Scope::Graph)),
            Step::SessionPage { tenant, link, .. } => graph::next_page_request(g, link, token(tenant, Scope::Graph)),
            Step::Participants { id, tenant, link } => match link {
                None => graph::participants_request(g, id, token(tenant, Scope::Graph)),
                Some(l) => graph::next_page_request(g, l, token(tenant, Scope::Graph)),
            },
            Step::ListPage { link } => match link {
                Some(l) => graph::next_page_request(g, l, token(own, Scope::Graph)),
                None => {
                    let b = self.backfill.as_ref().expect("list pages belong to a backfill");
                    let (s, e) = b.windows[b.current];
                    graph::list_call_records_request(
                        g,
                        &format_timestamp(s),
                        &format_timestamp(e),
                        token(own, Scope::Graph),
                    )
                }
            },
            Step::Ship { table, body, .. } => self.ship_request(table, body, now),
            Step::Reauthorize { id, tenant } => subscriptions::reauthorize_request(g, id, token(tenant, Scope::Graph)),
            Step::RenewOne { id, tenant } => {
                subscriptions::renew_request(g, id, &expiration(now), token(tenant, Scope::Graph))
            }
            Step::Create { tenant } => {
                let (notification_url, lifecycle_url) = subscription_urls(c)?;
                let new = NewSubscription {
                    notification_url,
                    lifecycle_url: Some(lifecycle_url),
                    client_state: c.webhook.client_states.first().map(String::as_str).unwrap_or_default(),
                    change_types: &c.change_types,
                    expiration: &expiration(now),
                };
                subscriptions::create_request(g, &new, token(tenant, Scope::Graph))
            }
            Step::ListSubscriptions { link } => match link {
                Some(l) => graph::next_page_request(g, l, token(own, Scope::Graph)),
                None => subscriptions::list_request(g, token(own, Scope::Graph)),
            },
            Step::Delete { id } => subscriptions::delete_request(g, id, token(own, Scope::Graph)),
        }
    }

    fn ship_request(&self, table: &str, body: &[u8], now: u64) -> crate::Result<OutgoingRequest> {
        match &self.config.sink {
            SinkConfig::LogsIngestion { endpoint, dcr_immutable_id, gzip } => {
                let target = monitor::LogsIngestionTarget {
                    endpoint: endpoint.clone(),
                    dcr_immutable_id: dcr_immutable_id.clone(),
                    stream: format!("{}{table}", schema::STREAM_PREFIX),
                };
                let token = self
                    .tokens
                    .get(&(Scope::Monitor, self.config.credentials.tenant_id.clone()))
                    .map(|t| t.value.as_str())
                    .unwrap_or_default();
                monitor::logs_ingestion_request(&target, token, body, *gzip)
            }
            SinkConfig::DataCollector { workspace_id, shared_key, base_url } => {
                let seed = table == schema::SEED.name;
                let target = monitor::DataCollectorTarget {
                    workspace_id: workspace_id.clone(),
                    shared_key: shared_key.clone(),
                    log_type: table.trim_end_matches("_CL").into(),
                    time_generated_field: Some(if seed { "startDateTime" } else { "TimeGenerated" }.into()),
                    base_url: base_url.clone(),
                };
                let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(now));
                monitor::data_collector_request(&target, &date, body)
            }
            SinkConfig::Forward { url } => monitor::forward_request(url, table, body),
        }
    }

    fn on_success(&mut self, pending: Pending, sent_bytes: usize, body: &[u8], now: u64) {
        let text = || String::from_utf8_lossy(body).into_owned();
        match pending.step {
            Step::Token { scope, tenant } => match entra::parse_token_response(200, body) {
                Ok(t) => {
                    let life = u64::from(t.expires_in_seconds.max(1)) * 1000;
                    let margin = if life > 2 * TOKEN_MARGIN_MS { TOKEN_MARGIN_MS } else { life / 2 };
                    self.tokens.insert((scope, tenant), Token { value: t.token, expires_at: now + life - margin });
                }
                Err(e) => self.fatal(format!("token: {e}")),
            },
            Step::Record { id, tenant } => {
                let record = text();
                let link = graph::next_link(&record);
                self.fetches.insert(id.clone(), Fetch { record, ..Default::default() });
                match link {
                    Ok(Some(link)) => self.queue.push_front(Pending::new(Step::SessionPage { id, tenant, link })),
                    Ok(None) => self.queue.push_front(Pending::new(Step::Participants { id, tenant, link: None })),
                    Err(e) => self.call_failed(&id, format!("callRecord: {e}")),
                }
            }
            Step::SessionPage { id, tenant, .. } => {
                let page = text();
                let link = graph::next_link(&page);
                if let Some(f) = self.fetches.get_mut(&id) {
                    f.sessions.push(page);
                }
                match link {
                    Ok(Some(link)) => self.queue.push_front(Pending::new(Step::SessionPage { id, tenant, link })),
                    Ok(None) => self.queue.push_front(Pending::new(Step::Participants { id, tenant, link: None })),
                    Err(e) => self.call_failed(&id, format!("session page: {e}")),
                }
            }
            Step::Participants { id, tenant, .. } => {
                let page = text();
                match graph::next_link(&page) {
                    Ok(link) => {
                        if let Some(f) = self.fetches.get_mut(&id) {
                            f.participants.push(page);
                        }
                        match link {
                            Some(l) => {
                                self.queue.push_front(Pending::new(Step::Participants { id, tenant, link: Some(l) }))
                            }
                            None => self.finish_call(&id),
                        }
                    }
                    Err(e) => self.call_failed(&id, format!("participants_v2 page: {e}")),
                }
            }
            Step::ListPage { .. } => match graph::parse_list_page(&text()) {
                Ok(page) => {
                    let own = self.config.credentials.tenant_id.clone();
                    let b = self.backfill.as_mut().expect("list pages belong to a backfill");
                    if let Some(link) = page.next_link {
                        self.queue.push_front(Pending::new(Step::ListPage { link: Some(link) }));
                    }
                    for id in page.ids {
                        if graph::is_valid_call_id(&id) && b.listed.insert(id.clone()) {
                            self.queue.push_back(Pending::new(Step::Record { id, tenant: own.clone() }));
                        }
                    }
                }
                Err(e) => self.fatal(format!("List callRecords: {e}")),
            },
            Step::Ship { table, rows, .. } => {
                *self.report.rows.entry(table.to_string()).or_default() += rows.len() as u64;
                self.report.ingestion_requests += 1;
                self.report.ingestion_bytes += sent_bytes as u64;
                if self.job_kind == JobKind::Backfill {
                    self.progress = Some(self.progress_now(None));
                }
            }
            Step::Reauthorize { id, .. } => self.report.lifecycle.push(format!("reauthorized subscription {id}")),
            Step::RenewOne { id, .. } => {
                let expires = subscriptions::parse_subscription(&text()).map(|s| s.expiration).unwrap_or_default();
                self.report.lifecycle.push(format!("renewed subscription {id} until {expires}"));
            }
            Step::Create { .. } => match subscriptions::parse_subscription(&text()) {
                Ok(s) => {
                    self.report.lifecycle.push(format!("created subscription {} until {}", s.id, s.expiration));
                    self.report.subscriptions.push(s);
                }
                Err(e) => self.fatal(format!("create subscription: {e}")),
            },
            Step::ListSubscriptions { .. } => match subscriptions::parse_subscription_page(&text()) {
                Ok((subs, next)) => {
                    if let Some(link) = next {
                        self.queue.push_front(Pending::new(Step::ListSubscriptions { link: Some(link) }));
                    }
                    for s in subs {
                        if self.renew_margin_ms > 0 {
                            let due = parse_timestamp(&s.expiration)
                                .is_none_or(|e| e.secs * 1000 < (now + self.renew_margin_ms) as i64);
                            let ours = self.config.notification_url.as_deref().is_none_or(|u| u == s.notification_url);
                            if s.is_call_records() && ours && due {
                                let tenant = self.config.credentials.tenant_id.clone();
                                self.queue.push_back(Pending::new(Step::RenewOne { id: s.id.clone(), tenant }));
                            } else {
                                continue;
                            }
                        }
                        self.report.subscriptions.push(s);
                    }
                }
                Err(e) => self.fatal(format!("subscriptions: {e}")),
            },
            Step::Delete { id } => self.report.lifecycle.push(format!("deleted subscription {id}")),
        }
    }

    fn on_error(&mut self, mut pending: Pending, e: ServiceError, now: u64) {
        let message = Error::Service(e.clone()).to_string();
        // An expired or revoked token: get a new one once, then repeat the request.
        if e.status == 401
            && !pending.refreshed
            && let Some(key) = pending.step.token(&self.config.credentials.tenant_id, &self.config.sink)
        {
            self.tokens.remove(&key);
            pending.refreshed = true;
            self.report.retries += 1;
            self.queue.push_front(pending);
            return;
        }
        // Too large for the endpoint: split the batch and send the halves.
        if e.status == 413
            && let Step::Ship { table, rows, .. } = &pending.step
            && rows.len() > 1
        {
            let (table, rows) = (*table, rows.clone());
            let (a, b) = rows.split_at(rows.len() / 2);
            self.report.retries += 1;
            for half in [b, a] {
                for s in ship_steps(table, half, &self.config.sink).into_iter().rev() {
                    match s {
                        Ok(step) => self.queue.push_front(Pending::new(step)),
                        Err(err) => self.ship_failed(half.len(), format!("{table}: {err}")),
                    }
                }
            }
            return;
        }
        let limit = if self.deadline.is_some() { MAX_ATTEMPTS } else { MAX_ATTEMPTS_UNBOUNDED };
        if e.retryable && pending.attempt + 1 < limit {
            let backoff = u64::from(self.config.retry_base_ms) << pending.attempt.min(16);
            let wait = e.retry_after_seconds.map_or(backoff, |s| u64::from(s) * 1000).min(MAX_BACKOFF_MS);
            if self.deadline.is_some_and(|d| now + wait >= d) {
                self.fail_deadline_because(&message);
                return;
            }
            pending.attempt += 1;
            pending.not_before = now + wait;
            self.report.retries += 1;
            self.queue.push_front(pending);
            return;
        }
        self.step_failed(pending.step, message);
    }

    fn step_failed(&mut self, step: Step, reason: String) {
        match step {
            Step::Participants { id, .. } if self.fetches.contains_key(&id) => {
                // participants_v2 is a complement: without it the record's own lists still give rows.
                self.report.lifecycle.push(format!("call {id}: participants_v2 not read ({reason})"));
                self.finish_call(&id);
            }
            s if s.call_id().is_some() => {
                let id = s.call_id().unwrap_or_default().to_string();
                self.call_failed(&id, reason);
            }
            Step::Ship { table, rows, .. } => self.ship_failed(rows.len(), format!("{table}: {reason}")),
            Step::Token { scope, .. } => {
                let what = if scope == Scope::Graph { "Graph" } else { "Azure Monitor" };
                self.fatal(format!("{what} token: {reason}"))
            }
            Step::ListPage { .. } => self.fatal(format!("List callRecords: {reason}")),
            Step::Reauthorize { id, .. } => self.fatal(format!("reauthorize subscription {id}: {reason}")),
            Step::RenewOne { id, .. } => self.fatal(format!("renew subscription {id}: {reason}")),
            Step::Create { .. } => self.fatal(format!("create subscription: {reason}")),
            Step::ListSubscriptions { .. } => self.fatal(format!("list subscriptions: {reason}")),
            Step::Delete { id } => self.fatal(format!("delete subscription {id}: {reason}")),
            _ => self.fatal(reason),
        }
    }

    fn call_failed(&mut self, id: &str, reason: String) {
        self.fetches.remove(id);
        self.queue.retain(|p| p.step.call_id() != Some(id));
        self.report.failed.push(CallFailed { id: id.into(), reason: reason.clone() });
        self.report.ok = false;
        self.report.error.get_or_insert_with(|| format!("call {id}: {reason}"));
    }

    fn ship_failed(&mut self, rows: usize, reason: String) {
        self.report.rows_not_accepted += rows as u64;
        self.report.ok = false;
        self.report.error.get_or_insert_with(|| format!("rows not accepted: {reason}"));
    }

    fn finish_call(&mut self, id: &str) {
        let Some(f) = self.fetches.remove(id) else { return };
        // An empty participants_v2 answer must not hide the record's own list.
        let participants: Vec<String> = f.participants.into_iter().filter(|p| !is_empty_page(p)).collect();
        let result = graph::merge_pages(&f.record, &f.sessions, &participants).and_then(|merged| {
            let tables = expand::expand(&merged)?;
            let seed = if self.config.seed_table { Some(expand::seed_row(&merged)?) } else { None };
            Ok((merged, tables, seed))
        });
        match result {
            Ok((merged, tables, seed)) => {
                let mut rows = 0;
                for t in tables {
                    rows += t.rows.len() as u32;
                    self.unshipped.entry(t.table.name).or_default().extend(t.rows);
                }
                if let Some(seed) = seed {
                    rows += 1;
                    self.unshipped.entry(schema::SEED.name).or_default().push(seed);
                }
                self.report.calls.push(CallDone { id: id.into(), version: record_version(&merged), rows });
                if self.job_kind == JobKind::Backfill {
                    self.progress = Some(self.progress_now(None));
                }
            }
            Err(e) => self.call_failed(id, format!("expand: {e}")),
        }
    }

    /// The queue is empty: ship what was expanded, move to the next backfill window, or finish.
    fn advance(&mut self, now: u64) -> Option<Action> {
        if !self.unshipped.is_empty() {
            for (table, rows) in std::mem::take(&mut self.unshipped) {
                for s in ship_steps(table, &rows, &self.config.sink) {
                    match s {
                        Ok(step) => self.queue.push_back(Pending::new(step)),
                        Err(e) => self.ship_failed(rows.len(), format!("{table}: {e}")),
                    }
                }
            }
            return None;
        }
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
        self.finish(now);
        None
    }

    fn progress_now(&self, completed_until: Option<String>) -> Progress {
        let b = self.backfill.as_ref();
        Progress {
            windows_done: b.map_or(0, |b| b.current as u32),
            windows_total: b.map_or(0, |b| b.windows.len() as u32),
            completed_until,
            calls_listed: self.report.calls.len() as u32
                + self.report.failed.len() as u32
                + self.queue.iter().filter(|p| matches!(p.step, Step::Record { .. })).count() as u32,
            calls_done: self.report.calls.len() as u32,
            rows: self.report.total_rows(),
            bytes: self.report.ingestion_bytes,
            retries: self.report.retries,
        }
    }

    fn finish(&mut self, _now: u64) {
        self.finished = true;
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
        self.unshipped.clear();
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

    fn rate_wait(&mut self, key: &str, now: u64) -> Option<u64> {
        let (max, window) = GRAPH_RATE_LIMIT;
        let times = self.sent.get_mut(key)?;
        while times.front().is_some_and(|t| *t + window <= now) {
            times.pop_front();
        }
        (times.len() >= max).then(|| times[0] + window - now)
    }
}

fn ship_steps(table: &'static str, rows: &[String], sink: &SinkConfig) -> Vec<crate::Result<Step>> {
    let kind = match sink {
        SinkConfig::DataCollector { .. } => monitor::Sink::DataCollector,
        _ => monitor::Sink::LogsIngestion,
    };
    let batches = match monitor::batch_rows(rows, kind) {
        Ok(b) => b,
        Err(e) => return vec![Err(e)],
    };
    let mut start = 0;
    batches
        .into_iter()
        .map(|b| {
            let end = start + b.rows as usize;
            let step = Step::Ship { table, rows: rows[start..end].to_vec(), body: b.body };
            start = end;
            Ok(step)
        })
        .collect()
}

fn is_empty_page(page: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(page).is_ok_and(|v| v["value"].as_array().is_some_and(|a| a.is_empty()))
}

fn record_version(record: &str) -> i64 {
    #[derive(serde::Deserialize)]
    struct V {
        version: Option<serde_json::Value>,
    }
    serde_json::from_str::<V>(record)
        .ok()
        .and_then(|v| v.version)
        .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .unwrap_or(0)
}

fn instant(now_ms: u64) -> Instant {
    Instant { secs: (now_ms / 1000) as i64, ticks: 0 }
}

fn expiration(now: u64) -> String {
    let t = instant(now);
    format_timestamp(Instant { secs: t.secs + i64::from(subscriptions::EXPIRATION_MINUTES) * 60, ticks: 0 })
}

fn subscription_urls(c: &Config) -> crate::Result<(&str, &str)> {
    let n = c
        .notification_url
        .as_deref()
        .ok_or_else(|| Error::arg("CALLRECORDS_NOTIFICATION_URL is not set: the public https URL Graph should call"))?;
    Ok((n, c.lifecycle_url.as_deref().unwrap_or(n)))
}

fn backfill_windows(since: &str, until: &str, window_hours: u32, now: u64) -> crate::Result<Backfill> {
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
    Ok(Backfill { windows, current: 0, listed: HashSet::new() })
}
