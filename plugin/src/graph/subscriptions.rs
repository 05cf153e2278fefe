//! Graph subscriptions to `/communications/callRecords`: create, list, renew, reauthorize, delete.

use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::graph::{get, graph_base, is_valid_call_id};
use crate::http::{OutgoingRequest, bearer};

/// The resource a callRecords subscription watches.
pub const RESOURCE: &str = "/communications/callRecords";
/// Graph's longest expiry for a callRecords subscription.
pub const MAX_EXPIRATION_MINUTES: u32 = 4230;
/// What we ask for: a little under the maximum, so a skewed clock never makes Graph refuse it.
pub const EXPIRATION_MINUTES: u32 = 4200;

/// A subscription to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSubscription<'a> {
    /// Public https URL of the webhook.
    pub notification_url: &'a str,
    /// Lifecycle URL (Graph only takes it at creation).
    pub lifecycle_url: Option<&'a str>,
    /// clientState (secret, ≤ 128 characters).
    pub client_state: &'a str,
    /// `created`, `updated` or `created,updated`.
    pub change_types: &'a str,
    /// Expiry as an ISO 8601 timestamp.
    pub expiration: &'a str,
}

/// A subscription as Graph reports it (clientState is never kept).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Subscription id.
    pub id: String,
    /// Watched resource.
    #[serde(default)]
    pub resource: String,
    /// Change types.
    #[serde(default)]
    pub change_type: String,
    /// Webhook URL.
    #[serde(default)]
    pub notification_url: String,
    /// Lifecycle URL.
    #[serde(default)]
    pub lifecycle_notification_url: Option<String>,
    /// Expiry.
    #[serde(default, rename = "expirationDateTime")]
    pub expiration: String,
}

impl Subscription {
    /// True for a callRecords subscription (with or without a `$filter`).
    pub fn is_call_records(&self) -> bool {
        let r = self.resource.trim_start_matches('/');
        r.eq_ignore_ascii_case(&RESOURCE[1..]) || r.to_ascii_lowercase().starts_with("communications/callrecords?")
    }
}

/// `POST /subscriptions`.
pub fn create_request(graph_base_url: &str, s: &NewSubscription<'_>, token: &str) -> Result<OutgoingRequest> {
    if !s.notification_url.starts_with("https://") {
        return Err(Error::arg("notification-url must be a public https URL (Graph refuses anything else)"));
    }
    if s.client_state.is_empty() || s.client_state.chars().count() > 128 {
        return Err(Error::arg("client-state must be 1 to 128 characters"));
    }
    let types: Vec<&str> = s.change_types.split(',').map(str::trim).collect();
    if types.is_empty() || !types.iter().all(|t| *t == "created" || *t == "updated") {
        return Err(Error::arg("change-types must be created, updated or created,updated"));
    }
    crate::values::parse_timestamp(s.expiration)
        .ok_or_else(|| Error::arg("expiration is not an ISO 8601 timestamp"))?;
    let mut body = json!({
        "changeType": types.join(","),
        "notificationUrl": s.notification_url,
        "resource": RESOURCE,
        "expirationDateTime": s.expiration,
        "clientState": s.client_state,
    });
    if let Some(l) = s.lifecycle_url {
        if !l.starts_with("https://") {
            return Err(Error::arg("lifecycle-url must be a public https URL"));
        }
        body["lifecycleNotificationUrl"] = json!(l);
    }
    json_request("POST", format!("{}/subscriptions", graph_base(graph_base_url)?), token, body)
}

/// `GET /subscriptions` (all of the app's subscriptions; follow `@odata.nextLink`).
pub fn list_request(graph_base_url: &str, token: &str) -> Result<OutgoingRequest> {
    get(format!("{}/subscriptions", graph_base(graph_base_url)?), token)
}

/// `PATCH /subscriptions/{id}` with a new expiry.
pub fn renew_request(graph_base_url: &str, id: &str, expiration: &str, token: &str) -> Result<OutgoingRequest> {
    check_id(id)?;
    crate::values::parse_timestamp(expiration).ok_or_else(|| Error::arg("expiration is not an ISO 8601 timestamp"))?;
    let url = format!("{}/subscriptions/{id}", graph_base(graph_base_url)?);
    json_request("PATCH", url, token, json!({ "expirationDateTime": expiration }))
}

/// `POST /subscriptions/{id}/reauthorize` (answer to `reauthorizationRequired`).
pub fn reauthorize_request(graph_base_url: &str, id: &str, token: &str) -> Result<OutgoingRequest> {
    check_id(id)?;
    let url = format!("{}/subscriptions/{id}/reauthorize", graph_base(graph_base_url)?);
    json_request("POST", url, token, json!({}))
}

/// `DELETE /subscriptions/{id}`.
pub fn delete_request(graph_base_url: &str, id: &str, token: &str) -> Result<OutgoingRequest> {
    check_id(id)?;
    let mut r = get(format!("{}/subscriptions/{id}", graph_base(graph_base_url)?), token)?;
    r.method = "DELETE".into();
    Ok(r)
}

/// One subscription (the answer to create or renew).
pub fn parse_subscription(body: &str) -> Result<Subscription> {
    crate::values::from_json(body.as_bytes()).map_err(|e| Error::json("subscription", e))
}

/// A page of `GET /subscriptions`.
pub fn parse_subscription_page(body: &str) -> Result<(Vec<Subscription>, Option<String>)> {
    #[derive(Deserialize)]
    struct Page {
        value: Vec<Subscription>,
        #[serde(rename = "@odata.nextLink")]
        next_link: Option<String>,
    }
    let p: Page = crate::values::from_json(body.as_bytes()).map_err(|e| Error::json("subscriptions page", e))?;
    Ok((p.value, p.next_link))
}

fn check_id(id: &str) -> Result<()> {
    if is_valid_call_id(id) { Ok(()) } else { Err(Error::arg("subscription id must be a GUID")) }
}

fn json_request(method: &str, url: String, token: &str, body: serde_json::Value) -> Result<OutgoingRequest> {
    Ok(OutgoingRequest {
        method: method.into(),
        url,
        headers: vec![
            ("Authorization".into(), bearer(token)?),
            ("Content-Type".into(), "application/json".into()),
            ("Accept".into(), "application/json".into()),
        ],
        body: body.to_string().into_bytes(),
    })
}
