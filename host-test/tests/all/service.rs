//! The service component under wasmtime-wasi-http, its outgoing requests intercepted by the
//! harness and answered by in-process stand-ins (no sockets): every path of the pipeline, with
//! the rows that land checked against the callRecords the stand-ins served.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use host_test::conformance::{CONTOSO, DEMO_CLIENT_STATE, FABRIKAM};
use host_test::servehost::{Outbound, Served, ServiceHost};
use host_test::standin::{self, Faults, StandIns};
use serde_json::{Value, json};

/// Intercepted requests carry this origin; nothing listens there.
const BASE: &str = "http://stand-ins.test";
const P2P: &str = "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01";
const GROUP: &str = "8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02";
const PSTN_CALL: &str = "a3c5e7f9-2b4d-4f6a-8c0e-1d3f5a7b9c03";

pub static TOKIO: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());

/// The service component compiled once for this binary; each test gets its own stand-ins.
static COMPILED: LazyLock<()> = LazyLock::new(|| {
    // Compiling warms the on-disk cache every later ServiceHost loads from.
    ServiceHost::embedded(vec![], Outbound::Network).expect("the service component loads");
});

pub fn callrecords_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/graph/callrecords")
}

pub struct Rig {
    pub standins: Arc<StandIns>,
    pub host: ServiceHost,
}

pub fn rig_with(faults: Faults, extra: &[(&str, &str)], setup: impl FnOnce(&mut StandIns)) -> Rig {
    LazyLock::force(&COMPILED);
    let mut s = StandIns::new(BASE, &callrecords_dir(), None, faults).expect("stand-ins load the samples");
    setup(&mut s);
    let standins = Arc::new(s);
    let mut env = standin::demo_env(BASE, "logs-ingestion");
    env.push(("CALLRECORDS_RETRY_BASE_MS".into(), "10".into()));
    for (k, v) in extra {
        env.retain(|(n, _)| n != k);
        env.push((k.to_string(), v.to_string()));
    }
    let host = ServiceHost::embedded(env, Outbound::Intercept(standins.clone())).expect("service host");
    Rig { standins, host }
}

pub fn rig(faults: Faults) -> Rig {
    rig_with(faults, &[], |_| {})
}

impl Rig {
    pub fn post(&self, path: &str, body: &Value) -> Served {
        let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        TOKIO.block_on(self.host.handle_parts("POST", path, &headers, body.to_string().into_bytes()))
    }

    /// Rows accepted per table, counted.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.standins.accepted().into_iter().map(|(k, v)| (k, v.len())).collect()
    }

    /// Distinct call ids in the accepted TeamsCall_CL rows.
    pub fn calls_landed(&self) -> std::collections::BTreeSet<String> {
        self.standins
            .accepted()
            .get("TeamsCall_CL")
            .into_iter()
            .flatten()
            .filter_map(|r| r["CallId"].as_str().map(String::from))
            .collect()
    }
}

pub fn item(call: &str, tenant: &str, client_state: &str) -> Value {
    json!({
        "subscriptionId": "9c4e1f22-5b3d-4a8e-b7c6-0d1e2f3a4b5c",
        "subscriptionExpirationDateTime": "2026-11-29T18:23:45.9356913+00:00",
        "changeType": "created",
        "resource": format!("communications/callRecords/{call}"),
        "resourceData": {"@odata.type": "#Microsoft.Graph.callRecord", "@odata.id": format!("communications/callRecords/{call}"), "id": call},
        "clientState": client_state,
        "tenantId": tenant,
    })
}

pub fn delivery(items: Vec<Value>) -> Value {
    json!({ "value": items })
}

fn lifecycle(event: &str) -> Value {
    json!({"value": [{
        "subscriptionId": "9c4e1f22-5b3d-4a8e-b7c6-0d1e2f3a4b5c",
        "subscriptionExpirationDateTime": "2026-11-29T18:23:45.9356913+00:00",
        "lifecycleEvent": event,
        "clientState": DEMO_CLIENT_STATE,
        "tenantId": CONTOSO,
    }]})
}

/// Rows the sample call must give, counted from its JSON here (not by the code under test):
/// one call row, a leg per segment, a stream row per media stream, a participant row each.
fn expected_rows(call: &str) -> BTreeMap<String, usize> {
    let mut record: Option<Value> = None;
    let mut sessions = vec![];
    let mut participants = vec![];
    let mut names: Vec<_> = std::fs::read_dir(callrecords_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let mut pages = BTreeMap::new();
    for p in names.iter().filter(|p| p.extension().is_some_and(|x| x == "json")) {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        if v["id"] == call {
            record = Some(v);
        } else {
            pages.insert(stem, v);
        }
    }
    let record = record.expect("sample call exists");
    sessions.extend(record["sessions"].as_array().cloned().unwrap_or_default());
    let mut link = record["sessions@odata.nextLink"].as_str().map(String::from);
    while let Some(l) = link {
        let page = &pages[l.split("$skiptoken=").nth(1).unwrap()];
        sessions.extend(page["value"].as_array().cloned().unwrap());
        link = page["@odata.nextLink"].as_str().map(String::from);
    }
    for (stem, page) in &pages {
        if stem.contains(".participants-") && record["id"] == GROUP && stem.starts_with("group-call") {
            participants.extend(page["value"].as_array().cloned().unwrap());
        }
    }
    if participants.is_empty() {
        participants = record["participants_v2"].as_array().cloned().unwrap_or_default();
    }
    if participants.is_empty() {
        participants = record["participants"].as_array().cloned().unwrap_or_default();
    }
    let organizer = record["organizer_v2"]["identity"].is_object() || record["organizer"].is_object();
    let segments: Vec<&Value> = sessions.iter().flat_map(|s| s["segments"].as_array().into_iter().flatten()).collect();
    let streams: usize = segments
        .iter()
        .flat_map(|s| s["media"].as_array().into_iter().flatten())
        .map(|m| m["streams"].as_array().map_or(0, Vec::len))
        .sum();
    let mut out = BTreeMap::from([
        ("TeamsCall_CL".to_string(), 1),
        ("TeamsCallLeg_CL".to_string(), segments.len()),
        ("TeamsCallStream_CL".to_string(), streams),
    ]);
    out.insert("TeamsCallParticipant_CL".into(), participants.len() + usize::from(organizer));
    out.retain(|_, n| *n > 0);
    out
}

#[test]
fn validation_handshake_is_answered_at_once_without_remote_calls() {
    let r = rig(Faults::default());
    let served = TOKIO.block_on(r.host.handle_parts("POST", "/notify?validationToken=a%2Bb%20c%3C", &[], vec![]));
    assert_eq!(served.status, 200, "{}", served.log);
    assert_eq!(served.body, b"a+b c<");
    assert!(served.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/plain")));
    assert_eq!(r.standins.counters().graph + r.standins.counters().tokens, 0);
}

#[test]
fn happy_path_ships_every_row_then_answers_202() {
    let r = rig(Faults::default());
    let served = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(r.counts(), expected_rows(P2P));
    let report = served.report().expect("JSON report");
    assert_eq!(report["calls"][0]["id"], P2P);
    assert!(served.log.contains("calls=1"), "{}", served.log);
}
