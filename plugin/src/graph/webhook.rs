//! The Microsoft Graph change-notification webhook: validation handshake, deliveries, lifecycle
//! events. Pure: an [`IncomingRequest`] and [`Settings`] in, an [`Outcome`] (the response to send
//! and what was extracted) out.

use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::{IncomingRequest, Response};

/// Body size accepted when `Settings::max_body_bytes` is 0.
pub const DEFAULT_MAX_BODY_BYTES: u32 = 1024 * 1024;
/// Longest validation token echoed (decoded bytes). Graph's are a few hundred bytes.
pub const MAX_VALIDATION_TOKEN_BYTES: usize = 4096;
/// The query parameter of the handshake, exact casing.
pub const VALIDATION_TOKEN_PARAM: &str = "validationToken";
/// `@odata.type` of a callRecord resource, compared case-insensitively (its casing varies).
pub const CALL_RECORD_ODATA_TYPE: &str = "#microsoft.graph.callrecord";
/// Resource path prefix of callRecords (Graph sends it without a leading slash).
pub const CALL_RECORD_RESOURCE_PREFIX: &str = "communications/callRecords/";

/// How to judge a request. `Debug` never shows the clientState values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Accepted clientState values (secrets).
    pub client_states: Vec<String>,
    /// Tenant ids allowed to deliver; empty means any.
    pub allowed_tenants: Vec<String>,
    /// Largest body accepted; 0 means [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: u32,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("client_states", &format_args!("<{} redacted>", self.client_states.len()))
            .field("allowed_tenants", &self.allowed_tenants)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// A callRecord is ready (or has a newer version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The callRecord id.
    pub call_id: String,
    /// The subscription that delivered it.
    pub subscription_id: String,
    /// The tenant it belongs to.
    pub tenant_id: String,
    /// `created`, `updated`, ...
    pub change_type: String,
    /// `communications/callRecords/{id}`.
    pub resource: String,
    /// When the subscription expires.
    pub subscription_expiration: Option<String>,
}

/// The lifecycle events Graph sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleKind {
    /// Reauthorize or renew the subscription.
    ReauthorizationRequired,
    /// Create the subscription again, then resync.
    SubscriptionRemoved,
    /// Notifications were lost: resync.
    Missed,
    /// A value added after this version.
    Unknown,
}

impl LifecycleKind {
    fn parse(event: &str) -> Self {
        match event {
            "reauthorizationRequired" => Self::ReauthorizationRequired,
            "subscriptionRemoved" => Self::SubscriptionRemoved,
            "missed" => Self::Missed,
            _ => Self::Unknown,
        }
    }
}

/// A lifecycle notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    /// What happened.
    pub kind: LifecycleKind,
    /// The `lifecycleEvent` value as sent.
    pub event: String,
    /// The subscription concerned.
    pub subscription_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its expiry.
    pub subscription_expiration: Option<String>,
}

/// Why an item of a delivery was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// clientState missing or not accepted: forged or foreign.
    ClientStateMismatch,
    /// Tenant not in the allowed list.
    TenantNotAllowed,
    /// Valid, but not about a callRecord.
    NotACallRecord,
    /// Not a notification object, or a required field is missing.
    Malformed,
}

/// An item that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Position in the `value` array.
    pub index: u32,
    /// Why.
    pub reason: RejectReason,
    /// Details (never the clientState).
    pub detail: String,
}

/// What kind of request it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A validation handshake.
    Validation,
    /// A notification delivery.
    Delivery,
    /// Refused before reading notifications.
    Refused,
}

/// The response to send and what the request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Kind of request.
    pub kind: RequestKind,
    /// What to answer.
    pub response: Response,
    /// Accepted callRecord notifications, one per call id and tenant, in order of first appearance.
    pub notifications: Vec<Notification>,
    /// Lifecycle events.
    pub lifecycle: Vec<LifecycleEvent>,
    /// Items not accepted.
    pub rejected: Vec<Rejected>,
    /// Notifications folded into an earlier one for the same call id and tenant.
    pub duplicates: u32,
}

impl Outcome {
    fn refused(status: u16, reason: &str) -> Self {
        let mut response = Response::text(status, reason);
        if status == 405 {
            response.headers.push(("Allow".into(), "POST".into()));
        }
        Outcome {
            kind: RequestKind::Refused,
            response,
            notifications: vec![],
            lifecycle: vec![],
            rejected: vec![],
            duplicates: 0,
        }
    }
}

/// Judge one request to the notification or lifecycle URL.
pub fn handle(settings: &Settings, request: &IncomingRequest) -> Outcome {
    if !request.method.eq_ignore_ascii_case("POST") {
        return Outcome::refused(405, "only POST is accepted");
    }
    let max = match settings.max_body_bytes {
        0 => DEFAULT_MAX_BODY_BYTES,
        n => n,
    } as usize;
    if request.body.len() > max {
        return Outcome::refused(413, &format!("body is larger than {max} bytes"));
    }
    if let Some(token) = validation_token(&request.path_and_query) {
        return validation(token);
    }
    delivery(settings, &request.body)
}

/// The decoded `validationToken` query value, if the query has one.
fn validation_token(path_and_query: &str) -> Option<std::borrow::Cow<'_, str>> {
    let (_, query) = path_and_query.split_once('?')?;
    let query = query.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == VALIDATION_TOKEN_PARAM).map(|(_, v)| v)
}

fn validation(token: std::borrow::Cow<'_, str>) -> Outcome {
    if token.is_empty() {
        return Outcome::refused(400, "validationToken is empty");
    }
    if token.len() > MAX_VALIDATION_TOKEN_BYTES {
        return Outcome::refused(400, &format!("validationToken is longer than {MAX_VALIDATION_TOKEN_BYTES} bytes"));
    }
    // The token is opaque and untrusted: echoed as plain text, never parsed or rendered.
    Outcome {
        kind: RequestKind::Validation,
        response: Response {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/plain".into()),
                ("X-Content-Type-Options".into(), "nosniff".into()),
            ],
            body: token.into_owned().into_bytes(),
        },
        notifications: vec![],
        lifecycle: vec![],
        rejected: vec![],
        duplicates: 0,
    }
}

#[derive(Deserialize)]
struct Delivery {
    value: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Item {
    subscription_id: Option<String>,
    subscription_expiration_date_time: Option<String>,
    change_type: Option<String>,
    resource: Option<String>,
    resource_data: Option<ResourceData>,
    client_state: Option<String>,
    tenant_id: Option<String>,
    lifecycle_event: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResourceData {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    id: Option<String>,
}

fn delivery(settings: &Settings, body: &[u8]) -> Outcome {
    let delivery: Delivery = match crate::values::from_json(body) {
        Ok(d) => d,
        Err(e) => return Outcome::refused(400, &format!("body is not a Graph notification payload: {e}")),
    };
    let Some(items) = delivery.value else {
        return Outcome::refused(400, "body has no \"value\" array of notifications");
    };
    let accepted_states: Vec<[u8; 32]> = settings.client_states.iter().map(|s| digest(s)).collect();
    let mut out = Outcome {
        kind: RequestKind::Delivery,
        response: Response::text(202, ""),
        notifications: vec![],
        lifecycle: vec![],
        rejected: vec![],
        duplicates: 0,
    };
    for (index, raw) in items.into_iter().enumerate() {
        let index = index as u32;
        let reject = |reason, detail: String| Rejected { index, reason, detail };
        match judge_item(settings, &accepted_states, raw) {
            Ok(Judged::Notification(n)) => {
                // The same call may reach two tenants' subscriptions: each keeps its own.
                let seen = out
                    .notifications
                    .iter()
                    .any(|o| o.call_id == n.call_id && o.tenant_id.eq_ignore_ascii_case(&n.tenant_id));
                if seen {
                    out.duplicates += 1;
                } else {
                    out.notifications.push(n);
                }
            }
            Ok(Judged::Lifecycle(l)) => out.lifecycle.push(l),
            Err((reason, detail)) => out.rejected.push(reject(reason, detail)),
        }
    }
    out.response.body = format!(
        "accepted {} notification(s), {} lifecycle event(s); rejected {}",
        out.notifications.len(),
        out.lifecycle.len(),
        out.rejected.len()
    )
    .into_bytes();
    out
}

enum Judged {
    Notification(Notification),
    Lifecycle(LifecycleEvent),
}

fn judge_item(
    settings: &Settings,
    accepted_states: &[[u8; 32]],
    raw: serde_json::Value,
) -> Result<Judged, (RejectReason, String)> {
    use RejectReason::*;
    if !raw.is_object() {
        return Err((Malformed, "item is not a JSON object".into()));
    }
    let item: Item =
        serde_json::from_value(raw).map_err(|e| (Malformed, format!("item has a field of the wrong type: {e}")))?;
    let subscription_id =
        item.subscription_id.filter(|s| !s.is_empty()).ok_or((Malformed, "item has no subscriptionId".to_string()))?;
    if !client_state_accepted(accepted_states, item.client_state.as_deref()) {
        let detail = if item.client_state.is_none() {
            "item has no clientState"
        } else {
            "clientState does not match any accepted value"
        };
        return Err((ClientStateMismatch, format!("{detail} (subscription {subscription_id})")));
    }
    let tenant_id = item.tenant_id.filter(|t| !t.is_empty()).ok_or((Malformed, "item has no tenantId".to_string()))?;
    if !settings.allowed_tenants.is_empty()
        && !settings.allowed_tenants.iter().any(|t| t.eq_ignore_ascii_case(&tenant_id))
    {
        return Err((TenantNotAllowed, format!("tenant {tenant_id} is not in the allowed tenants")));
    }
    if let Some(event) = item.lifecycle_event {
        return Ok(Judged::Lifecycle(LifecycleEvent {
            kind: LifecycleKind::parse(&event),
            event,
            subscription_id,
            tenant_id,
            subscription_expiration: item.subscription_expiration_date_time,
        }));
    }
    let resource = item.resource.unwrap_or_default();
    let data = item.resource_data.unwrap_or_default();
    let is_call_record = match &data.odata_type {
        Some(t) => t.eq_ignore_ascii_case(CALL_RECORD_ODATA_TYPE),
        None => resource_call_id(&resource).is_some(),
    };
    if !is_call_record {
        let what = data.odata_type.as_deref().unwrap_or(&resource);
        return Err((NotACallRecord, format!("resource `{what}` is not a callRecord")));
    }
    let call_id = data
        .id
        .filter(|id| !id.is_empty())
        .or_else(|| resource_call_id(&resource).map(str::to_string))
        .ok_or((Malformed, "callRecord notification has no resourceData.id and no id in resource".to_string()))?;
    if !crate::graph::is_valid_call_id(&call_id) {
        return Err((Malformed, "callRecord id has characters an id cannot have".to_string()));
    }
    Ok(Judged::Notification(Notification {
        call_id,
        subscription_id,
        tenant_id,
        change_type: item.change_type.unwrap_or_default(),
        resource,
        subscription_expiration: item.subscription_expiration_date_time,
    }))
}

/// The id in `communications/callRecords/{id}` (a leading slash and case of the prefix tolerated).
fn resource_call_id(resource: &str) -> Option<&str> {
    let r = resource.trim_start_matches('/');
    let prefix = r.get(..CALL_RECORD_RESOURCE_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(CALL_RECORD_RESOURCE_PREFIX) {
        return None;
    }
    let id = &r[CALL_RECORD_RESOURCE_PREFIX.len()..];
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Constant time in the value compared: digests are compared, and every accepted value is tried.
fn client_state_accepted(accepted: &[[u8; 32]], got: Option<&str>) -> bool {
    let Some(got) = got else { return false };
    let got = digest(got);
    let mut ok = subtle::Choice::from(0);
    for a in accepted {
        ok |= a.ct_eq(&got);
    }
    ok.into()
}
