//! The HTTP Data Collector API (retired, kept for workspaces set up with it): the `POST` to
//! `/api/logs` and its SharedKey authorization, the HMAC-SHA256 signature of the string to sign
//! `POST\n{length}\napplication/json\nx-ms-date:{date}\n/api/logs`; and how that API names and types
//! the columns it creates (the workspace columns of the seed-compatible table).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::http::{OutgoingRequest, base_url};
use crate::schema::{self, Column, ColumnType};

/// Data Collector API version.
pub const DATA_COLLECTOR_API_VERSION: &str = "2016-04-01";
/// Largest Data Collector post (30 MB).
pub const DATA_COLLECTOR_MAX_BYTES: usize = 30_000_000;
/// Largest Data Collector field value (32 KB).
pub const DATA_COLLECTOR_MAX_FIELD_BYTES: usize = 32 * 1024;
/// Longest Data Collector `Log-Type`.
pub const MAX_LOG_TYPE_CHARS: usize = 100;
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
    if !crate::values::is_guid(workspace_id) {
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

/// The column the HTTP Data Collector API makes of a field: the field name with a type suffix
/// (`_s` text, `_d` number, `_b` boolean, `_t` date/time); a name that collides with a reserved
/// column (`type`) takes the reserved spelling (`Type_s`).
pub fn classic_column_name(c: &Column) -> String {
    let suffix = match c.kind {
        ColumnType::String | ColumnType::Dynamic => "_s",
        ColumnType::Long | ColumnType::Real => "_d",
        ColumnType::Boolean => "_b",
        ColumnType::Datetime => "_t",
    };
    let base = schema::RESERVED_COLUMNS.iter().find(|r| r.eq_ignore_ascii_case(c.name)).copied().unwrap_or(c.name);
    format!("{base}{suffix}")
}

/// The type of the column the Data Collector API makes of a field: text for text and JSON values,
/// a double for every number.
pub(super) fn classic_kind(c: &Column) -> ColumnType {
    match c.kind {
        ColumnType::String | ColumnType::Dynamic => ColumnType::String,
        ColumnType::Long | ColumnType::Real => ColumnType::Real,
        k => k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Data Collector API's documented suffixes: `_s` string, `_b` boolean, `_d` double,
    /// `_t` date/time; JSON values arrive as strings, every number as a double.
    #[test]
    fn classic_columns_take_the_data_collector_suffixes() {
        let col = |name, kind| Column { name, kind, description: "" };
        let cases = [
            (col("joinWebUrl", ColumnType::String), "joinWebUrl_s", ColumnType::String),
            (col("sessions", ColumnType::Dynamic), "sessions_s", ColumnType::String),
            (col("version", ColumnType::Long), "version_d", ColumnType::Real),
            (col("jitter", ColumnType::Real), "jitter_d", ColumnType::Real),
            (col("isTest", ColumnType::Boolean), "isTest_b", ColumnType::Boolean),
            (col("startDateTime", ColumnType::Datetime), "startDateTime_t", ColumnType::Datetime),
            // Reserved names keep the reserved spelling.
            (col("type", ColumnType::String), "Type_s", ColumnType::String),
            (col("tenantid", ColumnType::String), "TenantId_s", ColumnType::String),
        ];
        for (c, name, kind) in cases {
            assert_eq!((classic_column_name(&c), classic_kind(&c)), (name.to_string(), kind), "{}", c.name);
        }
    }
}
