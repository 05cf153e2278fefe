//! The pipeline as a state machine, natively: settings, secrets, backfill windows and Graph's rate
//! limit, with a scripted host (the service tests in host-test cover the full pipeline).

use callrecords::config::Config;
use callrecords::pipeline::{Action, Job, Run};

const SECRET: &str = "very-secret-client-secret";
const STATE: &str = "very-secret-client-state";
const KEY: &str = "c2hhcmVkIGtleSBmb3IgdGVzdHM=";

fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("CALLRECORDS_TENANT_ID", "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11"),
        ("CALLRECORDS_CLIENT_ID", "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"),
        ("CALLRECORDS_CLIENT_SECRET", SECRET),
        ("CALLRECORDS_CLIENT_STATE", STATE),
        ("CALLRECORDS_DCE_URL", "https://dce.westeurope-1.ingest.monitor.azure.com"),
        ("CALLRECORDS_DCR_ID", "dcr-00000000000000000000000000000000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, val) in extra {
        v.retain(|(n, _)| n != k);
        v.push((k.to_string(), val.to_string()));
    }
    v
}

/// 2026-11-28T00:00:00Z in Unix ms.
const NOW: u64 = 1_795_824_000_000;

#[test]
fn settings_summary_and_debug_mask_every_secret() {
    let c = Config::from_env(&env(&[
        ("CALLRECORDS_SINK", "data-collector"),
        ("CALLRECORDS_WORKSPACE_ID", "3f2504e0-4f89-41d3-9a0c-0305e82c3301"),
        ("CALLRECORDS_SHARED_KEY", KEY),
    ]))
    .unwrap();
    let shown = format!("{:?} {:?}", c.summary(), c);
    for secret in [SECRET, STATE, KEY] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(shown.contains(&format!("<secret, {} chars>", SECRET.len())));
}

#[test]
fn missing_or_bad_settings_name_the_variable() {
    let mut e = env(&[]);
    e.retain(|(k, _)| k != "CALLRECORDS_CLIENT_SECRET");
    let err = Config::from_env(&e).unwrap_err().to_string();
    assert!(err.contains("CALLRECORDS_CLIENT_SECRET is not set"), "{err}");
    let err = Config::from_env(&env(&[("CALLRECORDS_SINK", "kafka")])).unwrap_err().to_string();
    assert!(err.contains("CALLRECORDS_SINK"), "{err}");
    let err = Config::from_env(&env(&[("CALLRECORDS_GRAPH_URL", "ftp://graph")])).unwrap_err().to_string();
    assert!(err.contains("CALLRECORDS_GRAPH_URL"), "{err}");
    let err = Config::from_env(&env(&[("CALLRECORDS_CLIENT_STATE", &"x".repeat(129))])).unwrap_err().to_string();
    assert!(err.contains("128"), "{err}");
    assert!(!err.contains(SECRET));
}

#[test]
fn backfill_refuses_windows_graph_no_longer_has() {
    let c = Config::from_env(&env(&[])).unwrap();
    let job =
        Job::Backfill { since: "2026-10-28T00:00:00Z".into(), until: String::new(), window_hours: 24, skip: vec![] };
    let err = Run::start(c.clone(), job, NOW).err().unwrap().to_string();
    assert!(err.contains("30 days"), "{err}");
    let job = Job::Backfill {
        since: "2026-11-27T00:00:00Z".into(),
        until: "2026-11-26T00:00:00Z".into(),
        window_hours: 24,
        skip: vec![],
    };
    assert!(Run::start(c, job, NOW).is_err());
}

/// A scripted host: a token, then List pages answering with many ids, and callRecords that 404
/// (so no ingestion is needed). Counts how Graph requests are spaced in time.
#[test]
fn backfill_keeps_to_40_requests_per_20_seconds_per_resource() {
    let c = Config::from_env(&env(&[])).unwrap();
    let job = Job::Backfill {
        since: "2026-11-27T00:00:00Z".into(),
        until: "2026-11-27T01:00:00Z".into(),
        window_hours: 1,
        skip: vec![],
    };
    let mut run = Run::start(c, job, NOW).unwrap();
    let mut now = NOW;
    let mut list_requests: Vec<u64> = vec![];
    let mut pages = 0;
    let mut progress = vec![];
    loop {
        match run.next(now) {
            Action::Send { id, request, .. } => {
                let (status, body) = if request.url.contains("/oauth2/v2.0/token") {
                    (200, r#"{"access_token":"t","expires_in":3599}"#.to_string())
                } else if request.url.contains("/communications/callRecords?") {
                    list_requests.push(now);
                    pages += 1;
                    // 100 pages of one id each, the next page linked until the last.
                    let next = if pages < 100 {
                        format!(
                            r#","@odata.nextLink":"https://graph.microsoft.com/v1.0/communications/callRecords?$skiptoken={pages}""#
                        )
                    } else {
                        String::new()
                    };
                    (200, format!(r#"{{"value":[{{"id":"call-{pages}"}}]{next}}}"#))
                } else {
                    (404, r#"{"error":{"code":"NotFound","message":"gone"}}"#.to_string())
                };
                now += 5;
                run.respond(id, status, &[], body.as_bytes(), now).unwrap();
            }
            Action::Wait(ms) => now += u64::from(ms),
            Action::Progress(p) => progress.push(p),
            Action::Done(report) => {
                assert_eq!(report.failed.len(), 100, "every listed call was tried");
                break;
            }
        }
    }
    assert_eq!(list_requests.len(), 100);
    // No 20 s window holds more than 40 List requests.
    for (i, t) in list_requests.iter().enumerate() {
        let in_window = list_requests[i..].iter().take_while(|u| **u < t + 20_000).count();
        assert!(in_window <= 40, "{in_window} List requests within 20 s from request {i}");
    }
    // 100 requests at 40 per 20 s take at least 40 s of (simulated) time.
    assert!(list_requests[99] - list_requests[0] >= 40_000);
    let last = progress.last().unwrap();
    assert_eq!(last.completed_until.as_deref(), Some("2026-11-27T01:00:00Z"));
    assert_eq!((last.windows_done, last.windows_total), (1, 1));
}

#[test]
fn a_host_that_never_answers_gets_a_503_not_a_hang() {
    let c = Config::from_env(&env(&[("CALLRECORDS_DEADLINE_MS", "500")])).unwrap();
    let body = br##"{"value":[{"subscriptionId":"s","changeType":"created","resource":"communications/callRecords/abc","resourceData":{"@odata.type":"#microsoft.graph.callRecord","id":"abc"},"clientState":"very-secret-client-state","tenantId":"2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11"}]}"##;
    let req = callrecords::http::IncomingRequest {
        method: "POST".into(),
        path_and_query: "/notify".into(),
        headers: vec![],
        body: body.to_vec(),
    };
    let mut run = Run::start(c, Job::Webhook(req), NOW).unwrap();
    let mut now = NOW;
    let mut steps = 0;
    let report = loop {
        steps += 1;
        assert!(steps < 1000, "the pipeline never finished");
        match run.next(now) {
            Action::Send { id, timeout_ms, .. } => {
                now += u64::from(timeout_ms).min(200);
                run.transport_error(id, "timed out", now).unwrap();
            }
            Action::Wait(ms) => now += u64::from(ms),
            Action::Progress(_) => {}
            Action::Done(r) => break r,
        }
    };
    assert_eq!(report.response.status, 503);
    assert!(now - NOW <= 500, "the work ran past its deadline: {} ms", now - NOW);
    let body = String::from_utf8_lossy(&report.response.body).into_owned();
    assert!(!body.contains(SECRET) && !body.contains(STATE), "{body}");
}
