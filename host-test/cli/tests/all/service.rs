//! The service component under wasmtime-wasi-http, its outgoing requests intercepted by the
//! harness and answered by in-process stand-ins (no sockets): every path of the pipeline, with
//! the rows that land checked against the callRecords the stand-ins served.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use callrecords_host::service::{Outbound, Served, ServiceHost};
use callrecords_host::transport::HttpClient;
use callrecords_test_kit::demo::{CONTOSO, DEMO_CLIENT_STATE, FABRIKAM};
pub use callrecords_test_kit::demo::{delivery, item};
use callrecords_test_kit::standin::{Faults, Latency, StandIns};
use serde_json::{Value, json};

/// Intercepted requests carry this origin; nothing listens there.
const BASE: &str = "https://stand-ins.test";
pub const P2P: &str = "4f1a7c2e-8b3d-4e6a-9c1f-2d5e8a7b6c01";
pub const GROUP: &str = "8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02";

pub static TOKIO: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());

/// The service component compiled once for this binary; each test gets its own stand-ins.
static COMPILED: LazyLock<()> = LazyLock::new(|| {
    // Compiling warms the on-disk cache every later ServiceHost loads from.
    ServiceHost::embedded(vec![], Outbound::Network(HttpClient::new())).expect("the service component loads");
});

pub fn callrecords_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graph/callrecords")
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
    let mut env = callrecords_test_kit::demo::demo_env(BASE, "logs-ingestion");
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

    /// Rows accepted per table for one call.
    pub fn counts_of(&self, call: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (table, rows) in self.standins.accepted() {
            let n = rows.iter().filter(|r| r["CallId"] == call).count();
            if n > 0 {
                out.insert(table, n);
            }
        }
        out
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

fn lifecycle(event: &str) -> Value {
    lifecycle_for(event, "9c4e1f22-5b3d-4a8e-b7c6-0d1e2f3a4b5c")
}

fn lifecycle_for(event: &str, subscription: &str) -> Value {
    json!({"value": [{
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2026-11-29T18:23:45.9356913+00:00",
        "lifecycleEvent": event,
        "clientState": DEMO_CLIENT_STATE,
        "tenantId": CONTOSO,
    }]})
}

/// Rows the sample call must give, counted from its JSON here (not by the code under test):
/// one call row, a leg per segment, a stream row per media stream, a participant row each.
pub fn expected_rows(call: &str) -> BTreeMap<String, usize> {
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
    assert!(served.log.contains(&format!("calls=1 [{P2P} v")), "{}", served.log);
}

/// Distinct rows per table (a redelivery may ship a call twice; the rows are the same).
fn distinct_counts(r: &Rig) -> BTreeMap<String, usize> {
    r.standins
        .accepted()
        .into_iter()
        .map(|(t, rows)| (t, rows.iter().map(Value::to_string).collect::<std::collections::BTreeSet<_>>().len()))
        .collect()
}

#[test]
fn a_200_session_call_is_read_across_4_pages() {
    let record = callrecords_test_kit::synth::group_call(200);
    let r = rig_with(Faults::default(), &[], |s| s.add_call(&record, vec![]).unwrap());
    let served = r.post("/notify", &delivery(vec![item(GROUP, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    let v: Value = serde_json::from_str(&record).unwrap();
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 200);
    let segments: usize = sessions.iter().map(|s| s["segments"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(r.counts()["TeamsCallLeg_CL"], segments);
    // record + 3 more session pages (60+60+60+20) + one participants_v2 page.
    assert_eq!(r.standins.counters().graph, 1 + 3 + 1);
    let legs = &r.standins.accepted()["TeamsCallLeg_CL"];
    let sessions_seen: std::collections::BTreeSet<&str> = legs.iter().filter_map(|l| l["SessionId"].as_str()).collect();
    assert_eq!(sessions_seen.len(), 200);
}

/// Every sample call in one POST, at cloud round-trip times: the component keeps their requests
/// in flight together (wasi:io/poll), so the answer comes in about the time of the slowest call's
/// chain of pages, far below the Graph reads alone made one after the other.
#[test]
fn the_calls_of_one_post_are_fetched_together_at_cloud_latency() {
    let r = rig_with(Faults::default(), &[("CALLRECORDS_DEADLINE_MS", "10000")], |s| s.set_latency(Latency::CLOUD));
    let calls = r.standins.call_ids();
    let items = calls.iter().map(|c| item(c, CONTOSO, DEMO_CLIENT_STATE)).collect();
    let served = r.post("/notify", &delivery(items));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(r.calls_landed().len(), calls.len());
    // One after the other, each call's record GET and participants_v2 GET alone (600 and 300 ms,
    // -20 % jitter at best) would take this long.
    let sequential_floor = std::time::Duration::from_millis(calls.len() as u64 * (600 + 300) * 8 / 10);
    assert!(served.elapsed < sequential_floor, "{:?} is not below {sequential_floor:?}", served.elapsed);
    let most = r.standins.counters().max_concurrent as usize;
    assert!(most >= calls.len(), "at most {most} requests were answered at once");
}

#[test]
fn graph_429_with_retry_after_is_waited_out_within_the_budget() {
    let faults = Faults { graph_429_every: Some(2), ..Faults::default() };
    let r = rig(faults);
    let served = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(r.counts(), expected_rows(P2P));
    let report = served.report().unwrap();
    assert!(report["retries"].as_u64().unwrap() >= 1, "{report}");
    assert!(served.elapsed >= std::time::Duration::from_secs(1), "Retry-After: 1 was not honoured");
    assert!(served.elapsed < std::time::Duration::from_millis(2900));
}

#[test]
fn ingestion_413_splits_the_batch_and_every_row_lands() {
    let faults = Faults { ingestion_max_bytes: Some(20_000), ..Faults::default() };
    let r = rig(faults);
    let served = r.post("/notify", &delivery(vec![item(GROUP, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(r.counts(), expected_rows(GROUP));
    let c = r.standins.counters();
    assert!(c.faults >= 1, "the stand-in never refused a body: {c:?}");
    assert!(c.ingestion_accepted > 4, "no split happened: {c:?}");
}

#[test]
fn ingestion_5xx_makes_graph_redeliver_and_the_redelivery_lands() {
    // Every attempt of each of the four tables' batches (they go out together) is refused.
    let r = rig(Faults { ingestion_outage: 4 * 6, ..Faults::default() });
    let body = delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]);
    let first = r.post("/notify", &body);
    assert_eq!(first.status, 503, "{}", first.log);
    assert!(first.report().unwrap()["rows_not_accepted"].as_u64().unwrap() > 0);
    let second = r.post("/notify", &body);
    assert_eq!(second.status, 202, "{}", second.log);
    assert_eq!(distinct_counts(&r), expected_rows(P2P));
}

#[test]
fn duplicate_items_in_one_delivery_fetch_the_call_once() {
    let r = rig(Faults::default());
    let served = r
        .post("/notify", &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE), item(P2P, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(served.report().unwrap()["duplicates"], 1);
    assert_eq!(r.counts(), expected_rows(P2P));
}

#[test]
fn two_tenants_in_one_post_with_one_not_allowed() {
    let r = rig_with(Faults::default(), &[("CALLRECORDS_ALLOWED_TENANTS", CONTOSO)], |_| {});
    let served = r.post(
        "/notify",
        &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE), item(GROUP, FABRIKAM, DEMO_CLIENT_STATE)]),
    );
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(served.report().unwrap()["rejected"], 1);
    assert_eq!(r.calls_landed().into_iter().collect::<Vec<_>>(), vec![P2P.to_string()]);
}

#[test]
fn two_allowed_tenants_get_a_graph_token_each() {
    let r = rig(Faults::default());
    let served = r.post(
        "/notify",
        &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE), item(GROUP, FABRIKAM, DEMO_CLIENT_STATE)]),
    );
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(r.calls_landed().len(), 2);
    // Graph for Contoso, Graph for Fabrikam, Azure Monitor for the workspace's tenant.
    assert_eq!(r.standins.counters().tokens, 3);
}

#[test]
fn forged_client_state_is_dropped_without_calling_graph() {
    let r = rig(Faults::default());
    let served = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, "not-the-secret")]));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(served.report().unwrap()["rejected"], 1);
    assert_eq!(r.standins.counters().graph + r.standins.counters().tokens, 0);
    assert!(r.counts().is_empty());
    assert!(
        !served.log.contains(DEMO_CLIENT_STATE) && !String::from_utf8_lossy(&served.body).contains(DEMO_CLIENT_STATE)
    );
}

#[test]
fn reauthorization_required_reauthorizes_and_renews_before_202() {
    let r = rig(Faults::default());
    // A subscription the Graph stand-in knows (made by the recreate path), about to expire.
    assert_eq!(r.post("/lifecycle", &lifecycle("subscriptionRemoved")).status, 202);
    let sub = r.standins.subscriptions()[0].clone();
    let id = sub["id"].as_str().unwrap();
    let served = r.post("/lifecycle", &lifecycle_for("reauthorizationRequired", id));
    assert_eq!(served.status, 202, "{}", served.log);
    let lines = served.report().unwrap()["lifecycle"].to_string();
    assert!(lines.contains(&format!("reauthorized subscription {id}")), "{lines}");
    assert!(lines.contains(&format!("renewed subscription {id} until")), "{lines}");
    // Renewed to at most Graph's 4230 minutes from now.
    let expiry = r.standins.subscriptions()[0]["expirationDateTime"].as_str().unwrap().to_string();
    let expiry = callrecords::values::parse_timestamp(&expiry).unwrap().secs;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(expiry > now + 4000 * 60 && expiry <= now + 4230 * 60, "{expiry} vs {now}");
}

#[test]
fn reauthorization_for_an_unknown_subscription_is_503_so_graph_asks_again() {
    let r = rig(Faults::default());
    let served = r.post("/lifecycle", &lifecycle("reauthorizationRequired"));
    assert_eq!(served.status, 503, "{}", served.log);
    assert!(served.log.contains("404"), "{}", served.log);
}

#[test]
fn subscription_removed_creates_it_again_and_asks_for_a_resync() {
    let r = rig(Faults::default());
    let served = r.post("/lifecycle", &lifecycle("subscriptionRemoved"));
    assert_eq!(served.status, 202, "{}", served.log);
    let subs = r.standins.subscriptions();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["notificationUrl"], "https://teams-sentinel.example.com/notify");
    assert_eq!(subs[0]["lifecycleNotificationUrl"], "https://teams-sentinel.example.com/lifecycle");
    let resync = &served.report().unwrap()["resync"];
    assert_eq!(resync["reason"], "subscriptionRemoved");
    assert!(served.log.contains("RESYNC NEEDED"), "{}", served.log);
}

#[test]
fn missed_asks_for_a_resync_of_the_last_24_hours() {
    let r = rig(Faults::default());
    let served = r.post("/lifecycle", &lifecycle("missed"));
    assert_eq!(served.status, 202, "{}", served.log);
    let resync = served.report().unwrap()["resync"].clone();
    let since = callrecords::values::parse_timestamp(resync["since"].as_str().unwrap()).unwrap();
    let until = callrecords::values::parse_timestamp(resync["until"].as_str().unwrap()).unwrap();
    assert_eq!(until.secs - since.secs, 24 * 3600);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((until.secs - now).abs() < 60);
}

#[test]
fn a_lifecycle_action_that_fails_is_answered_503() {
    let r = rig(Faults { graph_5xx: 1.0, ..Faults::default() });
    let served = r.post("/lifecycle", &lifecycle("subscriptionRemoved"));
    assert_eq!(served.status, 503, "{}", served.log);
    assert!(r.standins.subscriptions().is_empty());
}

#[test]
fn a_token_that_expires_mid_run_is_replaced_once() {
    let r = rig(Faults { expire_tokens_after: Some(2), ..Faults::default() });
    let served = r.post("/notify", &delivery(vec![item(GROUP, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(r.counts(), expected_rows(GROUP));
    // Graph and Monitor at first, Graph (and Monitor) again after the expiry.
    assert!(r.standins.counters().tokens >= 3, "{:?}", r.standins.counters());
}

/// Each request runs in a fresh instance, but the host's `wasi:keyvalue` store outlives them: the
/// tokens the first request got serve the next ones, and nothing shows them.
#[test]
fn tokens_are_kept_between_requests_in_the_hosts_store() {
    let r = rig(Faults::default());
    let calls = r.standins.call_ids();
    assert!(calls.len() >= 4, "{calls:?}");
    for call in &calls {
        let served = r.post("/notify", &delivery(vec![item(call, CONTOSO, DEMO_CLIENT_STATE)]));
        assert_eq!(served.status, 202, "{}", served.log);
        assert_eq!(r.counts_of(call), expected_rows(call), "call {call}");
    }
    let c = r.standins.counters();
    assert_eq!(c.tokens, 2, "a Graph and a Monitor token for {} requests: {c:?}", calls.len());
    assert_eq!(r.host.keyvalue().len(), 1, "one document of saved tokens");
    assert_eq!(format!("{:?}", r.host.keyvalue()), "KeyValue(1 keys)", "Debug shows no value");

    // A host whose store lives for one request (stock `wasmtime serve -Skeyvalue`): a token each time.
    r.host.keyvalue().clear();
    let served = r.post("/notify", &delivery(vec![item(&calls[0], CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(r.standins.counters().tokens, 4);
}

#[test]
fn past_the_deadline_the_answer_is_503_not_slow() {
    let r =
        rig_with(Faults { graph_delay_ms: 700, ..Faults::default() }, &[("CALLRECORDS_DEADLINE_MS", "1000")], |_| {});
    let served = r.post("/notify", &delivery(vec![item(GROUP, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 503, "{}", served.log);
    assert!(served.report().unwrap()["error"].as_str().unwrap().contains("deadline of 1000 ms"));
    assert!(served.elapsed < std::time::Duration::from_millis(2900), "{:?}", served.elapsed);
}

#[test]
fn bad_settings_are_a_500_naming_the_variable_never_a_trap() {
    LazyLock::force(&COMPILED);
    let standins = Arc::new(StandIns::new(BASE, &callrecords_dir(), None, Faults::default()).unwrap());
    let mut env = callrecords_test_kit::demo::demo_env(BASE, "logs-ingestion");
    env.retain(|(k, _)| k != "CALLRECORDS_DCR_ID");
    let host = ServiceHost::embedded(env, Outbound::Intercept(standins)).unwrap();
    let served = TOKIO.block_on(host.handle_parts("POST", "/notify", &[], b"{}".to_vec()));
    assert_eq!(served.status, 500);
    assert!(String::from_utf8_lossy(&served.body).contains("CALLRECORDS_DCR_ID is not set"));
    assert!(!String::from_utf8_lossy(&served.body).contains("demo-client-secret"));
}

#[test]
fn fault_injection_1000_notifications_none_lost() {
    const CALLS: usize = 1000;
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(callrecords_dir().join("peer-to-peer.json")).unwrap()).unwrap();
    let ids: Vec<String> = (0..CALLS).map(|i| format!("f0000000-0000-4000-8000-{i:012}")).collect();
    // Random faults at every service, plus an ingestion outage at the start (longer than the
    // driver's retries), so the first notifications get a 503 and Graph-style redelivery has to save
    // them; a tight budget adds more 503s when faults come in a row.
    let faults = Faults {
        seed: 20261128,
        ingestion_outage: 40,
        graph_429: 0.08,
        graph_retry_after: 0,
        graph_5xx: 0.08,
        token_5xx: 0.05,
        ingestion_5xx: 0.12,
        ingestion_429: 0.05,
        drop: 0.04,
        ..Faults::default()
    };
    let env = [("CALLRECORDS_DEADLINE_MS", "400"), ("CALLRECORDS_RETRY_BASE_MS", "20")];
    let r = rig_with(faults, &env, |s| {
        for id in &ids {
            let mut rec = template.clone();
            rec["id"] = json!(id);
            s.add_call(&rec.to_string(), vec![]).unwrap();
        }
    });
    let (mut posts, mut redeliveries, mut given_up) = (0, 0, 0);
    // Graph batches up to 3 notifications per POST and redelivers every non-2xx answer.
    for chunk in ids.chunks(3) {
        let body = delivery(chunk.iter().map(|id| item(id, CONTOSO, DEMO_CLIENT_STATE)).collect());
        let mut attempts = 0;
        loop {
            posts += 1;
            attempts += 1;
            let served = r.post("/notify", &body);
            if (200..300).contains(&served.status) {
                break;
            }
            assert_eq!(served.status, 503, "only 503 asks Graph to redeliver: {}", served.log);
            redeliveries += 1;
            // Graph keeps redelivering for 4 hours; a bound keeps a broken build from looping.
            if attempts == 200 {
                given_up += 1;
                break;
            }
        }
    }
    let landed = r.calls_landed();
    let lost: Vec<&String> = ids.iter().filter(|id| !landed.contains(*id)).collect();
    let c = r.standins.counters();
    println!(
        "fault injection: {CALLS} notifications in {posts} POSTs ({redeliveries} redeliveries, {given_up} given up); \
         {} faults injected; {} calls landed, {} lost",
        c.faults,
        landed.len(),
        lost.len()
    );
    assert!(c.faults > 100, "the plan injected too few faults: {c:?}");
    assert_eq!(given_up, 0);
    assert!(redeliveries > 0, "no notification needed a redelivery: the test did not test it");
    assert!(lost.is_empty(), "lost calls: {lost:?}");
    // Every call's legs and streams landed too (each sample call has the same shape).
    let per_call = expected_rows(P2P);
    for (table, n) in &per_call {
        let distinct: std::collections::BTreeSet<String> = r.standins.accepted()[table]
            .iter()
            .filter(|row| row["CallId"].as_str().is_some_and(|id| id.starts_with("f0000000")))
            .map(Value::to_string)
            .collect();
        assert_eq!(distinct.len(), n * CALLS, "{table}");
    }
}

#[test]
fn readme_documents_every_setting_the_service_reads() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    for (name, _) in callrecords::config::VARIABLES {
        assert!(readme.contains(&format!("| `{name}` |")), "README's settings table lacks {name}");
    }
}

#[test]
fn forward_mode_posts_each_table_as_a_json_array_to_its_path() {
    let r = rig_with(Faults::default(), &[("CALLRECORDS_SINK", "forward")], |_| {});
    let served = r.post("/notify", &delivery(vec![item(GROUP, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    // The forward stand-in files rows under the table named by the URL path.
    assert_eq!(r.counts(), expected_rows(GROUP));
    // No Azure Monitor token is needed to forward: one Graph token only.
    assert_eq!(r.standins.counters().tokens, 1);
}

#[test]
fn data_collector_mode_is_signed_so_the_service_accepts_it() {
    // The stand-in recomputes the SharedKey signature from the request and refuses a wrong one.
    let r = rig_with(Faults::default(), &[("CALLRECORDS_SINK", "data-collector")], |_| {});
    let served = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{} {:?}", served.log, r.standins.last_refusal());
    // The API refuses a TimeGenerated field, which every typed row has: only the 2020 table goes.
    assert_eq!(r.counts(), BTreeMap::from([("TEAMSGraphCallRecords_CL".to_string(), 1)]));
    assert_eq!(r.standins.counters().refused, 0);
}
