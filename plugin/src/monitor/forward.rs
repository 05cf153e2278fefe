//! Forward mode: rows go to a log shipper's HTTP input instead of Azure Monitor.

use crate::error::{Error, Result};
use crate::http::{OutgoingRequest, base_url};

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
