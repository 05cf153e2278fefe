//! The conformance suite: scenarios any component claiming the `plugin` world must pass, with
//! expectations derived here (HMACs computed by this file, values read off the public docs and
//! the sample data), never by asking the component under test. `callrecords check` and the
//! integration tests run the same list.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use callrecords_host::Error;
use callrecords_host::Runtime;
use callrecords_host::bindings::{expand, graph, schema, sentinel, types, webhook};
use callrecords_host::rawhttp::parse_request;
use callrecords_test_kit::demo::{CONTOSO, FABRIKAM, demo_settings};
use callrecords_test_kit::fixtures;

/// One scenario.
pub struct Scenario {
    /// Short name, printed by `check`.
    pub name: &'static str,
    /// Runs it; `Err` says what differed.
    pub run: fn(&Runtime) -> Result<(), String>,
}

/// The outcome of one scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Scenario name.
    pub name: &'static str,
    /// `None` when it passed, else what differed.
    pub failure: Option<String>,
}

const P2P_ID: &str = "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01";
const GROUP_ID: &str = "8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02";
const ODDITIES_ID: &str = "c3a7e1f9-5b2d-4c8a-9e6f-1d4b7a3c8e05";

/// Every scenario, in the order `check` prints them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario { name: "schema-tables", run: schema_tables },
    Scenario { name: "webhook-validation", run: webhook_validation },
    Scenario { name: "webhook-created", run: webhook_created },
    Scenario { name: "webhook-odata-type-casing", run: webhook_odata_type_casing },
    Scenario { name: "webhook-forged-client-state", run: webhook_forged },
    Scenario { name: "webhook-tenant-not-allowed", run: webhook_tenants },
    Scenario { name: "webhook-lifecycle", run: webhook_lifecycle },
    Scenario { name: "webhook-refusals", run: webhook_refusals },
    Scenario { name: "graph-requests", run: graph_requests },
    Scenario { name: "graph-responses", run: graph_responses },
    Scenario { name: "expand-peer-to-peer", run: expand_peer_to_peer },
    Scenario { name: "expand-group-call-pages", run: expand_group_call_pages },
    Scenario { name: "expand-oddities", run: expand_oddities },
    Scenario { name: "expand-pstn-guest-anonymous", run: expand_pstn_guest },
    Scenario { name: "rows-match-schema", run: rows_match_schema },
    Scenario { name: "seed-row", run: seed_row },
    Scenario { name: "shared-key-signature", run: shared_key_signature },
    Scenario { name: "data-collector-request", run: data_collector_request },
    Scenario { name: "logs-ingestion-request", run: logs_ingestion_request },
    Scenario { name: "batching-limits", run: batching_limits },
    Scenario { name: "typed-errors", run: typed_errors },
];

/// Run every scenario.
pub fn run_all(rt: &Runtime) -> Vec<Outcome> {
    SCENARIOS.iter().map(|s| Outcome { name: s.name, failure: (s.run)(rt).err() }).collect()
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

macro_rules! ensure_eq {
    ($got:expr, $want:expr, $what:literal) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!("{}: got {:?}, want {:?}", $what, got, want));
        }
    }};
}

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

fn request(raw: &str) -> Result<types::IncomingRequest, String> {
    parse_request(raw.as_bytes())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

// ---- schema ------------------------------------------------------------------------------------

/// Azure Monitor's column rules, written independently of the plugin's own check.
pub fn azure_column_ok(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 45
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !["tenantid", "type", "_resourceid"].contains(&name.to_ascii_lowercase().as_str())
}

fn schema_tables(rt: &Runtime) -> Result<(), String> {
    let tables = rt.tables().map_err(e)?;
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    const CALL_RECORD_TABLES: [&str; 4] =
        ["TeamsCall_CL", "TeamsCallLeg_CL", "TeamsCallStream_CL", "TeamsCallParticipant_CL"];
    // The PSTN and Direct Routing logs: rows keyed by the log's own Id, not by a callRecord.
    const LOG_TABLES: [&str; 2] = ["TeamsPstnCall_CL", "TeamsDirectRoutingCall_CL"];
    for want in CALL_RECORD_TABLES.iter().chain(&LOG_TABLES).chain(&["TEAMSGraphCallRecords_CL"]) {
        ensure!(names.contains(want), "table {want} missing from {names:?}");
    }
    for t in &tables {
        ensure_eq!(t.stream, format!("Custom-{}", t.name), "stream name");
        ensure!(!t.columns.is_empty(), "{} has no columns", t.name);
        if t.name != "TEAMSGraphCallRecords_CL" {
            ensure!(t.columns[0].name == "TimeGenerated", "{}: TimeGenerated must come first", t.name);
            for c in &t.columns {
                ensure!(azure_column_ok(&c.name), "{}.{} breaks Azure's column rules", t.name, c.name);
            }
            let keys: &[&str] =
                if LOG_TABLES.contains(&t.name.as_str()) { &["Id"] } else { &["CallId", "CallVersion"] };
            for key in keys {
                ensure!(t.columns.iter().any(|c| c.name == *key), "{} lacks {key}", t.name);
            }
        }
    }
    let doc: Value = serde_json::from_str(&rt.tables_json().map_err(e)?).map_err(e)?;
    let listed = doc["tables"].as_array().map(Vec::len).unwrap_or(0);
    ensure_eq!(listed, tables.len(), "tables in tables-json");
    Ok(())
}

// ---- webhook -----------------------------------------------------------------------------------

fn webhook_validation(rt: &Runtime) -> Result<(), String> {
    let o = rt.handle(&demo_settings(&[]), &request(fixtures::VALIDATION)?).map_err(e)?;
    ensure!(matches!(o.kind, webhook::RequestKind::Validation), "kind {:?}", o.kind);
    ensure_eq!(o.response.status, 200, "status");
    let want = "Validation: Testing client application reachability for subscription Request-Id: \
                3bc1e4a8-93b1-4b4f-9c3b-1f0c1f1e2d3c";
    ensure_eq!(String::from_utf8_lossy(&o.response.body), want, "echoed token (URL-decoded)");
    let ct = header(&o.response.headers, "content-type").unwrap_or_default();
    ensure!(ct.starts_with("text/plain"), "content-type {ct:?}");
    ensure_eq!(header(&o.response.headers, "x-content-type-options"), Some("nosniff"), "nosniff");
    // An HTML-looking token is echoed as text, byte for byte, never interpreted.
    let mut r = request(fixtures::VALIDATION)?;
    r.path_and_query = "/api/notifications?validationToken=%3Cscript%3Ealert(1)%3C%2Fscript%3E+x".into();
    let o = rt.handle(&demo_settings(&[]), &r).map_err(e)?;
    ensure_eq!(String::from_utf8_lossy(&o.response.body), "<script>alert(1)</script> x", "untrusted token echo");
    // Over-long tokens are refused.
    r.path_and_query = format!("/api/notifications?validationToken={}", "a".repeat(10_000));
    let o = rt.handle(&demo_settings(&[]), &r).map_err(e)?;
    ensure_eq!(o.response.status, 400, "status for an over-long token");
    Ok(())
}

fn webhook_created(rt: &Runtime) -> Result<(), String> {
    let o = rt.handle(&demo_settings(&[CONTOSO]), &request(fixtures::CREATED)?).map_err(e)?;
    ensure!(matches!(o.kind, webhook::RequestKind::Delivery), "kind {:?}", o.kind);
    ensure!((200..300).contains(&o.response.status), "status {}", o.response.status);
    ensure_eq!(o.notifications.len(), 1, "notifications");
    let n = &o.notifications[0];
    ensure_eq!(n.call_id, P2P_ID, "call id");
    ensure_eq!(n.tenant_id, CONTOSO, "tenant");
    ensure_eq!(n.change_type, "created", "changeType");
    ensure_eq!(n.subscription_id, "9c4e1f22-5b3d-4a8e-b7c6-0d1e2f3a4b5c", "subscription");
    ensure_eq!(n.resource, format!("communications/callRecords/{P2P_ID}"), "resource");
    ensure!(o.rejected.is_empty() && o.lifecycle.is_empty(), "nothing else expected: {o:?}");
    // The same item twice in one POST is one notification and one duplicate.
    let mut r = request(fixtures::CREATED)?;
    let mut body: Value = serde_json::from_slice(&r.body).map_err(e)?;
    let item = body["value"][0].clone();
    body["value"].as_array_mut().ok_or("value")?.push(item);
    r.body = serde_json::to_vec(&body).map_err(e)?;
    let o = rt.handle(&demo_settings(&[]), &r).map_err(e)?;
    ensure_eq!((o.notifications.len(), o.duplicates), (1, 1), "(notifications, duplicates) for a repeated item");
    // The same call reaching another tenant's subscription is not a duplicate.
    body["value"][1]["tenantId"] = Value::from(FABRIKAM);
    r.body = serde_json::to_vec(&body).map_err(e)?;
    let o = rt.handle(&demo_settings(&[]), &r).map_err(e)?;
    ensure_eq!((o.notifications.len(), o.duplicates), (2, 0), "(notifications, duplicates) across two tenants");
    Ok(())
}

fn webhook_odata_type_casing(rt: &Runtime) -> Result<(), String> {
    let o = rt.handle(&demo_settings(&[]), &request(fixtures::UPDATED)?).map_err(e)?;
    ensure_eq!(o.notifications.len(), 1, "notifications for #microsoft.graph.callrecord");
    ensure_eq!(o.notifications[0].call_id, GROUP_ID, "call id");
    ensure_eq!(o.notifications[0].change_type, "updated", "changeType");
    // Without resourceData the id comes from the resource path.
    let mut r = request(fixtures::UPDATED)?;
    let mut body: Value = serde_json::from_slice(&r.body).map_err(e)?;
    body["value"][0].as_object_mut().ok_or("item")?.remove("resourceData");
    r.body = serde_json::to_vec(&body).map_err(e)?;
    let o = rt.handle(&demo_settings(&[]), &r).map_err(e)?;
    ensure_eq!(o.notifications.first().map(|n| n.call_id.as_str()), Some(GROUP_ID), "id from resource path");
    // Something that is not a callRecord is rejected as such.
    body["value"][0]["resource"] = Value::from("users/abc/messages/1");
    body["value"][0]["resourceData"] = serde_json::json!({"@odata.type": "#Microsoft.Graph.Message", "id": "1"});
    r.body = serde_json::to_vec(&body).map_err(e)?;
    let o = rt.handle(&demo_settings(&[]), &r).map_err(e)?;
    ensure!(
        o.rejected.len() == 1 && matches!(o.rejected[0].reason, webhook::RejectReason::NotACallRecord),
        "message notification: {:?}",
        o.rejected
    );
    Ok(())
}

fn webhook_forged(rt: &Runtime) -> Result<(), String> {
    let o = rt.handle(&demo_settings(&[]), &request(fixtures::FORGED)?).map_err(e)?;
    ensure_eq!(o.notifications.len(), 1, "accepted");
    ensure_eq!(o.notifications[0].call_id, ODDITIES_ID, "accepted id");
    ensure_eq!(o.rejected.len(), 1, "rejected");
    ensure!(matches!(o.rejected[0].reason, webhook::RejectReason::ClientStateMismatch), "{:?}", o.rejected[0]);
    ensure_eq!(o.rejected[0].index, 1, "index of the forged item");
    ensure!(!o.rejected[0].detail.contains("not-the-secret"), "detail echoes a clientState");
    ensure!((200..300).contains(&o.response.status), "forged items must not make Graph retry");
    // With no accepted clientState at all, nothing is accepted.
    let none = webhook::Settings { client_states: vec![], allowed_tenants: vec![], max_body_bytes: 0 };
    let o = rt.handle(&none, &request(fixtures::CREATED)?).map_err(e)?;
    ensure_eq!((o.notifications.len(), o.rejected.len()), (0, 1), "(accepted, rejected) with no clientState set");
    Ok(())
}

fn webhook_tenants(rt: &Runtime) -> Result<(), String> {
    let o = rt.handle(&demo_settings(&[CONTOSO]), &request(fixtures::TWO_TENANTS)?).map_err(e)?;
    ensure_eq!(o.notifications.len(), 1, "accepted");
    ensure_eq!(o.notifications[0].tenant_id, CONTOSO, "tenant of the accepted item");
    ensure!(
        o.rejected.len() == 1 && matches!(o.rejected[0].reason, webhook::RejectReason::TenantNotAllowed),
        "{:?}",
        o.rejected
    );
    let upper = CONTOSO.to_uppercase();
    let o = rt.handle(&demo_settings(&[&upper, FABRIKAM]), &request(fixtures::TWO_TENANTS)?).map_err(e)?;
    ensure_eq!(o.notifications.len(), 2, "accepted with both tenants allowed (GUIDs compared case-insensitively)");
    Ok(())
}

fn webhook_lifecycle(rt: &Runtime) -> Result<(), String> {
    let o = rt.handle(&demo_settings(&[]), &request(fixtures::MIXED_LIFECYCLE)?).map_err(e)?;
    ensure_eq!((o.notifications.len(), o.lifecycle.len()), (1, 1), "(notifications, lifecycle)");
    ensure!(matches!(o.lifecycle[0].kind, webhook::LifecycleKind::ReauthorizationRequired), "{:?}", o.lifecycle);
    for (raw, want) in [
        (fixtures::LIFECYCLE_REAUTH, "reauthorizationRequired"),
        (fixtures::LIFECYCLE_REMOVED, "subscriptionRemoved"),
        (fixtures::LIFECYCLE_MISSED, "missed"),
    ] {
        let o = rt.handle(&demo_settings(&[]), &request(raw)?).map_err(e)?;
        ensure!(o.lifecycle.len() == 1 && o.lifecycle[0].event == want, "{want}: {:?}", o.lifecycle);
        let kind_ok = match o.lifecycle[0].kind {
            webhook::LifecycleKind::ReauthorizationRequired => want == "reauthorizationRequired",
            webhook::LifecycleKind::SubscriptionRemoved => want == "subscriptionRemoved",
            webhook::LifecycleKind::Missed => want == "missed",
            webhook::LifecycleKind::Unknown => false,
        };
        ensure!(kind_ok, "{want} mapped to {:?}", o.lifecycle[0].kind);
        ensure!((200..300).contains(&o.response.status), "status {}", o.response.status);
    }
    let mut r = request(fixtures::LIFECYCLE_MISSED)?;
    r.body = String::from_utf8_lossy(&r.body).replace("\"missed\"", "\"somethingNew\"").into_bytes();
    let o = rt.handle(&demo_settings(&[]), &r).map_err(e)?;
    ensure!(
        o.lifecycle.len() == 1 && matches!(o.lifecycle[0].kind, webhook::LifecycleKind::Unknown),
        "future lifecycle value: {:?}",
        o.lifecycle
    );
    Ok(())
}

fn webhook_refusals(rt: &Runtime) -> Result<(), String> {
    let base = request(fixtures::CREATED)?;
    let with = |f: &dyn Fn(&mut types::IncomingRequest)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, types::IncomingRequest, webhook::Settings, u16)> = vec![
        ("GET", with(&|r| r.method = "GET".into()), demo_settings(&[]), 405),
        (
            "oversize",
            with(&|r| r.body = vec![b' '; 2048]),
            webhook::Settings { max_body_bytes: 1024, ..demo_settings(&[]) },
            413,
        ),
        ("not JSON", with(&|r| r.body = b"{\"value\": [".to_vec()), demo_settings(&[]), 400),
        ("no value array", with(&|r| r.body = b"{\"items\": []}".to_vec()), demo_settings(&[]), 400),
        ("value of the wrong type", with(&|r| r.body = b"{\"value\": 3}".to_vec()), demo_settings(&[]), 400),
        ("binary", with(&|r| r.body = vec![0xff, 0x00, 0xfe]), demo_settings(&[]), 400),
    ];
    for (what, req, settings, want) in cases {
        let o = rt.handle(&settings, &req).map_err(|err| format!("{what}: {err}"))?;
        ensure!(o.response.status == want, "{what}: status {} want {want}", o.response.status);
        ensure!(matches!(o.kind, webhook::RequestKind::Refused), "{what}: kind {:?}", o.kind);
        ensure!(!o.response.body.is_empty(), "{what}: no reason given");
    }
    let o = rt
        .handle(
            &demo_settings(&[]),
            &with(&|r| r.body = br#"{"value":[1,"x",{"clientState":"teams-sentinel-demo"}]}"#.to_vec()),
        )
        .map_err(e)?;
    ensure!(
        o.rejected.len() == 3 && o.rejected.iter().all(|r| matches!(r.reason, webhook::RejectReason::Malformed)),
        "malformed items are rejected one by one: {:?}",
        o.rejected
    );
    Ok(())
}

// ---- graph -------------------------------------------------------------------------------------

const GRAPH: &str = "https://graph.microsoft.com";

fn graph_requests(rt: &Runtime) -> Result<(), String> {
    let creds = graph::Credentials {
        login_base_url: "https://login.microsoftonline.com".into(),
        tenant_id: CONTOSO.into(),
        client_id: "11112222-3333-4444-5555-666677778888".into(),
        client_secret: "s3cr+t&=x".into(),
    };
    for (scope, want_scope) in [
        (graph::Scope::Graph, "https://graph.microsoft.com/.default"),
        (graph::Scope::Monitor, "https://monitor.azure.com//.default"),
    ] {
        let r = rt.token_request(&creds, scope).map_err(e)?;
        ensure_eq!(r.method, "POST", "token method");
        ensure_eq!(r.url, format!("https://login.microsoftonline.com/{CONTOSO}/oauth2/v2.0/token"), "token URL");
        ensure_eq!(header(&r.headers, "content-type"), Some("application/x-www-form-urlencoded"), "token content type");
        let form: Vec<(String, String)> = form_urlencoded::parse(&r.body).into_owned().collect();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        ensure_eq!(get("grant_type"), Some("client_credentials"), "grant_type");
        ensure_eq!(get("client_id"), Some("11112222-3333-4444-5555-666677778888"), "client_id");
        ensure_eq!(get("client_secret"), Some("s3cr+t&=x"), "client_secret (form-encoded, round-trips)");
        ensure_eq!(get("scope"), Some(want_scope), "scope");
    }
    let r = rt.call_record_request(GRAPH, P2P_ID, "tok").map_err(e)?;
    ensure_eq!(r.method, "GET", "callRecord method");
    ensure_eq!(
        r.url,
        format!(
            "https://graph.microsoft.com/v1.0/communications/callRecords/{P2P_ID}?$expand=sessions($expand=segments)"
        ),
        "callRecord URL"
    );
    ensure_eq!(header(&r.headers, "authorization"), Some("Bearer tok"), "authorization");
    let r = rt.participants_request(&format!("{GRAPH}/"), P2P_ID, "tok").map_err(e)?;
    ensure_eq!(
        r.url,
        format!("https://graph.microsoft.com/v1.0/communications/callRecords/{P2P_ID}/participants_v2"),
        "participants_v2 URL"
    );
    let next = rt.next_link(fixtures::GROUP_CALL).map_err(e)?.ok_or("group call has a sessions@odata.nextLink")?;
    ensure!(next.ends_with("$skiptoken=group-call.sessions-2"), "next link {next}");
    let r = rt.next_page_request(GRAPH, &next, "tok").map_err(e)?;
    ensure_eq!(r.url, next, "next page URL is the link itself");
    ensure_eq!(rt.next_link(fixtures::GROUP_SESSIONS_3).map_err(e)?, None, "last page has no link");
    let r = rt.list_call_records_request(GRAPH, "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", "tok").map_err(e)?;
    let query = r.url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let filter: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    ensure_eq!(
        filter,
        vec![(
            "$filter".to_string(),
            "startDateTime ge 2026-11-20T00:00:00Z and startDateTime lt 2026-11-21T00:00:00Z".to_string()
        )],
        "List filter"
    );
    ensure!(r.url.starts_with("https://graph.microsoft.com/v1.0/communications/callRecords?"), "List URL {}", r.url);
    ensure!(!r.url.contains(' '), "List URL is not encoded: {}", r.url);
    Ok(())
}

fn graph_responses(rt: &Runtime) -> Result<(), String> {
    let t = rt
        .parse_token_response(
            200,
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.x.y"}"#,
        )
        .map_err(e)?;
    ensure_eq!((t.token.as_str(), t.expires_in_seconds), ("eyJ0eXAi.x.y", 3599), "token");
    let t = rt.parse_token_response(200, br#"{"expires_in":"3600","access_token":"abc"}"#).map_err(e)?;
    ensure_eq!(t.expires_in_seconds, 3600, "expires_in as a string");
    match rt.parse_token_response(
        401,
        br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
    ) {
        Err(Error::Plugin(types::Error::Service(s))) => {
            ensure_eq!((s.status, s.code.as_str(), s.retryable), (401, "invalid_client", false), "token error");
        }
        other => return Err(format!("token error: {other:?}")),
    }
    let headers = vec![("Retry-After".to_string(), "12".to_string())];
    let body = br#"{"error":{"code":"TooManyRequests","message":"Application is over its request quota."}}"#;
    match rt.check_response(429, &headers, body, 0) {
        Err(Error::Plugin(types::Error::Service(s))) => {
            ensure_eq!((s.status, s.retry_after_seconds, s.retryable), (429, Some(12), true), "429");
            ensure_eq!(s.code, "TooManyRequests", "Graph error code");
        }
        other => return Err(format!("429: {other:?}")),
    }
    match rt.check_response(404, &[], br#"{"error":{"code":"NotFound","message":"gone"}}"#, 0) {
        Err(Error::Plugin(types::Error::Service(s))) => ensure!(!s.retryable, "404 is not retryable"),
        other => return Err(format!("404: {other:?}")),
    }
    rt.check_response(204, &[], b"", 0).map_err(e)?;
    let page = rt
        .parse_list_page(r#"{"value":[{"id":"a"},{"id":"b","version":2}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/x?$skiptoken=1"}"#)
        .map_err(e)?;
    ensure_eq!(page.ids, vec!["a".to_string(), "b".to_string()], "List ids");
    ensure!(page.next_link.is_some(), "List next link");
    Ok(())
}

// ---- expansion ---------------------------------------------------------------------------------

/// Rows of `table` as JSON objects.
pub fn table(tables: &[expand::TableRows], name: &str) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    let t = tables.iter().find(|t| t.table == name).ok_or_else(|| format!("no {name} rows"))?;
    t.rows
        .iter()
        .map(|r| match serde_json::from_str::<Value>(r) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Err(format!("{name}: a row is not a JSON object: {r}")),
        })
        .collect()
}

/// The whole group call: the record merged with its session and participant pages.
pub fn merged_group_call(rt: &Runtime) -> Result<String, String> {
    rt.merge_pages(
        fixtures::GROUP_CALL,
        &[fixtures::GROUP_SESSIONS_2.to_string(), fixtures::GROUP_SESSIONS_3.to_string()],
        &[fixtures::GROUP_PARTICIPANTS_1.to_string(), fixtures::GROUP_PARTICIPANTS_2.to_string()],
    )
    .map_err(e)
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn expand_peer_to_peer(rt: &Runtime) -> Result<(), String> {
    let tables = rt.expand(fixtures::PEER_TO_PEER).map_err(e)?;
    let calls = table(&tables, "TeamsCall_CL")?;
    ensure_eq!(calls.len(), 1, "call rows");
    let c = &calls[0];
    ensure_eq!(c["CallId"], Value::from(P2P_ID), "CallId");
    ensure_eq!(c["CallVersion"], Value::from(2), "CallVersion");
    ensure_eq!(c["CallType"], Value::from("peerToPeer"), "CallType");
    ensure_eq!(c["OrganizerDisplayName"], Value::from("Aiko Tanaka"), "organizer from organizer_v2");
    ensure_eq!(c["OrganizerTenantId"], Value::from(CONTOSO), "organizer tenant");
    ensure_eq!(c["ParticipantCount"], Value::Null, "no participant list in the record: unknown, not 0");
    ensure_eq!(
        (c["SessionCount"].clone(), c["SegmentCount"].clone(), c["StreamCount"].clone()),
        (Value::from(1), Value::from(1), Value::from(4)),
        "counts"
    );
    let legs = table(&tables, "TeamsCallLeg_CL")?;
    ensure_eq!(legs.len(), 1, "leg rows");
    let l = &legs[0];
    ensure_eq!(l["CallerDisplayName"], Value::from("Aiko Tanaka"), "caller from associatedIdentity");
    ensure_eq!(l["CallerIdentityType"], Value::from("user"), "caller identity type");
    ensure_eq!(l["CallerTenantId"], Value::from(CONTOSO), "caller tenant");
    ensure_eq!(l["CallerEndpointType"], Value::from("participant"), "caller endpoint type");
    ensure_eq!(l["CallerReflexiveIpAddress"], Value::from("198.51.100.23"), "caller public IP");
    ensure_eq!(l["CalleeIpAddress"], Value::from("10.20.14.77"), "callee IP");
    ensure_eq!(l["CalleeDisplayName"], Value::from("Ben Okafor"), "callee");
    let streams = table(&tables, "TeamsCallStream_CL")?;
    ensure_eq!(streams.len(), 4, "stream rows");
    // Jitter in the fixture: PT0.016S, PT0.0105S, PT0S, PT0.0213S -> milliseconds.
    let jitter: Vec<Option<f64>> = streams.iter().map(|s| num(&s["AverageJitterMs"])).collect();
    let want = [16.0, 10.5, 0.0, 21.3];
    ensure!(
        jitter.iter().zip(want).all(|(g, w)| g.is_some_and(|g| (g - w).abs() < 1e-9)),
        "AverageJitterMs {jitter:?} want {want:?}"
    );
    let rtt: Vec<Option<f64>> = streams.iter().map(|s| num(&s["AverageRoundTripTimeMs"])).collect();
    ensure!(
        rtt.iter().zip([42.0, 39.0, 41.0, 40.0]).all(|(g, w)| g.is_some_and(|g| (g - w).abs() < 1e-9)),
        "AverageRoundTripTimeMs {rtt:?}"
    );
    ensure_eq!(streams[0]["MediaLabel"], Value::from("main-audio"), "media label");
    ensure_eq!(streams[1]["AveragePacketLossRate"], Value::from(0.0127), "packet loss");
    Ok(())
}

fn expand_group_call_pages(rt: &Runtime) -> Result<(), String> {
    let merged = merged_group_call(rt)?;
    ensure_eq!(rt.next_link(&merged).map_err(e)?, None, "merged record keeps no next link");
    let tables = rt.expand(&merged).map_err(e)?;
    let c = &table(&tables, "TeamsCall_CL")?[0];
    ensure_eq!(c["SessionCount"], Value::from(90), "sessions across 3 pages (60 + 25 + 5)");
    ensure_eq!(c["StreamCount"], Value::from(180), "streams");
    ensure_eq!(c["ParticipantCount"], Value::from(12), "participants across 2 pages");
    ensure_eq!(c["FailedSegmentCount"], Value::from(14), "segments with failureInfo");
    ensure_eq!(c["CallVersion"], Value::from(5), "version");
    let tenants = c["TenantIds"].as_array().cloned().unwrap_or_default();
    ensure!(
        tenants.contains(&Value::from(CONTOSO)) && tenants.contains(&Value::from(FABRIKAM)),
        "TenantIds {tenants:?}"
    );
    ensure_eq!(table(&tables, "TeamsCallLeg_CL")?.len(), 90, "leg rows");
    ensure_eq!(table(&tables, "TeamsCallStream_CL")?.len(), 180, "stream rows");
    let parts = table(&tables, "TeamsCallParticipant_CL")?;
    ensure_eq!(parts.len(), 13, "participant rows (12 + organizer)");
    ensure_eq!(parts[0]["Role"], Value::from("organizer"), "organizer first");
    ensure!(parts.iter().all(|p| p["CallId"] == GROUP_ID), "every row carries the call id");
    // Without the pages, only the first 60 sessions are there: the merge is what completes it.
    let first_only = rt.expand(fixtures::GROUP_CALL).map_err(e)?;
    ensure_eq!(table(&first_only, "TeamsCall_CL")?[0]["SessionCount"], Value::from(60), "first page alone");
    Ok(())
}

fn expand_oddities(rt: &Runtime) -> Result<(), String> {
    let tables = rt.expand(fixtures::ODDITIES).map_err(e)?;
    let c = &table(&tables, "TeamsCall_CL")?[0];
    ensure_eq!(c["CallType"], Value::from("unknownFutureValue"), "unknown call type kept");
    ensure_eq!(c["CallVersion"], Value::from(7), "version");
    ensure!(
        c["Modalities"].as_array().is_some_and(|m| m.contains(&Value::from("brandNewModality"))),
        "modalities {:?}",
        c["Modalities"]
    );
    ensure_eq!(c["OrganizerDisplayName"], Value::from("Erik Lindqvist"), "organizer from the deprecated field");
    ensure_eq!(c["ParticipantCount"], Value::from(3), "participants from the deprecated list");
    let streams = table(&tables, "TeamsCallStream_CL")?;
    ensure_eq!(streams.len(), 2, "streams");
    let s = &streams[0];
    ensure_eq!(s["StreamDirection"], Value::from("bothWays"), "unknown direction kept");
    ensure_eq!(s["AverageJitterMs"], Value::from(62_500.0), "PT1M2.5S");
    ensure!(num(&s["MaxJitterMs"]).is_some_and(|v| (v - 0.0001).abs() < 1e-12), "PT0.0000001S: {}", s["MaxJitterMs"]);
    ensure_eq!(s["AveragePacketLossRate"], Value::Null, "\"NaN\" becomes null");
    ensure_eq!(s["AverageAudioDegradation"], Value::from(1.25), "\"1.25\" becomes 1.25");
    ensure_eq!(s["AudioCodec"], Value::Null, "null codec");
    ensure_eq!(streams[1]["AudioCodec"], Value::from("brandNewCodec"), "unknown codec kept");
    let legs = table(&tables, "TeamsCallLeg_CL")?;
    ensure_eq!(legs.len(), 3, "legs");
    ensure_eq!(legs[0]["CallerEndpointType"], Value::from("service"), "service endpoint");
    ensure_eq!(legs[0]["CallerServiceRole"], Value::from("customBot"), "service role");
    ensure_eq!(legs[0]["CalleeDisplayName"], Value::from("Erik Lindqvist"), "callee from deprecated identity");
    ensure_eq!(legs[0]["StartDateTime"], Value::from("2026-11-20T08:00:00.12Z"), "2 fraction digits kept");
    ensure_eq!(legs[0]["EndDateTime"], Value::from("2026-11-20T08:01:02.12345Z"), "5 fraction digits kept");
    ensure_eq!(legs[0]["DurationMs"], Value::from(62_003), "duration from timestamps");
    ensure_eq!(legs[1]["CallerIdentityType"], Value::from("acsUser"), "undocumented identity key");
    Ok(())
}

fn expand_pstn_guest(rt: &Runtime) -> Result<(), String> {
    let tables = rt.expand(fixtures::PSTN).map_err(e)?;
    let legs = table(&tables, "TeamsCallLeg_CL")?;
    ensure!(
        legs.iter().any(|l| l["CalleeIdentityType"] == "phone" && l["CalleeId"] == "+9005550123")
            || legs.iter().any(|l| l["CallerIdentityType"] == "phone"),
        "a phone leg with +9005550123: {legs:?}"
    );
    ensure!(
        legs.iter().any(|l| l["CalleeServiceRole"] == "mediationServer" || l["CallerServiceRole"] == "mediationServer"),
        "mediation server leg"
    );
    let streams = table(&tables, "TeamsCallStream_CL")?;
    ensure!(streams.iter().any(|s| s["WasMediaBypassed"] == Value::Bool(true)), "media bypass");
    let tables = rt.expand(fixtures::GUEST_ANONYMOUS).map_err(e)?;
    let parts = table(&tables, "TeamsCallParticipant_CL")?;
    let kinds: Vec<String> = parts.iter().filter_map(|p| p["IdentityType"].as_str().map(str::to_string)).collect();
    ensure!(kinds.iter().any(|k| k == "guest"), "guest participant: {kinds:?}");
    ensure!(kinds.iter().any(|k| k == "spoolUser"), "spoolUser participant: {kinds:?}");
    ensure!(parts.iter().any(|p| p["DisplayName"] == "Anonymous"), "anonymous participant");
    ensure!(parts.iter().any(|p| p["ParticipantTenantId"] == FABRIKAM), "external participant");
    Ok(())
}

fn rows_match_schema(rt: &Runtime) -> Result<(), String> {
    let tables = rt.tables().map_err(e)?;
    let mut records: Vec<String> = fixtures::RECORDS.iter().map(|s| s.to_string()).collect();
    records.push(merged_group_call(rt)?);
    for record in &records {
        for t in rt.expand(record).map_err(e)? {
            let schema = tables.iter().find(|s| s.name == t.table).ok_or(format!("{} not in schema", t.table))?;
            for row in table(std::slice::from_ref(&t), &t.table)? {
                let keys: Vec<&str> = row.keys().map(String::as_str).collect();
                let mut want: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
                let mut got = keys.clone();
                want.sort_unstable();
                got.sort_unstable();
                ensure!(got == want, "{}: row columns differ from the schema", t.table);
                for c in &schema.columns {
                    let v = &row[&c.name];
                    let ok = match c.type_ {
                        _ if v.is_null() => true,
                        schema::ColumnType::String | schema::ColumnType::Datetime => v.is_string(),
                        schema::ColumnType::Long => v.is_i64() || v.is_u64(),
                        schema::ColumnType::Real => v.is_number(),
                        schema::ColumnType::Boolean => v.is_boolean(),
                        schema::ColumnType::Dynamic => true,
                    };
                    ensure!(ok, "{}.{} = {v} is not a {:?}", t.table, c.name, c.type_);
                    if matches!(c.type_, schema::ColumnType::Datetime) && !v.is_null() {
                        let s = v.as_str().unwrap_or_default();
                        ensure!(
                            s.ends_with('Z') && s.len() >= 20 && &s[10..11] == "T",
                            "{}.{} = {s} is not UTC ISO",
                            t.table,
                            c.name
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn seed_row(rt: &Runtime) -> Result<(), String> {
    let row: Value = serde_json::from_str(&rt.seed_row(fixtures::PEER_TO_PEER).map_err(e)?).map_err(e)?;
    ensure_eq!(row["id"], Value::from(P2P_ID), "id");
    ensure_eq!(row["type"], Value::from("peerToPeer"), "type");
    ensure_eq!(row["organizer_user_displayName"], Value::from("Aiko Tanaka"), "organizer flattened with _");
    let sessions: Value =
        serde_json::from_str(row["sessions"].as_str().ok_or("sessions is a JSON string")?).map_err(e)?;
    ensure_eq!(sessions.as_array().map(Vec::len), Some(1), "sessions in the JSON string");
    let modalities: Value =
        serde_json::from_str(row["modalities"].as_str().ok_or("modalities is a JSON string")?).map_err(e)?;
    ensure!(modalities.as_array().is_some_and(|m| m.contains(&Value::from("audio"))), "modalities {modalities}");
    let row: Value = serde_json::from_str(&rt.seed_row(fixtures::ODDITIES).map_err(e)?).map_err(e)?;
    ensure_eq!(row["organizer_user_displayName"], Value::from("Erik Lindqvist"), "deprecated organizer");
    Ok(())
}

// ---- Sentinel ----------------------------------------------------------------------------------

const WORKSPACE: &str = "b6d9a5c2-3e4f-4a1b-8c7d-9e0f1a2b3c4d";
const DATE: &str = "Mon, 04 Apr 2016 08:00:00 GMT";

/// The SharedKey signature, computed by the harness from the documented recipe.
pub fn expected_shared_key(workspace: &str, key_b64: &str, date: &str, length: u64) -> String {
    let key = BASE64.decode(key_b64).expect("test key is base64");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(format!("POST\n{length}\napplication/json\nx-ms-date:{date}\n/api/logs").as_bytes());
    format!("SharedKey {workspace}:{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn test_key() -> String {
    BASE64.encode(b"teams-sentinel conformance key, not a real one")
}

fn shared_key_signature(rt: &Runtime) -> Result<(), String> {
    let key = test_key();
    for length in [0u64, 1, 1024, 29_999_999] {
        let got = rt.shared_key_authorization(WORKSPACE, &key, DATE, length).map_err(e)?;
        ensure_eq!(got, expected_shared_key(WORKSPACE, &key, DATE, length), "SharedKey authorization");
    }
    for (what, ws, k, date) in [
        ("a non-GUID workspace", "workspace", key.as_str(), DATE),
        ("a key that is not base64", WORKSPACE, "not base64 !!", DATE),
        ("a date that is not RFC 1123", WORKSPACE, key.as_str(), "2016-04-04T08:00:00Z"),
    ] {
        match rt.shared_key_authorization(ws, k, date, 10) {
            Err(Error::Plugin(types::Error::InvalidArgument(m))) => {
                ensure!(!m.contains(k) || k.is_empty(), "{what}: error echoes the key")
            }
            other => return Err(format!("{what}: {other:?}")),
        }
    }
    Ok(())
}

fn data_collector_request(rt: &Runtime) -> Result<(), String> {
    let key = test_key();
    let body = br#"[{"id":"x","version":1}]"#;
    let target = sentinel::DataCollectorTarget {
        workspace_id: WORKSPACE.into(),
        shared_key: key.clone(),
        log_type: "TEAMSGraphCallRecords".into(),
        time_generated_field: Some("startDateTime".into()),
        base_url: None,
    };
    let r = rt.data_collector_request(&target, DATE, body).map_err(e)?;
    ensure_eq!(r.method, "POST", "method");
    ensure_eq!(r.url, format!("https://{WORKSPACE}.ods.opinsights.azure.com/api/logs?api-version=2016-04-01"), "URL");
    ensure_eq!(header(&r.headers, "content-type"), Some("application/json"), "Content-Type exactly");
    ensure_eq!(header(&r.headers, "log-type"), Some("TEAMSGraphCallRecords"), "Log-Type");
    ensure_eq!(header(&r.headers, "x-ms-date"), Some(DATE), "x-ms-date");
    ensure_eq!(header(&r.headers, "time-generated-field"), Some("startDateTime"), "time-generated-field");
    let want = expected_shared_key(WORKSPACE, &key, DATE, body.len() as u64);
    ensure_eq!(header(&r.headers, "authorization").map(str::to_string), Some(want), "Authorization");
    ensure_eq!(r.body, body.to_vec(), "body unchanged");
    for bad in ["Teams-Calls", "", &"a".repeat(101)] {
        let t = sentinel::DataCollectorTarget { log_type: bad.into(), ..target.clone() };
        ensure!(
            matches!(rt.data_collector_request(&t, DATE, body), Err(Error::Plugin(types::Error::InvalidArgument(_)))),
            "Log-Type {bad:?} accepted"
        );
    }
    Ok(())
}

fn logs_ingestion_request(rt: &Runtime) -> Result<(), String> {
    let target = sentinel::LogsIngestionTarget {
        endpoint: "https://demo-a1b2.westeurope-1.ingest.monitor.azure.com/".into(),
        dcr_immutable_id: "dcr-0123456789abcdef0123456789abcdef".into(),
        stream: "Custom-TeamsCall_CL".into(),
    };
    let body = br#"[{"TimeGenerated":"2026-11-20T08:00:00Z","CallId":"x"}]"#;
    for gzip in [false, true] {
        let r = rt.logs_ingestion_request(&target, "tok", body, gzip).map_err(e)?;
        ensure_eq!(
            r.url,
            "https://demo-a1b2.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/dcr-0123456789abcdef0123456789abcdef/streams/Custom-TeamsCall_CL?api-version=2023-01-01",
            "URL"
        );
        ensure_eq!(header(&r.headers, "authorization"), Some("Bearer tok"), "bearer");
        ensure_eq!(header(&r.headers, "content-type"), Some("application/json"), "content type");
        let sent = if gzip {
            ensure_eq!(header(&r.headers, "content-encoding"), Some("gzip"), "content encoding");
            let mut out = vec![];
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut out).map_err(e)?;
            out
        } else {
            ensure!(header(&r.headers, "content-encoding").is_none(), "no content encoding without gzip");
            r.body.clone()
        };
        ensure_eq!(sent, body.to_vec(), "body (after gunzip)");
    }
    for (what, t) in [
        ("bad DCR id", sentinel::LogsIngestionTarget { dcr_immutable_id: "my-dcr".into(), ..target.clone() }),
        ("bad stream", sentinel::LogsIngestionTarget { stream: "TeamsCall_CL".into(), ..target.clone() }),
        ("bad endpoint", sentinel::LogsIngestionTarget { endpoint: "ftp://x".into(), ..target.clone() }),
    ] {
        ensure!(
            matches!(
                rt.logs_ingestion_request(&t, "tok", body, false),
                Err(Error::Plugin(types::Error::InvalidArgument(_)))
            ),
            "{what} accepted"
        );
    }
    Ok(())
}

fn batching_limits(rt: &Runtime) -> Result<(), String> {
    // 3000 rows of ~700 bytes: about 2.1 MB, so at least three Logs Ingestion calls.
    let rows: Vec<String> = (0..3000)
        .map(|i| serde_json::json!({"TimeGenerated": "2026-11-20T08:00:00Z", "CallId": format!("call-{i}"), "Pad": "x".repeat(650)}).to_string())
        .collect();
    let batches = rt.batch_rows(&rows, sentinel::Sink::LogsIngestion).map_err(e)?;
    ensure!(batches.len() >= 3, "{} batches for ~2.1 MB", batches.len());
    let mut seen = vec![];
    for b in &batches {
        ensure!(b.body.len() <= 1_000_000, "a Logs Ingestion batch is {} bytes", b.body.len());
        let arr: Vec<Value> = serde_json::from_slice(&b.body).map_err(e)?;
        ensure_eq!(arr.len() as u32, b.rows, "rows count");
        seen.extend(arr.into_iter().map(|v| v["CallId"].as_str().unwrap_or_default().to_string()));
    }
    let want: Vec<String> = (0..3000).map(|i| format!("call-{i}")).collect();
    ensure!(seen == want, "rows lost, duplicated or reordered across batches");
    let dc = rt.batch_rows(&rows, sentinel::Sink::DataCollector).map_err(e)?;
    ensure_eq!(dc.len(), 1, "one Data Collector batch (30 MB limit)");
    // A 100 KB field is cut to 64 KiB (Logs Ingestion) or 32 KiB (Data Collector) with a marker.
    let big = vec![serde_json::json!({"CallId": "big", "Sessions": "é".repeat(50_000)}).to_string()];
    for (sink, cap) in [(sentinel::Sink::LogsIngestion, 65_536usize), (sentinel::Sink::DataCollector, 32_768)] {
        let b = rt.batch_rows(&big, sink).map_err(e)?;
        ensure_eq!((b.len(), b[0].truncated_fields), (1, 1), "one batch, one cut field");
        let arr: Vec<Value> = serde_json::from_slice(&b[0].body).map_err(e)?;
        let s = arr[0]["Sessions"].as_str().unwrap_or_default();
        ensure!(s.len() <= cap && s.len() > cap - 200, "cut field is {} bytes for a {cap} cap", s.len());
        ensure!(s.contains("truncated"), "no visible marker on a cut field");
        ensure_eq!(arr[0]["CallId"], Value::from("big"), "other fields kept");
    }
    // A row that is too big even after cutting fields is an error naming it, not a silent drop.
    let wide: serde_json::Map<String, Value> =
        (0..20).map(|i| (format!("F{i}"), Value::from("y".repeat(60_000)))).collect();
    let rows = vec!["{}".to_string(), Value::Object(wide).to_string()];
    match rt.batch_rows(&rows, sentinel::Sink::LogsIngestion) {
        Err(Error::Plugin(types::Error::TooLarge(m))) => ensure!(m.contains("row 1"), "message names the row: {m}"),
        other => return Err(format!("oversize row: {:?}", other.map(|b| b.len()))),
    }
    for bad in ["[1]", "not json", "\"s\""] {
        ensure!(
            matches!(
                rt.batch_rows(&[bad.to_string()], sentinel::Sink::LogsIngestion),
                Err(Error::Plugin(types::Error::InvalidJson(_)))
            ),
            "row {bad:?} accepted"
        );
    }
    Ok(())
}

fn typed_errors(rt: &Runtime) -> Result<(), String> {
    for (what, input) in
        [("not JSON", "callRecord?"), ("an array", "[1,2]"), ("no id", "{\"version\": 1}"), ("empty", "")]
    {
        ensure!(matches!(rt.expand(input), Err(Error::Plugin(types::Error::InvalidJson(_)))), "expand of {what}");
        ensure!(matches!(rt.seed_row(input), Err(Error::Plugin(types::Error::InvalidJson(_)))), "seed-row of {what}");
    }
    ensure!(
        matches!(rt.expand(r#"{"id":"x","sessions":[3]}"#), Err(Error::Plugin(types::Error::InvalidJson(_)))),
        "sessions holding a number"
    );
    let creds = graph::Credentials {
        login_base_url: "https://login.microsoftonline.com".into(),
        tenant_id: CONTOSO.into(),
        client_id: String::new(),
        client_secret: "TOP-SECRET-VALUE".into(),
    };
    match rt.token_request(&creds, graph::Scope::Graph) {
        Err(Error::Plugin(types::Error::InvalidArgument(m))) => {
            ensure!(!m.contains("TOP-SECRET"), "error echoes the secret")
        }
        other => return Err(format!("empty client id: {other:?}")),
    }
    match rt.next_page_request(GRAPH, "https://evil.example/v1.0/steal?x=1", "tok") {
        Err(Error::Plugin(types::Error::InvalidArgument(_))) => {}
        other => return Err(format!("next link to another host: {other:?}")),
    }
    match rt.next_page_request(GRAPH, "https://graph.microsoft.com.evil.example/v1.0/x", "tok") {
        Err(Error::Plugin(types::Error::InvalidArgument(_))) => {}
        other => return Err(format!("next link to a look-alike host: {other:?}")),
    }
    ensure!(
        matches!(
            rt.call_record_request(GRAPH, "../../me", "tok"),
            Err(Error::Plugin(types::Error::InvalidArgument(_)))
        ),
        "path in a call id"
    );
    ensure!(
        matches!(
            rt.call_record_request(GRAPH, P2P_ID, "tok\r\nX: y"),
            Err(Error::Plugin(types::Error::InvalidArgument(_)))
        ),
        "header injection in a token"
    );
    ensure!(
        matches!(
            rt.merge_pages(fixtures::GROUP_CALL, &["{}".into()], &[]),
            Err(Error::Plugin(types::Error::InvalidJson(_)))
        ),
        "page without value"
    );
    ensure!(
        matches!(
            rt.list_call_records_request(GRAPH, "yesterday", "today", "t"),
            Err(Error::Plugin(types::Error::InvalidArgument(_)))
        ),
        "List window"
    );
    Ok(())
}
