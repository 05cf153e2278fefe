//! One method per export of the `plugin` world, each in a fresh sandboxed instance (and noted
//! for replay on jco when the calling thread records, see [`crate::record`]).

use serde_json::json;

use crate::bindings::{expand, graph, schema, sentinel, types, webhook};
use crate::record::{ToJs, bigint, bytes, note};
use crate::runtime::{CallError, Runtime};

/// Why an export did not return a value.
#[derive(Debug, Clone)]
pub enum Error {
    /// The sandbox stopped the call (trap, deadline, memory) or could not run it.
    Call(CallError),
    /// The component answered with its typed error.
    Plugin(types::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Call(e) => e.fmt(f),
            Error::Plugin(e) => f.write_str(&describe(e)),
        }
    }
}

impl std::error::Error for Error {}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        Error::Call(e)
    }
}

/// A person-readable line for a plugin error.
pub fn describe(e: &types::Error) -> String {
    match e {
        types::Error::InvalidArgument(m) => format!("invalid argument: {m}"),
        types::Error::InvalidJson(m) => format!("invalid JSON: {m}"),
        types::Error::TooLarge(m) => format!("too large: {m}"),
        types::Error::Service(s) => {
            let mut line = format!("service answered {}", s.status);
            if !s.code.is_empty() {
                line += &format!(" ({})", s.code);
            }
            line += &format!(": {}", s.message);
            if let Some(r) = s.retry_after_seconds {
                line += &format!("; retry after {r} s");
            }
            line
        }
    }
}

/// Flatten `wasmtime::Result<Result<T, types::Error>>` into our error.
fn flat<T>(r: Result<Result<T, types::Error>, CallError>) -> Result<T, Error> {
    r?.map_err(Error::Plugin)
}

impl Runtime {
    /// `webhook.handle`.
    pub fn handle(
        &self,
        settings: &webhook::Settings,
        request: &types::IncomingRequest,
    ) -> Result<webhook::Outcome, CallError> {
        note(
            "webhook",
            "handle",
            || vec![settings.to_js(), request.to_js()],
            self.call(|p, s| p.teams_sentinel_callrecords_webhook().call_handle(s, settings, request)),
        )
    }

    /// `graph.token-request`.
    pub fn token_request(
        &self,
        credentials: &graph::Credentials,
        scope: graph::Scope,
    ) -> Result<types::OutgoingRequest, Error> {
        note(
            "graph",
            "token-request",
            || vec![credentials.to_js(), scope.to_js()],
            flat(self.call(|p, s| p.teams_sentinel_callrecords_graph().call_token_request(s, credentials, scope))),
        )
    }

    /// `graph.parse-token-response`.
    pub fn parse_token_response(&self, status: u16, body: &[u8]) -> Result<graph::AccessToken, Error> {
        note(
            "graph",
            "parse-token-response",
            || vec![json!(status), bytes(body)],
            flat(self.call(|p, s| p.teams_sentinel_callrecords_graph().call_parse_token_response(s, status, body))),
        )
    }

    /// `graph.call-record-request`.
    pub fn call_record_request(&self, base: &str, call_id: &str, token: &str) -> Result<types::OutgoingRequest, Error> {
        note(
            "graph",
            "call-record-request",
            || vec![json!(base), json!(call_id), json!(token)],
            flat(
                self.call(|p, s| {
                    p.teams_sentinel_callrecords_graph().call_call_record_request(s, base, call_id, token)
                }),
            ),
        )
    }

    /// `graph.participants-request`.
    pub fn participants_request(
        &self,
        base: &str,
        call_id: &str,
        token: &str,
    ) -> Result<types::OutgoingRequest, Error> {
        note(
            "graph",
            "participants-request",
            || vec![json!(base), json!(call_id), json!(token)],
            flat(
                self.call(|p, s| {
                    p.teams_sentinel_callrecords_graph().call_participants_request(s, base, call_id, token)
                }),
            ),
        )
    }

    /// `graph.next-page-request`.
    pub fn next_page_request(&self, base: &str, link: &str, token: &str) -> Result<types::OutgoingRequest, Error> {
        note(
            "graph",
            "next-page-request",
            || vec![json!(base), json!(link), json!(token)],
            flat(self.call(|p, s| p.teams_sentinel_callrecords_graph().call_next_page_request(s, base, link, token))),
        )
    }

    /// `graph.list-call-records-request`.
    pub fn list_call_records_request(
        &self,
        base: &str,
        start: &str,
        end: &str,
        token: &str,
    ) -> Result<types::OutgoingRequest, Error> {
        note(
            "graph",
            "list-call-records-request",
            || vec![json!(base), json!(start), json!(end), json!(token)],
            flat(self.call(|p, s| {
                p.teams_sentinel_callrecords_graph().call_list_call_records_request(s, base, start, end, token)
            })),
        )
    }

    /// `graph.next-link`.
    pub fn next_link(&self, body: &str) -> Result<Option<String>, Error> {
        note(
            "graph",
            "next-link",
            || vec![json!(body)],
            flat(self.call(|p, s| p.teams_sentinel_callrecords_graph().call_next_link(s, body))),
        )
    }

    /// `graph.parse-list-page`.
    pub fn parse_list_page(&self, body: &str) -> Result<graph::ListPage, Error> {
        note(
            "graph",
            "parse-list-page",
            || vec![json!(body)],
            flat(self.call(|p, s| p.teams_sentinel_callrecords_graph().call_parse_list_page(s, body))),
        )
    }

    /// `graph.merge-pages`.
    pub fn merge_pages(&self, record: &str, sessions: &[String], participants: &[String]) -> Result<String, Error> {
        note(
            "graph",
            "merge-pages",
            || vec![json!(record), sessions.to_js(), participants.to_js()],
            flat(
                self.call(|p, s| {
                    p.teams_sentinel_callrecords_graph().call_merge_pages(s, record, sessions, participants)
                }),
            ),
        )
    }

    /// `graph.check-response`.
    pub fn check_response(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Result<(), Error> {
        note(
            "graph",
            "check-response",
            || vec![json!(status), headers.iter().map(|(n, v)| json!([n, v])).collect(), bytes(body), bigint(now)],
            flat(
                self.call(|p, s| {
                    p.teams_sentinel_callrecords_graph().call_check_response(s, status, headers, body, now)
                }),
            ),
        )
    }

    /// `expand.expand`.
    pub fn expand(&self, record: &str) -> Result<Vec<expand::TableRows>, Error> {
        note(
            "expand",
            "expand",
            || vec![json!(record)],
            flat(self.call(|p, s| p.teams_sentinel_callrecords_expand().call_expand(s, record))),
        )
    }

    /// `expand.seed-row`.
    pub fn seed_row(&self, record: &str) -> Result<String, Error> {
        note(
            "expand",
            "seed-row",
            || vec![json!(record)],
            flat(self.call(|p, s| p.teams_sentinel_callrecords_expand().call_seed_row(s, record))),
        )
    }

    /// `schema.tables`.
    pub fn tables(&self) -> Result<Vec<schema::Table>, CallError> {
        note("schema", "tables", Vec::new, self.call(|p, s| p.teams_sentinel_callrecords_schema().call_tables(s)))
    }

    /// `schema.tables-json`.
    pub fn tables_json(&self) -> Result<String, CallError> {
        note(
            "schema",
            "tables-json",
            Vec::new,
            self.call(|p, s| p.teams_sentinel_callrecords_schema().call_tables_json(s)),
        )
    }

    /// `sentinel.batch-rows`.
    pub fn batch_rows(&self, rows: &[String], sink: sentinel::Sink) -> Result<Vec<sentinel::Batch>, Error> {
        note(
            "sentinel",
            "batch-rows",
            || vec![rows.to_js(), sink.to_js()],
            flat(self.call(|p, s| p.teams_sentinel_callrecords_sentinel().call_batch_rows(s, rows, sink))),
        )
    }

    /// `sentinel.logs-ingestion-request`.
    pub fn logs_ingestion_request(
        &self,
        target: &sentinel::LogsIngestionTarget,
        token: &str,
        body: &[u8],
        gzip: bool,
    ) -> Result<types::OutgoingRequest, Error> {
        note(
            "sentinel",
            "logs-ingestion-request",
            || vec![target.to_js(), json!(token), bytes(body), json!(gzip)],
            flat(self.call(|p, s| {
                p.teams_sentinel_callrecords_sentinel().call_logs_ingestion_request(s, target, token, body, gzip)
            })),
        )
    }

    /// `sentinel.data-collector-request`.
    pub fn data_collector_request(
        &self,
        target: &sentinel::DataCollectorTarget,
        date: &str,
        body: &[u8],
    ) -> Result<types::OutgoingRequest, Error> {
        note(
            "sentinel",
            "data-collector-request",
            || vec![target.to_js(), json!(date), bytes(body)],
            flat(self.call(|p, s| {
                p.teams_sentinel_callrecords_sentinel().call_data_collector_request(s, target, date, body)
            })),
        )
    }

    /// `sentinel.shared-key-authorization`.
    pub fn shared_key_authorization(
        &self,
        workspace_id: &str,
        shared_key: &str,
        date: &str,
        content_length: u64,
    ) -> Result<String, Error> {
        note(
            "sentinel",
            "shared-key-authorization",
            || vec![json!(workspace_id), json!(shared_key), json!(date), bigint(content_length)],
            flat(self.call(|p, s| {
                p.teams_sentinel_callrecords_sentinel().call_shared_key_authorization(
                    s,
                    workspace_id,
                    shared_key,
                    date,
                    content_length,
                )
            })),
        )
    }
}
