//! The `plugin` world as a WASI component: bindings in one private module, and Guest impls that
//! only convert between WIT and core types. No rule lives here.

mod bindings {
    #[cfg(not(feature = "service"))]
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
    });

    // The service world adds `wasi:http/proxy`; its WASI types are wasip2's, not generated again.
    #[cfg(feature = "service")]
    wit_bindgen::generate!({
        path: "../wit",
        world: "service",
        with: {
            "wasi:http/types@0.2.12": wasip2::http::types,
            "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
            "wasi:io/error@0.2.12": wasip2::io::error,
            "wasi:io/poll@0.2.12": wasip2::io::poll,
            "wasi:io/streams@0.2.12": wasip2::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
            "wasi:clocks/wall-clock@0.2.12": wasip2::clocks::wall_clock,
            "wasi:random/random@0.2.12": wasip2::random::random,
            "wasi:cli/stdout@0.2.12": wasip2::cli::stdout,
            "wasi:cli/stderr@0.2.12": wasip2::cli::stderr,
            "wasi:cli/stdin@0.2.12": wasip2::cli::stdin,
            "wasi:keyvalue/store@0.2.0-draft": generate,
        },
    });

    use super::Component;
    export!(Component with_types_in self);
}

#[cfg(feature = "service")]
mod service;

use bindings::exports::teams_sentinel::callrecords as wit;

use crate::graph::webhook;
use crate::{config, entra, expand, graph, http, monitor, pipeline, schema};

/// The exported component.
struct Component;

impl From<crate::Error> for wit::types::Error {
    fn from(e: crate::Error) -> Self {
        use wit::types::Error as E;
        match e {
            crate::Error::InvalidArgument(m) => E::InvalidArgument(m),
            crate::Error::InvalidJson(m) => E::InvalidJson(m),
            crate::Error::TooLarge(m) => E::TooLarge(m),
            crate::Error::Service(s) => E::Service(wit::types::ServiceError {
                status: s.status,
                code: s.code,
                message: s.message,
                retry_after_seconds: s.retry_after_seconds,
                retryable: s.retryable,
            }),
        }
    }
}

impl From<http::OutgoingRequest> for wit::types::OutgoingRequest {
    fn from(r: http::OutgoingRequest) -> Self {
        Self { method: r.method, url: r.url, headers: r.headers, body: r.body }
    }
}

fn out(r: crate::Result<http::OutgoingRequest>) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
    r.map(Into::into).map_err(Into::into)
}

impl wit::webhook::Guest for Component {
    fn handle(settings: wit::webhook::Settings, request: wit::types::IncomingRequest) -> wit::webhook::Outcome {
        use wit::webhook as w;
        let settings = webhook::Settings {
            client_states: settings.client_states,
            allowed_tenants: settings.allowed_tenants,
            max_body_bytes: settings.max_body_bytes,
        };
        let request = http::IncomingRequest {
            method: request.method,
            path_and_query: request.path_and_query,
            headers: request.headers,
            body: request.body,
        };
        let o = webhook::handle(&settings, &request);
        w::Outcome {
            kind: match o.kind {
                webhook::RequestKind::Validation => w::RequestKind::Validation,
                webhook::RequestKind::Delivery => w::RequestKind::Delivery,
                webhook::RequestKind::Refused => w::RequestKind::Refused,
            },
            response: wit::types::Response {
                status: o.response.status,
                headers: o.response.headers,
                body: o.response.body,
            },
            notifications: o
                .notifications
                .into_iter()
                .map(|n| w::Notification {
                    call_id: n.call_id,
                    subscription_id: n.subscription_id,
                    tenant_id: n.tenant_id,
                    change_type: n.change_type,
                    resource: n.resource,
                    subscription_expiration: n.subscription_expiration,
                })
                .collect(),
            lifecycle: o
                .lifecycle
                .into_iter()
                .map(|l| w::LifecycleEvent {
                    kind: match l.kind {
                        webhook::LifecycleKind::ReauthorizationRequired => w::LifecycleKind::ReauthorizationRequired,
                        webhook::LifecycleKind::SubscriptionRemoved => w::LifecycleKind::SubscriptionRemoved,
                        webhook::LifecycleKind::Missed => w::LifecycleKind::Missed,
                        webhook::LifecycleKind::Unknown => w::LifecycleKind::Unknown,
                    },
                    event: l.event,
                    subscription_id: l.subscription_id,
                    tenant_id: l.tenant_id,
                    subscription_expiration: l.subscription_expiration,
                })
                .collect(),
            rejected: o
                .rejected
                .into_iter()
                .map(|r| w::RejectedItem {
                    index: r.index,
                    reason: match r.reason {
                        webhook::RejectReason::ClientStateMismatch => w::RejectReason::ClientStateMismatch,
                        webhook::RejectReason::TenantNotAllowed => w::RejectReason::TenantNotAllowed,
                        webhook::RejectReason::NotACallRecord => w::RejectReason::NotACallRecord,
                        webhook::RejectReason::Malformed => w::RejectReason::Malformed,
                    },
                    detail: r.detail,
                })
                .collect(),
            duplicates: o.duplicates,
        }
    }
}

impl wit::graph::Guest for Component {
    fn token_request(
        c: wit::graph::Credentials,
        scope: wit::graph::Scope,
    ) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
        let credentials = entra::Credentials::secret(&c.login_base_url, &c.tenant_id, &c.client_id, &c.client_secret);
        let scope = match scope {
            wit::graph::Scope::Graph => entra::Scope::Graph,
            wit::graph::Scope::Monitor => entra::Scope::Monitor,
        };
        out(entra::token_request(&credentials, scope))
    }

    fn parse_token_response(status: u16, body: Vec<u8>) -> Result<wit::graph::AccessToken, wit::types::Error> {
        let t = entra::parse_token_response(status, &body)?;
        Ok(wit::graph::AccessToken { token: t.token, expires_in_seconds: t.expires_in_seconds })
    }

    fn call_record_request(
        base: String,
        call_id: String,
        token: String,
    ) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
        out(graph::call_record_request(&base, &call_id, &token))
    }

    fn participants_request(
        base: String,
        call_id: String,
        token: String,
    ) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
        out(graph::participants_request(&base, &call_id, &token))
    }

    fn next_page_request(
        base: String,
        next_link: String,
        token: String,
    ) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
        out(graph::next_page_request(&base, &next_link, &token))
    }

    fn list_call_records_request(
        base: String,
        start: String,
        end: String,
        token: String,
    ) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
        out(graph::list_call_records_request(&base, &start, &end, &token))
    }

    fn next_link(body: String) -> Result<Option<String>, wit::types::Error> {
        Ok(graph::next_link(&body)?)
    }

    fn parse_list_page(body: String) -> Result<wit::graph::ListPage, wit::types::Error> {
        let p = graph::parse_list_page(&body)?;
        Ok(wit::graph::ListPage { ids: p.ids, next_link: p.next_link })
    }

    fn merge_pages(
        call_record: String,
        session_pages: Vec<String>,
        participant_pages: Vec<String>,
    ) -> Result<String, wit::types::Error> {
        Ok(graph::merge_pages(&call_record, &session_pages, &participant_pages)?)
    }

    fn check_response(
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        now: u64,
    ) -> Result<(), wit::types::Error> {
        Ok(http::check_response(status, &headers, &body, now)?)
    }
}

impl wit::expand::Guest for Component {
    fn expand(call_record: String) -> Result<Vec<wit::expand::TableRows>, wit::types::Error> {
        let tables = expand::expand(&call_record)?;
        Ok(tables
            .into_iter()
            .map(|t| wit::expand::TableRows { table: t.table.name.to_string(), rows: t.rows })
            .collect())
    }

    fn seed_row(call_record: String) -> Result<String, wit::types::Error> {
        Ok(expand::seed_row(&call_record)?)
    }
}

impl wit::schema::Guest for Component {
    fn tables() -> Vec<wit::schema::Table> {
        use wit::schema::ColumnType as C;
        schema::TABLES
            .iter()
            .map(|t| wit::schema::Table {
                name: t.name.into(),
                stream: t.stream.into(),
                description: t.description.into(),
                columns: t
                    .columns
                    .iter()
                    .map(|c| wit::schema::Column {
                        name: c.name.into(),
                        type_: match c.kind {
                            schema::ColumnType::String => C::String,
                            schema::ColumnType::Long => C::Long,
                            schema::ColumnType::Real => C::Real,
                            schema::ColumnType::Boolean => C::Boolean,
                            schema::ColumnType::Datetime => C::Datetime,
                            schema::ColumnType::Dynamic => C::Dynamic,
                        },
                        description: c.description.into(),
                    })
                    .collect(),
            })
            .collect()
    }

    fn tables_json() -> String {
        schema::tables_json()
    }
}

fn sink(s: wit::sentinel::Sink) -> monitor::Sink {
    match s {
        wit::sentinel::Sink::LogsIngestion => monitor::Sink::LogsIngestion,
        wit::sentinel::Sink::DataCollector => monitor::Sink::DataCollector,
    }
}

impl wit::sentinel::Guest for Component {
    fn batch_rows(rows: Vec<String>, s: wit::sentinel::Sink) -> Result<Vec<wit::sentinel::Batch>, wit::types::Error> {
        let batches = monitor::batch_rows(&rows, sink(s))?;
        Ok(batches
            .into_iter()
            .map(|b| wit::sentinel::Batch { body: b.body, rows: b.rows, truncated_fields: b.truncated_fields })
            .collect())
    }

    fn logs_ingestion_request(
        t: wit::sentinel::LogsIngestionTarget,
        token: String,
        body: Vec<u8>,
        gzip: bool,
    ) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
        let target = monitor::LogsIngestionTarget {
            endpoint: t.endpoint,
            dcr_immutable_id: t.dcr_immutable_id,
            stream: t.stream,
        };
        out(monitor::logs_ingestion_request(&target, &token, &body, gzip))
    }

    fn data_collector_request(
        t: wit::sentinel::DataCollectorTarget,
        date: String,
        body: Vec<u8>,
    ) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
        let target = monitor::DataCollectorTarget {
            workspace_id: t.workspace_id,
            shared_key: t.shared_key,
            log_type: t.log_type,
            time_generated_field: t.time_generated_field,
            base_url: t.base_url,
        };
        out(monitor::data_collector_request(&target, &date, &body))
    }

    fn shared_key_authorization(
        workspace_id: String,
        shared_key: String,
        date: String,
        content_length: u64,
    ) -> Result<String, wit::types::Error> {
        #[cfg(feature = "misbehave")]
        let content_length = content_length + 1;
        Ok(monitor::shared_key_authorization(&workspace_id, &shared_key, &date, content_length)?)
    }
}

impl From<wit::types::IncomingRequest> for http::IncomingRequest {
    fn from(r: wit::types::IncomingRequest) -> Self {
        Self { method: r.method, path_and_query: r.path_and_query, headers: r.headers, body: r.body }
    }
}

impl wit::driver::Guest for Component {
    type Run = Run;

    fn describe_settings(settings: Vec<(String, String)>) -> Result<Vec<(String, String)>, wit::types::Error> {
        Ok(config::Config::from_env(&settings)?.summary())
    }
}

/// The `run` resource: a [`pipeline::Run`] behind a cell (resource methods take `&self`).
pub struct Run(std::cell::RefCell<pipeline::Run>);

impl wit::driver::GuestRun for Run {
    fn start(
        settings: Vec<(String, String)>,
        job: wit::driver::Job,
        now_ms: u64,
    ) -> Result<wit::driver::Run, wit::types::Error> {
        use wit::driver::Job as J;
        let config = config::Config::from_env(&settings)?;
        let job = match job {
            J::Webhook(r) => pipeline::Job::Webhook(r.into()),
            J::Backfill(w) => {
                pipeline::Job::Backfill { since: w.since, until: w.until, window_hours: w.window_hours, skip: w.skip }
            }
            J::Subscribe => pipeline::Job::Subscribe,
            J::Renew(margin_minutes) => pipeline::Job::Renew { margin_minutes },
            J::Subscriptions => pipeline::Job::Subscriptions,
            J::Unsubscribe(id) => pipeline::Job::Unsubscribe(id),
            J::Accept(r) => pipeline::Job::Accept(r.into()),
            J::Keep(margin_minutes) => pipeline::Job::Keep { margin_minutes },
            J::Pstn(p) => pipeline::Job::Pstn { since: p.since, until: p.until, skip: p.skip },
            J::Sweep(s) => pipeline::Job::Sweep { since: s.since, until: s.until },
            J::DrainQueue(o) => pipeline::Job::DrainQueue { max_calls: o.max_calls, lease_seconds: o.lease_seconds },
            J::StorageQueue(o) => pipeline::Job::StorageQueue { peek: o.peek_dead, requeue: o.requeue_dead },
            J::Drain(calls) => pipeline::Job::Drain(
                calls
                    .into_iter()
                    .map(|c| pipeline::queue::QueuedCall {
                        call_id: c.call_id,
                        tenant_id: c.tenant_id,
                        received_ms: c.received_ms,
                        attempts: c.attempts,
                        done_tables: c.done_tables,
                    })
                    .collect(),
            ),
        };
        let mut run = pipeline::Run::start(config, job, now_ms)?;
        give_wasi_io(&mut run);
        Ok(wit::driver::Run::new(Run(std::cell::RefCell::new(run))))
    }

    fn next(&self, now_ms: u64) -> wit::driver::Action {
        use wit::driver as d;
        match self.0.borrow_mut().next(now_ms) {
            pipeline::Action::Send { id, request, timeout_ms } => {
                d::Action::Send(d::SendRequest { id, request: request.into(), timeout_ms })
            }
            pipeline::Action::Wait(ms) => d::Action::Wait(ms),
            pipeline::Action::Progress(p) => d::Action::Progress(d::Progress {
                windows_done: p.windows_done,
                windows_total: p.windows_total,
                completed_until: p.completed_until,
                calls_listed: p.calls_listed,
                calls_done: p.calls_done,
                rows: p.rows,
                bytes: p.bytes,
                retries: p.retries,
                shipped: p.shipped,
            }),
            pipeline::Action::Done(r) => d::Action::Done(report(*r)),
        }
    }

    fn respond(
        &self,
        id: u64,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        now_ms: u64,
    ) -> Result<(), wit::types::Error> {
        Ok(self.0.borrow_mut().respond(id, status, &headers, &body, now_ms)?)
    }

    fn transport_error(&self, id: u64, reason: String, now_ms: u64) -> Result<(), wit::types::Error> {
        Ok(self.0.borrow_mut().transport_error(id, &reason, now_ms)?)
    }

    fn saved_tokens(&self, now_ms: u64) -> Option<Vec<u8>> {
        self.0.borrow().saved_tokens(now_ms)
    }

    fn restore_tokens(&self, saved: Vec<u8>, now_ms: u64) -> u32 {
        self.0.borrow_mut().restore_tokens(&saved, now_ms)
    }

    fn saved_limits(&self, now_ms: u64) -> Vec<u8> {
        self.0.borrow().saved_limits(now_ms)
    }

    fn restore_limits(&self, saved: Vec<u8>, now_ms: u64) {
        self.0.borrow_mut().restore_limits(&saved, now_ms)
    }
}

fn report(r: pipeline::Report) -> wit::driver::Report {
    wit::driver::Report {
        ok: r.ok,
        calls: r.calls_done,
        failed_calls: r.failed_count,
        rows: r.total_rows(),
        retries: r.retries,
        resync: r.resync.clone().map(|x| wit::driver::Resync {
            reason: x.reason,
            subscription_id: x.subscription_id,
            since: x.since,
            until: x.until,
        }),
        error: r.error.clone(),
        json: serde_json::to_string(&r).unwrap_or_default(),
        response: wit::types::Response {
            status: r.response.status,
            headers: r.response.headers,
            body: r.response.body,
        },
    }
}

/// What the core's credentials need from WASI: 32 bytes of `wasi:random` for client assertions,
/// and `wasi:filesystem` for the credential files the settings name (the host must preopen their
/// directories, e.g. `wasmtime serve --dir /var/run/secrets/azure/tokens`).
pub(crate) fn give_wasi_io(run: &mut pipeline::Run) {
    let bytes = wasip2::random::random::get_random_bytes(32);
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&bytes[..32]);
    run.seed_entropy(seed);
    run.allow_files(Box::new(|path| std::fs::read(path).map_err(|e| e.kind().to_string())));
}
