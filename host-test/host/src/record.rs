//! Export calls as data, for replaying them on a second component host (jco, in node: see
//! `callrecords-conformance`'s `jco` module).
//!
//! While a thread records ([`recording`]), every export call it makes through [`Runtime`] is kept with its
//! arguments and what wasmtime's instance answered, written the way jco represents WIT values in
//! JavaScript: records as objects with lowerCamelCase keys, enums as their kebab-case names,
//! variants as `{tag, val}`, `option` as the value or `null`, and two tagged forms JSON lacks:
//! `{"$bytes": base64}` for `list<u8>` and `{"$bigint": "digits"}` for `u64`. A call's result is
//! `{"returns": v}`, `{"throws": error}` (jco throws a `ComponentError` whose `payload` is the WIT
//! error) or `{"trap": message}`.

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::bindings::{expand, graph, schema, sentinel, types, webhook};
use crate::calls::Error;
use crate::runtime::CallError;
#[cfg(doc)]
use crate::runtime::Runtime;

thread_local! {
    /// The calls recorded on this thread, while recording.
    static RECORDING: RefCell<Option<Vec<Value>>> = const { RefCell::new(None) };
}

/// Run `f` on this thread while recording every export call it makes through [`Runtime`]
/// (`{"interface", "function", "args", "result"}` each), and return those calls with `f`'s result.
pub fn recording<T>(f: impl FnOnce() -> T) -> (T, Vec<Value>) {
    RECORDING.with(|r| *r.borrow_mut() = Some(vec![]));
    let out = f();
    let calls = RECORDING.with(|r| r.borrow_mut().take()).unwrap_or_default();
    (out, calls)
}

/// Keep one call if this thread is recording; `result` passes through.
pub(crate) fn note<R: Recorded>(interface: &str, function: &str, args: impl FnOnce() -> Vec<Value>, result: R) -> R {
    RECORDING.with(|r| {
        if let Some(calls) = r.borrow_mut().as_mut() {
            calls.push(json!({
                "interface": interface, "function": function, "args": args(), "result": result.recorded(),
            }));
        }
    });
    result
}

/// A call's outcome as recorded.
pub(crate) trait Recorded {
    fn recorded(&self) -> Value;
}

impl<T: ToJs> Recorded for Result<T, CallError> {
    fn recorded(&self) -> Value {
        match self {
            Ok(v) => json!({ "returns": v.to_js() }),
            Err(e) => json!({ "trap": e.to_string() }),
        }
    }
}

impl<T: ToJs> Recorded for Result<T, Error> {
    fn recorded(&self) -> Value {
        match self {
            Ok(v) => json!({ "returns": v.to_js() }),
            Err(Error::Plugin(e)) => json!({ "throws": e.to_js() }),
            Err(Error::Call(e)) => json!({ "trap": e.to_string() }),
        }
    }
}

/// A WIT value as jco shows it to JavaScript (see the module docs).
pub trait ToJs {
    /// The value, encoded.
    fn to_js(&self) -> Value;
}

/// `list<u8>`.
pub fn bytes(b: &[u8]) -> Value {
    json!({ "$bytes": BASE64.encode(b) })
}

/// `u64`.
pub fn bigint(n: u64) -> Value {
    json!({ "$bigint": n.to_string() })
}

fn headers(h: &[(String, String)]) -> Value {
    h.iter().map(|(n, v)| json!([n, v])).collect()
}

impl ToJs for String {
    fn to_js(&self) -> Value {
        Value::from(self.as_str())
    }
}

impl ToJs for () {
    fn to_js(&self) -> Value {
        Value::Null
    }
}

impl<T: ToJs> ToJs for Option<T> {
    fn to_js(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToJs::to_js)
    }
}

impl<T: ToJs> ToJs for [T] {
    fn to_js(&self) -> Value {
        self.iter().map(ToJs::to_js).collect()
    }
}

impl<T: ToJs> ToJs for Vec<T> {
    fn to_js(&self) -> Value {
        self.as_slice().to_js()
    }
}

impl ToJs for types::IncomingRequest {
    fn to_js(&self) -> Value {
        json!({"method": self.method, "pathAndQuery": self.path_and_query, "headers": headers(&self.headers),
               "body": bytes(&self.body)})
    }
}

impl ToJs for types::Response {
    fn to_js(&self) -> Value {
        json!({"status": self.status, "headers": headers(&self.headers), "body": bytes(&self.body)})
    }
}

impl ToJs for types::OutgoingRequest {
    fn to_js(&self) -> Value {
        json!({"method": self.method, "url": self.url, "headers": headers(&self.headers), "body": bytes(&self.body)})
    }
}

impl ToJs for types::Error {
    fn to_js(&self) -> Value {
        match self {
            types::Error::InvalidArgument(m) => json!({"tag": "invalid-argument", "val": m}),
            types::Error::InvalidJson(m) => json!({"tag": "invalid-json", "val": m}),
            types::Error::TooLarge(m) => json!({"tag": "too-large", "val": m}),
            types::Error::Service(s) => json!({"tag": "service", "val": {
                "status": s.status, "code": s.code, "message": s.message,
                "retryAfterSeconds": s.retry_after_seconds, "retryable": s.retryable,
            }}),
        }
    }
}

impl ToJs for webhook::Settings {
    fn to_js(&self) -> Value {
        json!({"clientStates": self.client_states, "allowedTenants": self.allowed_tenants,
               "maxBodyBytes": self.max_body_bytes})
    }
}

impl ToJs for webhook::Outcome {
    fn to_js(&self) -> Value {
        let notifications: Vec<Value> = self
            .notifications
            .iter()
            .map(|n| {
                json!({"callId": n.call_id, "subscriptionId": n.subscription_id, "tenantId": n.tenant_id,
                       "changeType": n.change_type, "resource": n.resource,
                       "subscriptionExpiration": n.subscription_expiration})
            })
            .collect();
        let lifecycle: Vec<Value> = self
            .lifecycle
            .iter()
            .map(|l| {
                json!({"kind": l.kind.wit_name(), "event": l.event, "subscriptionId": l.subscription_id,
                       "tenantId": l.tenant_id, "subscriptionExpiration": l.subscription_expiration})
            })
            .collect();
        let rejected: Vec<Value> = self
            .rejected
            .iter()
            .map(|r| json!({"index": r.index, "reason": r.reason.wit_name(), "detail": r.detail}))
            .collect();
        json!({"kind": self.kind.wit_name(), "response": self.response.to_js(), "notifications": notifications,
               "lifecycle": lifecycle, "rejected": rejected, "duplicates": self.duplicates})
    }
}

impl ToJs for graph::Credentials {
    fn to_js(&self) -> Value {
        json!({"loginBaseUrl": self.login_base_url, "tenantId": self.tenant_id, "clientId": self.client_id,
               "clientSecret": self.client_secret})
    }
}

impl ToJs for graph::Scope {
    fn to_js(&self) -> Value {
        Value::from(match self {
            graph::Scope::Graph => "graph",
            graph::Scope::Monitor => "monitor",
        })
    }
}

impl ToJs for graph::AccessToken {
    fn to_js(&self) -> Value {
        json!({"token": self.token, "expiresInSeconds": self.expires_in_seconds})
    }
}

impl ToJs for graph::ListPage {
    fn to_js(&self) -> Value {
        json!({"ids": self.ids, "nextLink": self.next_link})
    }
}

impl ToJs for expand::TableRows {
    fn to_js(&self) -> Value {
        json!({"table": self.table, "rows": self.rows})
    }
}

impl ToJs for schema::Table {
    fn to_js(&self) -> Value {
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|c| {
                let kind = match c.type_ {
                    schema::ColumnType::String => "string",
                    schema::ColumnType::Long => "long",
                    schema::ColumnType::Real => "real",
                    schema::ColumnType::Boolean => "boolean",
                    schema::ColumnType::Datetime => "datetime",
                    schema::ColumnType::Dynamic => "dynamic",
                };
                json!({"name": c.name, "type": kind, "description": c.description})
            })
            .collect();
        json!({"name": self.name, "stream": self.stream, "description": self.description, "columns": columns})
    }
}

impl ToJs for sentinel::Sink {
    fn to_js(&self) -> Value {
        Value::from(match self {
            sentinel::Sink::LogsIngestion => "logs-ingestion",
            sentinel::Sink::DataCollector => "data-collector",
        })
    }
}

impl ToJs for sentinel::Batch {
    fn to_js(&self) -> Value {
        json!({"body": bytes(&self.body), "rows": self.rows, "truncatedFields": self.truncated_fields})
    }
}

impl ToJs for sentinel::LogsIngestionTarget {
    fn to_js(&self) -> Value {
        json!({"endpoint": self.endpoint, "dcrImmutableId": self.dcr_immutable_id, "stream": self.stream})
    }
}

impl ToJs for sentinel::DataCollectorTarget {
    fn to_js(&self) -> Value {
        json!({"workspaceId": self.workspace_id, "sharedKey": self.shared_key, "logType": self.log_type,
               "timeGeneratedField": self.time_generated_field, "baseUrl": self.base_url})
    }
}
