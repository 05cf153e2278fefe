//! Batching rows for Azure Monitor: request bodies within each API's limits (1 MB for Logs
//! Ingestion, 30 MB for the Data Collector API), field values cut to the field limit and marked,
//! order kept, nothing dropped silently.

use serde_json::Value;

use super::Sink;
use crate::error::{Error, Result};

/// Marks a field value cut to the sink's limit; followed by the original size.
pub const TRUNCATION_MARKER: &str = "…[truncated by teams-sentinel; original bytes: ";

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
