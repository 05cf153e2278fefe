//! The Envoy filter through the real proxy-wasm ABI (the harness's host in `proxywasm.rs`), its
//! http calls answered by in-process stand-ins behind three "clusters": the handshake, a
//! delivery whose rows must equal the service component's, a forged clientState, Graph's 429
//! (waited out on the root context's tick), an ingestion outage, and a bad plugin configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock, Mutex};

use callrecords_conformance::proxywasm::{Exchange, FilterModule, HttpCall, Vm};
use callrecords_test_kit::demo::{CONTOSO, DEMO_CLIENT_STATE};
use callrecords_test_kit::standin::{Answer, Faults, Latency, Request, StandIns};
use serde_json::{Value, json};

use crate::service::{GROUP, P2P, callrecords_dir, delivery, expected_rows, item, rig};

static MODULE: LazyLock<FilterModule> = LazyLock::new(|| FilterModule::embedded().expect("the Envoy filter loads"));

/// Cluster name → the host its origin names (each cluster is one upstream in envoy.yaml).
const CLUSTERS: [(&str, &str); 3] = [("login", "login.test"), ("graph", "graph.test"), ("ingestion", "ingestion.test")];

/// The plugin configuration: the demo settings with login, Graph and the DCE on their own origins.
fn plugin_config(extra: &[(&str, &str)]) -> String {
    let mut settings: BTreeMap<String, String> =
        callrecords_test_kit::demo::demo_env("https://graph.test", "logs-ingestion").into_iter().collect();
    settings.insert("CALLRECORDS_LOGIN_URL".into(), "https://login.test/login".into());
    settings.insert("CALLRECORDS_DCE_URL".into(), "https://ingestion.test/ingest".into());
    settings.insert("CALLRECORDS_RETRY_BASE_MS".into(), "10".into());
    for (k, v) in extra {
        settings.insert(k.to_string(), v.to_string());
    }
    let clusters: BTreeMap<String, &str> = CLUSTERS.iter().map(|(c, h)| (format!("https://{h}"), *c)).collect();
    json!({"settings": settings, "clusters": clusters}).to_string()
}

struct Rig {
    standins: Arc<StandIns>,
    vm: Vm,
    /// Calls that reached a cluster other than the one their `:authority` belongs to.
    misrouted: Arc<Mutex<Vec<String>>>,
}

fn rig_with(faults: Faults, config: &str) -> Rig {
    rig_at(faults, config, Latency::NONE)
}

/// A certificate credential inline in the plugin configuration (a proxy-wasm filter has no
/// files): the filter signs the assertion with WASI `random_get`'s entropy, the stand-in checks it
/// as Entra does, and the delivery lands.
#[test]
fn envoy_signs_in_with_an_inline_certificate() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugin/tests/fixtures/credentials");
    let read = |n: &str| std::fs::read(format!("{fixtures}/{n}")).unwrap();
    let pem = String::from_utf8(read("app.pem")).unwrap();
    let config = plugin_config(&[
        ("CALLRECORDS_CLIENT_SECRET", ""),
        ("CALLRECORDS_CREDENTIAL", "certificate"),
        ("CALLRECORDS_CLIENT_CERTIFICATE", &pem),
    ]);
    let cert_pem = String::from_utf8(read("app-cert.pem")).unwrap();
    let b64: String = cert_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let mut standins = StandIns::new("https://graph.test", &callrecords_dir(), None, Faults::default()).unwrap();
    standins.set_identities(callrecords_test_kit::standin::Identities {
        certificate: Some((der, read("app-rsa-public.der"))),
        login_origin: Some("https://login.test".into()),
        ..Default::default()
    });
    let mut r = rig_from(standins, &config, |_| None);
    let ex = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(ex.status, 202, "{}", log_of(&ex));
    assert_eq!(r.standins.identity_counts().get("certificate"), Some(&2));
    assert_eq!(r.counts(), expected_rows(P2P));
}

fn rig_at(faults: Faults, config: &str, latency: Latency) -> Rig {
    rig_answering(faults, config, latency, |_| None)
}

/// [`rig_at`] with `answer` taking the calls it has an answer of its own for.
fn rig_answering(
    faults: Faults,
    config: &str,
    latency: Latency,
    answer: impl Fn(&HttpCall) -> Option<Answer> + Send + Sync + 'static,
) -> Rig {
    let mut standins = StandIns::new("https://graph.test", &callrecords_dir(), None, faults).expect("stand-ins");
    standins.set_latency(latency);
    rig_from(standins, config, answer)
}

/// The filter in front of these stand-ins.
fn rig_from(
    standins: StandIns,
    config: &str,
    answer: impl Fn(&HttpCall) -> Option<Answer> + Send + Sync + 'static,
) -> Rig {
    let standins = Arc::new(standins);
    let misrouted = Arc::new(Mutex::new(vec![]));
    let (s, m) = (standins.clone(), misrouted.clone());
    let upstream = Arc::new(move |call: &HttpCall| -> Answer {
        let authority = call.header(":authority").unwrap_or_default();
        if !CLUSTERS.iter().any(|(c, h)| *c == call.cluster && *h == authority) {
            m.lock().unwrap().push(format!("{} -> cluster {}", authority, call.cluster));
            return Answer::Response { status: 421, headers: vec![], body: b"misdirected".to_vec() };
        }
        if let Some(a) = answer(call) {
            return a;
        }
        let headers = call.headers.iter().filter(|(k, _)| !k.starts_with(':')).cloned().collect();
        s.answer(&Request {
            method: call.header(":method").unwrap_or_default().to_string(),
            path: call.header(":path").unwrap_or_default().to_string(),
            headers,
            body: call.body.clone(),
        })
    });
    let vm = Vm::start(&MODULE, config.as_bytes(), upstream).expect("the filter starts");
    Rig { standins, vm, misrouted }
}

fn envoy(faults: Faults) -> Rig {
    rig_with(faults, &plugin_config(&[]))
}

impl Rig {
    fn post(&mut self, path: &str, body: &Value) -> Exchange {
        let headers = [("content-type", "application/json")];
        let ex = self.vm.request("POST", path, &headers, body.to_string().as_bytes()).expect("the filter answers");
        assert!(self.misrouted.lock().unwrap().is_empty(), "misrouted: {:?}", self.misrouted.lock().unwrap());
        assert!(self.vm.unsupported_calls().is_empty(), "unsupported: {:?}", self.vm.unsupported_calls());
        ex
    }

    fn counts(&self) -> BTreeMap<String, usize> {
        self.standins.accepted().into_iter().map(|(k, v)| (k, v.len())).collect()
    }
}

fn log_of(ex: &Exchange) -> String {
    format!("{} {}", ex.status, String::from_utf8_lossy(&ex.body))
}

#[test]
fn envoy_validation_handshake_is_answered_locally_without_http_calls() {
    let mut r = envoy(Faults::default());
    let ex = r.vm.request("POST", "/notify?validationToken=a%2Bb%20c%3C", &[], b"").unwrap();
    assert_eq!(ex.status, 200, "{}", log_of(&ex));
    assert_eq!(ex.body, b"a+b c<");
    assert!(ex.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("text/plain")));
    assert!(ex.calls.is_empty(), "{:?}", ex.calls);
}

#[test]
fn envoy_delivery_of_the_group_call_ships_the_same_rows_as_the_service_component() {
    let body = delivery(vec![item(GROUP, CONTOSO, DEMO_CLIENT_STATE)]);
    let mut r = envoy(Faults::default());
    let ex = r.post("/notify", &body);
    assert_eq!(ex.status, 202, "{}", log_of(&ex));
    assert_eq!(r.counts(), expected_rows(GROUP));
    let report = ex.json().expect("JSON report");
    assert_eq!(report["calls"][0]["id"], GROUP);
    // Every service was reached through its own cluster.
    let clusters: BTreeSet<&str> = ex.calls.iter().map(|c| c.cluster.as_str()).collect();
    assert_eq!(clusters, BTreeSet::from(["login", "graph", "ingestion"]));
    assert!(ex.calls.iter().all(|c| c.timeout_ms > 0 && c.timeout_ms <= 2500), "timeouts within the deadline");

    // The same delivery through the wasi:http service component lands the same rows.
    let service = rig(Faults::default());
    let served = service.post("/notify", &body);
    assert_eq!(served.status, 202, "{}", served.log);
    let rows = |s: &StandIns| -> BTreeMap<String, BTreeSet<String>> {
        s.accepted().into_iter().map(|(t, rows)| (t, rows.iter().map(Value::to_string).collect())).collect()
    };
    assert_eq!(rows(&r.standins), rows(&service.standins));
}

#[test]
fn envoy_forged_client_state_gets_202_and_no_http_calls() {
    let mut r = envoy(Faults::default());
    let ex = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, "not-the-secret")]));
    assert_eq!(ex.status, 202, "{}", log_of(&ex));
    assert_eq!(ex.json().unwrap()["rejected"], 1);
    assert!(ex.calls.is_empty(), "{:?}", ex.calls);
    assert!(r.counts().is_empty());
}

#[test]
fn envoy_graph_429_is_waited_out_on_the_root_tick_then_202() {
    let mut r = envoy(Faults { graph_429_every: Some(2), ..Faults::default() });
    let ex = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(ex.status, 202, "{}", log_of(&ex));
    assert_eq!(r.counts(), expected_rows(P2P));
    assert!(ex.json().unwrap()["retries"].as_u64().unwrap() >= 1);
    assert!(ex.ticks > 0, "the wait did not go through proxy_on_tick");
    assert!(ex.elapsed >= std::time::Duration::from_secs(1), "Retry-After: 1 was not honoured: {:?}", ex.elapsed);
    assert!(ex.elapsed < std::time::Duration::from_millis(2900), "{:?}", ex.elapsed);
}

#[test]
fn envoy_an_answer_over_the_size_cap_is_refused_unread() {
    // Graph answers the record with 1 byte more than the cap: the filter does not read it, the
    // call fails as a transport error, and Graph is told to deliver again.
    let cap = callrecords::http::MAX_ANSWER_BYTES;
    let mut r = rig_answering(Faults::default(), &plugin_config(&[]), Latency::NONE, move |call| {
        let path = call.header(":path").unwrap_or_default();
        (path.contains(&format!("/callRecords/{P2P}")) && !path.contains("participants_v2")).then(|| Answer::Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: vec![b' '; cap + 1],
        })
    });
    let ex = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(ex.status, 503, "{}", log_of(&ex));
    assert!(log_of(&ex).contains(&format!("larger than {cap} bytes")), "{}", log_of(&ex));
    assert!(r.counts().is_empty(), "nothing shipped: {:?}", r.counts());
}

#[test]
fn envoy_ingestion_outage_answers_503_and_the_redelivery_lands() {
    // Every attempt of each of the four tables' batches (they go out together) is refused.
    let mut r = envoy(Faults { ingestion_outage: 4 * 6, ..Faults::default() });
    let body = delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]);
    let first = r.post("/notify", &body);
    assert_eq!(first.status, 503, "{}", log_of(&first));
    assert!(first.ticks > 0, "the backoff did not go through proxy_on_tick");
    assert!(first.json().unwrap()["rows_not_accepted"].as_u64().unwrap() > 0);
    // The same VM takes the redelivery.
    let second = r.post("/notify", &body);
    assert_eq!(second.status, 202, "{}", log_of(&second));
    // Tables accepted before the outage ended are shipped again: rows repeat, none is missing.
    let distinct: BTreeMap<String, usize> = r
        .standins
        .accepted()
        .into_iter()
        .map(|(t, rows)| (t, rows.iter().map(Value::to_string).collect::<BTreeSet<_>>().len()))
        .collect();
    assert_eq!(distinct, expected_rows(P2P));
}

#[test]
fn envoy_malformed_plugin_configuration_answers_500_naming_the_problem() {
    let cases: [(String, &str); 4] = [
        ("{not json".into(), "not JSON"),
        ("{\"settings\": {}, \"clusters\": {}}".into(), "CALLRECORDS_TENANT_ID"),
        (plugin_config(&[("CALLRECORDS_DCE_URL", "https://elsewhere.test/ingest")]), "https://elsewhere.test"),
        (String::new(), "empty"),
    ];
    for (config, needle) in cases {
        let mut r = rig_with(Faults::default(), &config);
        assert!(r.vm.configured(), "the filter refused its configuration instead of answering 500");
        for _ in 0..2 {
            let ex = r.vm.request("POST", "/notify", &[], br#"{"value": []}"#).expect("the host survives");
            assert_eq!(ex.status, 500, "{}", log_of(&ex));
            let text = String::from_utf8_lossy(&ex.body);
            assert!(text.contains(needle), "{config:?}: {text}");
            assert!(ex.calls.is_empty());
        }
        assert!(r.vm.logs().iter().any(|(level, m)| *level >= 3 && m.contains(needle)), "{:?}", r.vm.logs());
    }
}

#[test]
fn proxy_wasm_header_maps_round_trip_and_malformed_ones_are_refused() {
    let map = vec![(":status".to_string(), b"200".to_vec()), ("x-a".to_string(), b"".to_vec())];
    let bytes = callrecords_conformance::proxywasm::serialize_map(&map);
    // count, two length pairs, then "`:status`\0`200`\0`x-a`\0\0", all written out here.
    let mut expected = vec![2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
    expected.extend(b":status\x00200\x00x-a\x00\x00");
    assert_eq!(bytes, expected);
    let back = callrecords_conformance::proxywasm::deserialize_map(&bytes).unwrap();
    assert_eq!(back, vec![(":status".to_string(), "200".to_string()), ("x-a".to_string(), String::new())]);
    for bad in [&bytes[..bytes.len() - 1], &bytes[..3], &[255, 255, 255, 255][..]] {
        assert_eq!(callrecords_conformance::proxywasm::deserialize_map(bad), None);
    }
    let mut no_nul = bytes.clone();
    no_nul[20 + 7] = b'x';
    assert_eq!(callrecords_conformance::proxywasm::deserialize_map(&no_nul), None);
}

#[test]
fn envoy_body_over_the_limit_is_refused_413_without_http_calls() {
    let mut r = rig_with(Faults::default(), &plugin_config(&[("CALLRECORDS_MAX_BODY_BYTES", "1000")]));
    let big = delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE); 20]);
    assert!(big.to_string().len() > 1000);
    let ex = r.post("/notify", &big);
    assert_eq!(ex.status, 413, "{}", log_of(&ex));
    assert!(ex.calls.is_empty(), "{:?}", ex.calls);
}

/// Every sample call in one POST, at cloud round-trip times: the filter keeps its http calls
/// outstanding together, so the answer comes in about the time of the slowest call's chain of
/// pages, far below the Graph reads alone made one after the other.
#[test]
fn envoy_calls_of_one_post_are_fetched_together_at_cloud_latency() {
    let config = plugin_config(&[("CALLRECORDS_DEADLINE_MS", "10000")]);
    let mut r = rig_at(Faults::default(), &config, Latency::CLOUD);
    let calls = r.standins.call_ids();
    let items = calls.iter().map(|c| item(c, CONTOSO, DEMO_CLIENT_STATE)).collect();
    let ex = r.post("/notify", &delivery(items));
    assert_eq!(ex.status, 202, "{}", log_of(&ex));
    let landed: BTreeSet<String> = r.standins.accepted()["TeamsCall_CL"]
        .iter()
        .filter_map(|row| row["CallId"].as_str().map(String::from))
        .collect();
    assert_eq!(landed.len(), calls.len());
    // One after the other, each call's record GET and participants_v2 GET alone (600 and 300 ms,
    // -20 % jitter at best) would take this long.
    let sequential_floor = std::time::Duration::from_millis(calls.len() as u64 * (600 + 300) * 8 / 10);
    assert!(ex.elapsed < sequential_floor, "{:?} is not below {sequential_floor:?}", ex.elapsed);
    let most = r.standins.counters().max_concurrent as usize;
    assert!(most >= calls.len(), "at most {most} requests were answered at once");
}

/// The filter's VM outlives its requests: the tokens one request got (kept in its root context)
/// serve the next ones.
#[test]
fn envoy_keeps_its_tokens_for_the_next_requests_of_the_vm() {
    let mut r = envoy(Faults::default());
    let calls = r.standins.call_ids();
    for call in &calls {
        let ex = r.post("/notify", &delivery(vec![item(call, CONTOSO, DEMO_CLIENT_STATE)]));
        assert_eq!(ex.status, 202, "{}", log_of(&ex));
    }
    let landed: BTreeSet<String> =
        r.standins.accepted()["TeamsCall_CL"].iter().map(|row| row["CallId"].as_str().unwrap().to_string()).collect();
    assert_eq!(landed, calls.iter().cloned().collect(), "every call landed");
    let c = r.standins.counters();
    assert_eq!(c.tokens, 2, "a Graph and a Monitor token for {} requests: {c:?}", calls.len());
}
