//! The change-notification endpoint (`graph::webhook::handle`): any request, judged twice (any
//! tenant, then one allowed tenant). Seeds: `examples/graph/notifications/*.http`, raw requests.
//!
//! Invariants: the answer matches the kind (handshake 200 echoing exactly the decoded token,
//! refusal 400/405/413 for the right reason, delivery 202); every item of a delivery is accounted
//! for once (accepted, lifecycle, rejected or folded); accepted ids are ids; no (call, tenant)
//! twice; allowing one tenant only filters what any tenant gives; a configured clientState no
//! input holds never appears in what the endpoint answers or reports.

#![no_main]

use callrecords::graph::webhook::{
    self, DEFAULT_MAX_BODY_BYTES, MAX_VALIDATION_TOKEN_BYTES, Outcome, RequestKind, Settings,
};
use callrecords::http::{IncomingRequest, header};
use callrecords_fuzz::{contains, message, struct_field};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The examples' clientState, so that their notifications are accepted.
const STATE: &str = "teams-sentinel-demo";
/// A second accepted clientState that no seed holds: compared only by digest, so the fuzzer cannot
/// learn it, and it must never be echoed.
const HIDDEN_STATE: &str = "fuzz-hidden-client-state-7Qv2k";
/// The examples' tenant.
const TENANT: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";

fuzz_target!(|data: &[u8]| {
    let request = request(data);
    let any =
        Settings { client_states: vec![STATE.into(), HIDDEN_STATE.into()], allowed_tenants: vec![], max_body_bytes: 0 };
    let one = Settings { allowed_tenants: vec![TENANT.to_ascii_uppercase()], ..any.clone() };
    let a = webhook::handle(&any, &request);
    check(&any, &request, &a);
    let b = webhook::handle(&one, &request);
    check(&one, &request, &b);

    assert_eq!((a.kind, a.response.status), (b.kind, b.response.status), "tenants do not change the kind");
    let allowed = |t: &str| t.eq_ignore_ascii_case(TENANT);
    let want: Vec<_> = a.notifications.iter().filter(|n| allowed(&n.tenant_id)).cloned().collect();
    assert_eq!(b.notifications, want, "one allowed tenant keeps exactly its notifications");
    let want: Vec<_> = a.lifecycle.iter().filter(|l| allowed(&l.tenant_id)).cloned().collect();
    assert_eq!(b.lifecycle, want, "one allowed tenant keeps exactly its lifecycle events");
});

/// `METHOD target HTTP/1.1`, headers, blank line, body (as the `.http` examples); anything else is
/// a POST of the whole input to the notification URL.
fn request(data: &[u8]) -> IncomingRequest {
    let m = message(data, |d| d.first().is_some_and(u8::is_ascii_uppercase));
    let start = m.start.unwrap_or_default();
    let mut parts = start.split(' ');
    match (parts.next(), parts.next()) {
        (Some(method), Some(target)) if !method.is_empty() => IncomingRequest {
            method: method.into(),
            path_and_query: target.into(),
            headers: m.headers,
            body: m.body.to_vec(),
        },
        _ => IncomingRequest {
            method: "POST".into(),
            path_and_query: "/api/notifications".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: data.to_vec(),
        },
    }
}

/// The `validationToken` the query carries, decoded (what Graph expects echoed).
fn validation_token(path_and_query: &str) -> Option<String> {
    let query = path_and_query.split_once('?')?.1.split('#').next()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "validationToken").map(|(_, v)| v.into_owned())
}

fn check(s: &Settings, r: &IncomingRequest, o: &Outcome) {
    let max = if s.max_body_bytes == 0 { DEFAULT_MAX_BODY_BYTES } else { s.max_body_bytes } as usize;
    let post = r.method.eq_ignore_ascii_case("POST");
    let status = o.response.status;
    let nothing = o.notifications.is_empty() && o.lifecycle.is_empty() && o.rejected.is_empty() && o.duplicates == 0;
    match o.kind {
        RequestKind::Refused => {
            assert!(nothing, "a refused request carries nothing");
            match status {
                405 => {
                    assert!(!post, "405 for a POST");
                    assert_eq!(header(&o.response.headers, "allow"), Some("POST"));
                }
                413 => assert!(post && r.body.len() > max, "413 for a body within the limit"),
                400 => {
                    assert!(post && r.body.len() <= max, "400 instead of 405/413");
                    if let Some(t) = validation_token(&r.path_and_query) {
                        assert!(t.is_empty() || t.len() > MAX_VALIDATION_TOKEN_BYTES, "a usable token refused");
                    }
                }
                other => panic!("refused with {other}"),
            }
        }
        RequestKind::Validation => {
            assert!(nothing && post && r.body.len() <= max && status == 200);
            let token = validation_token(&r.path_and_query).expect("a handshake has a token");
            assert!(!token.is_empty() && token.len() <= MAX_VALIDATION_TOKEN_BYTES);
            assert_eq!(o.response.body, token.as_bytes(), "the token is echoed exactly");
            assert_eq!(header(&o.response.headers, "content-type"), Some("text/plain"));
            assert_eq!(header(&o.response.headers, "x-content-type-options"), Some("nosniff"));
        }
        RequestKind::Delivery => {
            assert!(post && r.body.len() <= max && status == 202, "delivery answered {status}");
            assert!(validation_token(&r.path_and_query).is_none(), "a handshake read as a delivery");
            // Read as text: serde skips the strings of fields it ignores without checking their
            // UTF-8, so an accepted body may hold invalid bytes there (only there).
            let body: Value = serde_json::from_str(&String::from_utf8_lossy(&r.body)).expect("a delivery body is JSON");
            let items = struct_field(&body, "value", 0).and_then(Value::as_array).expect("a value array").len();
            let counted = o.notifications.len() + o.lifecycle.len() + o.rejected.len() + o.duplicates as usize;
            assert_eq!(counted, items, "every item accounted for once");
            assert!(o.rejected.windows(2).all(|w| w[0].index < w[1].index), "rejections in item order");
            assert!(o.rejected.iter().all(|x| (x.index as usize) < items));
            let allowed =
                |t: &str| s.allowed_tenants.is_empty() || s.allowed_tenants.iter().any(|a| a.eq_ignore_ascii_case(t));
            for (i, n) in o.notifications.iter().enumerate() {
                assert!(callrecords::graph::is_valid_call_id(&n.call_id), "accepted id {:?}", n.call_id);
                assert!(!n.subscription_id.is_empty() && !n.tenant_id.is_empty() && allowed(&n.tenant_id));
                let twice = o.notifications[..i]
                    .iter()
                    .any(|p| p.call_id == n.call_id && p.tenant_id.eq_ignore_ascii_case(&n.tenant_id));
                assert!(!twice, "call {} of tenant {} accepted twice", n.call_id, n.tenant_id);
            }
            for l in &o.lifecycle {
                assert!(!l.subscription_id.is_empty() && !l.tenant_id.is_empty() && allowed(&l.tenant_id));
            }
        }
    }
    // The hidden clientState is in no input (not even JSON-escaped), so nothing may show it. (A
    // handshake echoes its token, whatever it is.)
    let decoded = serde_json::from_str::<Value>(&String::from_utf8_lossy(&r.body)).map(|v| v.to_string());
    let decoded = decoded.unwrap_or_default();
    let in_input = contains(&r.body, HIDDEN_STATE) || decoded.contains(HIDDEN_STATE);
    if o.kind != RequestKind::Validation && !in_input {
        assert!(!contains(&o.response.body, HIDDEN_STATE), "the answer shows a clientState");
        assert!(!format!("{o:?}").contains(HIDDEN_STATE), "the outcome shows a clientState");
    }
}
