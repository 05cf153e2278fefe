//! What the fuzz targets share: reading a fuzz input as an HTTP message (so that the repository's
//! raw `.http` examples are seeds as they are), and the row checks of the expansion.

use callrecords::schema::{ColumnType, Table};
use serde_json::Value;

/// An HTTP message read leniently from fuzz bytes: `head` is the start line and headers (up to the
/// first blank line, CRLF or LF), `body` the rest. Input without a blank line is all body.
pub struct Message<'a> {
    /// The start line (`POST /path HTTP/1.1` or `HTTP/1.1 429 Too Many Requests`), if any.
    pub start: Option<String>,
    /// `Name: value` header lines.
    pub headers: Vec<(String, String)>,
    /// The rest.
    pub body: &'a [u8],
}

/// Split `data` into start line, headers and body when it starts like an HTTP message (`prefix`,
/// e.g. `HTTP/` or a method), else all of it is the body.
pub fn message<'a>(data: &'a [u8], looks_like_head: impl Fn(&[u8]) -> bool) -> Message<'a> {
    let all_body = Message { start: None, headers: vec![], body: data };
    if !looks_like_head(data) {
        return all_body;
    }
    let (head, body) = match find(data, b"\r\n\r\n") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => match find(data, b"\n\n") {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => (data, &data[data.len()..]),
        },
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().map(str::to_string);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    Message { start, headers, body }
}

/// Field `name` (declared at `position`) of a struct the core reads with serde's derived
/// `Deserialize`: from a JSON object by name, or, serde's sequence form of a struct, from a JSON
/// array by position. The core's bodies (`{"value": [...]}`) are read both ways: `[[...]]` is a
/// delivery and a page too (see `fuzz/regressions/webhook/`).
pub fn struct_field<'v>(v: &'v Value, name: &str, position: usize) -> Option<&'v Value> {
    match v {
        Value::Object(o) => o.get(name),
        Value::Array(a) => a.get(position),
        _ => None,
    }
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether `haystack` contains `needle` (not searched with a `memcmp` per position: libFuzzer
/// intercepts each one, which made this the hottest spot of a run).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(haystack).contains(needle)
}

/// A row of `table`: a JSON object with exactly the table's columns, each value of its column's
/// type or `null`, timestamps in UTC. Returns the object.
pub fn check_row(table: &Table, row: &str) -> serde_json::Map<String, Value> {
    let value: Value =
        serde_json::from_str(row).unwrap_or_else(|e| panic!("{} row is not JSON ({e}): {row}", table.name));
    let Value::Object(object) = value else { panic!("{} row is not a JSON object: {row}", table.name) };
    let mut got: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{} row has exactly the table's columns", table.name);
    for column in table.columns {
        let v = &object[column.name];
        let ok = match column.kind {
            _ if v.is_null() => true,
            ColumnType::String => v.is_string(),
            ColumnType::Long => v.is_i64(),
            ColumnType::Real => v.is_number(),
            ColumnType::Boolean => v.is_boolean(),
            ColumnType::Dynamic => true,
            ColumnType::Datetime => {
                v.as_str().is_some_and(|s| s.ends_with('Z') && callrecords::values::parse_timestamp(s).is_some())
            }
        };
        assert!(ok, "{}.{} is not a {:?}: {v}", table.name, column.name, column.kind);
    }
    object
}
