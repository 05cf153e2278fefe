//! The `plugin` world as a WASI component: bindings in one private module, and Guest impls that
//! only convert between WIT and core types. No rule lives here.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
    });

    use super::Component;
    export!(Component with_types_in self);
}

use bindings::exports::teams_sentinel::callrecords as wit;

use crate::{expand, graph, http, schema, sentinel, webhook};

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
        let credentials = graph::Credentials {
            login_base_url: c.login_base_url,
            tenant_id: c.tenant_id,
            client_id: c.client_id,
            client_secret: c.client_secret,
        };
        let scope = match scope {
            wit::graph::Scope::Graph => graph::Scope::Graph,
            wit::graph::Scope::Monitor => graph::Scope::Monitor,
        };
        out(graph::token_request(&credentials, scope))
    }

    fn parse_token_response(status: u16, body: Vec<u8>) -> Result<wit::graph::AccessToken, wit::types::Error> {
        let t = graph::parse_token_response(status, &body)?;
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

fn sink(s: wit::sentinel::Sink) -> sentinel::Sink {
    match s {
        wit::sentinel::Sink::LogsIngestion => sentinel::Sink::LogsIngestion,
        wit::sentinel::Sink::DataCollector => sentinel::Sink::DataCollector,
    }
}

impl wit::sentinel::Guest for Component {
    fn batch_rows(rows: Vec<String>, s: wit::sentinel::Sink) -> Result<Vec<wit::sentinel::Batch>, wit::types::Error> {
        let batches = sentinel::batch_rows(&rows, sink(s))?;
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
        let target = sentinel::LogsIngestionTarget {
            endpoint: t.endpoint,
            dcr_immutable_id: t.dcr_immutable_id,
            stream: t.stream,
        };
        out(sentinel::logs_ingestion_request(&target, &token, &body, gzip))
    }

    fn data_collector_request(
        t: wit::sentinel::DataCollectorTarget,
        date: String,
        body: Vec<u8>,
    ) -> Result<wit::types::OutgoingRequest, wit::types::Error> {
        let target = sentinel::DataCollectorTarget {
            workspace_id: t.workspace_id,
            shared_key: t.shared_key,
            log_type: t.log_type,
            time_generated_field: t.time_generated_field,
            base_url: t.base_url,
        };
        out(sentinel::data_collector_request(&target, &date, &body))
    }

    fn shared_key_authorization(
        workspace_id: String,
        shared_key: String,
        date: String,
        content_length: u64,
    ) -> Result<String, wit::types::Error> {
        #[cfg(feature = "misbehave")]
        let content_length = content_length + 1;
        Ok(sentinel::shared_key_authorization(&workspace_id, &shared_key, &date, content_length)?)
    }
}
