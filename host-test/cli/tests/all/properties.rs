//! Property tests through the component: random and mutated inputs to every export give a value
//! or a typed error, never a trap.

use callrecords_host::bindings::{graph, sentinel, types, webhook};
use callrecords_host::{CallError, Error};
use callrecords_test_kit::demo::demo_settings;
use callrecords_test_kit::fixtures;
use proptest::prelude::*;

use crate::RT;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() }
}

/// A fixture with a few bytes flipped, cut or inserted.
fn mutated(source: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let len = source.len();
    prop::collection::vec((0..len, any::<u8>(), 0u8..3), 1..8).prop_map(move |edits| {
        let mut bytes = source.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at.min(bytes.len());
            match op {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, byte),
            }
        }
        bytes
    })
}

/// The JSON body of the forged-clientState delivery (one good item, one forged).
fn forged_body() -> &'static str {
    static BODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BODY.get_or_init(|| {
        let req = callrecords_host::rawhttp::parse_request(fixtures::FORGED.as_bytes()).expect("fixture parses");
        String::from_utf8(req.body).expect("fixture body is UTF-8")
    })
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

fn no_trap<T: std::fmt::Debug>(r: &Result<T, Error>) -> Result<(), TestCaseError> {
    match r {
        Err(Error::Call(e)) => Err(TestCaseError::fail(format!("the component did not answer: {e}"))),
        _ => Ok(()),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn webhook_answers_any_request(
        method in prop::sample::select(vec!["POST", "GET", "PUT", "post", ""]),
        path in "(/api/notifications)?(\\?validationToken=[%A-Za-z0-9+ ]{0,40})?",
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let req = types::IncomingRequest { method: method.into(), path_and_query: path, headers: vec![], body };
        let o = RT.handle(&demo_settings(&[]), &req).map_err(|e: CallError| TestCaseError::fail(e.to_string()))?;
        prop_assert!([200, 202, 400, 405, 413].contains(&o.response.status), "status {}", o.response.status);
    }

    #[test]
    fn webhook_survives_mutated_deliveries(body in mutated(forged_body())) {
        let req = types::IncomingRequest { method: "POST".into(), path_and_query: "/api/notifications".into(), headers: vec![], body };
        let o = RT.handle(&demo_settings(&[]), &req).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!([202, 400].contains(&o.response.status));
        prop_assert!(matches!(o.kind, webhook::RequestKind::Delivery | webhook::RequestKind::Refused));
    }

    #[test]
    fn expand_and_seed_survive_mutated_records(bytes in mutated(fixtures::PEER_TO_PEER)) {
        let record = text(bytes);
        no_trap(&RT.expand(&record))?;
        no_trap(&RT.seed_row(&record))?;
    }

    #[test]
    fn expand_survives_random_json(v in arbitrary_json()) {
        let record = v.to_string();
        no_trap(&RT.expand(&record))?;
        let mut obj = serde_json::json!({"id": "x", "sessions": [{"segments": [{"media": [{"streams": [v.clone()]}]}]}]});
        obj["version"] = v;
        no_trap(&RT.expand(&obj.to_string()))?;
    }

    #[test]
    fn graph_parsers_survive_anything(bytes in mutated(fixtures::GROUP_CALL.get(..4000).unwrap_or_default()), status in 0u16..600) {
        let body = text(bytes);
        no_trap(&RT.next_link(&body))?;
        no_trap(&RT.parse_list_page(&body))?;
        no_trap(&RT.parse_token_response(status, body.as_bytes()))?;
        no_trap(&RT.merge_pages(fixtures::PEER_TO_PEER, std::slice::from_ref(&body), &[]))?;
        no_trap(&RT.check_response(status, &[("Retry-After".into(), body.chars().take(30).collect())], body.as_bytes(), 0))?;
        no_trap(&RT.next_page_request("https://graph.microsoft.com", &body, "t"))?;
        no_trap(&RT.call_record_request("https://graph.microsoft.com", &body, "t"))?;
    }

    #[test]
    fn batching_survives_any_rows(rows in prop::collection::vec(".{0,80}", 0..20), dc in any::<bool>()) {
        let sink = if dc { sentinel::Sink::DataCollector } else { sentinel::Sink::LogsIngestion };
        let r = RT.batch_rows(&rows, sink);
        no_trap(&r)?;
        if let Ok(batches) = r {
            prop_assert_eq!(batches.iter().map(|b| b.rows as usize).sum::<usize>(), rows.len());
        }
    }

    #[test]
    fn signing_and_requests_survive_any_arguments(ws in ".{0,40}", key in ".{0,40}", date in ".{0,40}", n in any::<u64>()) {
        no_trap(&RT.shared_key_authorization(&ws, &key, &date, n))?;
        let target = sentinel::DataCollectorTarget { workspace_id: ws.clone(), shared_key: key.clone(), log_type: date.clone(), time_generated_field: None, base_url: None };
        no_trap(&RT.data_collector_request(&target, &date, key.as_bytes()))?;
        let li = sentinel::LogsIngestionTarget { endpoint: ws, dcr_immutable_id: key, stream: date };
        no_trap(&RT.logs_ingestion_request(&li, "t", b"[]", n % 2 == 0))?;
        let creds = graph::Credentials { login_base_url: li.endpoint.clone(), tenant_id: li.stream.clone(), client_id: "c".into(), client_secret: "s".into() };
        no_trap(&RT.token_request(&creds, graph::Scope::Graph))?;
    }
}

fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or_default()),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "version",
                    "sessions",
                    "segments",
                    "media",
                    "streams",
                    "caller",
                    "identity",
                    "user",
                    "averageJitter",
                    "x"
                ]),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}
