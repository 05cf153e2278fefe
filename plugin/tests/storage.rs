//! Queue mode on an Azure Storage queue, through the core's jobs alone: a host loop answers every
//! request from a script, with the clock in its hands. What each request must look like is
//! checked here against the Queue service's REST reference (paths, query, XML, base64 text),
//! decoded independently of the code under test. Azurite checks the same requests for real in
//! `host-test/cli/tests/all/storage_queue.rs`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use callrecords::config::Config;
use callrecords::http::{IncomingRequest, OutgoingRequest};
use callrecords::pipeline::{Action, Job, Report, Run};
use serde_json::{Value, json};

const TENANT: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
const STATE: &str = "client-state";
const QUEUE: &str = "https://contoso.queue.core.windows.net/calls";
const NOW: u64 = 1_795_824_000_000;

fn config(extra: &[(&str, &str)]) -> Config {
    let mut v: Vec<(String, String)> = [
        ("CALLRECORDS_TENANT_ID", TENANT),
        ("CALLRECORDS_CLIENT_ID", "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"),
        ("CALLRECORDS_CLIENT_SECRET", "secret"),
        ("CALLRECORDS_CLIENT_STATE", STATE),
        ("CALLRECORDS_DCE_URL", "https://dce.westeurope-1.ingest.monitor.azure.com"),
        ("CALLRECORDS_DCR_ID", "dcr-00000000000000000000000000000000"),
        ("CALLRECORDS_QUEUE_URL", QUEUE),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    v.extend(extra.iter().map(|(k, val)| (k.to_string(), val.to_string())));
    Config::from_env(&v).expect("valid settings")
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Drive `run` to its end: every request of a round is answered by `answer` (with the clock
/// at that moment), a wait moves the clock on.
fn drive(mut run: Run, now: &mut u64, mut answer: impl FnMut(&OutgoingRequest, u64) -> Answer) -> Report {
    let mut flying: Vec<(u64, OutgoingRequest)> = vec![];
    loop {
        match run.next(*now) {
            Action::Send { id, request, .. } => flying.push((id, request)),
            Action::Wait(ms) => {
                if flying.is_empty() {
                    *now += u64::from(ms);
                }
                for (id, r) in std::mem::take(&mut flying) {
                    let (status, headers, body) = answer(&r, *now);
                    run.respond(id, status, &headers, &body, *now).unwrap();
                }
            }
            Action::Progress(_) => {}
            Action::Done(report) => return *report,
        }
    }
}

fn auth(r: &OutgoingRequest) -> &str {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map_or("", |(_, v)| v.as_str())
}

/// The MessageText of a Put or Update body, base64-decoded and parsed.
fn message_json(r: &OutgoingRequest) -> Value {
    let body = String::from_utf8(r.body.clone()).unwrap();
    let text = body
        .strip_prefix("<QueueMessage><MessageText>")
        .and_then(|b| b.strip_suffix("</MessageText></QueueMessage>"))
        .unwrap_or_else(|| panic!("not a QueueMessage body: {body}"));
    serde_json::from_slice(&BASE64.decode(text).unwrap()).unwrap()
}

fn token_answer() -> Answer {
    (200, vec![], br#"{"token_type":"Bearer","access_token":"storage-token","expires_in":3599}"#.to_vec())
}

fn webhook(ids: &[&str]) -> IncomingRequest {
    let value: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"subscriptionId": "0d9f6a3e-7b1c-4e2a-9f3d-5c8b1a2e4f60", "changeType": "updated",
            "resource": format!("communications/callRecords/{id}"), "resourceData": {"id": id},
            "clientState": STATE, "tenantId": TENANT})
        })
        .collect();
    IncomingRequest {
        method: "POST".into(),
        path_and_query: "/notify".into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::to_vec(&json!({ "value": value })).unwrap(),
    }
}

/// The edge without an account key: an Entra token for the storage scope, one Put per call
/// (visible at once, never expiring), a missing queue created, and 202 only after the puts.
#[test]
fn the_edge_puts_each_notification_with_a_storage_token_and_creates_a_missing_queue() {
    let ids = ["11111111-0000-4000-8000-000000000001", "11111111-0000-4000-8000-000000000002"];
    let run = Run::start(config(&[]), Job::Accept(webhook(&ids)), NOW).unwrap();
    let (mut created, mut puts, mut now) = (0, vec![], NOW);
    let report = drive(run, &mut now, |r, _| {
        if r.url.contains("/oauth2/v2.0/token") {
            let body = String::from_utf8_lossy(&r.body);
            assert!(body.contains("scope=https%3A%2F%2Fstorage.azure.com%2F.default"), "{body}");
            return token_answer();
        }
        assert_eq!(auth(r), "Bearer storage-token", "{}", r.url);
        assert!(r.headers.iter().any(|(k, v)| k == "x-ms-version" && v == "2021-12-02"));
        if r.method == "PUT" && r.url == QUEUE {
            created += 1;
            return (201, vec![], vec![]);
        }
        assert_eq!(
            (r.method.as_str(), r.url.as_str()),
            ("POST", &*format!("{QUEUE}/messages?visibilitytimeout=0&messagettl=-1"))
        );
        if created == 0 {
            let xml = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>QueueNotFound</Code><Message>The specified queue does not exist.</Message></Error>";
            return (404, vec![("x-ms-error-code".into(), "QueueNotFound".into())], xml.to_vec());
        }
        puts.push(message_json(r));
        (201, vec![], b"<QueueMessagesList><QueueMessage><MessageId>m</MessageId><PopReceipt>p</PopReceipt></QueueMessage></QueueMessagesList>".to_vec())
    });
    assert_eq!(report.response.status, 202, "{:?}", report.error);
    // Each put in flight that found no queue creates it (Create Queue is idempotent: 204 then).
    assert!((1..=2).contains(&created), "{created} creates");
    let mut queued: Vec<&str> = puts.iter().map(|m| m["call_id"].as_str().unwrap()).collect();
    queued.sort();
    assert_eq!(queued, ids);
    assert!(puts.iter().all(|m| m["tenant_id"] == TENANT && m["attempts"] == 0 && m["received_ms"] == NOW));
    assert_eq!(report.storage.as_ref().map(|s| s.enqueued), Some(2));
}

/// A queue that refuses the put (403: the identity lacks the Sender role) gets Graph a 503 with
/// Retry-After, naming the refusal, so that Graph delivers again.
#[test]
fn a_refused_put_is_a_503_for_graph() {
    let run = Run::start(config(&[]), Job::Accept(webhook(&["11111111-0000-4000-8000-000000000001"])), NOW).unwrap();
    let mut now = NOW;
    let report = drive(run, &mut now, |r, _| {
        if r.url.contains("/oauth2/") {
            return token_answer();
        }
        let xml = b"<Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>";
        (403, vec![], xml.to_vec())
    });
    assert_eq!(report.response.status, 503);
    let text = String::from_utf8_lossy(&report.response.body);
    assert!(text.contains("could not be queued") && text.contains("AuthorizationPermissionMismatch"), "{text}");
    assert!(report.response.headers.iter().any(|(k, _)| k == "Retry-After"));
}

fn queued(call: &str, attempts: u32) -> String {
    let c = json!({"call_id": call, "tenant_id": TENANT, "received_ms": NOW - 60_000, "attempts": attempts, "done_tables": []});
    BASE64.encode(serde_json::to_vec(&c).unwrap())
}

fn message(id: &str, pop: &str, dequeues: u32, text: &str) -> String {
    format!(
        "<QueueMessage><MessageId>{id}</MessageId><InsertionTime>Tue, 01 Dec 2026 09:00:00 GMT</InsertionTime><PopReceipt>{pop}</PopReceipt><DequeueCount>{dequeues}</DequeueCount><MessageText>{text}</MessageText></QueueMessage>"
    )
}

/// A worker's turn: each message settles by its call's outcome. A 403 is a dead letter (put into
/// `calls-poison` with the reason, then deleted); a 404 a minute after the notification is a
/// retry (updated with attempts = 1, hidden ~30 s); a message read 17 times and one that is not
/// this service's go to the poison queue as they are.
#[test]
fn a_turn_settles_every_message_by_its_outcome() {
    const FORBIDDEN: &str = "22222222-0000-4000-8000-000000000403";
    const NOT_YET: &str = "22222222-0000-4000-8000-000000000404";
    let key = "a2V5LWZvci10ZXN0cw==";
    let run = Run::start(
        config(&[("CALLRECORDS_QUEUE_KEY", key)]),
        Job::DrainQueue { max_calls: 10, lease_seconds: 20 },
        NOW,
    )
    .unwrap();
    let mut now = NOW;
    let mut log: Vec<(String, String, Value)> = vec![];
    let report = drive(run, &mut now, |r, _| {
        let shown = r.url.replace(QUEUE, "Q");
        if r.url.starts_with(QUEUE) {
            assert!(auth(r).starts_with("SharedKey contoso:"), "{}", auth(r));
        }
        let body = if r.body.is_empty() || !r.url.starts_with(QUEUE) { Value::Null } else { message_json(r) };
        log.push((r.method.clone(), shown.clone(), body));
        if r.url.contains("/oauth2/") {
            return (200, vec![], br#"{"access_token":"g","expires_in":3599}"#.to_vec());
        }
        if r.url.starts_with("https://graph.microsoft.com/") {
            let status = if r.url.contains(FORBIDDEN) { 403 } else { 404 };
            let code = if status == 403 { "Forbidden" } else { "NotFound" };
            return (status, vec![], format!(r#"{{"error":{{"code":"{code}","message":"no"}}}}"#).into_bytes());
        }
        match (r.method.as_str(), shown.as_str()) {
            ("GET", "Q/messages?numofmessages=10&visibilitytimeout=20") => {
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList>{}{}{}{}</QueueMessagesList>",
                    message("m-403", "p1", 1, &queued(FORBIDDEN, 0)),
                    message("m-404", "p2", 1, &queued(NOT_YET, 0)),
                    message("m-tired", "p3", 17, &queued(NOT_YET, 3)),
                    message("m-alien", "p4", 1, "aGVsbG8="),
                );
                (200, vec![], xml.into_bytes())
            }
            ("POST", "Q-poison/messages?visibilitytimeout=0&messagettl=-1") => (201, vec![], vec![]),
            ("PUT", u) if u.starts_with("Q/messages/") => {
                (204, vec![("x-ms-popreceipt".into(), format!("new-{}", log.len()))], vec![])
            }
            ("DELETE", _) => (204, vec![], vec![]),
            other => panic!("unexpected {other:?}"),
        }
    });
    let find = |m: &str, prefix: &str| -> Vec<&(String, String, Value)> {
        log.iter().filter(|(method, u, _)| method == m && u.starts_with(prefix)).collect()
    };
    // The dead letters: the 403 call with the reason, the 17-times-read one, the foreign message.
    let poison = find("POST", "Q-poison/");
    assert_eq!(poison.len(), 3, "{log:#?}");
    let reasons: Vec<&str> = poison.iter().map(|(_, _, b)| b["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("403")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("16 times and never settled")), "{reasons:?}");
    assert!(poison.iter().any(|(_, _, b)| b["text"] == "aGVsbG8=" && b["call"].is_null()), "{poison:?}");
    assert!(poison.iter().any(|(_, _, b)| b["call"]["call_id"] == FORBIDDEN));
    // Each of them deleted after its dead letter went in, with its (latest) pop receipt.
    let deleted: Vec<&str> = find("DELETE", "Q/messages/").iter().map(|(_, u, _)| u.as_str()).collect();
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    for id in ["m-403", "m-tired", "m-alien"] {
        assert!(deleted.iter().any(|u| u.starts_with(&format!("Q/messages/{id}?popreceipt="))), "{id}: {deleted:?}");
    }
    // The 404 a minute after its notification: updated for a retry 30 s later, attempts 1.
    let updates: Vec<_> = find("PUT", "Q/messages/m-404").into_iter().filter(|(_, _, b)| !b.is_null()).collect();
    assert_eq!(updates.len(), 1, "{log:#?}");
    assert!(updates[0].1.ends_with("&visibilitytimeout=30"), "{}", updates[0].1);
    assert_eq!(updates[0].2["attempts"], 1);
    assert_eq!(updates[0].2["call_id"], NOT_YET);
    let s = report.storage.unwrap();
    assert_eq!((s.dequeued, s.poisoned, s.deleted, s.updated, s.lost), (4, 3, 3, 1, 0));
}

/// While the calls take longer than half the lease (Graph holds back after a Retry-After), every
/// held message's lease is renewed with its pop receipt, and the settle uses the newest one.
#[test]
fn leases_are_renewed_at_half_their_length_with_the_newest_pop_receipt() {
    const CALL: &str = "33333333-0000-4000-8000-000000000001";
    let key = "a2V5LWZvci10ZXN0cw==";
    let run =
        Run::start(config(&[("CALLRECORDS_QUEUE_KEY", key)]), Job::DrainQueue { max_calls: 1, lease_seconds: 20 }, NOW)
            .unwrap();
    let mut now = NOW;
    let (mut renewals, mut graph) = (vec![], 0);
    let mut settle = String::new();
    let report = drive(run, &mut now, |r, at| {
        if r.url.contains("/oauth2/") {
            return (200, vec![], br#"{"access_token":"g","expires_in":3599}"#.to_vec());
        }
        if r.url.starts_with("https://graph.microsoft.com/") {
            graph += 1;
            // Throttled for 45 s: the call takes longer than two half-leases.
            let retry = vec![("Retry-After".to_string(), "45".to_string())];
            return (429, retry, br#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#.to_vec());
        }
        let shown = r.url.replace(QUEUE, "Q");
        match r.method.as_str() {
            "GET" => (
                200,
                vec![],
                format!("<QueueMessagesList>{}</QueueMessagesList>", message("m1", "p0", 1, &queued(CALL, 0)))
                    .into_bytes(),
            ),
            "PUT" if r.body.is_empty() => {
                renewals.push((at, shown.clone()));
                (204, vec![("x-ms-popreceipt".into(), format!("p{}", renewals.len()))], vec![])
            }
            "PUT" => {
                settle = shown;
                (204, vec![("x-ms-popreceipt".into(), "p-final".into())], vec![])
            }
            other => panic!("unexpected {other} {shown}"),
        }
    });
    assert!(graph > 1, "Graph was asked again after its Retry-After");
    assert!(renewals.len() >= 2, "{renewals:?}");
    // Every renewal carries the pop receipt of the one before, and hides the message for the lease.
    for (i, (at, u)) in renewals.iter().enumerate() {
        assert!(u.starts_with(&format!("Q/messages/m1?popreceipt=p{i}&visibilitytimeout=20")), "{u}");
        assert!(*at >= NOW + 10_000 * (i as u64 + 1), "renewal {i} at +{} ms", at - NOW);
    }
    // Graph kept refusing: a retry later, settled with the newest pop receipt.
    assert!(settle.starts_with(&format!("Q/messages/m1?popreceipt=p{}&", renewals.len())), "{settle}");
    assert_eq!(report.storage.map(|s| (s.renewed as usize, s.updated)), Some((renewals.len(), 1)));
}

/// Two deliveries queued the same call for two tenants (a cross-tenant call: each has its own
/// record under one id), and a turn reads them with two Gets: the second's call is not folded
/// into the first's fetch, already under way. Each record is read with its own tenant's token,
/// both ship, and both messages are deleted.
#[test]
fn one_call_queued_for_two_tenants_is_read_with_each_tenants_token_and_both_messages_deleted() {
    const CALL: &str = "44444444-0000-4000-8000-000000000001";
    const OTHER: &str = "7c9e4d21-0b6f-4a3e-8d5c-1f2a3b4c5d6e";
    const RECORD: &str = include_str!("../../examples/graph/callrecords/peer-to-peer.json");
    let message_of = |tenant: &str| {
        let c = json!({"call_id": CALL, "tenant_id": tenant, "received_ms": NOW - 60_000, "attempts": 0, "done_tables": []});
        BASE64.encode(serde_json::to_vec(&c).unwrap())
    };
    let cfg = config(&[("CALLRECORDS_QUEUE_KEY", "a2V5LWZvci10ZXN0cw=="), ("CALLRECORDS_GZIP", "false")]);
    // 33 messages: a Get of 32, then a Get of 1.
    let run = Run::start(cfg, Job::DrainQueue { max_calls: 33, lease_seconds: 60 }, NOW).unwrap();
    let mut now = NOW;
    let (mut record_tokens, mut versions, mut deleted) = (vec![], vec![], vec![]);
    let report = drive(run, &mut now, |r, _| {
        if let Some(rest) = r.url.strip_prefix("https://login.microsoftonline.com/") {
            let tenant = rest.split('/').next().unwrap();
            let body = String::from_utf8_lossy(&r.body);
            let token = if body.contains("graph.microsoft.com") { format!("graph-{tenant}") } else { "monitor".into() };
            return (200, vec![], json!({"access_token": token, "expires_in": 3599}).to_string().into_bytes());
        }
        if r.url.starts_with("https://graph.microsoft.com/") {
            let tenant = auth(r).strip_prefix("Bearer graph-").expect("a Graph token").to_string();
            if r.url.contains("/participants_v2") {
                return (200, vec![], br#"{"value":[]}"#.to_vec());
            }
            assert!(r.url.contains(&format!("/callRecords/{CALL}?")), "{}", r.url);
            record_tokens.push(tenant.clone());
            let mut record: Value = serde_json::from_str(RECORD).unwrap();
            record["id"] = json!(CALL);
            record["version"] = json!(if tenant == OTHER { 7 } else { 2 });
            return (200, vec![], record.to_string().into_bytes());
        }
        if r.url.starts_with("https://dce.") {
            if r.url.contains("/streams/Custom-TeamsCall_CL?") {
                let rows: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
                versions.extend(rows.iter().filter_map(|row| row["CallVersion"].as_i64()));
            }
            return (204, vec![], vec![]);
        }
        let shown = r.url.replace(QUEUE, "Q");
        match (r.method.as_str(), shown.as_str()) {
            ("GET", "Q/messages?numofmessages=32&visibilitytimeout=60") => {
                let xml =
                    format!("<QueueMessagesList>{}</QueueMessagesList>", message("m-a", "p1", 1, &message_of(TENANT)));
                (200, vec![], xml.into_bytes())
            }
            ("GET", "Q/messages?numofmessages=1&visibilitytimeout=60") => {
                let xml =
                    format!("<QueueMessagesList>{}</QueueMessagesList>", message("m-b", "p2", 1, &message_of(OTHER)));
                (200, vec![], xml.into_bytes())
            }
            ("DELETE", u) => {
                deleted.push(u.split('?').next().unwrap().to_string());
                (204, vec![], vec![])
            }
            other => panic!("unexpected {other:?}"),
        }
    });
    assert!(report.ok, "{:?}", report.error);
    record_tokens.sort();
    let mut want = vec![TENANT.to_string(), OTHER.to_string()];
    want.sort();
    assert_eq!(record_tokens, want, "each tenant's record read with its own token");
    versions.sort();
    assert_eq!(versions, [2, 7], "both records' TeamsCall_CL rows shipped");
    deleted.sort();
    assert_eq!(deleted, ["Q/messages/m-a", "Q/messages/m-b"], "both messages settled as shipped");
}
