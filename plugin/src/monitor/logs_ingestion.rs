//! The Azure Monitor Logs Ingestion API: `POST` a JSON array of rows to a DCR stream through a
//! data collection endpoint, with an Entra bearer token, optionally gzipped.

use std::io::Write;

use crate::error::{Error, Result};
use crate::http::{OutgoingRequest, base_url, bearer};

/// Logs Ingestion API version.
pub const LOGS_INGESTION_API_VERSION: &str = "2023-01-01";
/// Largest Logs Ingestion call (1 MB; counted in decimal to stay clear of the limit).
pub const LOGS_INGESTION_MAX_BYTES: usize = 1_000_000;
/// Largest Logs Ingestion field value (64 KB).
pub const LOGS_INGESTION_MAX_FIELD_BYTES: usize = 64 * 1024;
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
