//! Azure Monitor / Microsoft Sentinel: batching rows within the limits of each API and building
//! the requests (Logs Ingestion with a bearer token; the retired-but-kept Data Collector API with
//! a SharedKey signature).

use std::fmt;
use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::http::{OutgoingRequest, base_url, bearer};

/// Logs Ingestion API version.
pub const LOGS_INGESTION_API_VERSION: &str = "2023-01-01";
/// Largest Logs Ingestion call (1 MB; counted in decimal to stay clear of the limit).
pub const LOGS_INGESTION_MAX_BYTES: usize = 1_000_000;
/// Largest Logs Ingestion field value (64 KB).
pub const LOGS_INGESTION_MAX_FIELD_BYTES: usize = 64 * 1024;
/// Data Collector API version.
pub const DATA_COLLECTOR_API_VERSION: &str = "2016-04-01";
/// Largest Data Collector post (30 MB).
pub const DATA_COLLECTOR_MAX_BYTES: usize = 30_000_000;
/// Largest Data Collector field value (32 KB).
pub const DATA_COLLECTOR_MAX_FIELD_BYTES: usize = 32 * 1024;
/// Longest Data Collector `Log-Type`.
pub const MAX_LOG_TYPE_CHARS: usize = 100;
/// Marks a field value cut to the sink's limit; followed by the original size.
pub const TRUNCATION_MARKER: &str = "…[truncated by teams-sentinel; original bytes: ";

/// The two ingestion APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Logs Ingestion API (DCR, bearer token).
    LogsIngestion,
    /// HTTP Data Collector API (SharedKey).
    DataCollector,
}

impl Sink {
    /// Largest request body.
    pub fn max_body_bytes(self) -> usize {
        match self {
            Sink::LogsIngestion => LOGS_INGESTION_MAX_BYTES,
            Sink::DataCollector => DATA_COLLECTOR_MAX_BYTES,
        }
    }

    /// Largest field value.
    pub fn max_field_bytes(self) -> usize {
        match self {
            Sink::LogsIngestion => LOGS_INGESTION_MAX_FIELD_BYTES,
            Sink::DataCollector => DATA_COLLECTOR_MAX_FIELD_BYTES,
        }
    }
}

/// A request body of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// A JSON array of rows.
    pub body: Vec<u8>,
    /// Rows in it.
    pub rows: u32,
    /// Field values cut to the limit.
    pub truncated_fields: u32,
}

/// Pack rows (JSON objects) into bodies within the sink's limits, keeping their order. Field
/// values over the field limit are cut and marked; a row that is still too big for one request is
/// an error naming it (nothing is dropped silently).
pub fn batch_rows(rows: &[String], sink: Sink) -> Result<Vec<Batch>> {
    let max_body = sink.max_body_bytes();
    let mut batches = vec![];
    let mut current = Batch { body: vec![b'['], rows: 0, truncated_fields: 0 };
    for (i, row) in rows.iter().enumerate() {
        let (row, truncated) = fit_row(i, row, sink.max_field_bytes())?;
        // `[` + row + `]` must fit on its own.
        if row.len() + 2 > max_body {
            return Err(Error::TooLarge(format!(
                "row {i} is {} bytes after cutting long fields; one request takes at most {max_body}",
                row.len()
            )));
        }
        let extra = row.len() + usize::from(current.rows > 0) + 1;
        if current.rows > 0 && current.body.len() + extra > max_body {
            current.body.push(b']');
            batches.push(std::mem::replace(&mut current, Batch { body: vec![b'['], rows: 0, truncated_fields: 0 }));
        }
        if current.rows > 0 {
            current.body.push(b',');
        }
        current.body.extend_from_slice(row.as_bytes());
        current.rows += 1;
        current.truncated_fields += truncated;
    }
    if current.rows > 0 {
        current.body.push(b']');
        batches.push(current);
    }
    Ok(batches)
}

/// Check that `row` is a JSON object and cut its oversize values. Rows shorter than the field limit
/// cannot hold an oversize value and are only syntax-checked.
fn fit_row(index: usize, row: &str, max_field: usize) -> Result<(std::borrow::Cow<'_, str>, u32)> {
    let not_object = || Error::InvalidJson(format!("row {index} is not a JSON object"));
    if row.len() <= max_field {
        serde_json::from_str::<serde::de::IgnoredAny>(row).map_err(|e| Error::json(&format!("row {index}"), e))?;
        if !row.trim_start().starts_with('{') {
            return Err(not_object());
        }
        return Ok((std::borrow::Cow::Borrowed(row.trim()), 0));
    }
    let mut value: serde_json::Map<String, Value> = serde_json::from_str(row).map_err(|_| not_object())?;
    let mut truncated = 0;
    for v in value.values_mut() {
        // A dynamic (array/object) value counts as its JSON text.
        let len = match v {
            Value::String(s) => s.len(),
            Value::Array(_) | Value::Object(_) => v.to_string().len(),
            _ => continue,
        };
        if len > max_field {
            let text = match &mut *v {
                Value::String(s) => std::mem::take(s),
                other => other.to_string(),
            };
            *v = Value::String(truncate(&text, max_field));
            truncated += 1;
        }
    }
    let out = serde_json::to_string(&value).map_err(|e| Error::json(&format!("row {index}"), e))?;
    Ok((std::borrow::Cow::Owned(out), truncated))
}

/// Cut `text` so that it and the marker fit in `max` bytes, at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let marker = format!("{TRUNCATION_MARKER}{}]", text.len());
    let mut keep = max.saturating_sub(marker.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{marker}", &text[..keep])
}

/// Where Logs Ingestion rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsIngestionTarget {
    /// Data collection endpoint URL.
    pub endpoint: String,
    /// `dcr-` + 32 hex digits.
    pub dcr_immutable_id: String,
    /// `Custom-...`.
    pub stream: String,
}

/// `POST {endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`.
pub fn logs_ingestion_request(
    target: &LogsIngestionTarget,
    token: &str,
    body: &[u8],
    gzip: bool,
) -> Result<OutgoingRequest> {
    let endpoint = base_url("endpoint", &target.endpoint)?;
    let dcr = &target.dcr_immutable_id;
    let hex = dcr.strip_prefix("dcr-").unwrap_or_default();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::arg("dcr-immutable-id must be `dcr-` followed by 32 hex digits (the DCR's immutableId)"));
    }
    let stream = &target.stream;
    let name = stream.strip_prefix(crate::schema::STREAM_PREFIX).unwrap_or_default();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::arg(
            "stream must be `Custom-` followed by letters, digits and underscores (a stream of the DCR)",
        ));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()).is_none_or(|b| *b != b'[') {
        return Err(Error::arg("body must be a JSON array of rows (see batch-rows)"));
    }
    let mut headers = vec![
        ("Authorization".to_string(), bearer(token)?),
        ("Content-Type".to_string(), "application/json".to_string()),
    ];
    let body = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(body).and_then(|_| enc.finish()).map_err(|e| Error::arg(format!("gzip failed: {e}")))?
    } else {
        body.to_vec()
    };
    if gzip {
        headers.push(("Content-Encoding".to_string(), "gzip".to_string()));
    }
    if body.len() > LOGS_INGESTION_MAX_BYTES {
        return Err(Error::TooLarge(format!(
            "body is {} bytes; Logs Ingestion takes at most {LOGS_INGESTION_MAX_BYTES} per call (use batch-rows)",
            body.len()
        )));
    }
    Ok(OutgoingRequest {
        method: "POST".into(),
        url: format!("{endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version={LOGS_INGESTION_API_VERSION}"),
        headers,
        body,
    })
}

/// Forward mode: `POST {base}/{table}` with the batch (a JSON array of rows) for a log shipper's
/// HTTP input (Fluent Bit `http`, Vector `http_server`); the path names the table, so the shipper
/// can tag and route each row. Any 2xx means the shipper took every row.
pub fn forward_request(base: &str, table: &str, body: &[u8]) -> Result<OutgoingRequest> {
    let base = base_url("forward-url", base)?;
    if !table.starts_with(|c: char| c.is_ascii_alphabetic())
        || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::arg("table must be letters, digits and underscores"));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()).is_none_or(|b| *b != b'[') {
        return Err(Error::arg("body must be a JSON array of rows (see batch-rows)"));
    }
    Ok(OutgoingRequest {
        method: "POST".into(),
        url: format!("{base}/{table}"),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.to_vec(),
    })
}

/// Where Data Collector rows go. `Debug` hides the shared key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataCollectorTarget {
    /// Log Analytics workspace id (GUID).
    pub workspace_id: String,
    /// Primary or secondary key (base64).
    pub shared_key: String,
    /// Letters, digits, underscore; at most 100.
    pub log_type: String,
    /// Column holding the row time, if any.
    pub time_generated_field: Option<String>,
    /// Base URL override (tests, sovereign clouds).
    pub base_url: Option<String>,
}

impl fmt::Debug for DataCollectorTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataCollectorTarget")
            .field("workspace_id", &self.workspace_id)
            .field("shared_key", &"<redacted>")
            .field("log_type", &self.log_type)
            .field("time_generated_field", &self.time_generated_field)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// `POST https://{workspace}.ods.opinsights.azure.com/api/logs?api-version=2016-04-01`, signed.
pub fn data_collector_request(target: &DataCollectorTarget, date: &str, body: &[u8]) -> Result<OutgoingRequest> {
    let lt = &target.log_type;
    if lt.is_empty()
        || lt.chars().count() > MAX_LOG_TYPE_CHARS
        || !lt.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::arg(format!(
            "log-type must be 1 to {MAX_LOG_TYPE_CHARS} letters, digits or underscores (the service appends _CL)"
        )));
    }
    if body.len() > DATA_COLLECTOR_MAX_BYTES {
        return Err(Error::TooLarge(format!(
            "body is {} bytes; the Data Collector API takes at most {DATA_COLLECTOR_MAX_BYTES} per post",
            body.len()
        )));
    }
    let authorization = shared_key_authorization(&target.workspace_id, &target.shared_key, date, body.len() as u64)?;
    let base = match &target.base_url {
        Some(b) => base_url("base-url", b)?.to_string(),
        None => format!("https://{}.ods.opinsights.azure.com", target.workspace_id),
    };
    let mut headers = vec![
        ("Authorization".to_string(), authorization),
        // Exactly this: a charset parameter can make the signature check fail (403).
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Log-Type".to_string(), lt.clone()),
        ("x-ms-date".to_string(), date.to_string()),
    ];
    if let Some(f) = &target.time_generated_field {
        let ok = f.starts_with(|c: char| c.is_ascii_alphabetic())
            && f.len() <= MAX_LOG_TYPE_CHARS
            && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(Error::arg(
                "time-generated-field must be the name of a field of the rows (letters, digits, _)",
            ));
        }
        headers.push(("time-generated-field".to_string(), f.clone()));
    }
    Ok(OutgoingRequest {
        method: "POST".into(),
        url: format!("{base}/api/logs?api-version={DATA_COLLECTOR_API_VERSION}"),
        headers,
        body: body.to_vec(),
    })
}

/// `SharedKey {workspace}:{base64(HMAC-SHA256(base64-decode(key), string-to-sign))}` where the
/// string to sign is `POST\n{length}\napplication/json\nx-ms-date:{date}\n/api/logs`.
pub fn shared_key_authorization(
    workspace_id: &str,
    shared_key: &str,
    date: &str,
    content_length: u64,
) -> Result<String> {
    if !is_guid(workspace_id) {
        return Err(Error::arg("workspace-id must be the Log Analytics workspace id (a GUID)"));
    }
    let parsed = httpdate::parse_http_date(date)
        .map_err(|_| Error::arg("date must be an RFC 1123 date such as `Mon, 04 Apr 2016 08:00:00 GMT`"))?;
    if httpdate::fmt_http_date(parsed) != date {
        return Err(Error::arg("date must be in RFC 1123 form exactly: `Mon, 04 Apr 2016 08:00:00 GMT`"));
    }
    let key = BASE64
        .decode(shared_key.trim())
        .map_err(|_| Error::arg("shared-key is not base64: copy the workspace's primary or secondary key"))?;
    if key.is_empty() {
        return Err(Error::arg("shared-key is empty"));
    }
    let to_sign = format!("POST\n{content_length}\napplication/json\nx-ms-date:{date}\n/api/logs");
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| Error::arg("shared-key cannot key HMAC-SHA256"))?;
    mac.update(to_sign.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    Ok(format!("SharedKey {workspace_id}:{signature}"))
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}
