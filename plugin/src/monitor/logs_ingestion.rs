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
/// Oldest `TimeGenerated` Logs Ingestion keeps, before the time a row arrives (2 days): an older
/// one is replaced by the time received, so a call shipped later than that (a backfill) gets the
/// shipping time as its `TimeGenerated`. The rows keep the call's own times (`StartDateTime`).
pub const TIME_GENERATED_MAX_AGE_SECS: i64 = 2 * 86_400;

/// What an operator shipping calls that started at or after `since` (ISO 8601) at `now_secs`
/// (Unix seconds) through Logs Ingestion must know about `TimeGenerated`, if anything.
pub fn time_generated_note(since: &str, now_secs: i64) -> Option<String> {
    let since = crate::values::parse_timestamp(since)?;
    (now_secs - since.secs > TIME_GENERATED_MAX_AGE_SECS).then(|| {
        format!(
            "note: Logs Ingestion stores a TimeGenerated older than {} days as the time the row arrives, so calls \
             from before then get today's TimeGenerated; the TeamsCalls parser times each leg by its start \
             (LegStart), TeamsPstnCalls each log row by its StartDateTime, and on the tables themselves \
             filter by StartDateTime",
            TIME_GENERATED_MAX_AGE_SECS / 86_400
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Azure keeps a TimeGenerated up to 2 days (172,800 s) before arrival: a window that starts
    /// exactly then needs no note, one a second earlier does.
    #[test]
    fn the_note_starts_past_two_days() {
        let since = "2026-11-20T00:00:00Z";
        let since_secs = 1_795_132_800; // 2026-11-20T00:00:00Z, counted by hand from 2026-01-01 (1_767_225_600) + 323 days
        assert_eq!(time_generated_note(since, since_secs + 172_800), None);
        let note = time_generated_note(since, since_secs + 172_801).unwrap();
        assert!(note.contains("older than 2 days"), "{note}");
        assert_eq!(time_generated_note("not a time", since_secs + 999_999), None);
    }
}
