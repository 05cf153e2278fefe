//! The sans-IO driver (`pipeline::Run`) under a host whose services answer what the input says.
//!
//! The input picks the settings and the job (webhook, accept, drain, backfill, sweep, keep,
//! renew), then, for each request the driver sends, when and in which order it is answered and
//! how: as the service would (the default, and what an exhausted input gives, so every run can
//! end), with no answer, with an error status, `Retry-After` and error body, with a hostile
//! `@odata.nextLink`, with arbitrary bytes, or with a well-formed but wrong answer (odd tokens and
//! expiries, another call's record, bad ids, odd subscriptions).
//!
//! Invariants: the job ends (`Done`) within a bounded number of steps; every request goes to the
//! login, Graph or ingestion origin of the settings, the client secret only to login, and each
//! bearer token only to the service it was issued for; ingestion bodies are JSON arrays of row
//! objects; request ids are never reused and the driver agrees with the host on what is in flight;
//! an answer to a request not in flight is refused; the report's counts are what the host saw
//! (rows and ingestion requests accepted, Graph and token requests sent, in flight at once); an
//! `ok` report answers 2xx, any other names its error; a drain has one outcome per call.

#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::OnceLock;

use callrecords::config::Config;
use callrecords::entra;
use callrecords::http::{IncomingRequest, OutgoingRequest, header};
use callrecords::pipeline::queue::QueuedCall;
use callrecords::pipeline::{Action, Job, Report, Run};
use callrecords_fuzz::contains;
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const TENANT: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
const OTHER_TENANT: &str = "7f3e9c4d-0b6a-4e51-8d2c-5a1b9e8f6c22";
const CLIENT_ID: &str = "5e3ce6c0-2b1f-4285-8d4b-75ee78787346";
const SECRET: &str = "fuzz-client-secret-only-for-login";
const STATE: &str = "fuzz-client-state";
const LOGIN: &str = "https://login.microsoftonline.com";
const GRAPH: &str = "https://graph.microsoft.com";
const DCE: &str = "https://dce.westeurope-1.ingest.monitor.azure.com";
const DCR: &str = "dcr-00000000000000000000000000000000";
const NOTIFY: &str = "https://callrecords.example.com/api/notifications";
const SUBSCRIPTION: &str = "9c4e1f22-5b3d-4a8e-b7c6-0d1e2f3a4b5c";
const CALLS: [&str; 3] = [
    "5eed0001-4d2c-4b7a-9e1f-000000000001",
    "5eed0002-4d2c-4b7a-9e1f-000000000002",
    "5eed0003-4d2c-4b7a-9e1f-000000000003",
];
/// 2026-11-28T00:00:00Z in Unix ms.
const NOW: u64 = 1_795_824_000_000;
/// Far more `next` calls than any run of a few calls needs: past it the driver is stuck.
const MAX_STEPS: usize = 200_000;

const FIXTURES: [&str; 4] = [
    include_str!("../../examples/graph/callrecords/metadata-none.json"),
    include_str!("../../examples/graph/callrecords/peer-to-peer.json"),
    include_str!("../../examples/graph/callrecords/pstn.json"),
    include_str!("../../examples/graph/callrecords/service-endpoint-oddities.json"),
];
const PARTICIPANTS: &str = include_str!("../../examples/graph/callrecords/group-call.participants-1.json");

/// The fixtures minified, each with its own id (replaced by the id asked for).
fn fixtures() -> &'static [(String, String)] {
    static F: OnceLock<Vec<(String, String)>> = OnceLock::new();
    F.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|f| {
                let v: Value = serde_json::from_str(f).unwrap();
                (v.to_string(), v["id"].as_str().unwrap().to_string())
            })
            .collect()
    })
}

fn participants_page() -> &'static str {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| serde_json::from_str::<Value>(PARTICIPANTS).unwrap().to_string())
}

fuzz_target!(|data: &[u8]| {
    let mut host = Host::new(data);
    let config = host.config();
    let job = host.job();
    let drained = match &job {
        Job::Drain(calls) => Some(calls.iter().map(|c| c.call_id.clone()).collect::<Vec<_>>()),
        _ => None,
    };
    let Ok(mut run) = Run::start(config.clone(), job, NOW) else { return };
    let report = host.drive(&mut run, &config);
    host.check_report(&mut run, &report, &config, drained.as_deref());
});

/// What a request is, as the host reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Token(&'static str),
    Record(String),
    Participants(String),
    /// A followed `@odata.nextLink` (sessions, participants_v2, List, subscriptions).
    Page,
    List,
    SubscriptionList,
    SubscriptionCreate,
    SubscriptionRenew,
    SubscriptionReauthorize,
    SubscriptionDelete,
    Ingest,
}

struct Flight {
    id: u64,
    kind: Kind,
    url: String,
    /// Rows in an ingestion body.
    rows: u64,
}

struct Host<'a> {
    u: Unstructured<'a>,
    now: u64,
    fixture: usize,
    in_flight: Vec<Flight>,
    ids: HashSet<u64>,
    /// Each token the host issued, with the scopes it was issued for.
    tokens: BTreeMap<String, BTreeSet<&'static str>>,
    issued: u32,
    rows_accepted: u64,
    ingest_accepted: u32,
    graph_sent: u32,
    token_sent: u32,
    most_in_flight: usize,
}

impl<'a> Host<'a> {
    fn new(data: &'a [u8]) -> Self {
        Host {
            u: Unstructured::new(data),
            now: NOW,
            fixture: 0,
            in_flight: vec![],
            ids: HashSet::new(),
            tokens: BTreeMap::new(),
            issued: 0,
            rows_accepted: 0,
            ingest_accepted: 0,
            graph_sent: 0,
            token_sent: 0,
            most_in_flight: 0,
        }
    }

    /// The next input byte; 0 (the service's own answer, at once) once the input is used up.
    fn byte(&mut self) -> u8 {
        self.u.arbitrary().unwrap_or(0)
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        let i = self.byte() as usize % from.len();
        from[i].clone()
    }

    fn text(&mut self) -> String {
        let n = self.byte() as usize;
        let bytes = self.u.bytes(n.min(self.u.len())).unwrap_or_default();
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn config(&mut self) -> Config {
        let b = self.byte();
        self.fixture = (self.byte() as usize) % FIXTURES.len();
        let mut env: Vec<(&str, &str)> = vec![
            ("CALLRECORDS_TENANT_ID", TENANT),
            ("CALLRECORDS_CLIENT_ID", CLIENT_ID),
            ("CALLRECORDS_CLIENT_SECRET", SECRET),
            ("CALLRECORDS_CLIENT_STATE", STATE),
            ("CALLRECORDS_DCE_URL", DCE),
            ("CALLRECORDS_DCR_ID", DCR),
            ("CALLRECORDS_GZIP", "false"),
            ("CALLRECORDS_NOTIFICATION_URL", NOTIFY),
        ];
        if b & 1 != 0 {
            env.push(("CALLRECORDS_SEED_TABLE", "true"));
        }
        if b & 2 != 0 {
            env.push(("CALLRECORDS_ALLOWED_TENANTS", "*"));
        }
        env.push(("CALLRECORDS_MAX_IN_FLIGHT", ["64", "1", "2", "4"][usize::from(b >> 2) & 3]));
        env.push(("CALLRECORDS_DEADLINE_MS", ["2500", "100", "60000", "1000"][usize::from(b >> 4) & 3]));
        env.push(("CALLRECORDS_RETRY_BASE_MS", ["200", "0", "1", "5000"][usize::from(b >> 6) & 3]));
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Config::from_env(&env).expect("the fuzz settings are valid")
    }

    fn job(&mut self) -> Job {
        let b = self.byte();
        let calls = 1 + usize::from(b >> 4) % 3;
        match b % 8 {
            1 => Job::Drain(
                (0..calls)
                    .map(|i| {
                        let flags = self.byte();
                        let done = ["TeamsCall_CL", "TeamsCallLeg_CL", "TeamsCallStream_CL", "TeamsCallParticipant_CL"];
                        QueuedCall {
                            call_id: CALLS[i].into(),
                            tenant_id: TENANT.into(),
                            received_ms: NOW - u64::from(flags) * 60_000,
                            attempts: u32::from(flags % 14),
                            done_tables: done
                                .iter()
                                .enumerate()
                                .filter(|(k, _)| flags & (16 << k) != 0)
                                .map(|(_, t)| t.to_string())
                                .collect(),
                        }
                    })
                    .collect(),
            ),
            2 => Job::Backfill {
                since: "2026-11-27T00:00:00Z".into(),
                until: "2026-11-27T02:00:00Z".into(),
                window_hours: 1,
                skip: if b & 8 != 0 { vec![CALLS[0].into()] } else { vec![] },
            },
            3 => Job::Keep { margin_minutes: 60 },
            4 => Job::Sweep { since: "2026-11-27T20:00:00Z".into(), until: String::new() },
            5 => Job::Renew { margin_minutes: 60 },
            6 => Job::Accept(self.delivery(calls)),
            _ => Job::Webhook(self.delivery(calls)),
        }
    }

    /// A notification POST for `calls` calls, with lifecycle events as the input says.
    fn delivery(&mut self, calls: usize) -> IncomingRequest {
        let flags = self.byte();
        let mut value: Vec<Value> = (0..calls)
            .map(|i| {
                let tenant = if flags & (1 << i) != 0 { OTHER_TENANT } else { TENANT };
                json!({
                    "subscriptionId": SUBSCRIPTION,
                    "changeType": "updated",
                    "resource": format!("communications/callRecords/{}", CALLS[i]),
                    "resourceData": {"@odata.type": "#microsoft.graph.callRecord", "id": CALLS[i]},
                    "clientState": STATE,
                    "tenantId": tenant,
                })
            })
            .collect();
        for (bit, event) in
            [(8, "missed"), (16, "reauthorizationRequired"), (32, "subscriptionRemoved"), (64, "somethingNew")]
        {
            if flags & bit != 0 {
                value.push(json!({"subscriptionId": SUBSCRIPTION, "clientState": STATE, "tenantId": TENANT, "lifecycleEvent": event}));
            }
        }
        if flags & 128 != 0 {
            value.push(value[0].clone());
        }
        IncomingRequest {
            method: "POST".into(),
            path_and_query: "/api/notifications".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: json!({ "value": value }).to_string().into_bytes(),
        }
    }

    /// The host's loop, to `Done`.
    fn drive(&mut self, run: &mut Run, config: &Config) -> Report {
        for _ in 0..MAX_STEPS {
            match run.next(self.now) {
                Action::Send { id, request, .. } => {
                    self.send(id, &request, config);
                    assert_eq!(
                        run.in_flight(),
                        self.in_flight.len(),
                        "the driver and the host agree on what is in flight"
                    );
                }
                Action::Wait(ms) => self.wait(run, ms),
                Action::Progress(p) => {
                    if let Some(t) = &p.completed_until {
                        assert!(callrecords::values::parse_timestamp(t).is_some(), "checkpoint {t:?}");
                    }
                }
                Action::Done(report) => return *report,
            }
        }
        panic!("the job did not end within {MAX_STEPS} steps");
    }

    fn send(&mut self, id: u64, r: &OutgoingRequest, config: &Config) {
        assert!(self.ids.insert(id), "request id {id} used twice");
        let kind = classify(r);
        let bearer = header(&r.headers, "authorization");
        let mut rows = 0;
        match &kind {
            Kind::Token(_) => {
                assert!(bearer.is_none(), "a token request carries a bearer token");
                self.token_sent += 1;
                self.graph_sent += 1;
            }
            Kind::Ingest => {
                self.check_bearer(bearer, "monitor", r);
                let body: Value = serde_json::from_slice(&r.body).expect("an ingestion body is JSON");
                let body = body.as_array().expect("an ingestion body is an array of rows");
                assert!(!body.is_empty() && body.iter().all(Value::is_object), "rows are objects");
                rows = body.len() as u64;
            }
            _ => {
                self.check_bearer(bearer, "graph", r);
                self.graph_sent += 1;
            }
        }
        if !matches!(kind, Kind::Token(_)) {
            assert!(!contains(&r.body, SECRET) && !r.url.contains(SECRET), "the client secret leaves login");
        }
        self.in_flight.push(Flight { id, kind, url: r.url.clone(), rows });
        self.most_in_flight = self.most_in_flight.max(self.in_flight.len());
        assert!(self.in_flight.len() <= config.max_in_flight as usize, "more in flight than CALLRECORDS_MAX_IN_FLIGHT");
    }

    fn check_bearer(&self, bearer: Option<&str>, scope: &str, r: &OutgoingRequest) {
        let token =
            bearer.and_then(|b| b.strip_prefix("Bearer ")).unwrap_or_else(|| panic!("no bearer token: {}", r.url));
        let issued = self.tokens.get(token).is_some_and(|s| s.contains(scope));
        assert!(issued, "{} carries a token not issued for {scope}", r.url);
    }

    /// Answer one request in flight (which, and when, as the input says) or let `ms` pass.
    fn wait(&mut self, run: &mut Run, ms: u32) {
        assert_eq!(run.in_flight(), self.in_flight.len(), "the driver and the host agree on what is in flight");
        if self.in_flight.is_empty() || self.byte() == 255 {
            self.now += u64::from(ms);
            return;
        }
        let i = self.byte() as usize % self.in_flight.len();
        self.now += u64::from(self.byte()) * u64::from(ms) / 255;
        let f = self.in_flight.remove(i);
        self.answer(run, f);
    }

    fn answer(&mut self, run: &mut Run, f: Flight) {
        let mode = self.byte() % 8;
        if mode == 1 {
            run.transport_error(f.id, "connection reset (fuzz)", self.now).expect("a request in flight is answered");
            return;
        }
        let (status, headers, body) = match mode {
            2 => self.error_answer(),
            3 => {
                let (status, headers, body) = self.service_answer(&f);
                (status, headers, self.with_link(&f, body))
            }
            4 => (self.pick(&[200, 201, 202, 204]), vec![], self.text().into_bytes()),
            5 => self.wrong_answer(&f),
            6 => (self.pick(&[200, 201, 202, 204, 206, 299]), vec![], vec![]),
            _ => self.service_answer(&f),
        };
        if let Kind::Token(scope) = f.kind
            && let Ok(t) = entra::parse_token_response(status, &body)
        {
            self.tokens.entry(t.token).or_default().insert(scope);
        }
        run.respond(f.id, status, &headers, &body, self.now).expect("a request in flight is answered");
        if f.kind == Kind::Ingest && (200..300).contains(&status) {
            self.rows_accepted += f.rows;
            self.ingest_accepted += 1;
        }
        if mode == 7 {
            assert!(run.respond(f.id, 200, &[], b"{}", self.now).is_err(), "a second answer is refused");
            assert!(run.transport_error(f.id, "late", self.now).is_err(), "a late error is refused");
        }
    }

    /// What the service answers.
    fn service_answer(&mut self, f: &Flight) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let body = match &f.kind {
            Kind::Token(scope) => {
                self.issued += 1;
                let token = format!("{}{}", &scope[..1], self.issued);
                json!({"token_type": "Bearer", "access_token": token, "expires_in": 3599}).to_string()
            }
            Kind::Record(id) => {
                let (record, own) = &fixtures()[self.fixture];
                record.replace(own.as_str(), id)
            }
            Kind::Participants(_) if self.byte() & 1 != 0 => participants_page().to_string(),
            Kind::Participants(_) | Kind::Page => r#"{"value":[]}"#.into(),
            Kind::List => json!({"value": [{"id": CALLS[0], "version": 1}, {"id": CALLS[1]}]}).to_string(),
            Kind::SubscriptionList if self.byte() & 1 != 0 => r#"{"value":[]}"#.into(),
            Kind::SubscriptionList => json!({"value": [subscription("2026-11-28T00:30:00Z")]}).to_string(),
            Kind::SubscriptionCreate | Kind::SubscriptionRenew => subscription("2026-12-01T00:00:00Z").to_string(),
            Kind::SubscriptionReauthorize => String::new(),
            Kind::SubscriptionDelete | Kind::Ingest => return (204, vec![], vec![]),
        };
        let status = if f.kind == Kind::SubscriptionCreate { 201 } else { 200 };
        (status, vec![], body.into_bytes())
    }

    fn error_answer(&mut self) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let status = match self.byte() {
            b @ 0..=239 => [400, 401, 403, 404, 408, 409, 413, 429, 500, 502, 503, 504, 301, 100][usize::from(b) % 14],
            _ => u16::from_le_bytes([self.byte(), self.byte()]),
        };
        let retry_after = [
            None,
            Some("0"),
            Some("1"),
            Some("7"),
            Some("86400"),
            Some("4294967296"),
            Some("18446744073709551616"),
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some("Fri, 01 Jan 2100 00:00:00 GMT"),
            Some(" 3 "),
            Some("-1"),
            Some("soon"),
        ];
        let headers = match self.pick(&retry_after) {
            Some(v) => vec![("Retry-After".to_string(), v.to_string())],
            None => vec![],
        };
        let body = match self.byte() % 5 {
            0 => json!({"error": {"code": "TooManyRequests", "message": "Too many requests"}}).to_string(),
            1 => json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}).to_string(),
            2 => json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}).to_string(),
            3 => String::new(),
            _ => self.text(),
        };
        (status, headers, body.into_bytes())
    }

    /// The service's answer with an `@odata.nextLink` (or `sessions@odata.nextLink`) the input picks.
    fn with_link(&mut self, f: &Flight, body: Vec<u8>) -> Vec<u8> {
        let link = match self.byte() % 14 {
            0 => format!("{GRAPH}/v1.0/communications/callRecords/{}/sessions?$skiptoken=2", CALLS[0]),
            1 => "https://evil.example/v1.0/communications/callRecords".into(),
            2 => format!("{GRAPH}.evil.example/v1.0/x"),
            3 => "https://graph.microsoft.com@evil.example/v1.0/x".into(),
            4 => "http://graph.microsoft.com/v1.0/x".into(),
            5 => format!("{GRAPH}/v1.0/x y"),
            6 => format!("{GRAPH}/v1.0/x\r\nHost: evil.example"),
            7 => format!("{LOGIN}/{TENANT}/oauth2/v2.0/token"),
            8 => format!("{DCE}/dataCollectionRules/{DCR}/streams/Custom-TeamsCall_CL?api-version=2023-01-01"),
            9 => GRAPH.into(),
            10 => String::new(),
            11 => self.text(),
            12 => format!("{GRAPH}/{}", self.text()),
            _ => f.url.clone(),
        };
        let key = if self.byte() & 1 == 0 { "@odata.nextLink" } else { "sessions@odata.nextLink" };
        let mut v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({"value": []}));
        if !v.is_object() {
            v = json!({"value": []});
        }
        v.as_object_mut().expect("an object").insert(key.into(), Value::String(link));
        v.to_string().into_bytes()
    }

    /// A well-formed answer that is wrong for the request.
    fn wrong_answer(&mut self, f: &Flight) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let text = self.text();
        let odd_ids = [json!(CALLS[1]), json!(""), json!("a/../b"), json!("x y"), json!(7), json!(null), json!(text)];
        let body = match &f.kind {
            Kind::Token(_) => {
                let tokens = [
                    json!("g1"),
                    json!("m1"),
                    json!("tok en"),
                    json!(""),
                    json!("x".repeat(5000)),
                    json!(42),
                    json!(null),
                    json!(text),
                ];
                let expiries = [
                    json!(3599),
                    json!(0),
                    json!(1),
                    json!(-1),
                    json!("3599"),
                    json!("soon"),
                    json!(4_294_967_296u64),
                    json!(1e300),
                    json!(null),
                ];
                json!({"token_type": "Bearer", "access_token": self.pick(&tokens), "expires_in": self.pick(&expiries)})
            }
            Kind::Record(id) => {
                let (record, own) = &fixtures()[self.fixture];
                let mut v: Value = serde_json::from_str(&record.replace(own.as_str(), id)).unwrap();
                v["id"] = self.pick(&odd_ids);
                v["version"] = self.pick(&[json!(1), json!("7"), json!(-1), json!(1e20), json!(null), json!("x")]);
                if self.byte() & 1 != 0 {
                    v["sessions"] = self.pick(&[json!(null), json!([]), json!([1]), json!({}), json!("x")]);
                }
                v
            }
            Kind::List => {
                let n = self.byte() % 6;
                let value: Vec<Value> = (0..n).map(|_| json!({"id": self.pick(&odd_ids), "version": self.pick(&[json!(1), json!("2"), json!(null)])})).collect();
                json!({"value": value})
            }
            Kind::SubscriptionList | Kind::SubscriptionCreate | Kind::SubscriptionRenew => {
                let s = json!({
                    "id": self.pick(&[json!(SUBSCRIPTION), json!(""), json!("x/y"), json!(3)]),
                    "resource": self.pick(&["/communications/callRecords", "communications/callRecords?$filter=x", "/me/events", ""]),
                    "changeType": "updated",
                    "notificationUrl": self.pick(&[NOTIFY, "https://elsewhere.example/hook", ""]),
                    "expirationDateTime": self.pick(&["2026-11-28T00:30:00Z", "2126-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "garbage", ""]),
                });
                if f.kind == Kind::SubscriptionList { json!({"value": [s.clone(), s]}) } else { s }
            }
            _ => {
                json!({"value": self.pick(&[json!([]), json!([1, 2]), json!("x"), json!(null), json!([{"id": CALLS[2]}])])})
            }
        };
        (200, vec![], body.to_string().into_bytes())
    }

    fn check_report(&mut self, run: &mut Run, report: &Report, config: &Config, drained: Option<&[String]>) {
        let status = report.response.status;
        if report.ok {
            assert!((200..300).contains(&status), "an ok job answered {status}");
        } else {
            assert!(status >= 400, "a failed job answered {status}");
            assert!(report.error.is_some(), "a failed job says why");
        }
        assert_eq!(report.total_rows(), self.rows_accepted, "rows counted = rows the sink accepted");
        assert_eq!(report.ingestion_requests, self.ingest_accepted, "ingestion requests accepted");
        assert_eq!(report.graph_requests, self.graph_sent, "Graph and login requests sent");
        assert_eq!(report.token_requests, self.token_sent, "token requests sent");
        assert_eq!(report.calls_done as usize, report.calls.len());
        assert_eq!(report.failed_count as usize, report.failed.len());
        assert!(report.max_in_flight as usize <= config.max_in_flight as usize);
        assert_eq!(report.max_in_flight as usize, self.most_in_flight, "most in flight at once");
        assert_eq!(report.abandoned as usize, self.in_flight.len(), "requests left in flight are abandoned");
        for f in &self.in_flight {
            assert!(run.respond(f.id, 200, &[], b"{}", self.now).is_err(), "an answer after the end is refused");
        }
        // A finished job sends nothing more. (A drain may still hand over a progress it made in the
        // step that finished it; its calls are in the report's outcomes already.)
        let mut again = run.next(self.now);
        if let Action::Progress(p) = &again {
            assert!(p.shipped.iter().all(|id| report.calls.iter().any(|c| &c.id == id && c.shipped)));
            again = run.next(self.now);
        }
        assert!(matches!(again, Action::Done(_)), "a finished job stays done: {again:?}");
        if let Some(calls) = drained {
            let got: Vec<String> = report.outcomes.iter().map(|o| outcome_call(o).to_string()).collect();
            let mut got_sorted = got.clone();
            got_sorted.sort();
            let mut want = calls.to_vec();
            want.sort();
            assert_eq!(got_sorted, want, "one outcome per queued call");
        }
        if header(&report.response.headers, "content-type") == Some("application/json") {
            serde_json::from_slice::<Value>(&report.response.body).expect("the report is JSON");
        }
    }
}

fn outcome_call(o: &callrecords::pipeline::queue::Outcome) -> &str {
    use callrecords::pipeline::queue::Outcome::*;
    match o {
        Shipped { call_id, .. } | Retry { call_id, .. } | Dead { call_id, .. } => call_id,
    }
}

fn subscription(expiration: &str) -> Value {
    json!({
        "id": SUBSCRIPTION,
        "resource": "/communications/callRecords",
        "changeType": "updated",
        "notificationUrl": NOTIFY,
        "expirationDateTime": expiration,
    })
}

/// Which service and request `r` is; a request to any other origin fails the run.
fn classify(r: &OutgoingRequest) -> Kind {
    let url = r.url.as_str();
    let under = |base: &str| url.strip_prefix(base).filter(|rest| rest.starts_with('/'));
    if under(LOGIN).is_some() {
        assert_eq!(r.method, "POST");
        let body = String::from_utf8_lossy(&r.body);
        return if body.contains("graph.microsoft.com") {
            Kind::Token("graph")
        } else if body.contains("monitor.azure.com") {
            Kind::Token("monitor")
        } else {
            panic!("a token request for another scope: {body}")
        };
    }
    if under(DCE).is_some() {
        assert_eq!(r.method, "POST");
        return Kind::Ingest;
    }
    let Some(rest) = under(GRAPH) else {
        panic!("a request outside the configured services: {} {}", r.method, r.url);
    };
    // Any path of Graph's origin may be a followed link; the driver's own requests are under v1.0.
    let Some(rest) = rest.strip_prefix("/v1.0/") else { return Kind::Page };
    if rest.starts_with("subscriptions") {
        return match r.method.as_str() {
            "GET" => Kind::SubscriptionList,
            "POST" if rest.ends_with("/reauthorize") => Kind::SubscriptionReauthorize,
            "POST" => Kind::SubscriptionCreate,
            "PATCH" => Kind::SubscriptionRenew,
            "DELETE" => Kind::SubscriptionDelete,
            m => panic!("{m} {url}"),
        };
    }
    assert_eq!(r.method, "GET", "{url}");
    if let Some(call) = rest.strip_prefix("communications/callRecords/") {
        if let Some(id) = call.strip_suffix("?$expand=sessions($expand=segments)") {
            return Kind::Record(id.into());
        }
        if let Some(id) = call.strip_suffix("/participants_v2") {
            return Kind::Participants(id.into());
        }
        return Kind::Page;
    }
    if rest.starts_with("communications/callRecords?$filter") { Kind::List } else { Kind::Page }
}
