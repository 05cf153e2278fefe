//! Native tests of the core's public API against the sample data in `examples/graph` and the rules in
//! `shared/design/facts.md`. Expected values are literals read from the fixtures / docs, or computed
//! here independently (HMAC, gzip, JSON parsing) — never by calling the function under test.

use std::fmt;
use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use callrecords::Error;
use callrecords::entra::{self, Credentials, Scope};
use callrecords::expand::{self, TableRows};
use callrecords::graph;
use callrecords::graph::webhook::{self, LifecycleKind, RejectReason, RequestKind, Settings};
use callrecords::http::{self, IncomingRequest};
use callrecords::monitor::{self, DataCollectorTarget, LogsIngestionTarget, Sink};
use callrecords::schema::{self, Table};
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Value, json};
use sha2::Sha256;

// ---- fixtures -----------------------------------------------------------------------------------

const VALIDATION: &str = include_str!("../../examples/graph/notifications/validation.http");
const CREATED: &str = include_str!("../../examples/graph/notifications/created.http");
const UPDATED: &str = include_str!("../../examples/graph/notifications/updated.http");
const TWO_TENANTS: &str = include_str!("../../examples/graph/notifications/two-tenants.http");
const FORGED: &str = include_str!("../../examples/graph/notifications/forged-client-state.http");
const MIXED: &str = include_str!("../../examples/graph/notifications/mixed-lifecycle.http");
const ODATA_2023: &str = include_str!("../../examples/graph/notifications/odata-2023-names.http");
const LC_REAUTH: &str = include_str!("../../examples/graph/notifications/lifecycle-reauthorization-required.http");
const LC_REMOVED: &str = include_str!("../../examples/graph/notifications/lifecycle-subscription-removed.http");
const LC_MISSED: &str = include_str!("../../examples/graph/notifications/lifecycle-missed.http");
const NOTIFICATIONS: &[&str] =
    &[VALIDATION, CREATED, UPDATED, TWO_TENANTS, FORGED, MIXED, ODATA_2023, LC_REAUTH, LC_REMOVED, LC_MISSED];

const P2P: &str = include_str!("../../examples/graph/callrecords/peer-to-peer.json");
const GROUP: &str = include_str!("../../examples/graph/callrecords/group-call.json");
const GROUP_S2: &str = include_str!("../../examples/graph/callrecords/group-call.sessions-2.json");
const GROUP_S3: &str = include_str!("../../examples/graph/callrecords/group-call.sessions-3.json");
const GROUP_P1: &str = include_str!("../../examples/graph/callrecords/group-call.participants-1.json");
const GROUP_P2: &str = include_str!("../../examples/graph/callrecords/group-call.participants-2.json");
const PSTN: &str = include_str!("../../examples/graph/callrecords/pstn.json");
const GUEST: &str = include_str!("../../examples/graph/callrecords/guest-anonymous.json");
const ODD: &str = include_str!("../../examples/graph/callrecords/service-endpoint-oddities.json");
/// Shaped as Microsoft's v1.0 "Get callRecord" examples document it and as `odata.metadata=none`
/// exports return it: no `@odata.type` anywhere, empty-string addresses (examples/graph/README.md).
const NO_TYPES: &str = include_str!("../../examples/graph/callrecords/metadata-none.json");
/// The small records (the 700 KB group call and the 88 KB guest meeting are left out of the
/// per-case property tests; the example tests cover them).
const SMALL_RECORDS: &[&str] = &[P2P, PSTN, ODD, NO_TYPES];

// Constants from examples/graph/README.md.
const CONTOSO: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
const FABRIKAM: &str = "7f3e9c4d-0b6a-4e51-8d2c-5a1b9e8f6c22";
const SUBSCRIPTION: &str = "9c4e1f22-5b3d-4a8e-b7c6-0d1e2f3a4b5c";
const CLIENT_STATE: &str = "teams-sentinel-demo";
const EXPIRY: &str = "2026-11-29T18:23:45.9356913+00:00";
const P2P_ID: &str = "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01";
const GROUP_ID: &str = "8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02";
const PSTN_ID: &str = "1e9c5a3b-7d2f-4b8e-a6c4-3f7d9e1b5c03";
const GUEST_ID: &str = "6b4d8f2a-3e1c-4d7b-8a9e-5c2f7b1d4e04";
const ODD_ID: &str = "c3a7e1f9-5b2d-4c8a-9e6f-1d4b7a3c8e05";
const FORGED_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c06";
const VALIDATION_TOKEN: &str = "Validation: Testing client application reachability for subscription Request-Id: 3bc1e4a8-93b1-4b4f-9c3b-1f0c1f1e2d3c";

const GRAPH: &str = "https://graph.microsoft.com";
const GROUP_SESSIONS_2_LINK: &str = "https://graph.microsoft.com/v1.0/communications/callRecords/8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02/sessions?$expand=segments&$skiptoken=group-call.sessions-2";
const GROUP_SESSIONS_3_LINK: &str = "https://graph.microsoft.com/v1.0/communications/callRecords/8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02/sessions?$expand=segments&$skiptoken=group-call.sessions-3";
const GROUP_PARTICIPANTS_2_LINK: &str = "https://graph.microsoft.com/v1.0/communications/callRecords/8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02/participants_v2?$skiptoken=group-call.participants-2";

// Made-up Azure Monitor settings.
const WORKSPACE: &str = "5b9f0a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const DCE: &str = "https://teams-dce-a1b2.eastus-1.ingest.monitor.azure.com";
const DCR: &str = "dcr-00112233445566778899aabbccddeeff";
const DATE: &str = "Mon, 04 Apr 2016 08:00:00 GMT";
const TRUNCATION_MARKER: &str = "…[truncated by teams-sentinel; original bytes: ";

/// A made-up workspace key: base64 of 64 bytes 0x00..0x3f.
fn shared_key() -> String {
    BASE64.encode((0u8..64).collect::<Vec<u8>>())
}

// ---- helpers ------------------------------------------------------------------------------------

/// Split a raw HTTP/1.1 request at the first CRLF CRLF and build the core's request.
fn request(raw: &str) -> IncomingRequest {
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body are separated by CRLF CRLF");
    let mut lines = head.split("\r\n");
    let mut start = lines.next().expect("request line").split(' ');
    let method = start.next().expect("method").to_string();
    let path_and_query = start.next().expect("target").to_string();
    assert_eq!(start.next(), Some("HTTP/1.1"));
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    IncomingRequest { method, path_and_query, headers, body: body.as_bytes().to_vec() }
}

fn body_of(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").expect("head and body").1
}

fn settings() -> Settings {
    Settings { client_states: vec![CLIENT_STATE.to_string()], allowed_tenants: vec![], max_body_bytes: 0 }
}

fn post(path_and_query: &str, body: impl Into<Vec<u8>>) -> IncomingRequest {
    IncomingRequest {
        method: "POST".into(),
        path_and_query: path_and_query.into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into(),
    }
}

fn deliver(items: Vec<Value>) -> webhook::Outcome {
    webhook::handle(&settings(), &post("/api/notifications", json!({ "value": items }).to_string()))
}

/// A genuine callRecord notification item, as in created.http.
fn item(call_id: &str, tenant: &str) -> Value {
    json!({
        "subscriptionId": SUBSCRIPTION,
        "subscriptionExpirationDateTime": EXPIRY,
        "changeType": "created",
        "resource": format!("communications/callRecords/{call_id}"),
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.callRecord",
            "@odata.id": format!("communications/callRecords/{call_id}"),
            "id": call_id
        },
        "clientState": CLIENT_STATE,
        "tenantId": tenant
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn text(body: &[u8]) -> &str {
    std::str::from_utf8(body).expect("UTF-8 body")
}

/// Rows of `table` parsed as JSON objects.
fn rows(tables: &[TableRows], name: &str) -> Vec<serde_json::Map<String, Value>> {
    let t = tables.iter().find(|t| t.table.name == name).unwrap_or_else(|| panic!("no {name} table"));
    t.rows
        .iter()
        .map(|r| match serde_json::from_str(r) {
            Ok(Value::Object(o)) => o,
            _ => panic!("{name}: row is not an object: {r}"),
        })
        .collect()
}

/// The group call merged with its pages, computed once per test binary.
static MERGED_GROUP_CALL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    graph::merge_pages(
        GROUP,
        &[GROUP_S2.to_string(), GROUP_S3.to_string()],
        &[GROUP_P1.to_string(), GROUP_P2.to_string()],
    )
    .expect("group call pages merge")
});

fn merged_group_call() -> &'static str {
    &MERGED_GROUP_CALL
}

/// The keys of a JSON object in document order.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = vec![];
                while let Some((k, IgnoredAny)) = m.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

fn keys_in_order(row: &str) -> Vec<String> {
    serde_json::from_str::<Keys>(row).expect("row is a JSON object").0
}

fn column_names(table: &Table) -> Vec<String> {
    table.columns.iter().map(|c| c.name.to_string()).collect()
}

/// Every row's keys are exactly the table's columns, in the schema's order.
fn assert_rows_match_schema(tables: &[TableRows]) {
    for t in tables {
        let want = column_names(t.table);
        for row in &t.rows {
            assert_eq!(keys_in_order(row), want, "{}: row keys differ from the schema", t.table.name);
        }
    }
}

/// Independent SharedKey signature.
fn my_signature(key_b64: &str, date: &str, len: usize) -> String {
    let key = BASE64.decode(key_b64).expect("test key is base64");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(format!("POST\n{len}\napplication/json\nx-ms-date:{date}\n/api/logs").as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

/// A JSON object row of exactly `len` bytes (len >= 8), no field longer than 60 000 bytes.
fn row_of_len(len: usize) -> String {
    // {"fNN":"...",...}: build fields of 50 000 bytes, then pad the last one.
    let mut fields: Vec<String> = vec![];
    let mut size = 2; // braces
    let mut i = 0;
    loop {
        let overhead = format!("\"f{i}\":\"\"").len() + usize::from(i > 0);
        let left = len - size;
        if left < overhead {
            panic!("cannot build a row of {len} bytes");
        }
        let room = left - overhead;
        if room <= 50_000 {
            fields.push(format!("\"f{i}\":\"{}\"", "x".repeat(room)));
            break;
        }
        // Leave at least enough for one more small field.
        let take = 50_000.min(room - 16);
        fields.push(format!("\"f{i}\":\"{}\"", "x".repeat(take)));
        size += overhead + take;
        i += 1;
    }
    let row = format!("{{{}}}", fields.join(","));
    assert_eq!(row.len(), len);
    row
}

// =================================================================================================
// Fixtures themselves
// =================================================================================================

#[test]
fn raw_requests_are_byte_exact() {
    for raw in NOTIFICATIONS {
        let r = request(raw);
        let cl: usize = header(&r.headers, "Content-Length").expect("Content-Length").parse().unwrap();
        assert_eq!(cl, r.body.len(), "Content-Length of {}", r.path_and_query);
        assert_eq!(r.method, "POST");
    }
}

// =================================================================================================
// webhook
// =================================================================================================

#[test]
fn validation_fixture_echoes_the_decoded_token_as_plain_text() {
    let o = webhook::handle(&settings(), &request(VALIDATION));
    assert_eq!(o.kind, RequestKind::Validation);
    assert_eq!(o.response.status, 200);
    assert_eq!(text(&o.response.body), VALIDATION_TOKEN);
    let ct = header(&o.response.headers, "Content-Type").expect("Content-Type");
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(header(&o.response.headers, "X-Content-Type-Options"), Some("nosniff"));
    assert!(o.notifications.is_empty() && o.lifecycle.is_empty() && o.rejected.is_empty());
}

#[test]
fn validation_token_plus_is_space_and_percent_2b_is_plus() {
    for (query, want) in [
        ("validationToken=a+b%2Bc%2bd", "a b+c+d"),
        ("validationToken=Validation%3a+Testing+client+application", "Validation: Testing client application"),
        ("foo=1&validationToken=x%26y%3Dz&bar=2", "x&y=z"),
        ("validationToken=%E2%82%AC+100", "€ 100"),
        ("validationToken=abc#fragment", "abc"),
    ] {
        let o = webhook::handle(&settings(), &post(&format!("/api/notifications?{query}"), ""));
        assert_eq!(o.response.status, 200, "{query}");
        assert_eq!(text(&o.response.body), want, "{query}");
    }
}

#[test]
fn validation_token_is_echoed_untouched_even_when_it_looks_like_markup() {
    let o =
        webhook::handle(&settings(), &post("/api/lifecycle?validationToken=%3Cscript%3Ealert(1)%3C%2Fscript%3E", ""));
    assert_eq!(o.response.status, 200);
    assert_eq!(text(&o.response.body), "<script>alert(1)</script>");
    assert!(header(&o.response.headers, "Content-Type").unwrap().starts_with("text/plain"));
    assert_eq!(header(&o.response.headers, "X-Content-Type-Options"), Some("nosniff"));
}

#[test]
fn validation_token_empty_or_too_long_is_400() {
    for q in ["validationToken=", "validationToken", "validationToken=&x=1"] {
        let o = webhook::handle(&settings(), &post(&format!("/api/notifications?{q}"), ""));
        assert_eq!((o.kind, o.response.status), (RequestKind::Refused, 400), "{q}");
    }
    let ok = webhook::handle(&settings(), &post(&format!("/x?validationToken={}", "t".repeat(4096)), ""));
    assert_eq!(ok.response.status, 200);
    assert_eq!(ok.response.body.len(), 4096);
    let long = webhook::handle(&settings(), &post(&format!("/x?validationToken={}", "t".repeat(4097)), ""));
    assert_eq!(long.response.status, 400);
}

#[test]
fn validation_token_parameter_name_is_case_sensitive() {
    // Not a handshake, so the empty body is a malformed delivery.
    let o = webhook::handle(&settings(), &post("/api/notifications?validationtoken=abc", ""));
    assert_eq!((o.kind, o.response.status), (RequestKind::Refused, 400));
    assert_ne!(text(&o.response.body), "abc");
}

#[test]
fn methods_other_than_post_are_405_with_allow() {
    for m in ["GET", "PUT", "DELETE", "HEAD", "PATCH", ""] {
        let mut r = request(VALIDATION);
        r.method = m.to_string();
        let o = webhook::handle(&settings(), &r);
        assert_eq!((o.kind, o.response.status), (RequestKind::Refused, 405), "{m:?}");
        assert_eq!(header(&o.response.headers, "Allow"), Some("POST"));
        assert!(!text(&o.response.body).contains("Validation"), "a refused handshake echoes nothing");
    }
}

#[test]
fn bodies_over_the_limit_are_413() {
    let s = Settings { max_body_bytes: 100, ..settings() };
    let o = webhook::handle(&s, &post("/api/notifications", vec![b' '; 101]));
    assert_eq!((o.kind, o.response.status), (RequestKind::Refused, 413));
    // At the limit it is read (and found not to be JSON).
    let o = webhook::handle(&s, &post("/api/notifications", vec![b' '; 100]));
    assert_eq!(o.response.status, 400);
    // The size check comes before the handshake.
    let o = webhook::handle(&s, &post("/api/notifications?validationToken=abc", vec![b' '; 101]));
    assert_eq!(o.response.status, 413);
    // 0 means 1 MiB.
    let o = webhook::handle(&settings(), &post("/api/notifications", vec![b' '; 1024 * 1024 + 1]));
    assert_eq!(o.response.status, 413);
    let mut body = json!({ "value": [item(P2P_ID, CONTOSO)] }).to_string().into_bytes();
    body.resize(1024 * 1024, b' ');
    let o = webhook::handle(&settings(), &post("/api/notifications", body));
    assert_eq!((o.response.status, o.notifications.len()), (202, 1));
}

#[test]
fn bodies_without_a_value_array_are_400() {
    for body in ["", "not json", "{", "{}", r#"{"value":null}"#, r#"{"value":{}}"#, r#"{"value":"x"}"#, "null", "42"] {
        let o = webhook::handle(&settings(), &post("/api/notifications", body));
        assert_eq!((o.kind, o.response.status), (RequestKind::Refused, 400), "{body:?}");
    }
}

#[test]
fn created_fixture_is_one_accepted_notification() {
    let o = webhook::handle(&settings(), &request(CREATED));
    assert_eq!((o.kind, o.response.status), (RequestKind::Delivery, 202));
    assert_eq!(o.notifications.len(), 1);
    let n = &o.notifications[0];
    assert_eq!(n.call_id, P2P_ID);
    assert_eq!(n.subscription_id, SUBSCRIPTION);
    assert_eq!(n.tenant_id, CONTOSO);
    assert_eq!(n.change_type, "created");
    assert_eq!(n.resource, format!("communications/callRecords/{P2P_ID}"));
    assert_eq!(n.subscription_expiration.as_deref(), Some(EXPIRY));
    assert!(o.rejected.is_empty() && o.lifecycle.is_empty());
    assert_eq!(o.duplicates, 0);
}

#[test]
fn updated_fixture_with_lowercase_odata_type_is_accepted() {
    let o = webhook::handle(&settings(), &request(UPDATED));
    assert_eq!(o.response.status, 202);
    assert_eq!(o.notifications.len(), 1, "{:?}", o.rejected);
    assert_eq!((o.notifications[0].call_id.as_str(), o.notifications[0].change_type.as_str()), (GROUP_ID, "updated"));
}

#[test]
fn odata_type_is_compared_case_insensitively() {
    for t in ["#Microsoft.Graph.callRecord", "#microsoft.graph.callrecord", "#MICROSOFT.GRAPH.CALLRECORD"] {
        let mut i = item(P2P_ID, CONTOSO);
        i["resourceData"]["@odata.type"] = json!(t);
        assert_eq!(deliver(vec![i]).notifications.len(), 1, "{t}");
    }
}

#[test]
fn two_tenants_each_keep_their_tenant() {
    let o = webhook::handle(&settings(), &request(TWO_TENANTS));
    let got: Vec<(&str, &str)> = o.notifications.iter().map(|n| (n.call_id.as_str(), n.tenant_id.as_str())).collect();
    assert_eq!(got, [(PSTN_ID, CONTOSO), (GUEST_ID, FABRIKAM)]);
    assert!(o.rejected.is_empty());
}

#[test]
fn notifications_with_the_pre_2023_odata_names_are_callrecords() {
    // Before April 2023 resourceData had only `oDataType` / `oDataId`; until October 2023 both
    // spellings (Microsoft 365 Developer Blog). The resource path names the callRecord.
    let o = webhook::handle(&settings(), &request(ODATA_2023));
    assert_eq!(o.response.status, 202);
    let got: Vec<(&str, &str)> = o.notifications.iter().map(|n| (n.call_id.as_str(), n.tenant_id.as_str())).collect();
    assert_eq!(got, [(PSTN_ID, CONTOSO), (ODD_ID, CONTOSO)]);
    assert!(o.rejected.is_empty(), "{:?}", o.rejected);
}

#[test]
fn forged_client_state_is_rejected_and_counted() {
    let o = webhook::handle(&settings(), &request(FORGED));
    assert_eq!(o.response.status, 202);
    assert_eq!(o.notifications.iter().map(|n| n.call_id.as_str()).collect::<Vec<_>>(), [ODD_ID]);
    assert_eq!(o.rejected.len(), 1);
    assert_eq!((o.rejected[0].index, o.rejected[0].reason), (1, RejectReason::ClientStateMismatch));
    let detail = &o.rejected[0].detail;
    assert!(!detail.contains("not-the-secret") && !detail.contains(CLIENT_STATE), "{detail}");
    assert!(!o.notifications.iter().any(|n| n.call_id == FORGED_ID));
    let body = text(&o.response.body);
    assert!(!body.contains(CLIENT_STATE) && !body.contains("not-the-secret"), "{body}");
}

#[test]
fn missing_or_wrong_client_state_is_a_mismatch() {
    let mut missing = item(P2P_ID, CONTOSO);
    missing.as_object_mut().unwrap().remove("clientState");
    let mut null = item(PSTN_ID, CONTOSO);
    null["clientState"] = Value::Null;
    let mut prefix = item(GUEST_ID, CONTOSO);
    prefix["clientState"] = json!("teams-sentinel-dem");
    let mut longer = item(ODD_ID, CONTOSO);
    longer["clientState"] = json!("teams-sentinel-demo ");
    let mut case = item(GROUP_ID, CONTOSO);
    case["clientState"] = json!("Teams-Sentinel-Demo");
    let o = deliver(vec![missing, null, prefix, longer, case]);
    assert!(o.notifications.is_empty());
    assert_eq!(
        o.rejected.iter().map(|r| (r.index, r.reason)).collect::<Vec<_>>(),
        [
            (0, RejectReason::ClientStateMismatch),
            (1, RejectReason::ClientStateMismatch),
            (2, RejectReason::ClientStateMismatch),
            (3, RejectReason::ClientStateMismatch),
            (4, RejectReason::ClientStateMismatch),
        ]
    );
    // No accepted states at all: nothing gets in.
    let none = Settings { client_states: vec![], ..settings() };
    let o = webhook::handle(&none, &request(CREATED));
    assert_eq!(o.rejected.iter().map(|r| r.reason).collect::<Vec<_>>(), [RejectReason::ClientStateMismatch]);
}

#[test]
fn any_of_several_client_states_is_accepted() {
    let s = Settings { client_states: vec!["old-secret".into(), CLIENT_STATE.into()], ..settings() };
    assert_eq!(webhook::handle(&s, &request(CREATED)).notifications.len(), 1);
    let s = Settings { client_states: vec![CLIENT_STATE.into(), "new-secret".into()], ..settings() };
    assert_eq!(webhook::handle(&s, &request(CREATED)).notifications.len(), 1);
}

#[test]
fn tenant_allow_list_is_case_insensitive() {
    let s = Settings { allowed_tenants: vec![CONTOSO.to_ascii_uppercase()], ..settings() };
    let o = webhook::handle(&s, &request(TWO_TENANTS));
    assert_eq!(o.notifications.iter().map(|n| n.call_id.as_str()).collect::<Vec<_>>(), [PSTN_ID]);
    assert_eq!(
        o.rejected.iter().map(|r| (r.index, r.reason)).collect::<Vec<_>>(),
        [(1, RejectReason::TenantNotAllowed)]
    );
    // Lower-case list, upper-case item.
    let s = Settings { allowed_tenants: vec![FABRIKAM.into()], ..settings() };
    let mut i = item(GUEST_ID, &FABRIKAM.to_ascii_uppercase());
    i["clientState"] = json!(CLIENT_STATE);
    let o = webhook::handle(&s, &post("/api/notifications", json!({ "value": [i] }).to_string()));
    assert_eq!(o.notifications.len(), 1, "{:?}", o.rejected);
    // Lifecycle events obey the list too.
    let s = Settings { allowed_tenants: vec![FABRIKAM.into()], ..settings() };
    let o = webhook::handle(&s, &request(LC_MISSED));
    assert!(o.lifecycle.is_empty());
    assert_eq!(o.rejected[0].reason, RejectReason::TenantNotAllowed);
}

#[test]
fn lifecycle_fixtures_are_202_with_their_kind() {
    for (raw, kind, event, expiry) in [
        (LC_REAUTH, LifecycleKind::ReauthorizationRequired, "reauthorizationRequired", EXPIRY),
        (LC_REMOVED, LifecycleKind::SubscriptionRemoved, "subscriptionRemoved", "2026-11-26T09:12:00.0000000Z"),
        (LC_MISSED, LifecycleKind::Missed, "missed", EXPIRY),
    ] {
        let o = webhook::handle(&settings(), &request(raw));
        assert_eq!((o.kind, o.response.status), (RequestKind::Delivery, 202), "{event}");
        assert!(o.notifications.is_empty() && o.rejected.is_empty(), "{event}");
        assert_eq!(o.lifecycle.len(), 1);
        let l = &o.lifecycle[0];
        assert_eq!((l.kind, l.event.as_str()), (kind, event));
        assert_eq!((l.subscription_id.as_str(), l.tenant_id.as_str()), (SUBSCRIPTION, CONTOSO));
        assert_eq!(l.subscription_expiration.as_deref(), Some(expiry));
    }
}

#[test]
fn unknown_lifecycle_event_is_kept_as_unknown() {
    let i = json!({
        "subscriptionId": SUBSCRIPTION, "tenantId": CONTOSO, "clientState": CLIENT_STATE,
        "lifecycleEvent": "brandNewLifecycleEvent"
    });
    let o = deliver(vec![i]);
    assert_eq!(o.lifecycle.len(), 1);
    assert_eq!(
        (o.lifecycle[0].kind, o.lifecycle[0].event.as_str()),
        (LifecycleKind::Unknown, "brandNewLifecycleEvent")
    );
    // Exact casing: a differently cased known event is not that event.
    let i = json!({
        "subscriptionId": SUBSCRIPTION, "tenantId": CONTOSO, "clientState": CLIENT_STATE, "lifecycleEvent": "Missed"
    });
    assert_eq!(deliver(vec![i]).lifecycle[0].kind, LifecycleKind::Unknown);
}

#[test]
fn mixed_delivery_has_one_notification_and_one_lifecycle_event() {
    let o = webhook::handle(&settings(), &request(MIXED));
    assert_eq!(o.response.status, 202);
    assert_eq!(o.notifications.iter().map(|n| n.call_id.as_str()).collect::<Vec<_>>(), [P2P_ID]);
    assert_eq!(o.lifecycle.iter().map(|l| l.kind).collect::<Vec<_>>(), [LifecycleKind::ReauthorizationRequired]);
    assert!(o.rejected.is_empty());
}

#[test]
fn duplicates_are_folded_in_order_of_first_appearance() {
    let mut updated = item(P2P_ID, CONTOSO);
    updated["changeType"] = json!("updated");
    let o = deliver(vec![item(P2P_ID, CONTOSO), item(PSTN_ID, CONTOSO), updated, item(P2P_ID, CONTOSO)]);
    assert_eq!(o.notifications.iter().map(|n| n.call_id.as_str()).collect::<Vec<_>>(), [P2P_ID, PSTN_ID]);
    assert_eq!(o.duplicates, 2);
    assert_eq!(o.notifications[0].change_type, "created", "the first appearance is kept");
    assert!(o.rejected.is_empty());
}

#[test]
fn call_id_comes_from_the_resource_path_when_resource_data_is_missing() {
    let mut no_data = item(P2P_ID, CONTOSO);
    no_data.as_object_mut().unwrap().remove("resourceData");
    let mut data_without_id = item(PSTN_ID, CONTOSO);
    data_without_id["resourceData"].as_object_mut().unwrap().remove("id");
    let mut leading_slash = item(GUEST_ID, CONTOSO);
    leading_slash.as_object_mut().unwrap().remove("resourceData");
    leading_slash["resource"] = json!(format!("/communications/callRecords/{GUEST_ID}"));
    let mut empty_id = item(ODD_ID, CONTOSO);
    empty_id["resourceData"]["id"] = json!("");
    let o = deliver(vec![no_data, data_without_id, leading_slash, empty_id]);
    assert!(o.rejected.is_empty(), "{:?}", o.rejected);
    assert_eq!(
        o.notifications.iter().map(|n| n.call_id.as_str()).collect::<Vec<_>>(),
        [P2P_ID, PSTN_ID, GUEST_ID, ODD_ID]
    );
}

#[test]
fn notifications_about_other_resources_are_rejected() {
    let chat = json!({
        "subscriptionId": SUBSCRIPTION, "changeType": "created", "clientState": CLIENT_STATE, "tenantId": CONTOSO,
        "resource": "chats('19:abc@thread.v2')/messages('1')",
        "resourceData": { "@odata.type": "#Microsoft.Graph.chatMessage", "id": "1" }
    });
    let user = json!({
        "subscriptionId": SUBSCRIPTION, "changeType": "updated", "clientState": CLIENT_STATE, "tenantId": CONTOSO,
        "resource": "users/0f1e2d3c-4b5a-4697-8877-665544332211"
    });
    let nested = json!({
        "subscriptionId": SUBSCRIPTION, "changeType": "created", "clientState": CLIENT_STATE, "tenantId": CONTOSO,
        "resource": format!("communications/callRecords/{P2P_ID}/sessions")
    });
    let o = deliver(vec![chat, user, nested]);
    assert!(o.notifications.is_empty());
    assert_eq!(
        o.rejected.iter().map(|r| (r.index, r.reason)).collect::<Vec<_>>(),
        [(0, RejectReason::NotACallRecord), (1, RejectReason::NotACallRecord), (2, RejectReason::NotACallRecord),]
    );
}

#[test]
fn malformed_items_are_rejected_one_by_one() {
    let mut no_sub = item(PSTN_ID, CONTOSO);
    no_sub.as_object_mut().unwrap().remove("subscriptionId");
    let mut sub_number = item(PSTN_ID, CONTOSO);
    sub_number["subscriptionId"] = json!(5);
    let mut no_tenant = item(PSTN_ID, CONTOSO);
    no_tenant.as_object_mut().unwrap().remove("tenantId");
    let mut no_id = item(PSTN_ID, CONTOSO);
    no_id["resourceData"].as_object_mut().unwrap().remove("id");
    no_id["resource"] = json!("communications/callRecords/");
    let mut bad_id = item(PSTN_ID, CONTOSO);
    bad_id["resourceData"]["id"] = json!("../../users/x");
    let mut wrong_type = item(PSTN_ID, CONTOSO);
    wrong_type["resourceData"] = json!("not an object");
    let o = deliver(vec![
        json!(42),
        json!("text"),
        Value::Null,
        json!([item(GUEST_ID, CONTOSO)]),
        item(P2P_ID, CONTOSO),
        no_sub,
        sub_number,
        no_tenant,
        no_id,
        bad_id,
        wrong_type,
        item(ODD_ID, CONTOSO),
    ]);
    assert_eq!(o.response.status, 202);
    assert_eq!(o.notifications.iter().map(|n| n.call_id.as_str()).collect::<Vec<_>>(), [P2P_ID, ODD_ID]);
    let got: Vec<(u32, RejectReason)> = o.rejected.iter().map(|r| (r.index, r.reason)).collect();
    let want: Vec<(u32, RejectReason)> =
        [0, 1, 2, 3, 5, 6, 7, 8, 9, 10].into_iter().map(|i| (i, RejectReason::Malformed)).collect();
    assert_eq!(got, want);
    for r in &o.rejected {
        assert!(!r.detail.contains(CLIENT_STATE), "{}", r.detail);
    }
}

#[test]
fn settings_debug_hides_client_states() {
    let s = Settings {
        client_states: vec!["super-secret-state-1".into(), "super-secret-state-2".into()],
        allowed_tenants: vec![CONTOSO.into()],
        max_body_bytes: 7,
    };
    let d = format!("{s:?}");
    assert!(!d.contains("super-secret"), "{d}");
    assert!(d.contains(CONTOSO) && d.contains('7'), "{d}");
    let d = format!("{s:#?}");
    assert!(!d.contains("super-secret"), "{d}");
}

// =================================================================================================
// graph
// =================================================================================================

fn credentials() -> Credentials {
    Credentials {
        login_base_url: "https://login.microsoftonline.com".into(),
        tenant_id: CONTOSO.into(),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        credential: entra::Credential::Secret("s3cr3t&scope=evil+x=1 %41~".into()),
    }
}

#[test]
fn scopes_are_the_documented_values() {
    assert_eq!(Scope::Graph.value(), "https://graph.microsoft.com/.default");
    assert_eq!(Scope::Monitor.value(), "https://monitor.azure.com//.default");
}

#[test]
fn token_request_is_a_client_credentials_form_post() {
    for (scope, scope_value) in [
        (Scope::Graph, "https://graph.microsoft.com/.default"),
        (Scope::Monitor, "https://monitor.azure.com//.default"),
    ] {
        let r = entra::token_request(&credentials(), scope).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, format!("https://login.microsoftonline.com/{CONTOSO}/oauth2/v2.0/token"));
        assert_eq!(header(&r.headers, "Content-Type"), Some("application/x-www-form-urlencoded"));
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(&r.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(
            pairs,
            [
                ("grant_type".to_string(), "client_credentials".to_string()),
                ("client_id".to_string(), "11111111-2222-3333-4444-555555555555".to_string()),
                ("client_secret".to_string(), "s3cr3t&scope=evil+x=1 %41~".to_string()),
                ("scope".to_string(), scope_value.to_string()),
            ]
        );
        // The secret's `&` and `=` cannot start a new parameter.
        assert_eq!(text(&r.body).matches('&').count(), 3);
        let d = format!("{r:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
    }
    // A trailing slash on the login base is tolerated.
    let c = Credentials { login_base_url: "https://login.microsoftonline.com/".into(), ..credentials() };
    assert_eq!(
        entra::token_request(&c, Scope::Graph).unwrap().url,
        format!("https://login.microsoftonline.com/{CONTOSO}/oauth2/v2.0/token")
    );
}

#[test]
fn token_request_refuses_bad_credentials_without_echoing_the_secret() {
    let cases = [
        Credentials { credential: entra::Credential::Secret(String::new()), ..credentials() },
        Credentials { client_id: "  ".into(), ..credentials() },
        Credentials { tenant_id: String::new(), ..credentials() },
        Credentials { tenant_id: "contoso/../evil".into(), ..credentials() },
        Credentials { tenant_id: "contoso?x=1".into(), ..credentials() },
        Credentials { login_base_url: "ftp://login.microsoftonline.com".into(), ..credentials() },
        Credentials { login_base_url: "https://user@login.microsoftonline.com".into(), ..credentials() },
        Credentials { login_base_url: "https://".into(), ..credentials() },
    ];
    for c in cases {
        match entra::token_request(&c, Scope::Graph) {
            Err(Error::InvalidArgument(m)) => assert!(!m.contains("s3cr3t"), "{m}"),
            other => panic!("{c:?}: {other:?}"),
        }
    }
}

/// A bearer token or a shared-key signature must never cross a network in clear: plain http is
/// for a stand-in on this machine only.
#[test]
fn plain_http_base_urls_are_for_loopback_only() {
    for (url, ok) in [
        ("https://login.microsoftonline.com", true),
        ("http://127.0.0.1:8081", true),
        ("http://127.9.0.1", true),
        ("http://localhost:8081/login", true),
        ("http://LOCALHOST", true),
        ("http://[::1]:8081", true),
        ("http://login.microsoftonline.com", false),
        ("http://login.test", false),
        ("http://10.0.0.4:8081", false),
        ("http://128.0.0.1", false),
        ("http://localhost.evil.example", false),
        ("http://127.0.0.1.evil.example", false),
        ("http://[::2]", false),
    ] {
        let c = Credentials { login_base_url: url.into(), ..credentials() };
        let got = entra::token_request(&c, Scope::Graph);
        assert_eq!(got.is_ok(), ok, "{url}: {got:?}");
        if let Err(Error::InvalidArgument(m)) = got {
            assert!(m.contains("https://"), "the error says what to use: {m}");
        }
        assert_eq!(graph::call_record_request(url, P2P_ID, "tok").is_ok(), ok, "graph {url}");
    }
}

#[test]
fn call_record_and_participants_urls() {
    let r = graph::call_record_request(GRAPH, P2P_ID, "eyJ0eXAi.tok-en_").unwrap();
    assert_eq!(r.method, "GET");
    assert_eq!(
        r.url,
        "https://graph.microsoft.com/v1.0/communications/callRecords/4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01?$expand=sessions($expand=segments)"
    );
    assert_eq!(header(&r.headers, "Authorization"), Some("Bearer eyJ0eXAi.tok-en_"));
    assert_eq!(header(&r.headers, "Accept"), Some("application/json"));
    assert!(r.body.is_empty());
    let r = graph::participants_request("https://graph.microsoft.com/", GROUP_ID, "tok").unwrap();
    assert_eq!(
        r.url,
        "https://graph.microsoft.com/v1.0/communications/callRecords/8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02/participants_v2"
    );
    let r = graph::call_record_request("http://127.0.0.1:8081", "abc_DEF-123", "tok").unwrap();
    assert_eq!(
        r.url,
        "http://127.0.0.1:8081/v1.0/communications/callRecords/abc_DEF-123?$expand=sessions($expand=segments)"
    );
}

#[test]
fn call_record_requests_refuse_bad_ids_tokens_and_bases() {
    for id in ["", "../users", "a/b", "a?b", "a#b", "a b", "a%2Fb", "é", &"a".repeat(129)] {
        assert!(matches!(graph::call_record_request(GRAPH, id, "tok"), Err(Error::InvalidArgument(_))), "{id:?}");
        assert!(matches!(graph::participants_request(GRAPH, id, "tok"), Err(Error::InvalidArgument(_))), "{id:?}");
    }
    assert!(graph::call_record_request(GRAPH, &"a".repeat(128), "tok").is_ok());
    for token in ["", "SECRET TOKEN", "SECRET\r\nX-Injected: 1", "SECRETö", "SECRET\t"] {
        match graph::call_record_request(GRAPH, P2P_ID, token) {
            Err(Error::InvalidArgument(m)) => assert!(!m.contains("SECRET"), "{m}"),
            other => panic!("{token:?}: {other:?}"),
        }
    }
    for base in
        ["graph.microsoft.com", "https://graph.microsoft.com?x=1", "https://a@graph.microsoft.com", "https:// x"]
    {
        assert!(matches!(graph::call_record_request(base, P2P_ID, "tok"), Err(Error::InvalidArgument(_))), "{base}");
    }
}

#[test]
fn next_page_request_follows_same_origin_links_only() {
    for link in [GROUP_SESSIONS_2_LINK, GROUP_SESSIONS_3_LINK, GROUP_PARTICIPANTS_2_LINK] {
        let r = graph::next_page_request(GRAPH, link, "tok").unwrap();
        assert_eq!((r.method.as_str(), r.url.as_str()), ("GET", link));
        assert_eq!(header(&r.headers, "Authorization"), Some("Bearer tok"));
    }
    assert!(graph::next_page_request("https://graph.microsoft.com/", GROUP_SESSIONS_2_LINK, "tok").is_ok());
    for link in [
        "https://graph.microsoft.com.evil.example/v1.0/communications/callRecords?$skiptoken=1",
        "https://graph.microsoft.comevil.example/v1.0/x",
        "https://graph.microsoft.com@evil.example/v1.0/x",
        "https://graph.microsoft.com:8443/v1.0/x",
        "http://graph.microsoft.com/v1.0/x",
        "https://evil.example/https://graph.microsoft.com/v1.0/x",
        "//graph.microsoft.com/v1.0/x",
        "/v1.0/x",
        "",
        "https://graph.microsoft.com",
        "https://graph.microsoft.com/v1.0/x y",
        "https://graph.microsoft.com/v1.0/x\r\nHost: evil.example",
    ] {
        match graph::next_page_request(GRAPH, link, "tok") {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("{link:?} should be refused: {other:?}"),
        }
    }
}

#[test]
fn list_request_filters_on_start_date_time() {
    let r =
        graph::list_call_records_request(GRAPH, "2026-11-20T00:00:00Z", "2026-11-21T00:00:00+01:00", "tok").unwrap();
    assert_eq!(r.method, "GET");
    let (path, query) = r.url.split_once('?').unwrap();
    assert_eq!(path, "https://graph.microsoft.com/v1.0/communications/callRecords");
    assert!(!query.contains(' ') && !query.contains('+'), "spaces are %20: {query}");
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(
        pairs,
        [(
            "$filter".to_string(),
            "startDateTime ge 2026-11-20T00:00:00Z and startDateTime lt 2026-11-20T23:00:00Z".to_string()
        )]
    );
    for (start, end) in [
        ("2026-11-21T00:00:00Z", "2026-11-20T00:00:00Z"),
        ("2026-11-20T00:00:00Z", "2026-11-20T00:00:00Z"),
        ("yesterday", "2026-11-20T00:00:00Z"),
        ("2026-11-20T00:00:00Z", "2026-11-20T00:00:00Z' or true"),
    ] {
        assert!(
            matches!(graph::list_call_records_request(GRAPH, start, end, "tok"), Err(Error::InvalidArgument(_))),
            "{start} {end}"
        );
    }
}

#[test]
fn parse_token_response_reads_number_and_string_lifetimes() {
    let t = entra::parse_token_response(
        200,
        br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.abc"}"#,
    )
    .unwrap();
    assert_eq!((t.token.as_str(), t.expires_in_seconds), ("eyJ0eXAi.abc", 3599));
    let t =
        entra::parse_token_response(200, br#"{"token_type":"Bearer","expires_in":"3600","access_token":"x"}"#).unwrap();
    assert_eq!(t.expires_in_seconds, 3600);
    let t = entra::parse_token_response(200, br#"{"access_token":"x"}"#).unwrap();
    assert_eq!(t.expires_in_seconds, 0);
    for body in [&br#"{"expires_in":3599}"#[..], br#"{"access_token":""}"#, b"not json", b"", br#"{"access_token":5}"#]
    {
        assert!(matches!(entra::parse_token_response(200, body), Err(Error::InvalidJson(_))), "{body:?}");
    }
    let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
    match entra::parse_token_response(401, body) {
        Err(Error::Service(e)) => {
            assert_eq!((e.status, e.code.as_str(), e.retryable), (401, "invalid_client", false));
            assert!(e.message.contains("AADSTS7000215"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(entra::parse_token_response(503, b""), Err(Error::Service(e)) if e.retryable));
}

#[test]
fn access_token_and_credentials_debug_hide_secrets() {
    let t = entra::parse_token_response(200, br#"{"expires_in":3599,"access_token":"eyJSECRETTOKEN"}"#).unwrap();
    let d = format!("{t:?}");
    assert!(!d.contains("eyJSECRETTOKEN") && d.contains("3599"), "{d}");
    let d = format!("{:?}", credentials());
    assert!(!d.contains("s3cr3t") && d.contains(CONTOSO), "{d}");
    let d = format!("{:#?}", credentials());
    assert!(!d.contains("s3cr3t"), "{d}");
}

#[test]
fn next_link_of_every_page() {
    assert_eq!(graph::next_link(GROUP).unwrap().as_deref(), Some(GROUP_SESSIONS_2_LINK));
    assert_eq!(graph::next_link(GROUP_S2).unwrap().as_deref(), Some(GROUP_SESSIONS_3_LINK));
    assert_eq!(graph::next_link(GROUP_S3).unwrap(), None);
    assert_eq!(graph::next_link(GROUP_P1).unwrap().as_deref(), Some(GROUP_PARTICIPANTS_2_LINK));
    assert_eq!(graph::next_link(GROUP_P2).unwrap(), None);
    assert_eq!(graph::next_link(P2P).unwrap(), None);
    assert_eq!(graph::next_link(r#"{"@odata.nextLink":""}"#).unwrap(), None);
    assert_eq!(graph::next_link(r#"{"@odata.nextLink":null}"#).unwrap(), None);
    for bad in ["", "[]", "nope", r#"{"@odata.nextLink":5}"#] {
        assert!(matches!(graph::next_link(bad), Err(Error::InvalidJson(_))), "{bad}");
    }
}

#[test]
fn parse_list_page_reads_ids_and_link() {
    let page = graph::parse_list_page(&format!(
        r#"{{"@odata.context":"x","value":[{{"id":"{P2P_ID}","version":2,"type":"peerToPeer"}},{{"id":"{GROUP_ID}"}}],"@odata.nextLink":"{GRAPH}/v1.0/communications/callRecords?$skiptoken=abc"}}"#
    ))
    .unwrap();
    assert_eq!(page.ids, [P2P_ID, GROUP_ID]);
    assert_eq!(
        page.next_link.as_deref(),
        Some("https://graph.microsoft.com/v1.0/communications/callRecords?$skiptoken=abc")
    );
    let last = graph::parse_list_page(r#"{"value":[]}"#).unwrap();
    assert!(last.ids.is_empty() && last.next_link.is_none());
    for bad in ["", "{}", r#"{"value":[{"version":1}]}"#, r#"{"value":null}"#, "[]"] {
        assert!(matches!(graph::parse_list_page(bad), Err(Error::InvalidJson(_))), "{bad}");
    }
}

fn value_ids(doc: &str, key: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(doc).unwrap();
    v[key].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn merge_pages_joins_60_25_5_sessions_and_8_4_participants_in_order() {
    let merged: Value = serde_json::from_str(merged_group_call()).unwrap();
    let mut want_sessions = value_ids(GROUP, "sessions");
    assert_eq!(want_sessions.len(), 60);
    let (s2, s3) = (value_ids(GROUP_S2, "value"), value_ids(GROUP_S3, "value"));
    assert_eq!((s2.len(), s3.len()), (25, 5));
    want_sessions.extend(s2);
    want_sessions.extend(s3);
    let got: Vec<String> =
        merged["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got.len(), 90);
    assert_eq!(got, want_sessions);
    let mut want_participants = value_ids(GROUP_P1, "value");
    want_participants.extend(value_ids(GROUP_P2, "value"));
    assert_eq!(want_participants.len(), 12);
    let got: Vec<String> =
        merged["participants_v2"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want_participants);
    assert!(merged.get("sessions@odata.nextLink").is_none());
    assert_eq!((merged["id"].as_str(), merged["version"].as_i64()), (Some(GROUP_ID), Some(5)));
    assert_eq!(merged["organizer_v2"]["identity"]["user"]["displayName"], "Clara Jensen");
}

#[test]
fn merge_pages_keeps_inline_participants_when_there_are_no_pages() {
    let merged: Value = serde_json::from_str(&graph::merge_pages(PSTN, &[], &[]).unwrap()).unwrap();
    let original: Value = serde_json::from_str(PSTN).unwrap();
    assert_eq!(merged["participants_v2"], original["participants_v2"]);
    assert_eq!(merged["sessions"], original["sessions"]);
    // A record without sessions gets an empty list; pages still append.
    let m: Value = serde_json::from_str(
        &graph::merge_pages(r#"{"id":"x","sessions":null}"#, &[r#"{"value":[{"id":"s1"}]}"#.to_string()], &[]).unwrap(),
    )
    .unwrap();
    assert_eq!(m["sessions"], json!([{"id": "s1"}]));
}

#[test]
fn merge_pages_refuses_bad_documents() {
    let ok = || vec![GROUP_S3.to_string()];
    for (record, sessions, participants) in [
        ("not json", ok(), vec![]),
        ("[]", ok(), vec![]),
        (r#"{"id":"x","sessions":{}}"#, ok(), vec![]),
        (GROUP, vec!["{}".to_string()], vec![]),
        (GROUP, vec![r#"{"value":{}}"#.to_string()], vec![]),
        (GROUP, ok(), vec!["nope".to_string()]),
    ] {
        assert!(
            matches!(graph::merge_pages(record, &sessions, &participants), Err(Error::InvalidJson(_))),
            "{record:.20} {sessions:.40?} {participants:?}"
        );
    }
}

// =================================================================================================
// expand
// =================================================================================================

#[test]
fn peer_to_peer_values() {
    let tables = expand::expand(P2P).unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.table.name).collect();
    assert_eq!(names, ["TeamsCall_CL", "TeamsCallLeg_CL", "TeamsCallStream_CL", "TeamsCallParticipant_CL"]);
    let call = &rows(&tables, "TeamsCall_CL");
    assert_eq!(call.len(), 1);
    let c = &call[0];
    assert_eq!(c["CallId"], P2P_ID);
    assert_eq!(c["CallVersion"], 2);
    assert_eq!(c["CallType"], "peerToPeer");
    assert_eq!(c["Modalities"], json!(["audio", "video"]));
    assert_eq!(c["TimeGenerated"], "2026-11-20T09:14:03.217Z");
    assert_eq!(c["StartDateTime"], "2026-11-20T09:14:03.217Z");
    assert_eq!(c["EndDateTime"], "2026-11-20T09:31:48.9051234Z");
    assert_eq!(c["LastModifiedDateTime"], "2026-11-20T09:58:41.30227Z");
    // 09:31:48.9051234 - 09:14:03.217 = 17 min 45.6881234 s.
    assert_eq!(c["DurationMs"], 1_065_688);
    assert_eq!(c["JoinWebUrl"], Value::Null);
    assert_eq!(c["OrganizerId"], "394bbf1c-cdaa-59bf-9983-4820be1ca69a");
    assert_eq!(c["OrganizerDisplayName"], "Aiko Tanaka");
    assert_eq!(c["OrganizerUserPrincipalName"], "aiko.tanaka@contoso.com");
    assert_eq!(c["OrganizerTenantId"], CONTOSO);
    assert_eq!(c["OrganizerIdentityType"], "user");
    assert_eq!(c["TenantIds"], json!([CONTOSO]));
    assert_eq!(
        (c["SessionCount"].clone(), c["SegmentCount"].clone(), c["StreamCount"].clone()),
        (json!(1), json!(1), json!(4))
    );
    assert_eq!(c["FailedSegmentCount"], 0);

    let legs = rows(&tables, "TeamsCallLeg_CL");
    assert_eq!(legs.len(), 1);
    let l = &legs[0];
    for (k, v) in [
        ("SessionId", json!("a1c4e7f0-2b5d-4f8a-9c3e-6d0b1a4c7e11")),
        ("SegmentId", json!("b2d5f8a1-3c6e-4a9b-8d4f-7e1c2b5d8f12")),
        ("IsTest", json!(false)),
        ("DurationMs", json!(1_065_688)),
        ("CallerEndpointType", json!("participant")),
        ("CallerIdentityType", json!("user")),
        ("CallerId", json!("394bbf1c-cdaa-59bf-9983-4820be1ca69a")),
        ("CallerDisplayName", json!("Aiko Tanaka")),
        ("CallerUserPrincipalName", json!("aiko.tanaka@contoso.com")),
        ("CallerTenantId", json!(CONTOSO)),
        ("CallerPlatform", json!("macOS")),
        ("CallerProductFamily", json!("teams")),
        ("CallerApplicationVersion", json!("25306.805.4102.7211")),
        ("CallerDeviceName", json!("AIKO-MBA")),
        ("CallerIpAddress", json!("192.168.1.34")),
        ("CallerReflexiveIpAddress", json!("198.51.100.23")),
        ("CallerRelayIpAddress", json!("192.0.2.41")),
        ("CallerSubnet", json!("192.168.1.0")),
        ("CallerPort", json!(50012)),
        ("CallerConnectionType", json!("wifi")),
        ("CalleeDisplayName", json!("Ben Okafor")),
        ("CalleeId", json!("41daea39-617b-5178-b16a-290273a40d46")),
        ("CalleePlatform", json!("windows")),
        ("CalleeIpAddress", json!("10.20.14.77")),
        ("CalleeReflexiveIpAddress", json!("203.0.113.10")),
        ("CalleePort", json!(50031)),
        ("CalleeServiceRole", Value::Null),
        ("FailureStage", Value::Null),
    ] {
        assert_eq!(l[k], v, "leg {k}");
    }
    assert_eq!(l["CallerUserAgent"], "Teams/25306.805.4102.7211 (macOS 15.6; arm64) MSTeams/2.0 RTCC/2025.46.1.12");

    let streams = rows(&tables, "TeamsCallStream_CL");
    let ids: Vec<&str> = streams.iter().map(|s| s["StreamId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1948305321", "3307721986", "2210498873", "417730092"]);
    let labels: Vec<&str> = streams.iter().map(|s| s["MediaLabel"].as_str().unwrap()).collect();
    assert_eq!(labels, ["main-audio", "main-audio", "main-video", "main-video"]);
    // PT0.016S, PT0.0105S, PT0S, PT0.0213S.
    for (s, want) in streams.iter().zip([16.0, 10.5, 0.0, 21.3]) {
        let got = s["AverageJitterMs"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
    // maxJitter PT1S on the second stream.
    assert_eq!(streams[1]["MaxJitterMs"].as_f64(), Some(1000.0));
    let s = &streams[0];
    assert_eq!(s["AudioCodec"], "satin");
    assert_eq!(s["VideoCodec"], Value::Null);
    assert_eq!(s["AveragePacketLossRate"], 0.0031);
    assert_eq!(s["AverageBandwidthEstimate"], 5_874_112);
    assert_eq!(s["PacketUtilization"], 53118);
    assert_eq!(s["AverageRoundTripTimeMs"].as_f64(), Some(42.0));
    assert_eq!(s["StreamDirection"], "callerToCallee");
    assert_eq!(s["CallerIpAddress"], "192.168.1.34");
    assert_eq!(s["CalleeReflexiveIpAddress"], "203.0.113.10");
    assert_eq!(streams[2]["VideoCodec"], "h264");

    let parts = rows(&tables, "TeamsCallParticipant_CL");
    assert_eq!(parts[0]["Role"], "organizer");
    assert_eq!(parts[0]["Source"], "organizer_v2");
    assert_eq!(parts[0]["DisplayName"], "Aiko Tanaka");
    assert_eq!(parts[0]["EndpointType"], "default");
    assert_rows_match_schema(&tables);
}

#[test]
fn group_call_merged_has_90_legs_180_streams_13_participant_rows() {
    let tables = expand::expand(merged_group_call()).unwrap();
    let c = &rows(&tables, "TeamsCall_CL")[0];
    assert_eq!(c["CallId"], GROUP_ID);
    assert_eq!(c["CallVersion"], 5);
    assert_eq!(c["CallType"], "groupCall");
    assert_eq!(c["SessionCount"], 90);
    assert_eq!(c["SegmentCount"], 90);
    assert_eq!(c["StreamCount"], 180);
    assert_eq!(c["ParticipantCount"], 12);
    assert_eq!(c["FailedSegmentCount"], 14);
    assert_eq!(c["OrganizerDisplayName"], "Clara Jensen");
    let tenants = c["TenantIds"].as_array().unwrap();
    assert!(tenants.contains(&json!(CONTOSO)) && tenants.contains(&json!(FABRIKAM)), "{tenants:?}");
    let legs = rows(&tables, "TeamsCallLeg_CL");
    assert_eq!(legs.len(), 90);
    // Leg order follows the merged session order (one segment per session).
    let mut want = value_ids(GROUP, "sessions");
    want.extend(value_ids(GROUP_S2, "value"));
    want.extend(value_ids(GROUP_S3, "value"));
    let got: Vec<String> = legs.iter().map(|l| l["SessionId"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want);
    assert_eq!(legs.iter().filter(|l| l["FailureStage"] == "midcall").count(), 14);
    assert_eq!(rows(&tables, "TeamsCallStream_CL").len(), 180);
    let parts = rows(&tables, "TeamsCallParticipant_CL");
    assert_eq!(parts.len(), 13);
    assert_eq!(parts[0]["Role"], "organizer");
    assert_eq!(parts.iter().filter(|p| p["Role"] == "participant").count(), 12);
    let mut want_ids = value_ids(GROUP_P1, "value");
    want_ids.extend(value_ids(GROUP_P2, "value"));
    let got: Vec<String> = parts[1..].iter().map(|p| p["ParticipantId"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want_ids);
    assert!(parts.iter().all(|p| p["CallId"] == GROUP_ID && p["CallVersion"] == 5));
    assert_rows_match_schema(&tables);
    // The first page alone has 60 sessions: merging is what completes it.
    let first = expand::expand(GROUP).unwrap();
    assert_eq!(rows(&first, "TeamsCall_CL")[0]["SessionCount"], 60);
}

#[test]
fn oddities_numbers_enums_and_durations() {
    let tables = expand::expand(ODD).unwrap();
    let c = &rows(&tables, "TeamsCall_CL")[0];
    assert_eq!(c["CallId"], ODD_ID);
    assert_eq!(c["CallVersion"], 7);
    assert_eq!(c["CallType"], "unknownFutureValue");
    assert_eq!(c["Modalities"], json!(["audio", "brandNewModality"]));
    assert_eq!(
        (c["SessionCount"].clone(), c["SegmentCount"].clone(), c["StreamCount"].clone()),
        (json!(2), json!(3), json!(2))
    );
    assert_eq!(c["FailedSegmentCount"], 2);
    let streams = rows(&tables, "TeamsCallStream_CL");
    assert_eq!(streams.len(), 2);
    let s = &streams[0];
    assert_eq!(s["StreamDirection"], "bothWays");
    assert_eq!(s["AveragePacketLossRate"], Value::Null, "\"NaN\" -> null");
    assert_eq!(s["MaxPacketLossRate"], Value::Null, "\"Infinity\" -> null");
    assert_eq!(s["AverageAudioDegradation"], json!(1.25), "\"1.25\" -> 1.25");
    assert_eq!(s["AverageJitterMs"], json!(62_500.0), "PT1M2.5S");
    let max_jitter = s["MaxJitterMs"].as_f64().unwrap();
    assert!((max_jitter - 0.0001).abs() < 1e-12, "PT0.0000001S -> {max_jitter}");
    assert_eq!(s["AudioCodec"], Value::Null);
    assert_eq!(s["CallerConnectionType"], "satellite");
    assert_eq!(s["CalleeIpAddress"], Value::Null, "null callee network");
    let s = &streams[1];
    assert_eq!(s["AudioCodec"], "brandNewCodec");
    assert_eq!(s["StreamId"], Value::Null);
    assert_eq!(s["AverageJitterMs"], json!(0.0));
    assert_eq!(s["AveragePacketLossRate"], json!(0.0));
    assert_eq!(s["PacketUtilization"], 0);
    assert_eq!(s["WasMediaBypassed"], false);
    // No start of its own: the segment's start.
    assert_eq!(s["TimeGenerated"], "2026-11-20T08:00:00.12Z");
    let legs = rows(&tables, "TeamsCallLeg_CL");
    assert_eq!(legs.len(), 3);
    assert_eq!(legs[0]["CallerEndpointType"], "service");
    assert_eq!(legs[0]["CallerServiceRole"], "customBot");
    assert_eq!(legs[0]["CallerIdentityType"], Value::Null);
    assert_eq!(legs[0]["CallerConnectionType"], "satellite");
    assert_eq!(legs[0]["CalleePlatform"], "unknownFutureValue");
    assert_eq!(
        (legs[0]["FailureStage"].clone(), legs[0]["FailureReason"].clone()),
        (json!("midcall"), json!("mediaTimeout"))
    );
    assert_eq!(legs[0]["DurationMs"], 62_003);
    assert_eq!(legs[1]["FailureStage"], "unknownFutureValue");
    assert_eq!(legs[1]["FailureReason"], Value::Null);
    assert_eq!(legs[1]["IsTest"], Value::Null);
    assert_eq!(legs[1]["Modalities"], json!([]));
    assert_eq!(legs[1]["CalleeEndpointType"], Value::Null, "null callee");
    assert_rows_match_schema(&tables);
}

#[test]
fn oddities_use_the_deprecated_identities_as_fallback() {
    let tables = expand::expand(ODD).unwrap();
    let c = &rows(&tables, "TeamsCall_CL")[0];
    assert_eq!(c["OrganizerDisplayName"], "Erik Lindqvist");
    assert_eq!(c["OrganizerId"], "8c122715-98e3-56eb-8b76-8e897e8ee97a");
    assert_eq!(c["OrganizerIdentityType"], "user");
    assert_eq!(c["ParticipantCount"], 3);
    let parts = rows(&tables, "TeamsCallParticipant_CL");
    let got: Vec<(Value, Value, Value, Value)> = parts
        .iter()
        .map(|p| (p["Role"].clone(), p["IdentityType"].clone(), p["DisplayName"].clone(), p["Source"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!("organizer"), json!("user"), json!("Erik Lindqvist"), json!("organizer")),
            (json!("participant"), json!("user"), json!("Erik Lindqvist"), json!("participants")),
            (json!("participant"), json!("application"), json!("Contoso Compliance Recorder"), json!("participants")),
            (json!("participant"), json!("acsUser"), json!("Lobby Kiosk"), json!("participants")),
        ]
    );
    assert_eq!(parts[3]["UserId"], "8:acs:2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11_0000001f-4e2a-9c3b-85f4-343a0d00a7b1");
    assert_eq!(parts[3]["ParticipantTenantId"], Value::Null);
    let legs = rows(&tables, "TeamsCallLeg_CL");
    assert_eq!(legs[0]["CalleeDisplayName"], "Erik Lindqvist", "endpoint `identity` when no associatedIdentity");
    assert_eq!(legs[0]["CalleeIdentityType"], "user");
    assert_eq!(legs[0]["CalleeTenantId"], CONTOSO);
    assert_eq!(legs[1]["CallerIdentityType"], "acsUser");
    assert_eq!(legs[1]["CallerDisplayName"], "Lobby Kiosk");
    assert_eq!(legs[1]["CallerProductFamily"], "azureCommunicationServices");
}

#[test]
fn v2_identities_win_over_deprecated_ones() {
    let record = json!({
        "id": "rec1",
        "organizer": { "user": { "id": "old", "displayName": "Old Organizer" } },
        "organizer_v2": { "id": "new", "identity": { "user": { "id": "new", "displayName": "New Organizer" } } },
        "participants": [ { "user": { "id": "old-p", "displayName": "Old P" } } ],
        "participants_v2": [ { "id": "p2", "identity": { "guest": { "id": "p2", "displayName": "Guest P" } } } ],
        "sessions": [ { "id": "s", "caller": {
            "associatedIdentity": { "@odata.type": "#microsoft.graph.communicationsGuestIdentity", "id": "g", "displayName": "Assoc" },
            "identity": { "user": { "id": "u", "displayName": "Deprecated" } }
        } } ]
    })
    .to_string();
    let tables = expand::expand(&record).unwrap();
    let c = &rows(&tables, "TeamsCall_CL")[0];
    assert_eq!(c["OrganizerDisplayName"], "New Organizer");
    assert_eq!(c["ParticipantCount"], 1);
    let parts = rows(&tables, "TeamsCallParticipant_CL");
    assert_eq!(parts[1]["DisplayName"], "Guest P");
    assert_eq!(parts[1]["Source"], "participants_v2");
    let legs = rows(&tables, "TeamsCallLeg_CL");
    assert_eq!(legs.len(), 1, "a session without segments is one leg");
    assert_eq!(legs[0]["SegmentId"], Value::Null);
    assert_eq!(legs[0]["CallerDisplayName"], "Assoc");
    assert_eq!(legs[0]["CallerIdentityType"], "guest");
    assert_rows_match_schema(&tables);
}

#[test]
fn timestamps_with_0_to_7_fraction_digits_are_kept() {
    let tables = expand::expand(ODD).unwrap();
    let c = &rows(&tables, "TeamsCall_CL")[0];
    let legs = rows(&tables, "TeamsCallLeg_CL");
    let streams = rows(&tables, "TeamsCallStream_CL");
    for (got, want) in [
        (&c["StartDateTime"], "2026-11-20T08:00:00Z"),
        (&c["EndDateTime"], "2026-11-20T08:03:30.1Z"),
        (&legs[0]["StartDateTime"], "2026-11-20T08:00:00.12Z"),
        (&streams[0]["StartDateTime"], "2026-11-20T08:00:00.123Z"),
        (&streams[0]["EndDateTime"], "2026-11-20T08:01:02.1234Z"),
        (&legs[0]["EndDateTime"], "2026-11-20T08:01:02.12345Z"),
        (&c["LastModifiedDateTime"], "2026-11-20T08:47:13.1234567Z"),
        (&legs[2]["StartDateTime"], "2026-11-20T08:01:31.55Z"),
    ] {
        assert_eq!(got, want);
    }
    // Six digits (only in a session of the fixture): a synthetic record.
    let record = json!({
        "id": "rec", "startDateTime": "2026-11-20T08:00:00.123456Z", "endDateTime": "2026-11-20T08:00:01.1234567Z",
        "lastModifiedDateTime": "2026-11-20T09:30:00+01:30"
    })
    .to_string();
    let c = &rows(&expand::expand(&record).unwrap(), "TeamsCall_CL")[0];
    assert_eq!(c["StartDateTime"], "2026-11-20T08:00:00.123456Z");
    assert_eq!(c["EndDateTime"], "2026-11-20T08:00:01.1234567Z");
    assert_eq!(c["DurationMs"], 1000);
    assert_eq!(c["LastModifiedDateTime"], "2026-11-20T08:00:00Z", "offsets become UTC");
    // No start: the call row's TimeGenerated falls back to lastModifiedDateTime.
    let record = json!({"id": "rec", "lastModifiedDateTime": "2026-11-20T08:47:13.1234567Z"}).to_string();
    let c = &rows(&expand::expand(&record).unwrap(), "TeamsCall_CL")[0];
    assert_eq!(c["TimeGenerated"], "2026-11-20T08:47:13.1234567Z");
    assert_eq!(c["StartDateTime"], Value::Null);
    // Unreadable timestamps are null, never an error.
    let record = json!({"id": "rec", "startDateTime": "2026-02-30T00:00:00Z", "endDateTime": "soon"}).to_string();
    let c = &rows(&expand::expand(&record).unwrap(), "TeamsCall_CL")[0];
    assert_eq!((c["StartDateTime"].clone(), c["DurationMs"].clone()), (Value::Null, Value::Null));
}

#[test]
fn timestamps_know_the_calendar_and_offsets() {
    let start = |ts: &str| {
        let record = json!({ "id": "rec", "startDateTime": ts }).to_string();
        rows(&expand::expand(&record).unwrap(), "TeamsCall_CL")[0]["StartDateTime"].clone()
    };
    for (input, want) in [
        ("2028-02-29T12:00:00Z", json!("2028-02-29T12:00:00Z")),
        ("2000-02-29T12:00:00.5Z", json!("2000-02-29T12:00:00.5Z")),
        ("2026-02-29T12:00:00Z", Value::Null),
        ("2100-02-29T12:00:00Z", Value::Null),
        ("2026-04-31T00:00:00Z", Value::Null),
        ("2026-12-31T23:30:00-01:00", json!("2027-01-01T00:30:00Z")),
        ("2027-01-01T00:30:00.25+01:00", json!("2026-12-31T23:30:00.25Z")),
        ("2026-03-01T00:00:00+23:59", json!("2026-02-28T00:01:00Z")),
        ("2026-11-20t08:00:00z", json!("2026-11-20T08:00:00Z")),
        ("2026-11-20T08:00:00", json!("2026-11-20T08:00:00Z")),
        ("2026-11-20T08:00:00.Z", Value::Null),
        ("2026-11-20T08:00Z", Value::Null),
        ("2026-11-20T08:00:00+0100", Value::Null),
        ("2026-11-20T08:00:00+24:00", Value::Null),
        ("2026-11-20T24:00:00Z", Value::Null),
        ("2026-11-20T08:60:00Z", Value::Null),
        ("2026-11-20 08:00:00Z", Value::Null),
        ("２０２６-11-20T08:00:00Z", Value::Null),
    ] {
        assert_eq!(start(input), want, "{input}");
    }
}

#[test]
fn every_row_of_every_fixture_has_exactly_the_schema_columns() {
    for record in [P2P, PSTN, GUEST, ODD, merged_group_call()] {
        let tables = expand::expand(record).unwrap();
        assert_eq!(tables.len(), 4);
        assert_rows_match_schema(&tables);
        let seed = expand::seed_row(record).unwrap();
        assert_eq!(keys_in_order(&seed), column_names(&schema::SEED));
    }
}

#[test]
fn pstn_and_guest_identities() {
    let tables = expand::expand(PSTN).unwrap();
    let legs = rows(&tables, "TeamsCallLeg_CL");
    assert_eq!(legs.len(), 2);
    assert_eq!(legs[0]["CallerDisplayName"], "Marek Dvorak");
    assert_eq!(legs[0]["CalleeServiceRole"], "mediationServer");
    assert_eq!(legs[1]["CalleeIdentityType"], "phone");
    assert_eq!(legs[1]["CalleeId"], "+9005550123");
    assert_eq!(legs[1]["CalleeServiceRole"], "gateway");
    let streams = rows(&tables, "TeamsCallStream_CL");
    assert_eq!(
        streams.iter().map(|s| s["WasMediaBypassed"].clone()).collect::<Vec<_>>(),
        [json!(true), json!(true), json!(false), json!(false)]
    );
    let tables = expand::expand(GUEST).unwrap();
    let c = &rows(&tables, "TeamsCall_CL")[0];
    assert_eq!(c["ParticipantCount"], 6);
    assert_eq!(c["TenantIds"], json!([CONTOSO, FABRIKAM]));
    let parts = rows(&tables, "TeamsCallParticipant_CL");
    let kinds: Vec<&str> = parts.iter().filter_map(|p| p["IdentityType"].as_str()).collect();
    assert!(kinds.contains(&"guest") && kinds.contains(&"spoolUser"), "{kinds:?}");
    assert!(parts.iter().any(|p| p["DisplayName"] == "Anonymous"));
    let legs = rows(&tables, "TeamsCallLeg_CL");
    assert!(legs.iter().any(|l| l["FailureStage"] == "callSetup"));
}

/// Values read off `metadata-none.json` by hand.
#[test]
fn a_record_without_odata_types_still_names_identity_kinds() {
    let tables = expand::expand(NO_TYPES).unwrap();
    let legs = rows(&tables, "TeamsCallLeg_CL");
    assert_eq!(legs.len(), 1);
    let leg = &legs[0];
    // Caller: associatedIdentity {id, displayName, tenantId, userPrincipalName} and no @odata.type;
    // participants_v2 names the same id under `user`.
    assert_eq!(leg["CallerIdentityType"], "user");
    assert_eq!(leg["CallerId"], "5d2f8a61-3c7e-4b9a-a1d0-6e4f2b8c9d17");
    assert_eq!(leg["CallerDisplayName"], "Dana Whitfield");
    assert_eq!(leg["CallerUserPrincipalName"], "dana.whitfield@contoso.com");
    assert_eq!(leg["CallerTenantId"], CONTOSO);
    assert_eq!(leg["CallerEndpointType"], "participant", "an endpoint with an associatedIdentity");
    // Callee: a phone number; participants_v2 names it under `phone`; its tenantId is "".
    assert_eq!(leg["CalleeIdentityType"], "phone");
    assert_eq!(leg["CalleeId"], "+14255550147");
    assert_eq!(leg["CalleeTenantId"], Value::Null);
}

#[test]
fn an_identity_without_a_type_or_participant_entry_is_a_user_only_with_a_upn() {
    let mut v: Value = serde_json::from_str(NO_TYPES).unwrap();
    v["participants_v2"] = json!([]);
    let leg = &rows(&expand::expand(&v.to_string()).unwrap(), "TeamsCallLeg_CL")[0];
    assert_eq!(leg["CallerIdentityType"], "user", "a user principal name is a user's");
    assert_eq!(leg["CalleeIdentityType"], Value::Null, "nothing says what +14255550147 is");
    // A typed associatedIdentity keeps its own kind whatever participants_v2 says.
    let mut v: Value = serde_json::from_str(NO_TYPES).unwrap();
    v["sessions"][0]["caller"]["associatedIdentity"]["@odata.type"] =
        json!("#microsoft.graph.communicationsGuestIdentity");
    let leg = &rows(&expand::expand(&v.to_string()).unwrap(), "TeamsCallLeg_CL")[0];
    assert_eq!(leg["CallerIdentityType"], "guest");
}

#[test]
fn empty_string_addresses_keep_the_port_and_connection_type() {
    let tables = expand::expand(NO_TYPES).unwrap();
    let leg = &rows(&tables, "TeamsCallLeg_CL")[0];
    // callerNetwork: every address "", port 50012, wired.
    assert_eq!(leg["CallerIpAddress"], Value::Null);
    assert_eq!(leg["CallerReflexiveIpAddress"], Value::Null);
    assert_eq!(leg["CallerSubnet"], Value::Null);
    assert_eq!(leg["CallerPort"], 50012);
    assert_eq!(leg["CallerConnectionType"], "wired");
    // calleeNetwork: 203.0.113.45:3478, connectionType unknown.
    assert_eq!(leg["CalleeIpAddress"], "203.0.113.45");
    assert_eq!(leg["CalleePort"], 3478);
    assert_eq!(leg["CalleeConnectionType"], "unknown");
    let streams = rows(&tables, "TeamsCallStream_CL");
    assert_eq!(streams.len(), 2);
    assert!(streams.iter().all(|s| s["CallerConnectionType"] == "wired" && s["CallerIpAddress"].is_null()));
}

#[test]
fn list_items_of_the_wrong_shape_are_not_a_call_record() {
    // Arrays where Graph sends objects: serde would read an array as a struct field by field.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (what, record) in [
        ("sessions of arrays", r#"{"id":"x","sessions":[[],[1,2]]}"#.to_string()),
        ("a deep array as a session", format!(r#"{{"id":"x","sessions":[{deep}]}}"#)),
        ("segments of arrays", r#"{"id":"x","sessions":[{"id":"s","segments":[["a"]]}]}"#.to_string()),
        (
            "streams of strings",
            r#"{"id":"x","sessions":[{"id":"s","segments":[{"media":[{"streams":["s"]}]}]}]}"#.to_string(),
        ),
        ("participants_v2 of arrays", r#"{"id":"x","participants_v2":[["p"]]}"#.to_string()),
    ] {
        assert!(matches!(expand::expand(&record), Err(Error::InvalidJson(_))), "{what}");
    }
}

#[test]
fn expand_refuses_what_is_not_a_call_record() {
    for bad in
        ["", "   ", "[]", "null", "42", "{}", r#"{"id":null}"#, r#"{"id":""}"#, "{", r#"{"id":"x","sessions":[1]}"#]
    {
        assert!(matches!(expand::expand(bad), Err(Error::InvalidJson(_))), "expand {bad:?}");
        assert!(matches!(expand::seed_row(bad), Err(Error::InvalidJson(_))), "seed_row {bad:?}");
    }
}

#[test]
fn seed_row_has_the_2020_shape() {
    let row: Value = serde_json::from_str(&expand::seed_row(P2P).unwrap()).unwrap();
    assert_eq!(row["id"], P2P_ID);
    assert_eq!(row["version"], 2);
    assert_eq!(row["type"], "peerToPeer");
    assert_eq!(row["modalities"], r#"["audio","video"]"#);
    assert_eq!(row["startDateTime"], "2026-11-20T09:14:03.217Z");
    assert_eq!(row["organizer_user_id"], "394bbf1c-cdaa-59bf-9983-4820be1ca69a");
    assert_eq!(row["organizer_user_displayName"], "Aiko Tanaka", "organizer_v2 when organizer is null");
    assert_eq!(row["organizer_user_tenantId"], CONTOSO);
    assert_eq!(row["participants"], "[]");
    let sessions: Value = serde_json::from_str(row["sessions"].as_str().unwrap()).unwrap();
    let original: Value = serde_json::from_str(P2P).unwrap();
    assert_eq!(sessions, original["sessions"]);
    let row: Value = serde_json::from_str(&expand::seed_row(ODD).unwrap()).unwrap();
    assert_eq!(row["organizer_user_displayName"], "Erik Lindqvist");
    let participants: Value = serde_json::from_str(row["participants"].as_str().unwrap()).unwrap();
    assert_eq!(participants, original_of(ODD)["participants"]);
    // participants_v2 identities when the deprecated list is empty.
    let row: Value = serde_json::from_str(&expand::seed_row(PSTN).unwrap()).unwrap();
    let participants: Value = serde_json::from_str(row["participants"].as_str().unwrap()).unwrap();
    let want: Vec<Value> =
        original_of(PSTN)["participants_v2"].as_array().unwrap().iter().map(|p| p["identity"].clone()).collect();
    assert_eq!(participants, Value::Array(want));
}

fn original_of(doc: &str) -> Value {
    serde_json::from_str(doc).unwrap()
}

// =================================================================================================
// schema
// =================================================================================================

const TYPED: [&Table; 4] = [&schema::CALL, &schema::LEG, &schema::STREAM, &schema::PARTICIPANT];

#[test]
fn typed_table_columns_obey_logs_ingestion_rules() {
    for t in TYPED {
        assert!(t.name.ends_with("_CL"), "{}", t.name);
        assert_eq!(t.stream, format!("Custom-{}", t.name));
        assert_eq!(t.columns[0].name, "TimeGenerated", "{}", t.name);
        assert!(t.columns.len() <= 500);
        let mut seen: Vec<String> = vec![];
        for c in t.columns {
            let n = c.name;
            assert!(n.chars().next().is_some_and(|ch| ch.is_ascii_alphabetic()), "{}.{n}: letter first", t.name);
            assert!(n.len() <= 45, "{}.{n}: at most 45 chars", t.name);
            assert!(n.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'), "{}.{n}: charset", t.name);
            for reserved in ["TenantId", "Type", "_ResourceId"] {
                assert!(!n.eq_ignore_ascii_case(reserved), "{}.{n} is reserved", t.name);
            }
            assert!(!seen.contains(&n.to_ascii_lowercase()), "{}.{n} twice", t.name);
            seen.push(n.to_ascii_lowercase());
        }
    }
}

#[test]
fn schema_tables_and_streams() {
    let names: Vec<&str> = schema::TABLES.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "TeamsCall_CL",
            "TeamsCallLeg_CL",
            "TeamsCallStream_CL",
            "TeamsCallParticipant_CL",
            "TeamsPstnCall_CL",
            "TeamsDirectRoutingCall_CL",
            "TEAMSGraphCallRecords_CL"
        ]
    );
    for t in schema::TABLES {
        assert_eq!(t.stream, format!("Custom-{}", t.name));
        // Data Collector names also need letters, digits, underscore.
        for c in t.columns {
            assert!(c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'), "{}", c.name);
        }
    }
    // The seed table keeps the 2020 names the Data Collector suffixes (id_s, Type_s, ...).
    let seed: Vec<&str> = schema::SEED.columns.iter().map(|c| c.name).collect();
    for n in [
        "id",
        "type",
        "modalities",
        "startDateTime",
        "endDateTime",
        "joinWebUrl",
        "organizer_user_displayName",
        "participants",
        "sessions",
    ] {
        assert!(seed.contains(&n), "{n}");
    }
    let doc: Value = serde_json::from_str(&schema::tables_json()).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["tables"].as_array().unwrap().len(), 7);
    assert_eq!(doc["tables"][0]["columns"][0]["name"], "TimeGenerated");
    assert_eq!(doc["tables"][0]["columns"][0]["type"], "datetime");
}

#[test]
fn column_name_rule() {
    for ok in ["TimeGenerated", "a", "A1_b", &"x".repeat(45)] {
        assert!(schema::column_name_ok(ok), "{ok}");
    }
    for bad in ["", "_x", "1a", "a-b", "a b", "é", "TenantId", "tenantid", "TYPE", "_ResourceId", &"x".repeat(46)] {
        assert!(!schema::column_name_ok(bad), "{bad}");
    }
}

// =================================================================================================
// monitor (Azure Monitor / Sentinel)
// =================================================================================================

fn batch_values(batches: &[monitor::Batch]) -> Vec<Value> {
    let mut out = vec![];
    for b in batches {
        match serde_json::from_slice::<Value>(&b.body).expect("batch body is JSON") {
            Value::Array(a) => {
                assert_eq!(a.len(), b.rows as usize, "Batch::rows");
                out.extend(a);
            }
            other => panic!("batch body is not an array: {other}"),
        }
    }
    out
}

#[test]
fn batch_rows_keeps_order_and_count_within_1_mb() {
    let rows: Vec<String> =
        (0..4000).map(|i| json!({ "i": i, "pad": "p".repeat(200 + (i * 37) % 900) }).to_string()).collect();
    let total: usize = rows.iter().map(String::len).sum();
    assert!(total > 2_000_000, "enough for several batches");
    let batches = monitor::batch_rows(&rows, Sink::LogsIngestion).unwrap();
    assert!(batches.len() >= 2);
    for b in &batches {
        assert!(b.body.len() <= 1_000_000, "{}", b.body.len());
        assert_eq!(b.truncated_fields, 0);
    }
    let want: Vec<Value> = rows.iter().map(|r| serde_json::from_str(r).unwrap()).collect();
    assert_eq!(batch_values(&batches), want);
    // The Data Collector takes 30 MB: one batch.
    let batches = monitor::batch_rows(&rows, Sink::DataCollector).unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].rows, 4000);
    assert!(monitor::batch_rows(&[], Sink::LogsIngestion).unwrap().is_empty());
}

#[test]
fn batch_rows_fills_a_batch_to_exactly_1_000_000_bytes() {
    // "[" + a + "," + b + "]" = 1_000_000.
    let (a, b) = (row_of_len(499_998), row_of_len(499_999));
    let batches = monitor::batch_rows(&[a.clone(), b], Sink::LogsIngestion).unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].body.len(), 1_000_000);
    let batches = monitor::batch_rows(&[a, row_of_len(500_000)], Sink::LogsIngestion).unwrap();
    assert_eq!(batches.iter().map(|b| b.rows).collect::<Vec<_>>(), [1, 1]);
    // One row alone: "[" + row + "]".
    let batches = monitor::batch_rows(&[row_of_len(999_998)], Sink::LogsIngestion).unwrap();
    assert_eq!(batches[0].body.len(), 1_000_000);
}

#[test]
fn a_single_row_too_big_for_one_request_is_too_large_and_named() {
    let ok = json!({"a": 1}).to_string();
    let big = row_of_len(999_999);
    match monitor::batch_rows(&[ok.clone(), ok.clone(), big], Sink::LogsIngestion) {
        Err(Error::TooLarge(m)) => assert!(m.contains("row 2"), "{m}"),
        other => panic!("{:?}", other.map(|b| b.len())),
    }
    // Many fields, each under 64 KiB, summing to more than 1 MB.
    let wide: serde_json::Map<String, Value> = (0..20).map(|i| (format!("f{i}"), json!("w".repeat(60_000)))).collect();
    match monitor::batch_rows(&[ok, Value::Object(wide).to_string()], Sink::LogsIngestion) {
        Err(Error::TooLarge(m)) => assert!(m.contains("row 1"), "{m}"),
        other => panic!("{:?}", other.map(|b| b.len())),
    }
}

/// `original` cut to `max` bytes with the marker, computed here.
fn expected_cut(original: &str, max: usize) -> String {
    let marker = format!("{TRUNCATION_MARKER}{}]", original.len());
    let mut keep = max - marker.len();
    while !original.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{marker}", &original[..keep])
}

#[test]
fn long_fields_are_cut_with_a_marker_on_a_char_boundary() {
    assert_eq!(monitor::TRUNCATION_MARKER, TRUNCATION_MARKER);
    for (sink, max, ch) in
        [(Sink::LogsIngestion, 65_536, 'é'), (Sink::DataCollector, 32_768, '€'), (Sink::LogsIngestion, 65_536, '😀')]
    {
        let original = format!("a{}", ch.to_string().repeat(50_000));
        let row = json!({ "id": "r1", "big": original, "small": "s", "n": 5 }).to_string();
        let batches = monitor::batch_rows(&[row], sink).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].truncated_fields, 1);
        let v = &batch_values(&batches)[0];
        let cut = v["big"].as_str().unwrap();
        assert!(cut.len() <= max, "{} > {max}", cut.len());
        assert!(cut.len() > max - 4, "cut no more than a character short: {}", cut.len());
        assert_eq!(cut, expected_cut(&original, max));
        assert!(cut.ends_with(&format!("original bytes: {}]", original.len())));
        assert_eq!((v["id"].clone(), v["small"].clone(), v["n"].clone()), (json!("r1"), json!("s"), json!(5)));
    }
}

#[test]
fn long_structured_fields_become_cut_text_and_short_ones_stay() {
    let list: Vec<Value> = (0..20_000).map(|i| json!(i)).collect();
    let list_text = Value::Array(list.clone()).to_string();
    assert!(list_text.len() > 65_536);
    let row = json!({ "sessions": list, "kept": {"a": [1, 2]}, "other": "x".repeat(40_000) }).to_string();
    let batches = monitor::batch_rows(std::slice::from_ref(&row), Sink::LogsIngestion).unwrap();
    assert_eq!(batches[0].truncated_fields, 1);
    let v = &batch_values(&batches)[0];
    assert_eq!(v["sessions"].as_str().unwrap(), expected_cut(&list_text, 65_536));
    assert_eq!(v["kept"], json!({"a": [1, 2]}));
    assert_eq!(v["other"].as_str().unwrap().len(), 40_000);
    // Over 64 KiB in total but no field over the limit: unchanged.
    let row = json!({ "a": "x".repeat(40_000), "b": "y".repeat(40_000), "c": "" }).to_string();
    let batches = monitor::batch_rows(std::slice::from_ref(&row), Sink::LogsIngestion).unwrap();
    assert_eq!(batches[0].truncated_fields, 0);
    assert_eq!(batch_values(&batches)[0], serde_json::from_str::<Value>(&row).unwrap());
}

#[test]
fn rows_that_are_not_json_objects_are_invalid_json_and_named() {
    let ok = json!({"a": 1}).to_string();
    let long_array = format!("[{}]", "1,".repeat(40_000) + "1");
    for bad in
        ["", "not json", "[1]", "42", "\"s\"", "null", "{\"a\":1} x", "{\"a\":", "{\"a\":1}{\"b\":2}", &long_array]
    {
        match monitor::batch_rows(&[ok.clone(), bad.to_string()], Sink::LogsIngestion) {
            Err(Error::InvalidJson(m)) => assert!(m.contains("row 1"), "{m}"),
            other => panic!("{bad:.20}: {:?}", other.map(|b| b.len())),
        }
    }
}

fn li_target() -> LogsIngestionTarget {
    LogsIngestionTarget { endpoint: DCE.into(), dcr_immutable_id: DCR.into(), stream: "Custom-TeamsCall_CL".into() }
}

#[test]
fn logs_ingestion_request_url_headers_and_gzip() {
    let body = br#"[{"TimeGenerated":"2026-11-20T09:14:03.217Z","CallId":"x"}]"#;
    let r = monitor::logs_ingestion_request(&li_target(), "eyJ.tok", body, true).unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.url,
        "https://teams-dce-a1b2.eastus-1.ingest.monitor.azure.com/dataCollectionRules/dcr-00112233445566778899aabbccddeeff/streams/Custom-TeamsCall_CL?api-version=2023-01-01"
    );
    assert_eq!(
        r.headers,
        [
            ("Authorization".to_string(), "Bearer eyJ.tok".to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Content-Encoding".to_string(), "gzip".to_string()),
        ]
    );
    assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(gunzip(&r.body), body);
    let d = format!("{r:?}");
    assert!(!d.contains("eyJ.tok"), "{d}");
    let r = monitor::logs_ingestion_request(&li_target(), "eyJ.tok", body, false).unwrap();
    assert_eq!(r.body, body);
    assert_eq!(header(&r.headers, "Content-Encoding"), None);
    // Real batches go through unchanged.
    let rows: Vec<String> = (0..50).map(|i| json!({"i": i}).to_string()).collect();
    let b = &monitor::batch_rows(&rows, Sink::LogsIngestion).unwrap()[0];
    let r = monitor::logs_ingestion_request(&li_target(), "t", &b.body, true).unwrap();
    assert_eq!(gunzip(&r.body), b.body);
}

#[test]
fn logs_ingestion_request_refuses_bad_targets_and_bodies() {
    let body = b"[]";
    let bad_targets = [
        LogsIngestionTarget { dcr_immutable_id: "dcr-0011".into(), ..li_target() },
        LogsIngestionTarget { dcr_immutable_id: "00112233445566778899aabbccddeeff".into(), ..li_target() },
        LogsIngestionTarget { dcr_immutable_id: "dcr-00112233445566778899aabbccddeefg".into(), ..li_target() },
        LogsIngestionTarget { stream: "TeamsCall_CL".into(), ..li_target() },
        LogsIngestionTarget { stream: "Custom-".into(), ..li_target() },
        LogsIngestionTarget { stream: "Custom-Teams/../x".into(), ..li_target() },
        LogsIngestionTarget { stream: "Custom-1abc".into(), ..li_target() },
        LogsIngestionTarget { endpoint: "teams-dce.ingest.monitor.azure.com".into(), ..li_target() },
        LogsIngestionTarget { endpoint: format!("{DCE}?x=1"), ..li_target() },
    ];
    for t in bad_targets {
        assert!(
            matches!(monitor::logs_ingestion_request(&t, "tok", body, false), Err(Error::InvalidArgument(_))),
            "{t:?}"
        );
    }
    for b in [&b""[..], b"{}", b"x[", b"   "] {
        assert!(matches!(
            monitor::logs_ingestion_request(&li_target(), "tok", b, false),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(monitor::logs_ingestion_request(&li_target(), " \n[]", b"[]", false).is_err(), "token with whitespace");
    assert!(monitor::logs_ingestion_request(&li_target(), "", b"[]", false).is_err());
    // Over 1 MB as sent.
    let mut big = b"[".to_vec();
    big.resize(1_000_001, b' ');
    assert!(matches!(monitor::logs_ingestion_request(&li_target(), "tok", &big, false), Err(Error::TooLarge(_))));
    // Compressed size counts when gzip is on: incompressible data over 1 MB compressed.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise: Vec<u8> = (0..1_000_100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    noise[0] = b'[';
    assert!(matches!(monitor::logs_ingestion_request(&li_target(), "tok", &noise, true), Err(Error::TooLarge(_))));
    // ... while the same size that compresses well goes through.
    let mut compressible = b"[".to_vec();
    compressible.resize(1_000_100, b' ');
    let r = monitor::logs_ingestion_request(&li_target(), "tok", &compressible, true).unwrap();
    assert_eq!(gunzip(&r.body), compressible);
}

fn dc_target() -> DataCollectorTarget {
    DataCollectorTarget {
        workspace_id: WORKSPACE.into(),
        shared_key: shared_key(),
        log_type: "TEAMSGraphCallRecords".into(),
        time_generated_field: None,
        base_url: None,
    }
}

#[test]
fn data_collector_request_headers_are_exact() {
    let body = br#"[{"id":"x","startDateTime":"2026-11-20T09:14:03.217Z"}]"#;
    let r = monitor::data_collector_request(&dc_target(), DATE, body).unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, format!("https://{WORKSPACE}.ods.opinsights.azure.com/api/logs?api-version=2016-04-01"));
    let auth = format!("SharedKey {WORKSPACE}:{}", my_signature(&shared_key(), DATE, body.len()));
    assert_eq!(
        r.headers,
        [
            ("Authorization".to_string(), auth),
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Log-Type".to_string(), "TEAMSGraphCallRecords".to_string()),
            ("x-ms-date".to_string(), DATE.to_string()),
        ]
    );
    assert_eq!(r.body, body);
    let t = DataCollectorTarget {
        time_generated_field: Some("startDateTime".into()),
        base_url: Some("http://127.0.0.1:9000/".into()),
        ..dc_target()
    };
    let r = monitor::data_collector_request(&t, DATE, body).unwrap();
    assert_eq!(r.url, "http://127.0.0.1:9000/api/logs?api-version=2016-04-01");
    assert_eq!(header(&r.headers, "time-generated-field"), Some("startDateTime"));
    assert_eq!(r.headers.len(), 5);
}

#[test]
fn shared_key_signature_matches_an_independent_hmac() {
    for len in [0usize, 1, 56, 1_000_000, 29_999_999] {
        let got = monitor::shared_key_authorization(WORKSPACE, &shared_key(), DATE, len as u64).unwrap();
        assert_eq!(got, format!("SharedKey {WORKSPACE}:{}", my_signature(&shared_key(), DATE, len)));
    }
    // Another key and date.
    let key = BASE64.encode(b"another workspace key of some length");
    let date = "Fri, 20 Nov 2026 09:14:03 GMT";
    let got = monitor::shared_key_authorization(WORKSPACE, &key, date, 1234).unwrap();
    assert_eq!(got, format!("SharedKey {WORKSPACE}:{}", my_signature(&key, date, 1234)));
    // The signature depends on every input.
    let a = monitor::shared_key_authorization(WORKSPACE, &key, date, 1234).unwrap();
    assert_ne!(a, monitor::shared_key_authorization(WORKSPACE, &key, date, 1235).unwrap());
    assert_ne!(a, monitor::shared_key_authorization(WORKSPACE, &key, DATE, 1234).unwrap());
    assert_ne!(a, monitor::shared_key_authorization(WORKSPACE, &shared_key(), date, 1234).unwrap());
}

#[test]
fn data_collector_refuses_bad_inputs_without_echoing_the_key() {
    let body = b"[]";
    let secret_key = format!("{}!notbase64", &shared_key()[..40]);
    let bad = [
        (DataCollectorTarget { log_type: String::new(), ..dc_target() }, DATE),
        (DataCollectorTarget { log_type: "Teams-Calls".into(), ..dc_target() }, DATE),
        (DataCollectorTarget { log_type: "Teams Calls".into(), ..dc_target() }, DATE),
        (DataCollectorTarget { log_type: "x".repeat(101), ..dc_target() }, DATE),
        (DataCollectorTarget { workspace_id: "not-a-guid".into(), ..dc_target() }, DATE),
        (DataCollectorTarget { workspace_id: format!("{{{WORKSPACE}}}"), ..dc_target() }, DATE),
        (DataCollectorTarget { workspace_id: format!("{WORKSPACE}.evil.example/"), ..dc_target() }, DATE),
        (DataCollectorTarget { shared_key: secret_key.clone(), ..dc_target() }, DATE),
        (DataCollectorTarget { shared_key: String::new(), ..dc_target() }, DATE),
        (DataCollectorTarget { shared_key: "   ".into(), ..dc_target() }, DATE),
        (DataCollectorTarget { time_generated_field: Some("a b\r\nX: y".into()), ..dc_target() }, DATE),
        (DataCollectorTarget { base_url: Some("ftp://x".into()), ..dc_target() }, DATE),
        (dc_target(), "2016-04-04T08:00:00Z"),
        (dc_target(), "Mon, 4 Apr 2016 08:00:00 GMT"),
        (dc_target(), "Tue, 04 Apr 2016 08:00:00 GMT"),
        (dc_target(), "Mon, 04 Apr 2016 08:00:00 UTC"),
        (dc_target(), "mon, 04 apr 2016 08:00:00 gmt"),
        (dc_target(), ""),
    ];
    for (t, date) in bad {
        match monitor::data_collector_request(&t, date, body) {
            Err(Error::InvalidArgument(m)) => {
                assert!(!m.contains(&shared_key()) && !m.contains(&secret_key), "{m}");
                assert!(!m.contains(&shared_key()[..16]), "{m}");
            }
            other => panic!("{t:?} {date:?}: {other:?}"),
        }
    }
    assert!(
        monitor::data_collector_request(&DataCollectorTarget { log_type: "x".repeat(100), ..dc_target() }, DATE, body)
            .is_ok()
    );
    let huge = vec![b' '; 30_000_001];
    assert!(matches!(monitor::data_collector_request(&dc_target(), DATE, &huge), Err(Error::TooLarge(_))));
}

#[test]
fn data_collector_rejects_an_empty_time_generated_field() {
    // An empty `time-generated-field` header names no column: it must be refused like any other
    // non-column value ("time-generated-field must be a column name").
    let t = DataCollectorTarget { time_generated_field: Some(String::new()), ..dc_target() };
    let got = monitor::data_collector_request(&t, DATE, b"[]");
    assert!(matches!(got, Err(Error::InvalidArgument(_))), "empty time-generated-field accepted: {got:?}");
}

#[test]
fn data_collector_target_debug_hides_the_key() {
    let t = DataCollectorTarget { shared_key: "S3CRETKEY0123456789abcdef==".into(), ..dc_target() };
    for d in [format!("{t:?}"), format!("{t:#?}")] {
        assert!(!d.contains("S3CRETKEY"), "{d}");
        assert!(d.contains(WORKSPACE) && d.contains("TEAMSGraphCallRecords"), "{d}");
    }
    let r = monitor::data_collector_request(&dc_target(), DATE, b"[]").unwrap();
    let d = format!("{r:?}");
    assert!(!d.contains(&my_signature(&shared_key(), DATE, 2)), "{d}");
}

// =================================================================================================
// http
// =================================================================================================

#[test]
fn check_response_judges_statuses() {
    for s in [200u16, 201, 202, 204, 299] {
        assert_eq!(http::check_response(s, &[], b"garbage", 0), Ok(()));
    }
    let cases: [(u16, bool); 9] = [
        (400, false),
        (401, false),
        (403, false),
        (404, false),
        (408, true),
        (413, false),
        (429, true),
        (500, true),
        (503, true),
    ];
    for (status, retryable) in cases {
        match http::check_response(status, &[], b"", 0) {
            Err(Error::Service(e)) => {
                assert_eq!((e.status, e.retryable), (status, retryable), "{status}");
                assert!(e.code.is_empty());
                assert!(!e.message.is_empty());
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    for s in [100u16, 199, 300, 304] {
        assert!(matches!(http::check_response(s, &[], b"", 0), Err(Error::Service(_))), "{s}");
    }
}

#[test]
fn check_response_reads_azure_monitor_errors_and_retry_after() {
    let body = br#"{"error":{"code":"InvalidStream","message":"Stream Custom-X is not declared in the DCR."}}"#;
    match http::check_response(400, &[], body, 0) {
        Err(Error::Service(e)) => {
            assert_eq!(e.code, "InvalidStream");
            assert_eq!(e.message, "Stream Custom-X is not declared in the DCR.");
            assert_eq!(e.retry_after_seconds, None);
        }
        other => panic!("{other:?}"),
    }
    let long = format!(r#"{{"error":{{"code":"X","message":"{}"}}}}"#, "é".repeat(1000));
    let Err(Error::Service(e)) = http::check_response(500, &[], long.as_bytes(), 0) else { panic!() };
    assert_eq!(e.message.chars().count(), 400);
    let h = |v: &str| vec![("RETRY-AFTER".to_string(), v.to_string())];
    let retry = |v: &str, now| match http::check_response(429, &h(v), b"", now) {
        Err(Error::Service(e)) => e.retry_after_seconds,
        other => panic!("{other:?}"),
    };
    assert_eq!(retry(" 30 ", 0), Some(30));
    assert_eq!(retry("99999999999", 0), Some(u32::MAX));
    assert_eq!(retry("soon", 0), None);
    assert_eq!(retry("-5", 0), None);
    // Mon, 04 Apr 2016 08:00:00 GMT = 1459756800.
    assert_eq!(retry(DATE, 1_459_756_800 - 90), Some(90));
    assert_eq!(retry(DATE, 1_459_756_800 + 90), Some(0), "a date in the past: retry now");
}

#[test]
fn service_error_without_a_message_describes_the_status() {
    // `ServiceError::message` is "the service's message, or a description of the status": an error
    // body that names a code but carries no message must not leave it empty.
    for (status, body) in [
        (404u16, &br#"{"error":{"code":"NotFound"}}"#[..]),
        (401, br#"{"error":"invalid_client"}"#),
        (503, br#"{"error":{"code":"ServiceUnavailable","message":""}}"#),
    ] {
        match http::check_response(status, &[], body, 0) {
            Err(Error::Service(e)) => {
                assert!(!e.code.is_empty(), "{e:?}");
                assert!(!e.message.is_empty(), "status {status}: empty message for {}", text(body));
            }
            other => panic!("{other:?}"),
        }
    }
}

// =================================================================================================
// property tests
// =================================================================================================

fn config() -> ProptestConfig {
    ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() }
}

/// For the properties whose every case expands or batches a whole fixture.
fn heavy_config() -> ProptestConfig {
    ProptestConfig { cases: 100, ..config() }
}

/// Byte-level mutations: (position, operation, byte).
fn mutations() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), 0u8..4, any::<u8>()), 1..8)
}

fn mutate(input: &[u8], ops: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = input.to_vec();
    for &(pos, op, byte) in ops {
        let at = if b.is_empty() { 0 } else { pos % b.len() };
        match op {
            0 if !b.is_empty() => b[at] = byte,
            1 => b.insert(at, byte),
            2 if !b.is_empty() => {
                b.remove(at);
            }
            // Interesting JSON bytes.
            _ => b.insert(at, b"{}[]\",:0-e.\\n"[usize::from(byte) % 13]),
        }
    }
    b
}

const INTERESTING: &[&str] = &[
    "",
    "NaN",
    "Infinity",
    "1.25",
    "PT1M2.5S",
    "PT0.0000001S",
    "P1Y",
    "-PT1S",
    "PT",
    "2026-11-20T08:00:00Z",
    "2026-11-30T08:00:00.50Z",
    "2026-02-30T00:00:00Z",
    "2026-11-20T08:00:00.123456789+14:00",
    "9999-12-31T23:59:59Z",
    "#microsoft.graph.callrecord",
    "#microsoft.graph.callRecords.serviceEndpoint",
    "#microsoft.graph.callRecords.participantEndpoint",
    "#microsoft.graph.communicationsUserIdentity",
    "#microsoft.graph.identity",
    "communications/callRecords/abc",
    "communications/callRecords/",
    "/communications/callRecords/a-b_c",
    "teams-sentinel-demo",
    "reauthorizationRequired",
    "subscriptionRemoved",
    "missed",
    CONTOSO,
    "user",
    "é€😀",
    "\u{0}",
];

const KEYS: &[&str] = &[
    // Notifications.
    "value",
    "subscriptionId",
    "subscriptionExpirationDateTime",
    "changeType",
    "resource",
    "resourceData",
    "@odata.type",
    "@odata.id",
    "id",
    "clientState",
    "tenantId",
    "lifecycleEvent",
    // callRecords.
    "version",
    "type",
    "modalities",
    "startDateTime",
    "endDateTime",
    "lastModifiedDateTime",
    "organizer",
    "organizer_v2",
    "participants",
    "participants_v2",
    "identity",
    "user",
    "phone",
    "acsUser",
    "displayName",
    "endpointType",
    "sessions",
    "segments",
    "caller",
    "callee",
    "associatedIdentity",
    "userAgent",
    "role",
    "failureInfo",
    "stage",
    "media",
    "callerNetwork",
    "ipAddress",
    "port",
    "streams",
    "averageJitter",
    "averagePacketLossRate",
    "packetUtilization",
    "isTest",
    "wasMediaBypassed",
    "sessions@odata.nextLink",
    "@odata.nextLink",
    "access_token",
    "expires_in",
    "error",
    "code",
    "message",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(INTERESTING).prop_map(|s| Value::String(s.to_string())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(5, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_string), 1 => "\\PC{0,8}"], inner),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A JSON object built from the known keys (random shapes a lenient reader must survive).
fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..7)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// Replace the node reached by following `path` (indexes modulo the children) with `with`.
fn replace_at(v: &mut Value, path: &[usize], with: Value) {
    let Some((&first, rest)) = path.split_first() else {
        *v = with;
        return;
    };
    let child = match v {
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            &mut a[first % n]
        }
        Value::Object(o) if !o.is_empty() => {
            let n = o.len();
            o.values_mut().nth(first % n).expect("index in range")
        }
        _ => {
            *v = with;
            return;
        }
    };
    if rest.is_empty() {
        *child = with;
    } else {
        replace_at(child, rest, with);
    }
}

/// Structure-aware mutations: a few subtrees replaced with random JSON.
fn tree_edits() -> impl Strategy<Value = Vec<(Vec<usize>, Value)>> {
    prop::collection::vec((prop::collection::vec(any::<usize>(), 0..10), json_value()), 1..4)
}

/// The small records, parsed once.
static SMALL_RECORD_VALUES: std::sync::LazyLock<Vec<Value>> = std::sync::LazyLock::new(|| {
    SMALL_RECORDS.iter().map(|d| serde_json::from_str(d).expect("fixture is JSON")).collect()
});

fn edit(doc: &Value, edits: Vec<(Vec<usize>, Value)>) -> String {
    let mut v = doc.clone();
    for (path, with) in edits {
        replace_at(&mut v, &path, with);
    }
    v.to_string()
}

/// A valid callRecord or lifecycle item with a few keys overwritten or removed.
fn edited_item() -> impl Strategy<Value = Value> {
    let base = prop_oneof![
        Just(item(P2P_ID, CONTOSO)),
        Just(item(GUEST_ID, FABRIKAM)),
        Just(json!({
            "subscriptionId": SUBSCRIPTION, "subscriptionExpirationDateTime": EXPIRY, "tenantId": CONTOSO,
            "clientState": CLIENT_STATE, "lifecycleEvent": "missed"
        })),
    ];
    let edits = prop::collection::vec((prop::sample::select(KEYS), prop::option::of(json_value())), 0..3);
    (base, edits).prop_map(|(mut it, edits)| {
        let o = it.as_object_mut().expect("items are objects");
        for (k, v) in edits {
            match v {
                Some(v) => o.insert(k.to_string(), v),
                None => o.remove(k),
            };
        }
        it
    })
}

fn is_leap_year(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_days(y: i64, m: i64) -> i64 {
    [31, if is_leap_year(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(m - 1) as usize]
}

/// Seconds since 1970 of a civil UTC time (y >= 1970), by counting days.
fn epoch_secs(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    let days = (1970..y).map(|yy| if is_leap_year(yy) { 366 } else { 365 }).sum::<i64>()
        + (1..mo).map(|mm| month_days(y, mm)).sum::<i64>()
        + d
        - 1;
    days * 86_400 + h * 3600 + mi * 60 + s
}

/// (seconds since 1970, 100 ns ticks) of a canonical `YYYY-MM-DDTHH:MM:SS[.f{1,7}]Z`, or None.
fn read_canonical(t: &str) -> Option<(i64, i64)> {
    let b = t.as_bytes();
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if *b.last()? != b'Z' {
        return None;
    }
    let frac = &t[19..t.len() - 1];
    let ticks = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(f) if (1..=7).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
            format!("{f:0<7}").parse().ok()?
        }
        _ => return None,
    };
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    if !(1..=12).contains(&mo) || d < 1 || d > month_days(y, mo) {
        return None;
    }
    Some((epoch_secs(y, mo, d, n(11..13)?, n(14..16)?, n(17..19)?), ticks))
}

/// A timestamp as Graph could write it, and the instant it denotes (None when not a date).
fn timestamp() -> impl Strategy<Value = (String, Option<(i64, i64)>)> {
    let tz = prop_oneof![
        Just((String::from("Z"), 0i64)),
        Just((String::from("z"), 0)),
        Just((String::new(), 0)),
        (any::<bool>(), 0i64..24, 0i64..60).prop_map(|(plus, h, m)| {
            let o = h * 3600 + m * 60;
            (format!("{}{h:02}:{m:02}", if plus { '+' } else { '-' }), if plus { o } else { -o })
        }),
    ];
    (
        (1971i64..2100, 1i64..=12, 1i64..=31),
        (0i64..24, 0i64..60, 0i64..60),
        prop::collection::vec(0u8..10, 0..=7),
        tz,
        prop::sample::select(&['T', 't'][..]),
    )
        .prop_map(|((y, mo, d), (h, mi, s), frac, (tz, offset), sep)| {
            let digits: String = frac.iter().map(|d| char::from(b'0' + d)).collect();
            let dot = if digits.is_empty() { String::new() } else { format!(".{digits}") };
            let text = format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{dot}{tz}");
            let ticks = if digits.is_empty() { 0 } else { format!("{digits:0<7}").parse().unwrap() };
            let instant = (d <= month_days(y, mo)).then(|| (epoch_secs(y, mo, d, h, mi, s) - offset, ticks));
            (text, instant)
        })
}

/// A Graph page: usually `{"value":[...]}`, sometimes anything.
fn page() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => "\\PC{0,40}",
        1 => json_value().prop_map(|v| v.to_string()),
        3 => prop::collection::vec(json_value(), 0..3).prop_map(|v| json!({ "value": v }).to_string()),
    ]
}

fn status_ok(status: u16) -> bool {
    matches!(status, 200 | 202 | 400 | 405 | 413)
}

/// Whether the sender itself wrote the secret somewhere other than a `clientState` value (then a
/// detail may rightly echo it, e.g. as a subscription id or a wrongly typed resourceData).
fn secret_planted(body: &[u8]) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains(CLIENT_STATE),
            Value::Array(a) => a.iter().any(walk),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains(CLIENT_STATE) || (k != "clientState" && walk(v))),
            _ => false,
        }
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|v| walk(&v))
}

fn check_outcome(o: &webhook::Outcome, body: &[u8], items: Option<usize>) -> Result<(), TestCaseError> {
    let planted = secret_planted(body);
    prop_assert!(status_ok(o.response.status), "status {}", o.response.status);
    match o.kind {
        RequestKind::Validation => prop_assert_eq!(o.response.status, 200),
        RequestKind::Delivery => prop_assert_eq!(o.response.status, 202),
        RequestKind::Refused => prop_assert!(matches!(o.response.status, 400 | 405 | 413)),
    }
    if o.kind != RequestKind::Delivery {
        prop_assert!(o.notifications.is_empty() && o.lifecycle.is_empty() && o.rejected.is_empty());
    }
    for n in &o.notifications {
        prop_assert!(
            !n.call_id.is_empty() && n.call_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        prop_assert!(!n.tenant_id.is_empty() && !n.subscription_id.is_empty());
    }
    let mut last = None;
    for r in &o.rejected {
        prop_assert!(last.is_none_or(|l| r.index > l), "rejected indexes increase");
        last = Some(r.index);
        prop_assert!(planted || !r.detail.contains(CLIENT_STATE), "{:?}", r);
    }
    if let (RequestKind::Delivery, Some(n)) = (o.kind, items) {
        // Every item is exactly one of: notification, duplicate, lifecycle event, rejection.
        let accounted = o.notifications.len() + o.duplicates as usize + o.lifecycle.len() + o.rejected.len();
        prop_assert_eq!(accounted, n);
        if let Some(r) = o.rejected.last() {
            prop_assert!((r.index as usize) < n);
        }
    }
    Ok(())
}

fn check_rows(tables: &[TableRows]) -> Result<(), TestCaseError> {
    prop_assert_eq!(tables.len(), 4);
    prop_assert_eq!(tables[0].rows.len(), 1, "one call row");
    for t in tables {
        let want = column_names(t.table);
        for row in &t.rows {
            let keys = serde_json::from_str::<Keys>(row).map_err(|e| TestCaseError::fail(format!("{e}: {row}")))?.0;
            prop_assert_eq!(&keys, &want);
        }
    }
    Ok(())
}

fn is_json_error<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Ok(_) | Err(Error::InvalidJson(_)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prop_webhook_random_requests(
        method in prop_oneof![Just("POST".to_string()), Just("GET".to_string()), "[A-Za-z]{0,7}"],
        path in prop_oneof![
            "/api/notifications(\\?[ -~]{0,60})?",
            "/api/notifications\\?validationToken=[ -~]{0,40}",
            "\\PC{0,40}",
        ],
        body in prop_oneof![prop::collection::vec(any::<u8>(), 0..300), "\\PC{0,200}".prop_map(String::into_bytes)],
        max in prop_oneof![Just(0u32), 0u32..400],
    ) {
        let s = Settings { max_body_bytes: max, ..settings() };
        let o = webhook::handle(&s, &IncomingRequest { method, path_and_query: path, headers: vec![], body: body.clone() });
        check_outcome(&o, &body, None)?;
    }

    #[test]
    fn prop_webhook_random_deliveries(
        items in prop::collection::vec(prop_oneof![2 => edited_item(), 1 => json_object(), 1 => json_value()], 0..6),
    ) {
        let n = items.len();
        let body = json!({ "value": items }).to_string();
        let o = deliver(items);
        prop_assert_eq!(o.kind, RequestKind::Delivery);
        check_outcome(&o, body.as_bytes(), Some(n))?;
    }

    #[test]
    fn prop_webhook_mutated_fixtures(which in 0..NOTIFICATIONS.len(), ops in mutations()) {
        let raw = request(NOTIFICATIONS[which]);
        let body = mutate(&raw.body, &ops);
        let o = webhook::handle(&settings(), &IncomingRequest { body: body.clone(), ..raw.clone() });
        check_outcome(&o, &body, None)?;
        // Mutating the query of the handshake instead.
        let path = String::from_utf8_lossy(&mutate(raw.path_and_query.as_bytes(), &ops)).into_owned();
        let o = webhook::handle(&settings(), &IncomingRequest { path_and_query: path, ..raw.clone() });
        check_outcome(&o, &raw.body, None)?;
    }

    #[test]
    fn prop_webhook_edited_fixture_items(which in 1..NOTIFICATIONS.len(), edits in tree_edits()) {
        let doc: Value = serde_json::from_str(body_of(NOTIFICATIONS[which])).expect("fixture is JSON");
        let body = edit(&doc, edits);
        let items = serde_json::from_str::<Value>(&body).ok().and_then(|v| v.get("value").and_then(Value::as_array).map(Vec::len));
        let o = webhook::handle(&settings(), &post("/api/notifications", body.clone()));
        check_outcome(&o, body.as_bytes(), items)?;
    }

    #[test]
    fn prop_merge_pages_random(
        record in prop_oneof![
            "\\PC{0,80}",
            json_object().prop_map(|v| v.to_string()),
            (json_object(), prop::collection::vec(json_value(), 0..3))
                .prop_map(|(mut r, s)| { r["sessions"] = Value::Array(s); r.to_string() }),
        ],
        sessions in prop::collection::vec(page(), 0..3),
        participants in prop::collection::vec(page(), 0..3),
    ) {
        let r = graph::merge_pages(&record, &sessions, &participants);
        prop_assert!(is_json_error(&r), "{:?}", r);
        if let Ok(m) = r {
            let v: Value = serde_json::from_str(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v["sessions"].is_array());
            prop_assert!(v.get("sessions@odata.nextLink").is_none());
        }
    }

    #[test]
    fn prop_next_link_and_list_page(
        body in prop_oneof![
            "\\PC{0,80}",
            json_object().prop_map(|v| v.to_string()),
            (0..5usize, mutations()).prop_map(|(w, ops)| {
                let doc = [GROUP_S3, GROUP_P1, GROUP_P2, P2P, ODD][w];
                String::from_utf8_lossy(&mutate(doc.as_bytes(), &ops)).into_owned()
            }),
        ],
    ) {
        let link = graph::next_link(&body);
        prop_assert!(is_json_error(&link), "{:?}", link);
        if let Ok(Some(l)) = link {
            prop_assert!(!l.is_empty());
        }
        let page = graph::parse_list_page(&body);
        prop_assert!(is_json_error(&page), "{:?}", page);
    }

    #[test]
    fn prop_parse_token_response(
        status in prop_oneof![Just(200u16), any::<u16>()],
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..120),
            json_object().prop_map(|v| v.to_string().into_bytes()),
            (any::<u32>(), "[!-~]{0,20}").prop_map(|(n, t)| format!(r#"{{"access_token":"{t}","expires_in":"{n}"}}"#).into_bytes()),
        ],
    ) {
        match entra::parse_token_response(status, &body) {
            Ok(t) => {
                prop_assert!((200..300).contains(&status));
                prop_assert!(!t.token.is_empty());
            }
            Err(Error::Service(e)) => {
                prop_assert!(!(200..300).contains(&status));
                prop_assert_eq!(e.status, status);
            }
            Err(Error::InvalidJson(_)) => prop_assert!((200..300).contains(&status)),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn prop_expand_random(doc in prop_oneof![
        "\\PC{0,100}",
        json_object().prop_map(|v| v.to_string()),
        json_object().prop_map(|mut v| { v["id"] = json!("rec"); v.to_string() }),
    ]) {
        let r = expand::expand(&doc);
        prop_assert!(is_json_error(&r), "{:?}", r);
        if let Ok(t) = r {
            check_rows(&t)?;
        }
        let s = expand::seed_row(&doc);
        prop_assert!(is_json_error(&s), "{:?}", s);
        if let Ok(s) = s {
            prop_assert_eq!(keys_in_order(&s), column_names(&schema::SEED));
        }
    }

    #[test]
    fn prop_shared_key_authorization(
        workspace in prop_oneof![Just(WORKSPACE.to_string()), "[0-9a-fA-F-]{30,40}", "\\PC{0,40}"],
        key in prop_oneof![
            prop::collection::vec(any::<u8>(), 1..80).prop_map(|k| BASE64.encode(k)),
            "[A-Za-z0-9+/=]{12,90}",
            "\\PC{12,60}",
        ],
        date in prop_oneof![
            Just(DATE.to_string()),
            (0u64..4_000_000_000).prop_map(|s| httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))),
            "\\PC{0,40}",
        ],
        len in any::<u64>(),
    ) {
        match monitor::shared_key_authorization(&workspace, &key, &date, len) {
            Ok(auth) => {
                let want = format!("SharedKey {workspace}:{}", my_signature(key.trim(), &date, len as usize));
                prop_assert_eq!(auth, want);
            }
            Err(Error::InvalidArgument(m)) => prop_assert!(!m.contains(&key), "message has the key: {}", m),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn prop_timestamps_and_durations((start, start_at) in timestamp(), (end, end_at) in timestamp()) {
        let record = json!({ "id": "rec", "startDateTime": start, "endDateTime": end, "sessions": [
            { "id": "s", "segments": [ { "id": "g", "startDateTime": start, "endDateTime": end } ] }
        ] })
        .to_string();
        let tables = expand::expand(&record).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let call = &rows(&tables, "TeamsCall_CL")[0];
        let leg = &rows(&tables, "TeamsCallLeg_CL")[0];
        for (row, col, at) in [(call, "StartDateTime", start_at), (call, "EndDateTime", end_at), (leg, "StartDateTime", start_at)] {
            match at {
                Some(at) => {
                    let got = row[col].as_str().ok_or_else(|| TestCaseError::fail(format!("{col} is null for {start} / {end}")))?;
                    prop_assert_eq!(read_canonical(got), Some(at), "{} of {} / {}: {}", col, start, end, got);
                }
                None => prop_assert_eq!(&row[col], &Value::Null),
            }
        }
        // Whole milliseconds of end - start, cut toward zero.
        let want = start_at.zip(end_at).map(|((s, st), (e, et))| ((e - s) * 10_000_000 + (et - st)) / 10_000);
        prop_assert_eq!(call["DurationMs"].as_i64(), want);
        prop_assert_eq!(leg["DurationMs"].as_i64(), want);
    }

    #[test]
    fn prop_check_response(
        status in any::<u16>(),
        headers in prop::collection::vec(
            (prop_oneof![Just("Retry-After".to_string()), "[A-Za-z-]{1,12}"],
             prop_oneof!["[0-9]{0,25}", "\\PC{0,30}", Just(DATE.to_string())]),
            0..4,
        ),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            json_object().prop_map(|v| v.to_string().into_bytes()),
            ("\\PC{0,20}", "[ -~é€😀]{0,450}").prop_map(|(c, m)| json!({"error": {"code": c, "message": m}}).to_string().into_bytes()),
        ],
        now in any::<u64>(),
    ) {
        match http::check_response(status, &headers, &body, now) {
            Ok(()) => prop_assert!((200..300).contains(&status)),
            Err(Error::Service(e)) => {
                prop_assert!(!(200..300).contains(&status));
                prop_assert_eq!(e.status, status);
                prop_assert_eq!(e.retryable, status == 408 || status == 429 || status >= 500);
                prop_assert!(e.message.chars().count() <= 400);
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

proptest! {
    #![proptest_config(heavy_config())]

    #[test]
    fn prop_merge_pages_mutated_fixtures(ops in mutations(), which in 0..3usize) {
        let mutated = String::from_utf8_lossy(&mutate(GROUP_S3.as_bytes(), &ops)).into_owned();
        let small = r#"{"id":"x","sessions":[{"id":"s0"}],"sessions@odata.nextLink":"https://graph.microsoft.com/v1.0/x"}"#;
        let (record, sessions, participants) = match which {
            0 => (mutated.as_str(), vec![GROUP_S3.to_string()], vec![]),
            1 => (small, vec![mutated.clone()], vec![GROUP_P2.to_string()]),
            _ => (small, vec![], vec![mutated.clone()]),
        };
        let r = graph::merge_pages(record, &sessions, &participants);
        prop_assert!(is_json_error(&r), "{:?}", r.map(|s| s.len()));
    }

    #[test]
    fn prop_expand_mutated_fixtures(which in 0..SMALL_RECORDS.len(), ops in mutations()) {
        let doc = String::from_utf8_lossy(&mutate(SMALL_RECORDS[which].as_bytes(), &ops)).into_owned();
        let r = expand::expand(&doc);
        prop_assert!(is_json_error(&r), "{:?}", r.as_ref().err());
        if let Ok(t) = r {
            check_rows(&t)?;
        }
        prop_assert!(is_json_error(&expand::seed_row(&doc)));
    }

    #[test]
    fn prop_expand_edited_fixtures(which in 0..SMALL_RECORDS.len(), edits in tree_edits()) {
        let doc = edit(&SMALL_RECORD_VALUES[which], edits);
        let r = expand::expand(&doc);
        prop_assert!(is_json_error(&r), "{:?}", r.as_ref().err());
        if let Ok(t) = r {
            check_rows(&t)?;
        }
        prop_assert!(is_json_error(&expand::seed_row(&doc)));
    }

    #[test]
    fn prop_batch_rows(
        rows in prop::collection::vec(prop_oneof![
            4 => json_object().prop_map(|v| v.to_string()),
            1 => "\\PC{0,30}",
            2 => (any::<char>(), 0usize..36_000, 0usize..3).prop_map(|(c, n, k)| {
                let mut o = serde_json::Map::new();
                for i in 0..=k {
                    o.insert(format!("f{i}"), Value::String(c.to_string().repeat(n)));
                }
                Value::Object(o).to_string()
            }),
            1 => (0..SMALL_RECORDS.len(), mutations()).prop_map(|(w, ops)| {
                String::from_utf8_lossy(&mutate(SMALL_RECORDS[w].as_bytes(), &ops)).into_owned()
            }),
        ], 0..8),
        data_collector in any::<bool>(),
    ) {
        let (sink, max_body, max_field) =
            if data_collector { (Sink::DataCollector, 30_000_000, 32_768) } else { (Sink::LogsIngestion, 1_000_000, 65_536) };
        match monitor::batch_rows(&rows, sink) {
            Ok(batches) => {
                let mut got = vec![];
                let mut truncated = 0;
                for b in &batches {
                    prop_assert!(b.body.len() <= max_body);
                    prop_assert!(b.rows > 0);
                    truncated += b.truncated_fields;
                    match serde_json::from_slice::<Value>(&b.body) {
                        Ok(Value::Array(a)) => {
                            prop_assert_eq!(a.len(), b.rows as usize);
                            got.extend(a);
                        }
                        other => prop_assert!(false, "batch is not an array: {:?}", other.map(|_| ())),
                    }
                }
                prop_assert_eq!(got.len(), rows.len());
                for (g, r) in got.iter().zip(&rows) {
                    let want: Value = serde_json::from_str(r).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let obj = g.as_object().ok_or_else(|| TestCaseError::fail("row is not an object"))?;
                    if truncated == 0 {
                        prop_assert_eq!(g, &want);
                    } else {
                        prop_assert_eq!(obj.keys().collect::<Vec<_>>(), want.as_object().unwrap().keys().collect::<Vec<_>>());
                    }
                    for v in obj.values() {
                        if let Value::String(s) = v {
                            prop_assert!(s.len() <= max_field, "field of {} bytes", s.len());
                        }
                    }
                }
            }
            Err(Error::InvalidJson(_) | Error::TooLarge(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

// =================================================================================================
// Microsoft's documented answers (examples/graph/documented/): their shapes, our values
// =================================================================================================

const DOC_LIST: &str = include_str!("../../examples/graph/documented/list-callrecords.json");
const DOC_SESSIONS: &str = include_str!("../../examples/graph/documented/list-sessions-with-segments.json");
const DOC_PARTICIPANTS: &str = include_str!("../../examples/graph/documented/list-participants_v2.json");

#[test]
fn documented_list_sessions_and_participants_answers_expand_into_the_rows_counted_by_hand() {
    // The record as List callRecords gives it, its sessions from the List sessions answer (whose
    // segment callee names `@odata.type` twice, as Microsoft's example does), its participants
    // from List participants_v2. By hand: 1 call, 1 session of 1 segment, 2 streams, the
    // organizer and 2 participants.
    let list: Value = serde_json::from_str(DOC_LIST).unwrap();
    let record = list["value"][0].to_string();
    let merged = graph::merge_pages(&record, &[DOC_SESSIONS.to_string()], &[DOC_PARTICIPANTS.to_string()]).unwrap();
    let tables = expand::expand(&merged).unwrap();
    let count = |name| rows(&tables, name).len();
    assert_eq!(
        [
            count("TeamsCall_CL"),
            count("TeamsCallLeg_CL"),
            count("TeamsCallStream_CL"),
            count("TeamsCallParticipant_CL")
        ],
        [1, 1, 2, 3]
    );
    let leg = &rows(&tables, "TeamsCallLeg_CL")[0];
    let want = json!({
        "CallerIdentityType": "user", "CallerId": "0c0a0000-1111-4a11-8000-000000000000",
        "CallerPlatform": "android", "CallerProductFamily": "skypeForBusiness",
        "CallerIpAddress": "10.20.30.41", "CallerPort": 50011, "CallerConnectionType": "wifi",
        "CalleeIdentityType": "user", "CalleeDisplayName": "Ben Okafor", "CalleeEndpointType": "participant",
        "CalleePort": 50026, "CalleeConnectionType": "wired",
        // 07:41:09.3318204 to 07:44:51.0072319 is 3 min 41.6754115 s.
        "StartDateTime": "2026-11-21T07:41:09.3318204Z", "DurationMs": 221675,
    });
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&leg[k], v, "{k}");
    }
    let streams = rows(&tables, "TeamsCallStream_CL");
    let got: Vec<(Value, Value, Value, Value)> = streams
        .iter()
        .map(|s| {
            (
                s["StreamId"].clone(),
                s["AverageJitterMs"].clone(),
                s["MaxRoundTripTimeMs"].clone(),
                s["AverageAudioDegradation"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (json!("1504545584"), json!(16.0), json!(79.0), Value::Null),
            (json!("1785122252"), json!(21.0), json!(90.0), json!(1.160898)),
        ]
    );
    let upns: Vec<Value> =
        rows(&tables, "TeamsCallParticipant_CL").iter().map(|p| p["UserPrincipalName"].clone()).collect();
    assert_eq!(upns, [Value::Null, json!("aiko.tanaka@contoso.example"), json!("ben.okafor@contoso.example")]);
}

#[test]
fn a_documented_list_callrecords_page_and_a_phone_organizer() {
    let page = graph::parse_list_page(DOC_LIST).unwrap();
    assert_eq!(page.ids, ["5d0c3e7a-9b21-4f6e-8a4d-2c7b1e9f0a08", "b8e4f2c6-0d3a-4e7b-9c15-6a2f8d1e4b09"]);
    assert_eq!(page.versions, [Some(2), Some(2)]);
    assert_eq!(page.next_link, None);
    // The second record's organizer_v2 is a phone number (the deprecated organizer still names a user).
    let list: Value = serde_json::from_str(DOC_LIST).unwrap();
    let tables = expand::expand(&list["value"][1].to_string()).unwrap();
    let organizer = &rows(&tables, "TeamsCallParticipant_CL")[0];
    assert_eq!((&organizer["Role"], &organizer["IdentityType"]), (&json!("organizer"), &json!("phone")));
    assert_eq!(organizer["UserId"], "+15555550147");
}

#[test]
fn a_repeated_key_is_read_as_its_last_value_everywhere_json_is_read() {
    // JSON.parse's rule; a typed read alone refuses a known field seen twice.
    let item = CREATED.split("\r\n\r\n").nth(1).unwrap().replacen(
        "\"@odata.type\"",
        "\"@odata.type\": \"x\", \"@odata.type\"",
        1,
    );
    let o = webhook::handle(
        &settings(),
        &request(&format!(
            "POST /api/notifications HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{item}",
            item.len()
        )),
    );
    assert_eq!((o.response.status, o.notifications.len()), (202, 1), "{:?}", o.rejected);
    let page = r#"{"value": [{"id": "a", "version": 1}], "@odata.nextLink": "x", "@odata.nextLink": "https://graph.microsoft.com/v1.0/next"}"#;
    assert_eq!(
        graph::parse_list_page(page).unwrap().next_link.as_deref(),
        Some("https://graph.microsoft.com/v1.0/next")
    );
}
