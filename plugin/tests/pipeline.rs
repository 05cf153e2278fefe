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

/// Graph's notifications carry the tenant's GUID, never its domain name: a domain in the allowed
/// list would refuse every notification while Graph still gets its 202, so data would be lost in
/// silence. The token endpoint does take a domain, so TENANT_ID may be one when the allowed list
/// says which GUIDs to accept.
#[test]
fn a_tenant_named_by_domain_cannot_be_the_allowed_list() {
    let err = Config::from_env(&env(&[("CALLRECORDS_TENANT_ID", "contoso.onmicrosoft.com")])).unwrap_err().to_string();
    assert!(err.contains("CALLRECORDS_ALLOWED_TENANTS") && err.contains("GUID"), "{err}");
    let err =
        Config::from_env(&env(&[("CALLRECORDS_ALLOWED_TENANTS", "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11,fabrikam.com")]))
            .unwrap_err()
            .to_string();
    assert!(err.contains("CALLRECORDS_ALLOWED_TENANTS") && err.contains("fabrikam.com"), "{err}");
    let c = Config::from_env(&env(&[
        ("CALLRECORDS_TENANT_ID", "contoso.onmicrosoft.com"),
        ("CALLRECORDS_ALLOWED_TENANTS", "2A5CB1A8-64A3-4FBE-9B1F-7C3C2F1B0E11"),
    ]))
    .unwrap();
    assert_eq!(c.webhook.allowed_tenants, ["2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11"]);
    assert!(
        Config::from_env(&env(&[("CALLRECORDS_TENANT_ID", "contoso.com"), ("CALLRECORDS_ALLOWED_TENANTS", "*")]))
            .is_ok()
    );
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

/// Graph's subscriptions as a scripted host keeps them: create (expiry at most 4230 minutes
/// ahead), list (expired ones are gone), renew; `lose_next_create_answer` makes the next create
/// succeed but its answer never arrive.
#[derive(Default)]
struct Subscriptions {
    subs: std::collections::BTreeMap<String, (String, u64)>,
    creates: u32,
    renews: u32,
    lose_next_create_answer: bool,
}

fn iso(ms: u64) -> String {
    callrecords::values::format_timestamp(callrecords::values::Instant { secs: (ms / 1000) as i64, ticks: 0 })
}

fn unix_ms(ts: &str) -> u64 {
    callrecords::values::parse_timestamp(ts).map(|i| i.secs as u64 * 1000).expect("an ISO 8601 time")
}

impl Subscriptions {
    /// The answer, or `None` for no answer at all.
    fn answer(&mut self, r: &callrecords::http::OutgoingRequest, now: u64) -> Option<(u16, String)> {
        let graph = "https://graph.microsoft.com/v1.0/subscriptions";
        if r.url.contains("/oauth2/v2.0/token") {
            return Some((200, r#"{"token_type":"Bearer","access_token":"t","expires_in":3599}"#.into()));
        }
        self.subs.retain(|_, (_, exp)| *exp > now);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let show = |id: &str, url: &str, exp: u64| {
            serde_json::json!({"id": id, "resource": "/communications/callRecords", "changeType": "updated",
                "notificationUrl": url, "expirationDateTime": iso(exp)})
        };
        match (r.method.as_str(), r.url.strip_prefix(graph)) {
            ("GET", Some("")) => {
                let value: Vec<_> = self.subs.iter().map(|(id, (url, exp))| show(id, url, *exp)).collect();
                Some((200, serde_json::json!({ "value": value }).to_string()))
            }
            ("POST", Some("")) => {
                let exp = unix_ms(body["expirationDateTime"].as_str().unwrap());
                assert!(exp <= now + 4230 * 60_000, "an expiry beyond Graph's 4230 minutes");
                self.creates += 1;
                let id = format!("0d9f6a3e-7b1c-4e2a-9f3d-{:012x}", self.creates);
                let url = body["notificationUrl"].as_str().unwrap().to_string();
                self.subs.insert(id.clone(), (url.clone(), exp));
                if std::mem::take(&mut self.lose_next_create_answer) {
                    return None;
                }
                Some((201, show(&id, &url, exp).to_string()))
            }
            ("PATCH", Some(id)) => {
                let id = id.trim_start_matches('/');
                let exp = unix_ms(body["expirationDateTime"].as_str().unwrap());
                match self.subs.get_mut(id) {
                    Some(s) => {
                        s.1 = exp;
                        self.renews += 1;
                        let url = s.0.clone();
                        Some((200, show(id, &url, exp).to_string()))
                    }
                    None => Some((404, r#"{"error":{"code":"ResourceNotFound","message":"gone"}}"#.into())),
                }
            }
            _ => panic!("unexpected {} {}", r.method, r.url),
        }
    }
}

/// Three days of a service running the keep job every 15 minutes on a simulated clock. The
/// subscription never lapses; when Graph removes it, it is created again exactly once; a create
/// whose answer is lost is found by the next run instead of being made twice.
#[test]
fn the_keeper_keeps_one_subscription_alive_for_three_days_and_recreates_a_removed_one_once() {
    const URL: &str = "https://teams-sentinel.example.com/notify";
    let c = Config::from_env(&env(&[("CALLRECORDS_NOTIFICATION_URL", URL)])).unwrap();
    let mut graph = Subscriptions::default();
    let (mut now, every) = (NOW, 15 * 60_000);
    let passes = 3 * 24 * 4;
    let (removed, lost) = (250, 270);
    for pass in 0..passes {
        // Day 2.6: Graph removes it (subscriptionRemoved); day 2.8: again, and the answer to the
        // create that follows is lost.
        if pass == removed {
            graph.subs.clear();
        }
        if pass == lost {
            graph.subs.clear();
            graph.lose_next_create_answer = true;
        }
        let mut run = Run::start(c.clone(), Job::Keep { margin_minutes: 24 * 60 }, now).unwrap();
        let report = loop {
            match run.next(now) {
                Action::Send { id, request, .. } => match graph.answer(&request, now) {
                    Some((status, body)) => run.respond(id, status, &[], body.as_bytes(), now).unwrap(),
                    None => run.transport_error(id, "connection reset", now).unwrap(),
                },
                Action::Wait(ms) => now += u64::from(ms),
                Action::Progress(_) => {}
                Action::Done(report) => break report,
            }
        };
        assert!(graph.subs.len() <= 1, "pass {pass}: {} subscriptions", graph.subs.len());
        assert_eq!(graph.subs.len(), 1, "pass {pass}: no subscription");
        let (url, exp) = graph.subs.values().next().unwrap().clone();
        assert_eq!(url, URL);
        assert!(exp > now + 23 * 3_600_000, "pass {pass}: it expires in {} h", (exp - now) / 3_600_000);
        if pass != lost {
            // The report shows the live subscription with its expiry (what `/metrics` tells).
            let shown: Vec<(u64, &str)> =
                report.subscriptions.iter().map(|s| (unix_ms(&s.expiration), s.notification_url.as_str())).collect();
            assert_eq!(shown, [(exp, URL)], "pass {pass}");
        }
        now += every;
    }
    // The first, the one after the removal, and the one whose answer was lost: never one more.
    assert_eq!(graph.creates, 3, "creates");
    assert!(graph.renews >= 1, "renewed before it expired");
}
