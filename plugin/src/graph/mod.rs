//! Microsoft Graph: the requests the pipeline sends and the answers it reads (the tokens they carry
//! come from [`crate::entra`]).
//!
//! | file | rules |
//! |---|---|
//! | `graph/mod.rs` | callRecord, participants_v2, next-page and List callRecords requests; merging pages |
//! | [`pstn`] | the PSTN and Direct Routing call logs: `getPstnCalls`, `getDirectRoutingCalls`, their 90-day ranges and throttle |
//! | [`subscriptions`] | subscriptions to `/communications/callRecords`: create, list, renew, reauthorize, delete |
//! | [`webhook`] | the change-notification endpoint: validation handshake, deliveries, lifecycle events |

pub mod pstn;
pub mod subscriptions;
pub mod webhook;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::http::{OutgoingRequest, base_url, bearer};

/// Graph API version used for callRecords.
pub const GRAPH_VERSION: &str = "v1.0";
/// Expansion that brings sessions and their segments with the record.
pub const CALL_RECORD_EXPAND: &str = "sessions($expand=segments)";
/// The link to the next page of sessions inside a callRecord.
pub const SESSIONS_NEXT_LINK: &str = "sessions@odata.nextLink";
/// The link to the next page of a collection.
pub const NEXT_LINK: &str = "@odata.nextLink";

/// One page of the List callRecords answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Ids of the callRecords on this page.
    pub ids: Vec<String>,
    /// Their versions, where the page gave them (in the order of `ids`).
    pub versions: Vec<Option<i64>>,
    /// The next page, if any.
    pub next_link: Option<String>,
}

/// `GET .../communications/callRecords/{id}?$expand=sessions($expand=segments)`.
pub fn call_record_request(graph_base_url: &str, call_id: &str, token: &str) -> Result<OutgoingRequest> {
    let base = graph_base(graph_base_url)?;
    check_call_id(call_id)?;
    get(format!("{base}/communications/callRecords/{call_id}?$expand={CALL_RECORD_EXPAND}"), token)
}

/// `GET .../communications/callRecords/{id}/participants_v2`.
pub fn participants_request(graph_base_url: &str, call_id: &str, token: &str) -> Result<OutgoingRequest> {
    let base = graph_base(graph_base_url)?;
    check_call_id(call_id)?;
    get(format!("{base}/communications/callRecords/{call_id}/participants_v2"), token)
}

/// GET an `@odata.nextLink`. The link must point at the same origin as `graph_base_url`, or the
/// bearer token would go to whoever wrote the link.
pub fn next_page_request(graph_base_url: &str, next_link: &str, token: &str) -> Result<OutgoingRequest> {
    let base = base_url("graph-base-url", graph_base_url)?;
    let origin_ok = next_link.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'));
    if !origin_ok {
        return Err(Error::arg(format!(
            "next-link does not start with the Graph base URL {base}/: refusing to send the token elsewhere"
        )));
    }
    if next_link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::arg("next-link contains whitespace or control characters"));
    }
    get(next_link.to_string(), token)
}

/// List callRecords whose `startDateTime` is in `[start, end)`.
pub fn list_call_records_request(graph_base_url: &str, start: &str, end: &str, token: &str) -> Result<OutgoingRequest> {
    let base = graph_base(graph_base_url)?;
    let s = crate::values::parse_timestamp(start).ok_or_else(|| Error::arg("start is not an ISO 8601 timestamp"))?;
    let e = crate::values::parse_timestamp(end).ok_or_else(|| Error::arg("end is not an ISO 8601 timestamp"))?;
    if e <= s {
        return Err(Error::arg("end must be after start"));
    }
    let filter = format!(
        "startDateTime ge {} and startDateTime lt {}",
        crate::values::format_timestamp(s),
        crate::values::format_timestamp(e)
    );
    let query =
        form_urlencoded::Serializer::new(String::new()).append_pair("$filter", &filter).finish().replace('+', "%20");
    get(format!("{base}/communications/callRecords?{query}"), token)
}

/// The next-page link of a callRecord (`sessions@odata.nextLink`) or of a page (`@odata.nextLink`).
pub fn next_link(body: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Links {
        #[serde(rename = "sessions@odata.nextLink")]
        sessions: Option<String>,
        #[serde(rename = "@odata.nextLink")]
        page: Option<String>,
    }
    let links: Links = crate::values::from_json(body.as_bytes()).map_err(|e| Error::json("Graph answer", e))?;
    Ok(links.sessions.or(links.page).filter(|l| !l.is_empty()))
}

/// Read a List callRecords page.
pub fn parse_list_page(body: &str) -> Result<ListPage> {
    #[derive(Deserialize)]
    struct Page {
        value: Vec<IdOnly>,
        #[serde(rename = "@odata.nextLink")]
        next_link: Option<String>,
    }
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
        #[serde(default)]
        version: Option<Value>,
    }
    let page: Page = crate::values::from_json(body.as_bytes()).map_err(|e| Error::json("List callRecords page", e))?;
    let version =
        |v: &Option<Value>| v.as_ref().and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    let versions = page.value.iter().map(|v| version(&v.version)).collect();
    Ok(ListPage { ids: page.value.into_iter().map(|v| v.id).collect(), versions, next_link: page.next_link })
}

/// Merge a callRecord with its further session pages and its participants_v2 pages.
pub fn merge_pages(call_record: &str, session_pages: &[String], participant_pages: &[String]) -> Result<String> {
    let mut record: Map<String, Value> = serde_json::from_str(call_record).map_err(|e| Error::json("callRecord", e))?;
    record.remove(SESSIONS_NEXT_LINK);
    let mut sessions = match record.remove("sessions") {
        Some(Value::Array(a)) => a,
        Some(Value::Null) | None => vec![],
        Some(_) => return Err(Error::InvalidJson("callRecord: sessions is not an array".into())),
    };
    for (i, page) in session_pages.iter().enumerate() {
        sessions.extend(page_values(page, &format!("session page {}", i + 2))?);
    }
    record.insert("sessions".into(), Value::Array(sessions));
    if !participant_pages.is_empty() {
        let mut participants = vec![];
        for (i, page) in participant_pages.iter().enumerate() {
            participants.extend(page_values(page, &format!("participants_v2 page {}", i + 1))?);
        }
        record.insert("participants_v2".into(), Value::Array(participants));
    }
    serde_json::to_string(&record).map_err(|e| Error::json("callRecord", e))
}

fn page_values(page: &str, what: &str) -> Result<Vec<Value>> {
    #[derive(Deserialize)]
    struct Page {
        value: Vec<Value>,
    }
    let p: Page = crate::values::from_json(page.as_bytes()).map_err(|e| Error::json(what, e))?;
    Ok(p.value)
}

/// Ids are GUIDs in practice; anything that could change the URL's meaning is refused.
pub fn is_valid_call_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_call_id(id: &str) -> Result<()> {
    if is_valid_call_id(id) {
        Ok(())
    } else {
        Err(Error::arg("call-id must be a callRecord id (letters, digits, '-', '_'; at most 128)"))
    }
}

pub(crate) fn get(url: String, token: &str) -> Result<OutgoingRequest> {
    Ok(OutgoingRequest {
        method: "GET".into(),
        url,
        headers: vec![("Authorization".into(), bearer(token)?), ("Accept".into(), "application/json".into())],
        body: vec![],
    })
}

pub(crate) fn graph_base(url: &str) -> Result<String> {
    Ok(format!("{}/{GRAPH_VERSION}", base_url("graph-base-url", url)?))
}
