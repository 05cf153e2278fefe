//! The sans-IO driver under a simulated concurrent host: many requests in flight, each with its own
//! virtual latency, answered in the order they come due (or in any order), on a virtual clock. The
//! host answers as Entra ID, Graph and Logs Ingestion would, counts every request with its send
//! time, and reads back every row it accepted, so that each test checks what reached the services
//! rather than what the driver says about itself.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::OnceLock;

use callrecords::config::Config;
use callrecords::http::{IncomingRequest, OutgoingRequest};
use callrecords::pipeline::{Action, Job, Progress, Report, Run};
use proptest::prelude::*;
use serde_json::{Value, json};

const SECRET: &str = "very-secret-client-secret";
const STATE: &str = "very-secret-client-state";
const TENANT: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
/// A second allowed tenant: a cross-tenant call gives it its own callRecord under the same id,
/// which its Graph serves (to its own token only) with [`OTHER_VERSION`].
const OTHER_TENANT: &str = "7c9e4d21-0b6f-4a3e-8d5c-1f2a3b4c5d6e";
const OTHER_VERSION: i64 = 7;
const LOGIN: &str = "https://login.microsoftonline.com";
const CALL_RECORDS: &str = "https://graph.microsoft.com/v1.0/communications/callRecords";
const DCE: &str = "https://dce.westeurope-1.ingest.monitor.azure.com";
const DCR: &str = "dcr-00000000000000000000000000000000";
const GRAPH_SCOPE_FORM: &str = "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";
const MONITOR_SCOPE_FORM: &str = "scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default";

/// 2026-11-28T00:00:00Z in Unix ms.
const NOW: u64 = 1_795_824_000_000;

// Graph's published throttle for callRecords, stated here rather than read from the driver:
// 40 requests per 20 s per call record, 40 per 20 s for List callRecords, and 1,500 per 20 s per
// app per tenant.
const PER_CALL_RECORD: usize = 40;
const PER_LIST: usize = 40;
const PER_TENANT: usize = 1_500;
const WINDOW_MS: u64 = 20_000;

const PEER_TO_PEER: &str = include_str!("../../examples/graph/callrecords/peer-to-peer.json");
const PARTICIPANTS: &str = include_str!("../../examples/graph/callrecords/group-call.participants-1.json");

fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("CALLRECORDS_TENANT_ID", TENANT),
        ("CALLRECORDS_CLIENT_ID", "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"),
        ("CALLRECORDS_CLIENT_SECRET", SECRET),
        ("CALLRECORDS_CLIENT_STATE", STATE),
        ("CALLRECORDS_DCE_URL", DCE),
        ("CALLRECORDS_DCR_ID", DCR),
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

fn config(extra: &[(&str, &str)]) -> Config {
    Config::from_env(&env(extra)).expect("valid settings")
}

/// A GUID-shaped call id, distinct per `n`.
fn call_id(n: usize) -> String {
    format!("{:08x}-4d2c-4b7a-9e1f-{:012x}", 0x5eed_0000 + n, n * 7919)
}

fn guid(tag: u32, n: u64) -> String {
    format!("{tag:08x}-0000-4000-8000-{n:012x}")
}

/// A webhook POST carrying one `created` notification per id.
fn notifications(ids: &[String]) -> IncomingRequest {
    let items: Vec<(String, &str)> = ids.iter().map(|id| (id.clone(), TENANT)).collect();
    tenant_notifications(&items)
}

/// A webhook POST carrying one `created` notification per (id, tenant).
fn tenant_notifications(items: &[(String, &str)]) -> IncomingRequest {
    let value: Vec<Value> = items
        .iter()
        .map(|(id, tenant)| {
            json!({
                "subscriptionId": "0d9f6a3e-7b1c-4e2a-9f3d-5c8b1a2e4f60",
                "changeType": "created",
                "resource": format!("communications/callRecords/{id}"),
                "resourceData": {"@odata.type": "#microsoft.graph.callRecord", "id": id},
                "clientState": STATE,
                "tenantId": tenant,
            })
        })
        .collect();
    IncomingRequest {
        method: "POST".into(),
        path_and_query: "/notify".into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::to_vec(&json!({ "value": value })).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// The services.

/// One call as Graph holds it: the fixture record (with this id), `session_pages` further pages of
/// sessions (one session each) and `participant_pages` pages of participants_v2 (one each).
#[derive(Debug, Clone)]
struct CallSpec {
    id: String,
    session_pages: u32,
    participant_pages: u32,
}

impl CallSpec {
    fn new(n: usize, session_pages: u32, participant_pages: u32) -> Self {
        CallSpec { id: call_id(n), session_pages, participant_pages: participant_pages.max(1) }
    }
}

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(PEER_TO_PEER).unwrap())
}

/// The first participant of the fixture page, serialised, and its id.
fn participant_fixture() -> &'static (String, String) {
    static F: OnceLock<(String, String)> = OnceLock::new();
    F.get_or_init(|| {
        let p = serde_json::from_str::<Value>(PARTICIPANTS).unwrap()["value"][0].clone();
        (p.to_string(), p["id"].as_str().unwrap().to_string())
    })
}

/// What the fixture's rows must say about a call, counted from the JSON itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    sessions: u64,
    segments: u64,
    streams: u64,
    participants: u64,
    /// Rows in all tables: the call, a leg per segment, a stream row per stream, the organizer and
    /// each participant.
    rows: u64,
}

fn expected(spec: &CallSpec) -> Expected {
    let f = fixture();
    let sessions = f["sessions"].as_array().unwrap();
    let segments_of = |s: &Value| s["segments"].as_array().map_or(0, |a| a.len() as u64);
    let streams_of = |s: &Value| {
        s["segments"].as_array().map_or(0, |segs| {
            segs.iter()
                .flat_map(|g| g["media"].as_array().cloned().unwrap_or_default())
                .map(|m| m["streams"].as_array().map_or(0, |a| a.len() as u64))
                .sum()
        })
    };
    assert!(sessions.iter().all(|s| segments_of(s) > 0), "the fixture's sessions all have segments");
    let extra = u64::from(spec.session_pages);
    let segments = sessions.iter().map(segments_of).sum::<u64>() + extra * segments_of(&sessions[0]);
    let streams = sessions.iter().map(streams_of).sum::<u64>() + extra * streams_of(&sessions[0]);
    let organizer = u64::from(f["organizer_v2"]["identity"]["user"].is_object());
    let participants = u64::from(spec.participant_pages);
    Expected {
        sessions: sessions.len() as u64 + extra,
        segments,
        streams,
        participants,
        rows: 1 + segments + streams + organizer + participants,
    }
}

/// Every Graph, Entra and Logs Ingestion request the driver may make, as the host reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Token { graph: bool },
    Record(String),
    SessionPage(String, u32),
    Participants(String, u32),
    List { window: usize, page: usize },
    Ingest(String),
}

/// Which service a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Service {
    Login,
    Graph,
    Ingestion,
}

impl Kind {
    fn service(&self) -> Service {
        match self {
            Kind::Token { .. } => Service::Login,
            Kind::Ingest(_) => Service::Ingestion,
            _ => Service::Graph,
        }
    }

    fn is_graph(&self) -> bool {
        matches!(self, Kind::Record(_) | Kind::SessionPage(..) | Kind::Participants(..) | Kind::List { .. })
    }

    fn call(&self) -> Option<&str> {
        match self {
            Kind::Record(id) | Kind::SessionPage(id, _) | Kind::Participants(id, _) => Some(id),
            _ => None,
        }
    }
}

/// Graph's callRecords as the host serves them.
#[derive(Debug, Clone, Default)]
struct World {
    calls: BTreeMap<String, CallSpec>,
    /// Backfill: the ids listed in each window, `per_page` a page, and each window's start.
    windows: Vec<Vec<String>>,
    window_starts: Vec<String>,
    per_page: usize,
    /// Calls [`OTHER_TENANT`]'s Graph holds a record of too.
    other_tenant: BTreeSet<String>,
    /// Calls whose participants_v2 answer links to itself (Microsoft's documented example does).
    self_linked_participants: BTreeSet<String>,
}

impl World {
    fn webhook(calls: &[CallSpec]) -> Self {
        World { calls: calls.iter().map(|c| (c.id.clone(), c.clone())).collect(), ..World::default() }
    }

    /// `calls` spread over `windows` one-hour windows from 2026-11-27T00:00:00Z.
    fn backfill(calls: &[CallSpec], windows: usize, per_page: usize) -> (Self, Job) {
        let mut w = World::webhook(calls);
        w.per_page = per_page.max(1);
        w.windows = vec![vec![]; windows];
        for (i, c) in calls.iter().enumerate() {
            w.windows[i % windows].push(c.id.clone());
        }
        w.window_starts = (0..windows).map(|h| format!("2026-11-27T{h:02}:00:00Z")).collect();
        let job = Job::Backfill {
            since: "2026-11-27T00:00:00Z".into(),
            until: format!("2026-11-27T{windows:02}:00:00Z"),
            window_hours: 1,
            skip: vec![],
        };
        (w, job)
    }

    fn classify(&self, r: &OutgoingRequest) -> Kind {
        let url = r.url.as_str();
        if let Some(rest) = url.strip_prefix(LOGIN) {
            assert_eq!(r.method, "POST");
            let tenant = login_tenant(r);
            assert!([TENANT, OTHER_TENANT].contains(&tenant), "a token of a tenant nobody allowed: {rest}");
            let body = String::from_utf8_lossy(&r.body);
            let (graph, monitor) = (body.contains(GRAPH_SCOPE_FORM), body.contains(MONITOR_SCOPE_FORM));
            assert!(graph != monitor, "a token request for one scope: {body}");
            assert!(graph || tenant == TENANT, "a Monitor token of another tenant: {rest}");
            return Kind::Token { graph };
        }
        if let Some(rest) = url.strip_prefix(DCE) {
            assert_eq!(r.method, "POST");
            let rest =
                rest.strip_prefix(&format!("/dataCollectionRules/{DCR}/streams/Custom-")).unwrap_or_else(|| refuse(r));
            let table = rest.strip_suffix("?api-version=2023-01-01").unwrap_or_else(|| refuse(r));
            assert!(bearer(r).starts_with('m'), "an ingestion request without a Monitor token: {url}");
            return Kind::Ingest(table.to_string());
        }
        let rest = url.strip_prefix(CALL_RECORDS).unwrap_or_else(|| refuse(r));
        assert_eq!(r.method, "GET", "{url}");
        assert!(bearer(r).starts_with('g'), "a Graph request without a Graph token: {url}");
        if let Some(query) = rest.strip_prefix('?') {
            let pairs: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            if let Some(token) = pairs.get("$skiptoken") {
                let (w, p) = token.split_once('-').unwrap_or_else(|| refuse(r));
                return Kind::List { window: w.parse().unwrap(), page: p.parse().unwrap() };
            }
            let filter = pairs.get("$filter").unwrap_or_else(|| refuse(r));
            let start = filter.strip_prefix("startDateTime ge ").unwrap_or_else(|| refuse(r));
            let start = start.split(' ').next().unwrap();
            let window = self.window_starts.iter().position(|s| s == start).unwrap_or_else(|| refuse(r));
            return Kind::List { window, page: 0 };
        }
        let rest = rest.strip_prefix('/').unwrap_or_else(|| refuse(r));
        let end = rest.find(['?', '/']).unwrap_or(rest.len());
        let (id, tail) = rest.split_at(end);
        let id = id.to_string();
        assert!(self.calls.contains_key(&id), "a call nobody notified or listed: {id}");
        let tenant = tenant_of(bearer(r));
        assert!(tenant == TENANT || self.other_tenant.contains(&id), "tenant {tenant} holds no call {id}");
        let page = |t: &str| t.strip_prefix("?$skiptoken=").map(|n| n.parse::<u32>().unwrap());
        match tail {
            "?$expand=sessions($expand=segments)" => Kind::Record(id),
            "/participants_v2" => Kind::Participants(id, 1),
            t if t.starts_with("/participants_v2?") => {
                let n = page(&t["/participants_v2".len()..]).unwrap_or_else(|| refuse(r));
                Kind::Participants(id, n)
            }
            t if t.starts_with("/sessions?") => {
                Kind::SessionPage(id, page(&t["/sessions".len()..]).unwrap_or_else(|| refuse(r)))
            }
            _ => refuse(r),
        }
    }

    /// Graph's (or Logs Ingestion's) success answer, to a request with a token of `tenant`.
    fn answer(&self, kind: &Kind, tenant: &str) -> (u16, Vec<u8>) {
        let body = match kind {
            Kind::Token { .. } => unreachable!("the host names each token it issues (Flight::issues)"),
            Kind::Ingest(_) => return (204, vec![]),
            Kind::Record(id) => {
                // The fixture as Graph sent it, with this call's id (serialised once: this is hot).
                let mut r = PEER_TO_PEER.replace(fixture()["id"].as_str().unwrap(), id);
                if self.calls[id].session_pages > 0 {
                    let link = format!("{{\"sessions@odata.nextLink\":\"{CALL_RECORDS}/{id}/sessions?$skiptoken=2\",");
                    r = r.replacen('{', &link, 1);
                }
                if tenant == OTHER_TENANT {
                    // The other tenant's own record of the call.
                    let mut v: Value = serde_json::from_str(&r).unwrap();
                    v["version"] = json!(OTHER_VERSION);
                    r = v.to_string();
                }
                return (200, r.into_bytes());
            }
            Kind::SessionPage(id, n) => {
                let spec = &self.calls[id];
                let mut s = fixture()["sessions"][0].clone();
                s["id"] = json!(guid(0x5e55, u64::from(*n)));
                for (i, g) in s["segments"].as_array_mut().unwrap().iter_mut().enumerate() {
                    g["id"] = json!(guid(0x5e6e, u64::from(*n) * 1000 + i as u64));
                }
                let mut page = json!({"value": [s]});
                if *n <= spec.session_pages {
                    page["@odata.nextLink"] = json!(format!("{CALL_RECORDS}/{id}/sessions?$skiptoken={}", n + 1));
                }
                page
            }
            Kind::Participants(id, n) => {
                let (one, fixture_id) = participant_fixture();
                let p = one.replace(fixture_id.as_str(), &guid(0xface, u64::from(*n)));
                let next = if self.self_linked_participants.contains(id) {
                    format!(",\"@odata.nextLink\":\"{CALL_RECORDS}/{id}/participants_v2\"")
                } else if *n < self.calls[id].participant_pages {
                    format!(",\"@odata.nextLink\":\"{CALL_RECORDS}/{id}/participants_v2?$skiptoken={}\"", n + 1)
                } else {
                    String::new()
                };
                return (200, format!("{{\"value\":[{p}]{next}}}").into_bytes());
            }
            Kind::List { window, page } => {
                let ids = &self.windows[*window];
                let chunk: Vec<Value> =
                    ids.iter().skip(page * self.per_page).take(self.per_page).map(|id| json!({"id": id})).collect();
                let mut body = json!({"value": chunk});
                if (page + 1) * self.per_page < ids.len() {
                    body["@odata.nextLink"] = json!(format!("{CALL_RECORDS}?$skiptoken={window}-{}", page + 1));
                }
                body
            }
        };
        (200, serde_json::to_vec(&body).unwrap())
    }
}

/// The tenant of a token request (its login URL's).
fn login_tenant(r: &OutgoingRequest) -> &str {
    r.url.strip_prefix(LOGIN).and_then(|rest| rest.split('/').nth(1)).unwrap_or_default()
}

/// The tenant whose token this is: the host names [`TENANT`]'s tokens `g1`, `m1`, … and another
/// tenant's `g1@{tenant}`, ….
fn tenant_of(token: &str) -> &str {
    token.split_once('@').map_or(TENANT, |(_, tenant)| tenant)
}

/// The bearer token a request carries ("" for none).
fn bearer(r: &OutgoingRequest) -> &str {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.strip_prefix("Bearer "))
        .unwrap_or_default()
}

/// A request none of the services here would answer.
fn refuse<T>(r: &OutgoingRequest) -> T {
    panic!("no service here answers {} {}", r.method, r.url)
}

// ---------------------------------------------------------------------------------------------
// The host.

/// SplitMix64: a seeded RNG, so that every run of a test is the same run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Which answer comes next on a `Wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// The one due first.
    DueFirst,
    /// Any request in flight, picked at random, at its due time or earlier.
    Random,
}

/// An answer other than the service's success answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Status(u16, Vec<(String, String)>),
    /// No answer: the connection broke.
    Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Unavailable,
    Throttled(u32),
    Transport,
}

impl FaultKind {
    fn answer(self) -> Answer {
        match self {
            FaultKind::Unavailable => Answer::Status(503, vec![]),
            FaultKind::Throttled(s) => Answer::Status(429, vec![("Retry-After".into(), s.to_string())]),
            FaultKind::Transport => Answer::Transport,
        }
    }
}

/// How long a request takes to be answered; `None`: never.
type Latency = Box<dyn FnMut(&Kind, &mut Rng) -> Option<u64>>;
/// The answer to give instead of the service's success answer, if any: given the request, `n`
/// (it is the `n`th request sent to its service, from 0) and the bearer token it carried.
type Fault = Box<dyn FnMut(&Kind, usize, &str) -> Option<Answer>>;

struct Flight {
    id: u64,
    n: usize,
    kind: Kind,
    /// The bearer token the request carried ("" for none).
    token: String,
    /// A token request: the token it gets, `g1`, `g2`, … for Graph and `m1`, … for Monitor
    /// (another tenant's with `@{tenant}` after them: see [`tenant_of`]).
    issues: Option<String>,
    /// When its answer (or, past its timeout, the host's own timeout) is delivered.
    due: Option<u64>,
    timed_out: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Sent {
    id: u64,
    at: u64,
    seq: usize,
    kind: Kind,
    /// The bearer token it carried ("" for none).
    token: String,
}

#[derive(Debug, Clone)]
struct Delivered {
    id: u64,
    at: u64,
    seq: usize,
    kind: Kind,
    /// 0: a transport error.
    status: u16,
}

struct Host {
    world: World,
    now: u64,
    rng: Rng,
    order: Order,
    latency: Latency,
    fault: Fault,
    in_flight: Vec<Flight>,
    seq: usize,
    sent: Vec<Sent>,
    delivered: Vec<Delivered>,
    /// Rows Logs Ingestion accepted, with their table.
    rows: Vec<(String, Value)>,
    progress: Vec<Progress>,
    /// Rows accepted so far, all tables, by CallId.
    accepted_per_call: BTreeMap<String, u64>,
    /// Rows of a call an earlier run shipped (a queued call's retry), by CallId.
    shipped_before: BTreeMap<String, u64>,
    most_in_flight: usize,
    /// What was in flight when the first Graph answer was delivered.
    at_first_graph_answer: Option<Vec<Kind>>,
}

impl Host {
    fn new(world: World, seed: u64, order: Order, lat: (u64, u64)) -> Self {
        Host {
            world,
            now: NOW,
            rng: Rng(seed),
            order,
            latency: Box::new(move |_, rng| Some(rng.between(lat.0, lat.1))),
            fault: Box::new(|_, _, _| None),
            in_flight: vec![],
            seq: 0,
            sent: vec![],
            delivered: vec![],
            rows: vec![],
            progress: vec![],
            accepted_per_call: BTreeMap::new(),
            shipped_before: BTreeMap::new(),
            most_in_flight: 0,
            at_first_graph_answer: None,
        }
    }

    fn with_latency(mut self, l: impl FnMut(&Kind, &mut Rng) -> Option<u64> + 'static) -> Self {
        self.latency = Box::new(l);
        self
    }

    fn with_fault(mut self, f: impl FnMut(&Kind, usize, &str) -> Option<Answer> + 'static) -> Self {
        self.fault = Box::new(f);
        self
    }

    /// The driver's loop, to `Done`.
    fn drive(&mut self, run: &mut Run) -> Report {
        loop {
            if let Some(report) = self.step(run) {
                return report;
            }
        }
    }

    /// One `next` and what the host does about it; the report once done.
    fn step(&mut self, run: &mut Run) -> Option<Report> {
        assert!(self.seq < 2_000_000, "the run never finished");
        match run.next(self.now) {
            Action::Send { id, request, timeout_ms } => self.send(id, &request, timeout_ms),
            Action::Wait(ms) => self.wait(run, ms),
            Action::Progress(p) => {
                // A call is named shipped only once every row of it was accepted.
                for id in &p.shipped {
                    // Every tenant's record of it.
                    let records = 1 + u64::from(self.world.other_tenant.contains(id));
                    let e = records * expected(&self.world.calls[id]).rows;
                    let here = self.accepted_per_call.get(id).copied().unwrap_or(0);
                    let got = here + self.shipped_before.get(id).copied().unwrap_or(0);
                    assert_eq!(got, e, "call {id} named shipped before all its rows were accepted");
                }
                self.progress.push(p)
            }
            Action::Done(report) => return Some(*report),
        }
        None
    }

    fn send(&mut self, id: u64, request: &OutgoingRequest, timeout_ms: u32) {
        assert!(!self.in_flight.iter().any(|f| f.id == id), "id {id} sent twice");
        assert!(!self.sent.iter().any(|s| s.id == id), "id {id} reused");
        let kind = self.world.classify(request);
        let latency = (self.latency)(&kind, &mut self.rng);
        let timeout = u64::from(timeout_ms);
        let timed_out = latency.is_some_and(|l| l > timeout);
        let due = latency.map(|l| self.now + l.min(timeout));
        self.seq += 1;
        let token = bearer(request).to_string();
        self.sent.push(Sent { id, at: self.now, seq: self.seq, kind: kind.clone(), token: token.clone() });
        let n = self.sent.iter().filter(|s| s.kind.service() == kind.service()).count() - 1;
        let issues = match kind {
            Kind::Token { graph } => {
                let nth = self.sent.iter().filter(|s| s.kind == kind).count();
                let tenant = login_tenant(request);
                let of = if tenant == TENANT { String::new() } else { format!("@{tenant}") };
                Some(format!("{}{nth}{of}", if graph { 'g' } else { 'm' }))
            }
            _ => None,
        };
        self.in_flight.push(Flight {
            id,
            n,
            kind,
            token,
            issues,
            due,
            timed_out,
            headers: request.headers.clone(),
            body: request.body.clone(),
        });
        self.most_in_flight = self.most_in_flight.max(self.in_flight.len());
    }

    /// Deliver the answer that comes next within `ms`, else let `ms` pass.
    fn wait(&mut self, run: &mut Run, ms: u32) {
        let limit = self.now + u64::from(ms);
        let answerable: Vec<usize> = (0..self.in_flight.len()).filter(|i| self.in_flight[*i].due.is_some()).collect();
        let pick = match self.order {
            Order::DueFirst => answerable
                .iter()
                .copied()
                .min_by_key(|i| (self.in_flight[*i].due, self.in_flight[*i].id))
                .filter(|i| self.in_flight[*i].due.unwrap() <= limit),
            Order::Random if answerable.is_empty() => None,
            Order::Random => Some(answerable[self.rng.next() as usize % answerable.len()]),
        };
        let Some(index) = pick else {
            self.now = limit;
            return;
        };
        let at = self.in_flight[index].due.unwrap().min(limit).max(self.now);
        self.now = at;
        let kinds: Vec<Kind> = self.in_flight.iter().map(|f| f.kind.clone()).collect();
        let f = self.in_flight.remove(index);
        if f.kind.is_graph() && self.at_first_graph_answer.is_none() {
            self.at_first_graph_answer = Some(kinds);
        }
        assert_eq!(run.in_flight(), self.in_flight.len() + 1, "the driver and the host agree on what is in flight");
        let answer = if f.timed_out { Some(Answer::Transport) } else { (self.fault)(&f.kind, f.n, &f.token) };
        self.seq += 1;
        let status = match answer {
            Some(Answer::Transport) => {
                let reason = if f.timed_out { "timed out" } else { "connection reset" };
                run.transport_error(f.id, reason, self.now).expect("an answer to a request in flight is taken");
                0
            }
            Some(Answer::Status(status, headers)) => {
                let body = json!({"error": {"code": "Simulated", "message": format!("simulated {status}")}});
                run.respond(f.id, status, &headers, &serde_json::to_vec(&body).unwrap(), self.now)
                    .expect("an answer to a request in flight is taken");
                status
            }
            None => {
                let (status, body) = match &f.issues {
                    Some(token) => {
                        let t = json!({"token_type": "Bearer", "access_token": token, "expires_in": 3599});
                        (200, serde_json::to_vec(&t).unwrap())
                    }
                    None => self.world.answer(&f.kind, tenant_of(&f.token)),
                };
                if let Kind::Ingest(table) = &f.kind {
                    self.accept_rows(table, &f);
                }
                run.respond(f.id, status, &[], &body, self.now).expect("an answer to a request in flight is taken");
                status
            }
        };
        self.delivered.push(Delivered { id: f.id, at: self.now, seq: self.seq, kind: f.kind, status });
    }

    fn accept_rows(&mut self, table: &str, f: &Flight) {
        let gzip = f.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-encoding") && v == "gzip");
        let mut json = vec![];
        if gzip {
            flate2::read::GzDecoder::new(&f.body[..]).read_to_end(&mut json).expect("a gzip body");
        } else {
            json = f.body.clone();
        }
        let rows: Vec<Value> = serde_json::from_slice(&json).expect("a JSON array of rows");
        assert!(!rows.is_empty(), "an ingestion request without rows");
        for r in &rows {
            *self.accepted_per_call.entry(r["CallId"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
        self.rows.extend(rows.into_iter().map(|r| (table.to_string(), r)));
    }

    fn answered(&self) -> usize {
        self.delivered.len()
    }

    /// Send times of the requests for which `key` holds.
    fn send_times(&self, key: impl Fn(&Kind) -> bool) -> Vec<u64> {
        self.sent.iter().filter(|s| key(&s.kind)).map(|s| s.at).collect()
    }

    /// TeamsCall_CL rows accepted, by CallId.
    fn call_rows(&self) -> BTreeMap<String, Vec<&Value>> {
        let mut out: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for (table, row) in &self.rows {
            if table == "TeamsCall_CL" {
                out.entry(row["CallId"].as_str().expect("a CallId").to_string()).or_default().push(row);
            }
        }
        out
    }

    /// Rows accepted in all tables, by CallId.
    fn rows_per_call(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (_, row) in &self.rows {
            *out.entry(row["CallId"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
        out
    }

    fn token_requests(&self, graph: bool) -> usize {
        self.sent.iter().filter(|s| s.kind == Kind::Token { graph }).count()
    }
}

/// The most requests sent within any 20-s window `[t, t + 20 s)`.
fn busiest_window(times: &[u64]) -> usize {
    let mut t = times.to_vec();
    t.sort_unstable();
    let mut most = 0;
    let mut end = 0;
    for start in 0..t.len() {
        while end < t.len() && t[end] < t[start] + WINDOW_MS {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

/// Graph's limits, checked on what the host saw sent.
fn assert_graph_limits(host: &Host) {
    let calls: BTreeSet<String> = host.sent.iter().filter_map(|s| s.kind.call().map(str::to_string)).collect();
    for call in calls {
        let n = busiest_window(&host.send_times(|k| k.call() == Some(call.as_str())));
        assert!(n <= PER_CALL_RECORD, "{n} requests for call record {call} within 20 s");
    }
    let n = busiest_window(&host.send_times(|k| matches!(k, Kind::List { .. })));
    assert!(n <= PER_LIST, "{n} List callRecords requests within 20 s");
    let n = busiest_window(&host.send_times(Kind::is_graph));
    assert!(n <= PER_TENANT, "{n} Graph requests for the tenant within 20 s");
}

/// Every call in `landed` shipped exactly once, with the rows its JSON gives; none of `failed` shipped.
fn assert_landed(host: &Host, report: &Report, landed: &[CallSpec], failed: &[&str]) {
    let call_rows = host.call_rows();
    let per_call = host.rows_per_call();
    for spec in landed {
        let rows = call_rows.get(&spec.id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(rows.len(), 1, "call {} shipped {} times in TeamsCall_CL", spec.id, rows.len());
        let row = rows[0];
        let e = expected(spec);
        let got = Expected {
            sessions: row["SessionCount"].as_u64().unwrap(),
            segments: row["SegmentCount"].as_u64().unwrap(),
            streams: row["StreamCount"].as_u64().unwrap(),
            participants: row["ParticipantCount"].as_u64().unwrap(),
            rows: per_call[&spec.id],
        };
        assert_eq!(got, e, "call {}", spec.id);
        assert_eq!(row["CallVersion"], fixture()["version"], "call {}", spec.id);
    }
    for id in failed {
        assert!(!per_call.contains_key(*id), "call {id} failed but rows of it were shipped");
    }
    let known: BTreeSet<&str> = landed.iter().map(|c| c.id.as_str()).collect();
    for id in per_call.keys() {
        assert!(known.contains(id.as_str()), "rows of a call that was not to land: {id}");
    }
    let done: BTreeSet<&str> = report.calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(done, known, "the report's calls are the calls that landed");
    // The report's tally is what the host accepted.
    let mut accepted: BTreeMap<String, u64> = BTreeMap::new();
    for (table, _) in &host.rows {
        *accepted.entry(table.clone()).or_default() += 1;
    }
    assert_eq!(report.rows, accepted, "rows per table, reported vs accepted");
    for c in &report.calls {
        assert_eq!(u64::from(c.rows), per_call[&c.id], "rows of call {}", c.id);
    }
}

fn start(config: Config, job: Job) -> Run {
    Run::start(config, job, NOW).expect("the job starts")
}

fn ids(calls: &[CallSpec]) -> Vec<String> {
    calls.iter().map(|c| c.id.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Any latencies, any answer order.

#[derive(Debug, Clone)]
struct Case {
    calls: Vec<(u32, u32)>,
    latency: (u64, u64),
    order: Order,
    seed: u64,
    /// The `n`th request to a service gets this answer instead.
    faults: Vec<((Service, usize), FaultKind)>,
    max_in_flight: u32,
    gzip: bool,
}

fn pages() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 1u32..=2, 1 => 3u32..=50]
}

fn session_pages() -> impl Strategy<Value = u32> {
    prop_oneof![4 => Just(0u32), 1 => 1u32..=3]
}

fn fault() -> impl Strategy<Value = FaultKind> {
    prop_oneof![Just(FaultKind::Unavailable), (0u32..=2).prop_map(FaultKind::Throttled), Just(FaultKind::Transport)]
}

fn fault_target() -> impl Strategy<Value = (Service, usize)> {
    prop_oneof![
        1 => (0usize..2).prop_map(|n| (Service::Login, n)),
        3 => (0usize..150).prop_map(|n| (Service::Graph, n)),
        2 => (0usize..6).prop_map(|n| (Service::Ingestion, n)),
    ]
}

fn case(
    calls: std::ops::RangeInclusive<usize>,
    max_in_flight: impl Strategy<Value = u32>,
) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((session_pages(), pages()), calls),
        (1u64..=300, 0u64..=500),
        prop_oneof![Just(Order::DueFirst), Just(Order::Random)],
        any::<u64>(),
        prop::collection::vec((fault_target(), fault()), 0..=3),
        max_in_flight,
        any::<bool>(),
    )
        .prop_map(|(calls, (lo, spread), order, seed, faults, max_in_flight, gzip)| Case {
            calls,
            latency: (lo, lo + spread),
            order,
            seed,
            faults,
            max_in_flight,
            gzip,
        })
}

fn run_case(case: &Case, backfill: Option<(usize, usize)>) {
    let specs: Vec<CallSpec> = case.calls.iter().enumerate().map(|(i, (s, p))| CallSpec::new(i, *s, *p)).collect();
    let (world, job) = match backfill {
        None => (World::webhook(&specs), Job::Webhook(notifications(&ids(&specs)))),
        Some((windows, per_page)) => World::backfill(&specs, windows, per_page),
    };
    let max = case.max_in_flight.to_string();
    let gzip = case.gzip.to_string();
    let cfg = config(&[
        ("CALLRECORDS_DEADLINE_MS", "60000"),
        ("CALLRECORDS_MAX_IN_FLIGHT", &max),
        ("CALLRECORDS_GZIP", &gzip),
    ]);
    let faults: BTreeMap<(Service, usize), FaultKind> = case.faults.iter().copied().collect();
    let mut host = Host::new(world, case.seed, case.order, case.latency)
        .with_fault(move |k, n, _| faults.get(&(k.service(), n)).map(|f| f.answer()));
    let mut run = start(cfg, job);
    let report = host.drive(&mut run);

    // (a) Graph's limits, by send time.
    assert_graph_limits(&host);
    assert!(host.most_in_flight <= case.max_in_flight as usize, "{} in flight", host.most_in_flight);
    // (b) and (c): the job did all it had to, and every call landed exactly once.
    assert!(report.ok, "{:?} {:?}", report.error, report.failed);
    assert_eq!(report.response.status, if backfill.is_some() { 200 } else { 202 });
    assert!(report.failed.is_empty() && report.rows_not_accepted == 0, "{:?}", report.failed);
    assert_eq!((report.abandoned, host.in_flight.len()), (0, 0), "nothing left in flight");
    assert_eq!(host.sent.len(), host.answered());
    assert_landed(&host, &report, &specs, &[]);
    if let Some((windows, _)) = backfill {
        let last = host.progress.last().expect("a backfill reports progress");
        let end = format!("2026-11-27T{windows:02}:00:00Z");
        assert_eq!(last.completed_until.as_deref(), Some(end.as_str()), "the checkpoint is the last window's end");
        assert_eq!((last.windows_done, last.windows_total), (windows as u32, windows as u32));
        // (d) Each call is named shipped once, in some progress (the checkpoint moves call by call).
        let shipped: Vec<&String> = host.progress.iter().flat_map(|p| &p.shipped).collect();
        let unique: BTreeSet<&String> = shipped.iter().copied().collect();
        assert_eq!(unique.len(), shipped.len(), "a call named shipped twice");
        assert_eq!(unique, specs.iter().map(|c| &c.id).collect(), "every call named shipped");
    }
}

/// Few cases, so that the file runs in seconds; a failing case is printed, not saved.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases(32))]

    /// A webhook POST of 1–40 notifications, some calls with many pages, random latencies, any
    /// answer order and a few failed answers: Graph's limits kept, each call shipped once, all landed.
    #[test]
    fn any_latencies_and_answer_orders_keep_graph_limits_and_land_each_notified_call_once(
        case in case(1..=40, Just(64u32)),
    ) {
        run_case(&case, None);
    }
}

proptest! {
    #![proptest_config(cases(16))]

    /// A backfill over 1–2 windows listing up to 60 calls a few per page, with any number of
    /// requests in flight: the List limit and the per-call limit kept, each listed call shipped once.
    #[test]
    fn any_latencies_and_answer_orders_keep_graph_limits_and_land_each_listed_call_once(
        case in case(1..=60, 1u32..=64),
        windows in 1usize..=2,
        per_page in 1usize..=3,
    ) {
        run_case(&case, Some((windows, per_page)));
    }
}

/// 200 listed calls of 8 participants_v2 pages each, answered in 20–60 ms with 64 requests in
/// flight, would make 1,800 Graph requests in about 2 s: the tenant's 1,500 per 20 s must hold
/// them back.
#[test]
fn a_large_backfill_keeps_to_1500_graph_requests_per_20_seconds_for_the_tenant() {
    let specs: Vec<CallSpec> = (0..200).map(|i| CallSpec::new(i, 0, 8)).collect();
    let (world, job) = World::backfill(&specs, 1, 20);
    let mut host = Host::new(world, 7, Order::DueFirst, (20, 60));
    let mut run = start(config(&[("CALLRECORDS_GZIP", "false")]), job);
    let report = host.drive(&mut run);
    let graph = host.send_times(Kind::is_graph);
    assert!(graph.len() > PER_TENANT, "{} Graph requests: the limit was never in reach", graph.len());
    assert_graph_limits(&host);
    let span = graph.iter().max().unwrap() - graph.iter().min().unwrap();
    assert!(span >= WINDOW_MS, "{} Graph requests in {span} ms: the limit did not hold any back", graph.len());
    assert!(report.ok, "{:?}", report.error);
    assert_landed(&host, &report, &specs, &[]);
}

// ---------------------------------------------------------------------------------------------
// 2. Many in flight.

#[test]
fn ten_notifications_put_every_graph_request_in_flight_at_once_record_and_participants_together() {
    let specs: Vec<CallSpec> = (0..10).map(|i| CallSpec::new(i, 0, 1)).collect();
    let mut host = Host::new(World::webhook(&specs), 2, Order::DueFirst, (50, 400));
    let mut run = start(config(&[]), Job::Webhook(notifications(&ids(&specs))));
    let report = host.drive(&mut run);
    assert!(report.ok, "{:?}", report.error);
    assert_landed(&host, &report, &specs, &[]);

    // Before any Graph answer (only the token's came first, as every Graph request needs it).
    let before = host.at_first_graph_answer.clone().expect("Graph was asked");
    let graph_in_flight = before.iter().filter(|k| k.is_graph()).count();
    assert!(graph_in_flight >= 10, "{graph_in_flight} Graph requests in flight before the first answer: {before:?}");
    assert_eq!(graph_in_flight, 2 * specs.len(), "a record and a participants_v2 request per call");
    let answered_before = host.delivered.iter().take_while(|d| !d.kind.is_graph()).count();
    assert!(host.delivered[..answered_before].iter().all(|d| matches!(d.kind, Kind::Token { .. })));
    assert!(report.max_in_flight as usize >= 2 * specs.len());

    // The record and participants_v2 GETs of each call were in flight together.
    let span = |kind: &Kind| {
        let s = host.sent.iter().find(|s| &s.kind == kind).expect("sent").clone();
        let d = host.delivered.iter().find(|d| d.id == s.id).expect("answered").clone();
        (s.seq, d.seq)
    };
    for spec in &specs {
        let (rs, ra) = span(&Kind::Record(spec.id.clone()));
        let (ps, pa) = span(&Kind::Participants(spec.id.clone(), 1));
        assert!(rs < pa && ps < ra, "call {}: record {rs}..{ra}, participants {ps}..{pa}", spec.id);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. One failing request among many succeeding ones.

#[test]
fn a_call_whose_record_is_gone_fails_alone_while_the_others_ship_and_graph_gets_a_503() {
    let specs: Vec<CallSpec> = (0..10).map(|i| CallSpec::new(i, i as u32 % 2, 1 + i as u32 % 3)).collect();
    let gone = specs[4].id.clone();
    let target = Kind::Record(gone.clone());
    let mut host = Host::new(World::webhook(&specs), 3, Order::DueFirst, (30, 300))
        .with_fault(move |k, _, _| (k == &target).then(|| Answer::Status(404, vec![])));
    let mut run = start(config(&[]), Job::Webhook(notifications(&ids(&specs))));
    let report = host.drive(&mut run);

    let failed: Vec<&str> = report.failed.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(failed, [gone.as_str()], "{:?}", report.failed);
    assert!(!report.ok);
    assert_eq!(report.response.status, 503, "not every notification landed");
    let record_gets = host.sent.iter().filter(|s| s.kind == Kind::Record(gone.clone())).count();
    assert_eq!(record_gets, 1, "a 404 is not retried");
    let others: Vec<CallSpec> = specs.iter().filter(|c| c.id != gone).cloned().collect();
    assert_landed(&host, &report, &others, &[&gone]);
    assert_eq!((report.abandoned, host.in_flight.len()), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// 4. Unknown ids.

#[test]
fn answers_for_ids_never_sent_or_answered_already_are_refused_and_change_nothing() {
    let specs: Vec<CallSpec> = (0..6).map(|i| CallSpec::new(i, i as u32 % 2, 2)).collect();
    let host = || Host::new(World::webhook(&specs), 4, Order::DueFirst, (20, 200));
    let job = || Job::Webhook(notifications(&ids(&specs)));

    // The same run twice: once plain, once with stray answers before every real one.
    let mut plain = host();
    let plain_report = plain.drive(&mut start(config(&[]), job()));

    let mut h = host();
    let mut run = start(config(&[]), job());
    let mut strays = 0;
    let report = loop {
        let in_flight = run.in_flight();
        let mut stray_ids = vec![9_999, u64::MAX, 0];
        stray_ids.extend(h.delivered.iter().map(|d| d.id));
        for id in stray_ids {
            assert!(run.respond(id, 200, &[], b"{}", h.now).is_err(), "respond for id {id} was taken");
            assert!(run.transport_error(id, "reset", h.now).is_err(), "transport_error for id {id} was taken");
            strays += 1;
        }
        assert_eq!(run.in_flight(), in_flight, "a refused answer changed what is in flight");
        if let Some(r) = h.step(&mut run) {
            break r;
        }
    };
    assert!(strays > 3 * 10 && !h.delivered.is_empty());
    assert!(report.ok, "{:?}", report.error);
    assert_landed(&h, &report, &specs, &[]);
    assert_eq!(report, plain_report, "the stray answers changed the outcome");
    let trace = |h: &Host| h.sent.iter().map(|s| (s.id, s.at, s.kind.clone())).collect::<Vec<_>>();
    assert_eq!(trace(&h), trace(&plain), "the stray answers changed what was sent");
    assert_eq!(h.rows, plain.rows);
    // After Done, every answer is refused.
    for id in h.delivered.iter().map(|d| d.id).chain([9_999]) {
        assert!(run.respond(id, 200, &[], b"{}", h.now).is_err());
        assert!(run.transport_error(id, "reset", h.now).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// 5. The deadline.

#[test]
fn at_the_deadline_every_unanswered_request_is_abandoned_and_its_answer_refused() {
    let specs: Vec<CallSpec> = (0..6).map(|i| CallSpec::new(i, 0, 1)).collect();
    let never = [specs[0].id.clone(), specs[1].id.clone()];
    let slow = specs[2].id.clone();
    let mut host = Host::new(World::webhook(&specs), 5, Order::DueFirst, (20, 80)).with_latency(move |k, rng| {
        match k {
            // The participants_v2 GETs of two calls never get an answer, not even a timeout.
            Kind::Participants(id, _) if never.contains(id) => None,
            // One record would come long after the deadline.
            Kind::Record(id) if *id == slow => Some(5_000),
            _ => Some(rng.between(20, 80)),
        }
    });
    let mut run = start(config(&[("CALLRECORDS_DEADLINE_MS", "500")]), Job::Webhook(notifications(&ids(&specs))));
    let report = host.drive(&mut run);

    assert!(host.now - NOW <= 500, "Done came {} ms after the start, past the 500-ms deadline", host.now - NOW);
    assert_eq!(report.response.status, 503);
    assert!(!report.ok && report.error.as_deref().unwrap_or_default().contains("deadline"), "{:?}", report.error);
    let unanswered = host.sent.len() - host.answered();
    assert_eq!(unanswered, host.in_flight.len());
    assert!(unanswered >= 2, "the test meant requests to stay unanswered: {unanswered}");
    assert_eq!(report.abandoned as usize, unanswered, "every request still in flight is accounted for");
    assert_eq!(run.in_flight(), 0);
    // Nothing shipped twice.
    for rows in host.call_rows().values() {
        assert_eq!(rows.len(), 1);
    }
    for f in &host.in_flight {
        assert!(run.respond(f.id, 200, &[], b"{}", host.now + 1).is_err(), "late answer for {} taken", f.id);
        assert!(run.transport_error(f.id, "late", host.now + 1).is_err(), "late error for {} taken", f.id);
    }
    assert!(matches!(run.next(host.now + 1), Action::Done(_)));
}

// ---------------------------------------------------------------------------------------------
// 6. Retry-After.

#[test]
fn a_retry_after_on_one_graph_answer_holds_back_every_graph_request_of_the_tenant() {
    let specs: Vec<CallSpec> = (0..10).map(|i| CallSpec::new(i, 0, 3)).collect();
    let mut throttled = None;
    let mut host =
        Host::new(World::webhook(&specs), 6, Order::DueFirst, (40, 120)).with_fault(move |k: &Kind, _, _| {
            if k.is_graph() && throttled.is_none() {
                throttled = Some(k.clone());
                return Some(Answer::Status(429, vec![("Retry-After".into(), "2".into())]));
            }
            None
        });
    let cfg = config(&[("CALLRECORDS_DEADLINE_MS", "60000"), ("CALLRECORDS_MAX_IN_FLIGHT", "4")]);
    let mut run = start(cfg, Job::Webhook(notifications(&ids(&specs))));
    let report = host.drive(&mut run);

    let t429 = host.delivered.iter().find(|d| d.status == 429).expect("one Graph answer was a 429").clone();
    let held: Vec<&Sent> =
        host.sent.iter().filter(|s| s.kind.is_graph() && s.seq > t429.seq && s.at < t429.at + 2_000).collect();
    assert!(held.is_empty(), "Graph requests sent within 2 s of the Retry-After at {}: {held:?}", t429.at - NOW);
    let after = host.sent.iter().filter(|s| s.kind.is_graph() && s.seq > t429.seq).count();
    assert!(after > 10, "Graph work was left after the 429 ({after} requests)");
    let retried = host.sent.iter().filter(|s| s.kind == t429.kind && s.seq > t429.seq).count();
    assert_eq!(retried, 1, "the throttled request was repeated once");
    assert!(report.ok, "{:?}", report.error);
    assert_eq!(report.response.status, 202);
    assert!(report.retries >= 1);
    assert_landed(&host, &report, &specs, &[]);
}

// ---------------------------------------------------------------------------------------------
// 7. Tokens.

#[test]
fn twenty_calls_in_one_post_share_one_graph_token_and_one_monitor_token() {
    let specs: Vec<CallSpec> = (0..20).map(|i| CallSpec::new(i, i as u32 % 2, 1 + i as u32 % 2)).collect();
    let mut host = Host::new(World::webhook(&specs), 7, Order::Random, (10, 500));
    let cfg = config(&[("CALLRECORDS_DEADLINE_MS", "60000")]);
    let mut run = start(cfg, Job::Webhook(notifications(&ids(&specs))));
    let report = host.drive(&mut run);
    assert!(report.ok, "{:?}", report.error);
    assert_landed(&host, &report, &specs, &[]);
    assert_eq!(host.token_requests(true), 1, "Graph token requests");
    assert_eq!(host.token_requests(false), 1, "Monitor token requests");
    let carried = |service| host.sent.iter().filter(move |s| s.kind.service() == service).map(|s| s.token.as_str());
    let graph: Vec<&str> = carried(Service::Graph).collect();
    assert!(graph.len() >= 2 * specs.len() && graph.iter().all(|t| *t == "g1"), "Graph requests carried {graph:?}");
    let ingestion: Vec<&str> = carried(Service::Ingestion).collect();
    assert!(ingestion.len() >= 2 && ingestion.iter().all(|t| *t == "m1"), "ingestion requests carried {ingestion:?}");
}

// ---------------------------------------------------------------------------------------------
// Tokens, again: a rejected one.

/// Entra revokes the first Graph token (`g1`) while the first wave of Graph requests is in flight:
/// every request that carried it gets a 401, spread over 300 ms, some after its replacement (`g2`)
/// arrived. A 401 for a request that carried `g1` says nothing about `g2`: one new token serves
/// them all, and every call still lands.
#[test]
fn a_graph_token_rejected_under_many_requests_in_flight_is_replaced_once() {
    let specs: Vec<CallSpec> = (0..10).map(|i| CallSpec::new(i, 0, 1)).collect();
    let mut host = Host::new(World::webhook(&specs), 9, Order::DueFirst, (20, 300))
        .with_fault(|k, _, token| (k.is_graph() && token == "g1").then(|| Answer::Status(401, vec![])));
    let cfg = config(&[("CALLRECORDS_DEADLINE_MS", "60000")]);
    let mut run = start(cfg, Job::Webhook(notifications(&ids(&specs))));
    let report = host.drive(&mut run);
    let rejected = host.delivered.iter().filter(|d| d.status == 401).count();
    assert_eq!(rejected, 2 * specs.len(), "the whole first wave carried the revoked token");
    assert!(report.ok, "{:?}", report.error);
    assert_landed(&host, &report, &specs, &[]);
    let graph_tokens: Vec<u64> = host.send_times(|k| *k == Kind::Token { graph: true });
    assert_eq!(
        graph_tokens.len(),
        2,
        "Graph token requests at {:?} ms",
        graph_tokens.iter().map(|t| t - NOW).collect::<Vec<_>>()
    );
    assert_eq!(host.token_requests(false), 1, "Monitor token requests");
}

// ---------------------------------------------------------------------------------------------
// 8. Tokens between runs.

#[test]
fn tokens_one_run_saved_serve_the_next_run_and_no_token_is_asked_for_again() {
    let specs: Vec<CallSpec> = (0..3).map(|i| CallSpec::new(i, 0, 1)).collect();
    let mut host = Host::new(World::webhook(&specs), 3, Order::DueFirst, (20, 200));
    let mut first = start(config(&[]), Job::Webhook(notifications(&ids(&specs[..1]))));
    assert!(host.drive(&mut first).ok);
    assert_eq!((host.token_requests(true), host.token_requests(false)), (1, 1));
    let saved = first.saved_tokens(host.now).expect("the first run got two tokens");
    let text = String::from_utf8_lossy(&saved);
    assert!(!text.contains(SECRET) && !text.contains(STATE), "the saved tokens hold no client secret: {text}");

    // The next run, a minute later, with the same credentials: no token request, the same tokens.
    let mut host2 = Host::new(World::webhook(&specs), 4, Order::DueFirst, (20, 200));
    host2.now = host.now + 60_000;
    let job = Job::Webhook(notifications(&ids(&specs[1..])));
    let mut second = Run::start(config(&[]), job, host2.now).expect("the job starts");
    assert_eq!(second.restore_tokens(&saved, host2.now), 2, "a Graph and a Monitor token taken back");
    let report = host2.drive(&mut second);
    assert!(report.ok, "{:?}", report.error);
    assert_landed(&host2, &report, &specs[1..], &[]);
    assert_eq!((host2.token_requests(true), host2.token_requests(false)), (0, 0), "no token asked for");
    let carried: BTreeSet<&str> = host2.sent.iter().map(|s| s.token.as_str()).collect();
    assert_eq!(carried, ["g1", "m1"].into_iter().collect(), "the first run's tokens carried");
    assert_eq!(second.saved_tokens(host2.now), None, "nothing new to save");

    // Not taken: other credentials, an hour later (Entra gave 3,599 s), garbage.
    let other = config(&[("CALLRECORDS_CLIENT_ID", "0f0f0f0f-2b1f-4285-8d4b-75ee78787346")]);
    let mut foreign = start(other, Job::Webhook(notifications(&ids(&specs[..1]))));
    assert_eq!(foreign.restore_tokens(&saved, host2.now), 0, "another app's tokens");
    let mut late = start(config(&[]), Job::Webhook(notifications(&ids(&specs[..1]))));
    assert_eq!(late.restore_tokens(&saved, host.now + 3_600_000), 0, "expired tokens");
    for junk in [&b""[..], b"{", b"[1,2]", b"{\"v\":1,\"tokens\":7}", &saved[..saved.len() / 2]] {
        let mut r = start(config(&[]), Job::Webhook(notifications(&ids(&specs[..1]))));
        assert_eq!(r.restore_tokens(junk, host2.now), 0, "{}", String::from_utf8_lossy(junk));
    }
}

/// A token that was revoked while it sat in the host's cache: the run gets a 401, asks for a new
/// one once, and saves the new one for the next run.
#[test]
fn a_restored_token_that_is_rejected_is_replaced_and_the_replacement_saved() {
    let specs: Vec<CallSpec> = (0..2).map(|i| CallSpec::new(i, 0, 1)).collect();
    let mut host = Host::new(World::webhook(&specs), 5, Order::DueFirst, (20, 200));
    let mut first = start(config(&[]), Job::Webhook(notifications(&ids(&specs[..1]))));
    assert!(host.drive(&mut first).ok);
    let saved = first.saved_tokens(host.now).unwrap();

    let mut host2 = Host::new(World::webhook(&specs), 6, Order::DueFirst, (20, 200)).with_fault(|k, _, token| {
        (k.service() == Service::Graph && token == "g-revoked").then(|| Answer::Status(401, vec![]))
    });
    // This host names its own first Graph token g1 too: the revoked one gets a name of its own.
    let saved = String::from_utf8(saved).unwrap().replace("\"g1\"", "\"g-revoked\"");
    let mut second = start(config(&[]), Job::Webhook(notifications(&ids(&specs[1..]))));
    second.restore_tokens(saved.as_bytes(), host2.now);
    let report = host2.drive(&mut second);
    assert!(report.ok, "{:?}", report.error);
    assert_landed(&host2, &report, &specs[1..], &[]);
    assert_eq!((host2.token_requests(true), host2.token_requests(false)), (1, 0));
    let resaved = String::from_utf8(second.saved_tokens(host2.now).expect("a new token to save")).unwrap();
    assert!(
        resaved.contains("\"g1\"") && !resaved.contains("g-revoked"),
        "the new token saved, not the rejected one: {resaved}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. A streaming backfill.

/// A backfill stopped dead (its run dropped, as by `kill -9`) after some calls were named shipped;
/// the rerun with that checkpoint fetches none of them, and between the two runs every call lands.
#[test]
fn a_backfill_rerun_after_a_crash_skips_every_call_its_checkpoint_names_and_lands_the_rest() {
    let specs: Vec<CallSpec> = (0..90).map(|i| CallSpec::new(i, i as u32 % 2, 1)).collect();
    let (world, job) = World::backfill(&specs, 2, 7);
    let cfg = || config(&[("CALLRECORDS_MAX_IN_FLIGHT", "16")]);
    let mut host = Host::new(world.clone(), 11, Order::DueFirst, (50, 400));
    let mut run = start(cfg(), job);
    // The checkpoint as `callrecords backfill` keeps it: the window reached, and the calls after it.
    let (mut completed_until, mut checkpoint): (Option<String>, Vec<String>) = (None, vec![]);
    let mut seen = 0;
    while checkpoint.len() < 30 || completed_until.is_none() {
        assert!(host.step(&mut run).is_none(), "the run ended before the crash");
        for p in &host.progress[seen..] {
            if p.completed_until.is_some() {
                completed_until = p.completed_until.clone();
                checkpoint.clear();
            }
            checkpoint.extend(p.shipped.iter().cloned());
        }
        seen = host.progress.len();
    }
    let in_flight_at_crash = host.in_flight.len();
    drop(run);
    let landed_before: BTreeSet<String> = host.call_rows().keys().cloned().collect();
    assert!(in_flight_at_crash > 0, "the crash came with requests in flight");

    let since = completed_until.clone().unwrap();
    assert_eq!(since, "2026-11-27T01:00:00Z", "the first window was done");
    let rerun_job = Job::Backfill {
        since: since.clone(),
        until: "2026-11-27T02:00:00Z".into(),
        window_hours: 1,
        skip: checkpoint.clone(),
    };
    let mut host2 = Host::new(world, 12, Order::DueFirst, (50, 400));
    let mut rerun = start(cfg(), rerun_job);
    let report = host2.drive(&mut rerun);
    assert!(report.ok, "{:?}", report.error);
    assert_eq!(report.skipped as usize, checkpoint.len(), "the checkpoint's calls skipped");
    let fetched: BTreeSet<String> = host2
        .sent
        .iter()
        .filter(|s| matches!(s.kind, Kind::Record(_)))
        .map(|s| s.kind.call().unwrap().to_string())
        .collect();
    for id in &checkpoint {
        assert!(!fetched.contains(id), "call {id} was in the checkpoint and fetched again");
    }
    // Between the two runs, every call landed; what landed twice was not in the checkpoint.
    let landed_after: BTreeSet<String> = host2.call_rows().keys().cloned().collect();
    let all: BTreeSet<String> = ids(&specs).into_iter().collect();
    assert_eq!(&landed_before | &landed_after, all, "every call landed");
    let twice: BTreeSet<&String> = landed_before.intersection(&landed_after).collect();
    assert!(twice.iter().all(|id| !checkpoint.contains(id)), "a checkpointed call shipped twice");
    let second_window: BTreeSet<String> = specs.iter().skip(1).step_by(2).map(|c| c.id.clone()).collect();
    assert_eq!(
        &landed_after | &checkpoint.iter().cloned().collect(),
        second_window,
        "the rerun did the rest of window 2"
    );
}

/// One window of 1,000 calls in pages of 50: the driver reads the next page only as the calls it
/// listed are fetched, so the calls listed and not yet fetched stay within 256 + a page, however
/// large the window (reading ahead, 40 pages per 20 s list 100 calls/s, while Graph's 1,500
/// requests per 20 s fetch about 37 calls/s: 600 would pile up).
#[test]
fn a_large_window_is_listed_only_as_fast_as_its_calls_are_fetched() {
    const PER_PAGE: usize = 50;
    const BOUND: usize = 256 + PER_PAGE;
    const CALLS: usize = 1_000;
    let specs: Vec<CallSpec> = (0..CALLS).map(|i| CallSpec::new(i, 0, 1)).collect();
    let (world, job) = World::backfill(&specs, 1, PER_PAGE);
    let mut host = Host::new(world, 13, Order::DueFirst, (100, 600));
    let mut run = start(config(&[]), job);
    let report = host.drive(&mut run);
    assert!(report.ok, "{:?}", report.error);
    assert_eq!(report.calls_done as usize, CALLS);
    // Replay what the host saw: ids listed by the List answers delivered, minus records answered.
    let (mut listed, mut fetched, mut most) = (0usize, 0usize, 0usize);
    for d in &host.delivered {
        match d.kind {
            Kind::List { page, .. } => listed += PER_PAGE.min(CALLS - page * PER_PAGE),
            Kind::Record(_) => fetched += 1,
            _ => {}
        }
        most = most.max(listed - fetched.min(listed));
    }
    assert_eq!((listed, fetched), (CALLS, CALLS));
    assert!(most <= BOUND, "{most} calls listed ahead of their fetch (bound {BOUND})");
    let kept = callrecords::pipeline::REPORT_CALLS_KEPT;
    assert!(report.calls.len() <= kept, "the report lists {} calls", report.calls.len());
    assert_graph_limits(&host);
}

// ---------------------------------------------------------------------------------------------
// 10. Queue mode.

use callrecords::pipeline::queue::{Outcome, QueuedCall};

fn queued(spec: &CallSpec, received_ms: u64, attempts: u32, done_tables: &[&str]) -> QueuedCall {
    QueuedCall {
        call_id: spec.id.clone(),
        tenant_id: TENANT.into(),
        received_ms,
        attempts,
        done_tables: done_tables.iter().map(|t| t.to_string()).collect(),
    }
}

/// The edge judges and lists; it fetches nothing, so it answers at once.
#[test]
fn the_queue_edge_lists_each_accepted_call_once_and_sends_nothing() {
    let specs: Vec<CallSpec> = (0..3).map(|i| CallSpec::new(i, 0, 1)).collect();
    let mut request = notifications(&[ids(&specs), vec![specs[0].id.clone()]].concat());
    let mut body: Value = serde_json::from_slice(&request.body).unwrap();
    body["value"][2]["clientState"] = json!("forged");
    request.body = serde_json::to_vec(&body).unwrap();
    let mut host = Host::new(World::webhook(&specs), 1, Order::DueFirst, (20, 200));
    let mut run = start(config(&[]), Job::Accept(request));
    let report = host.drive(&mut run);
    assert!(report.ok, "{:?}", report.error);
    assert_eq!(report.response.status, 202);
    assert!(host.sent.is_empty(), "the edge sent {:?}", host.sent.iter().map(|s| &s.kind).collect::<Vec<_>>());
    let accepted: Vec<&str> = report.accepted.iter().map(|a| a.call_id.as_str()).collect();
    assert_eq!(accepted, [specs[0].id.as_str(), specs[1].id.as_str()], "the forged one refused, the repeat folded");
    assert!(report.accepted.iter().all(|a| a.tenant_id == TENANT && a.change_type == "created"));
    assert_eq!((report.rejected, report.duplicates), (1, 1));
}

/// One drain turn: a call that ships, one Graph does not have yet (404, notified a minute ago),
/// one it never will (404, notified three hours ago), one the app may not read (403), and one
/// with a malformed id. Each gets the outcome Graph's rules give it.
#[test]
fn a_drain_turn_ships_retries_and_dead_letters_each_call_by_graphs_rules() {
    let specs: Vec<CallSpec> = (0..4).map(|i| CallSpec::new(i, 0, 1)).collect();
    let (young, old, forbidden) = (specs[1].id.clone(), specs[2].id.clone(), specs[3].id.clone());
    let mut host =
        Host::new(World::webhook(&specs), 2, Order::DueFirst, (20, 200)).with_fault(move |k, _, _| match k {
            Kind::Record(id) if *id == young || *id == old => Some(Answer::Status(404, vec![])),
            Kind::Record(id) if *id == forbidden => Some(Answer::Status(403, vec![])),
            _ => None,
        });
    let mut bad = queued(&specs[0], NOW, 0, &[]);
    bad.call_id = "../../users".into();
    let calls = vec![
        queued(&specs[0], NOW - 60_000, 0, &[]),
        queued(&specs[1], NOW - 60_000, 2, &[]),
        queued(&specs[2], NOW - 3 * 3_600_000, 0, &[]),
        queued(&specs[3], NOW - 60_000, 0, &[]),
        bad,
    ];
    let mut run = start(config(&[]), Job::Drain(calls));
    let report = host.drive(&mut run);
    assert_landed(&host, &report, &specs[..1], &[&specs[1].id, &specs[2].id, &specs[3].id]);
    let o = &report.outcomes;
    assert_eq!(o.len(), 5);
    let version = fixture()["version"].as_i64().unwrap();
    let rows = expected(&specs[0]).rows as u32;
    assert_eq!(o[0], Outcome::Shipped { call_id: specs[0].id.clone(), tenant_id: TENANT.into(), version, rows });
    match &o[1] {
        // Its third attempt: the wait doubles from 30 s each time.
        Outcome::Retry { attempts: 3, not_before_ms, reason, .. } => {
            assert!(*not_before_ms >= NOW + 120_000 && *not_before_ms <= host.now + 120_000, "{not_before_ms}");
            assert!(reason.contains("404"), "{reason}");
        }
        other => panic!("a young 404 is retried: {other:?}"),
    }
    match &o[2] {
        Outcome::Dead { reason, .. } => assert!(reason.contains("404") && reason.contains("150"), "{reason}"),
        other => panic!("an old 404 is dead: {other:?}"),
    }
    match &o[3] {
        Outcome::Dead { reason, .. } => assert!(reason.contains("403"), "{reason}"),
        other => panic!("a 403 is dead: {other:?}"),
    }
    match &o[4] {
        Outcome::Dead { reason, .. } => assert!(reason.contains("malformed"), "{reason}"),
        other => panic!("a bad id is dead: {other:?}"),
    }
}

/// Logs Ingestion refuses the stream table for good (400) on the first turn: the call's other
/// tables are accepted and remembered, and the next turn sends only the stream rows.
#[test]
fn a_drain_retry_sends_only_the_tables_that_were_not_accepted() {
    let specs = vec![CallSpec::new(0, 0, 1)];
    let cfg = || config(&[("CALLRECORDS_GZIP", "false")]);
    let mut host = Host::new(World::webhook(&specs), 3, Order::DueFirst, (20, 200)).with_fault(|k, _, _| {
        matches!(k, Kind::Ingest(t) if t == "TeamsCallStream_CL").then(|| Answer::Status(400, vec![]))
    });
    let mut run = start(cfg(), Job::Drain(vec![queued(&specs[0], NOW, 0, &[])]));
    let report = host.drive(&mut run);
    let done = match &report.outcomes[0] {
        Outcome::Retry { done_tables, reason, attempts: 1, .. } => {
            assert!(reason.contains("rows not accepted"), "{reason}");
            done_tables.clone()
        }
        other => panic!("{other:?}"),
    };
    let mut want: Vec<String> = host.rows.iter().map(|(t, _)| t.clone()).collect();
    want.sort();
    want.dedup();
    let mut got = done.clone();
    got.sort();
    assert_eq!(got, want, "the tables the ingestion stand-in accepted");
    assert!(!done.contains(&"TeamsCallStream_CL".to_string()));

    let mut host2 = Host::new(World::webhook(&specs), 4, Order::DueFirst, (20, 200));
    host2.shipped_before.insert(specs[0].id.clone(), host.rows.len() as u64);
    let done_refs: Vec<&str> = done.iter().map(String::as_str).collect();
    let mut run2 = start(cfg(), Job::Drain(vec![queued(&specs[0], NOW, 1, &done_refs)]));
    let report2 = host2.drive(&mut run2);
    assert!(matches!(report2.outcomes[0], Outcome::Shipped { .. }), "{:?}", report2.outcomes);
    let tables: BTreeSet<&str> = host2.rows.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tables, BTreeSet::from(["TeamsCallStream_CL"]), "only the refused table is sent again");
    let streams = expected(&specs[0]).streams as usize;
    assert_eq!(host2.rows.len(), streams, "every stream row, once");
}

/// Queue mode's worker runs drain jobs one after the other: each counts what the previous one
/// sent to the tenant's Graph (`saved_limits` → `restore_limits`), so that two turns of 500 calls
/// (2,000 Graph requests) keep to 1,500 per 20 s together, not each on its own.
#[test]
fn consecutive_drain_turns_keep_to_the_tenant_limit_together() {
    let specs: Vec<CallSpec> = (0..1_000).map(|i| CallSpec::new(i, 0, 1)).collect();
    let cfg = || config(&[("CALLRECORDS_GZIP", "false")]);
    let turn = |calls: &[CallSpec], now: u64, limits: Option<&[u8]>| {
        let mut host = Host::new(World::webhook(&specs), 21, Order::DueFirst, (20, 60));
        host.now = now;
        let job = Job::Drain(calls.iter().map(|c| queued(c, now, 0, &[])).collect());
        let mut run = Run::start(cfg(), job, now).expect("the job starts");
        if let Some(l) = limits {
            run.restore_limits(l, now);
        }
        let report = host.drive(&mut run);
        assert!(report.outcomes.iter().all(|o| matches!(o, Outcome::Shipped { .. })), "{:?}", report.error);
        let saved = run.saved_limits(host.now);
        (host, saved)
    };
    let (first, saved) = turn(&specs[..500], NOW, None);
    let (second, _) = turn(&specs[500..], first.now, Some(&saved));
    let mut times = first.send_times(Kind::is_graph);
    times.extend(second.send_times(Kind::is_graph));
    assert_eq!(times.len(), 2_000);
    let busiest = busiest_window(&times);
    assert!(busiest <= PER_TENANT, "{busiest} Graph requests for the tenant within 20 s over both turns");
}

/// Saved limits come from a file the host keeps: hostile or corrupt values are bounded, never a
/// panic (a send time near u64::MAX overflowed `time + window`) and never a hold for ever.
#[test]
fn restored_limits_with_hostile_times_neither_panic_nor_hold_for_ever() {
    let specs: Vec<CallSpec> = (0..3).map(|i| CallSpec::new(i, 1, 1)).collect();
    let mut host = Host::new(World::webhook(&specs), 3, Order::DueFirst, (1, 5));
    let mut run = Run::start(config(&[]), Job::Drain(specs.iter().map(|c| queued(c, NOW, 0, &[])).collect()), NOW)
        .expect("the job starts");
    let saved = format!(
        r#"{{"v":1,"sent":{{"tenant/{TENANT}":[{max}, 0, "x", -1]}},"holds":{{"graph/{TENANT}":{max},"ingestion":{max}}}}}"#,
        max = u64::MAX
    );
    run.restore_limits(saved.as_bytes(), NOW);
    let report = host.drive(&mut run);
    assert!(report.outcomes.iter().all(|o| matches!(o, Outcome::Shipped { .. })), "{:?}", report.error);
    // A restored hold is never longer than the longest Retry-After honoured (60 s).
    assert!(host.now - NOW <= 60_000 + 5_000, "the job waited {} ms", host.now - NOW);
}

/// Microsoft's List participants_v2 example answers with an `@odata.nextLink` that is the request
/// URL itself: the page is read once and taken as the last, not asked for again up to the page cap.
#[test]
fn a_next_link_naming_the_page_just_read_ends_its_chain() {
    let specs: Vec<CallSpec> = (0..2).map(|i| CallSpec::new(i, 1, 1)).collect();
    let mut world = World::webhook(&specs);
    world.self_linked_participants.insert(specs[0].id.clone());
    let mut host = Host::new(world, 3, Order::DueFirst, (1, 5));
    let calls = specs.iter().map(|c| queued(c, NOW - 60_000, 0, &[])).collect();
    let report = host.drive(&mut start(config(&[]), Job::Drain(calls)));
    let asked = host.sent.iter().filter(|s| matches!(&s.kind, Kind::Participants(id, _) if *id == specs[0].id)).count();
    assert_eq!(asked, 1, "the self-linked participants_v2 page is read once");
    assert!(report.outcomes.iter().all(|o| matches!(o, Outcome::Shipped { .. })), "{:?}", report.outcomes);
    assert_landed(&host, &report, &specs, &[]);
}

/// A Graph whose `@odata.nextLink` chain does not end (a bug or a hostile answer) costs one call,
/// not the turn: past the page cap the call is a dead letter and the others ship. (A drain turn
/// has no deadline; Graph's 40 requests per 20 s per call record make 1,000 pages take minutes.)
#[test]
fn a_next_link_chain_that_never_ends_is_a_dead_letter_at_the_page_cap() {
    let mut specs: Vec<CallSpec> = (0..3).map(|i| CallSpec::new(i, 1, 1)).collect();
    specs.push(CallSpec::new(3, 5_000, 1));
    let endless = specs[3].id.clone();
    let mut host = Host::new(World::webhook(&specs), 3, Order::DueFirst, (1, 5));
    let calls = specs.iter().map(|c| queued(c, NOW - 60_000, 0, &[])).collect();
    let report = host.drive(&mut start(config(&[]), Job::Drain(calls)));

    let pages = host.sent.iter().filter(|s| matches!(&s.kind, Kind::SessionPage(id, _) if *id == endless)).count();
    assert_eq!(pages, 1_000, "the chain is followed to the cap and no further");
    match &report.outcomes[3] {
        Outcome::Dead { call_id, reason, .. } => {
            assert_eq!(call_id, &endless);
            assert!(reason.contains("1000 pages"), "{reason}");
        }
        other => panic!("an endless chain is a dead letter: {other:?}"),
    }
    assert_landed(&host, &report, &specs[..3], &[&endless]);
}

// ---------------------------------------------------------------------------------------------
// 11. Several tenants.

/// Both tenants allowed.
fn two_tenants() -> Config {
    config(&[("CALLRECORDS_ALLOWED_TENANTS", &format!("{TENANT},{OTHER_TENANT}"))])
}

/// A world in which [`OTHER_TENANT`] holds a record of `shared` too.
fn world_shared(specs: &[CallSpec], shared: &str) -> World {
    let mut world = World::webhook(specs);
    world.other_tenant.insert(shared.to_string());
    world
}

/// The tenants whose tokens the requests of `kind` carried, sorted.
fn tenants_asked(host: &Host, kind: &Kind) -> Vec<String> {
    let mut t: Vec<String> =
        host.sent.iter().filter(|s| &s.kind == kind).map(|s| tenant_of(&s.token).to_string()).collect();
    t.sort();
    t
}

/// Each tenant's record of `spec` was read with that tenant's token, and both records' rows were
/// accepted, once each (the rows say which record they came from by its version).
fn assert_landed_for_both_tenants(host: &Host, spec: &CallSpec) {
    let mut both = vec![TENANT.to_string(), OTHER_TENANT.to_string()];
    both.sort();
    assert_eq!(tenants_asked(host, &Kind::Record(spec.id.clone())), both, "callRecord GETs of {}", spec.id);
    assert_eq!(tenants_asked(host, &Kind::Participants(spec.id.clone(), 1)), both, "participants_v2 GETs");
    let rows = host.call_rows();
    let mut versions: Vec<i64> =
        rows.get(&spec.id).into_iter().flatten().map(|r| r["CallVersion"].as_i64().unwrap()).collect();
    versions.sort();
    assert_eq!(versions, [fixture()["version"].as_i64().unwrap(), OTHER_VERSION], "TeamsCall_CL rows of each record");
    assert_eq!(host.rows_per_call()[&spec.id], 2 * expected(spec).rows, "every row of both records, once");
}

/// A cross-tenant call notified for both allowed tenants in one delivery (the webhook keeps both:
/// each tenant's subscription delivers its own record): each record is read with its own
/// tenant's token and both ship; Graph gets its 202 only then.
#[test]
fn one_call_notified_for_two_tenants_in_one_delivery_is_read_with_each_tenants_token_and_both_ship() {
    let specs: Vec<CallSpec> = (0..2).map(|i| CallSpec::new(i, 1, 2)).collect();
    let shared = specs[0].id.clone();
    let mut host = Host::new(world_shared(&specs, &shared), 31, Order::DueFirst, (20, 200));
    let items = [(shared.clone(), TENANT), (shared.clone(), OTHER_TENANT), (specs[1].id.clone(), TENANT)];
    let report = host.drive(&mut start(two_tenants(), Job::Webhook(tenant_notifications(&items))));
    assert!(report.ok, "{:?}", report.error);
    assert_eq!((report.response.status, report.duplicates), (202, 0));
    assert_landed_for_both_tenants(&host, &specs[0]);
    assert_eq!(host.rows_per_call()[&specs[1].id], expected(&specs[1]).rows);
    let mut tenants: Vec<&str> = report.calls.iter().filter(|c| c.id == shared).map(|c| c.tenant_id.as_str()).collect();
    tenants.sort();
    assert_eq!(tenants, [TENANT, OTHER_TENANT], "{:?}", report.calls);
    assert_eq!(host.token_requests(true), 2, "a Graph token per tenant");
}

/// Queue mode's edge lists the same call once per tenant (and a repeat for one tenant once).
#[test]
fn the_queue_edge_lists_one_call_once_per_tenant() {
    let shared = call_id(0);
    let items = [(shared.clone(), TENANT), (shared.clone(), OTHER_TENANT), (shared.clone(), TENANT)];
    let report = start(two_tenants(), Job::Accept(tenant_notifications(&items))).next(NOW);
    let Action::Done(report) = report else { panic!("the edge sends nothing: {report:?}") };
    let accepted: Vec<(&str, &str)> =
        report.accepted.iter().map(|a| (a.call_id.as_str(), a.tenant_id.as_str())).collect();
    assert_eq!(accepted, [(shared.as_str(), TENANT), (shared.as_str(), OTHER_TENANT)]);
    assert_eq!(report.duplicates, 1);
}

/// The same call queued from two deliveries, one per tenant, drained in one turn: each is read
/// with its own tenant's token and shipped, and each queued entry's outcome names its own
/// record's version. A progress names the id only once both are shipped (the host's check: every
/// row of every record of it accepted), as a host takes entries off its queue by that id.
#[test]
fn one_call_queued_for_two_tenants_is_read_and_shipped_for_each() {
    let specs: Vec<CallSpec> = (0..2).map(|i| CallSpec::new(i, 1, 1)).collect();
    let shared = specs[0].id.clone();
    let mut host = Host::new(world_shared(&specs, &shared), 32, Order::Random, (20, 300));
    let mut other = queued(&specs[0], NOW - 60_000, 0, &[]);
    other.tenant_id = OTHER_TENANT.into();
    let calls = vec![queued(&specs[0], NOW - 60_000, 0, &[]), queued(&specs[1], NOW - 60_000, 0, &[]), other];
    let report = host.drive(&mut start(two_tenants(), Job::Drain(calls)));
    assert!(report.ok, "{:?}", report.error);
    assert_landed_for_both_tenants(&host, &specs[0]);
    let (version, rows) = (fixture()["version"].as_i64().unwrap(), expected(&specs[0]).rows as u32);
    let o = &report.outcomes;
    assert_eq!(o.len(), 3);
    assert_eq!(o[0], Outcome::Shipped { call_id: shared.clone(), tenant_id: TENANT.into(), version, rows });
    assert!(matches!(&o[1], Outcome::Shipped { call_id, .. } if *call_id == specs[1].id), "{:?}", o[1]);
    let version = OTHER_VERSION;
    assert_eq!(o[2], Outcome::Shipped { call_id: shared.clone(), tenant_id: OTHER_TENANT.into(), version, rows });
    let named = host.progress.iter().flat_map(|p| &p.shipped).filter(|id| **id == shared).count();
    assert_eq!(named, 1, "{:?}", host.progress);
}

/// The other tenant may not let the app read its record (403): its queued entry is a dead letter,
/// not "shipped" because the first tenant's record of the same id was; no progress names the id.
#[test]
fn a_call_shipped_for_one_tenant_does_not_settle_the_other_tenants_entry() {
    let specs = vec![CallSpec::new(0, 0, 1)];
    let shared = specs[0].id.clone();
    let forbidden = shared.clone();
    let mut host =
        Host::new(world_shared(&specs, &shared), 33, Order::DueFirst, (20, 200)).with_fault(move |k, _, token| {
            let refused = *k == Kind::Record(forbidden.clone()) && tenant_of(token) == OTHER_TENANT;
            refused.then(|| Answer::Status(403, vec![]))
        });
    let mut other = queued(&specs[0], NOW - 60_000, 0, &[]);
    other.tenant_id = OTHER_TENANT.into();
    let calls = vec![queued(&specs[0], NOW - 60_000, 0, &[]), other];
    let report = host.drive(&mut start(two_tenants(), Job::Drain(calls)));
    let mut both = vec![TENANT.to_string(), OTHER_TENANT.to_string()];
    both.sort();
    assert_eq!(tenants_asked(&host, &Kind::Record(shared.clone())), both);
    let o = &report.outcomes;
    assert!(matches!(&o[0], Outcome::Shipped { tenant_id, .. } if tenant_id == TENANT), "{:?}", o[0]);
    match &o[1] {
        Outcome::Dead { call_id, tenant_id, reason, .. } => {
            assert_eq!((call_id.as_str(), tenant_id.as_str()), (shared.as_str(), OTHER_TENANT));
            assert!(reason.contains("403") && reason.contains(OTHER_TENANT), "{reason}");
        }
        other => panic!("the other tenant's entry is not shipped: {other:?}"),
    }
    let failed: Vec<(&str, &str)> = report.failed.iter().map(|f| (f.id.as_str(), f.tenant_id.as_str())).collect();
    assert_eq!(failed, [(shared.as_str(), OTHER_TENANT)]);
    assert!(host.progress.iter().all(|p| !p.shipped.contains(&shared)), "{:?}", host.progress);
    assert_eq!(host.rows_per_call()[&shared], expected(&specs[0]).rows, "the first tenant's rows only");
}

/// A tenant is one tenant however its GUID is cased (the webhook folds so too): the same call
/// queued for it twice, in two casings, is read once and both entries are shipped.
#[test]
fn one_call_queued_twice_for_one_tenant_in_two_casings_is_read_once() {
    let specs = vec![CallSpec::new(0, 0, 1)];
    let mut host = Host::new(World::webhook(&specs), 34, Order::DueFirst, (20, 200));
    let mut upper = queued(&specs[0], NOW - 60_000, 0, &[]);
    upper.tenant_id = TENANT.to_ascii_uppercase();
    let calls = vec![queued(&specs[0], NOW - 60_000, 0, &[]), upper];
    let report = host.drive(&mut start(config(&[]), Job::Drain(calls)));
    assert!(report.ok, "{:?}", report.error);
    assert_landed(&host, &report, &specs, &[]);
    assert_eq!(host.sent.iter().filter(|s| s.kind == Kind::Record(specs[0].id.clone())).count(), 1);
    assert!(report.outcomes.iter().all(|o| matches!(o, Outcome::Shipped { .. })), "{:?}", report.outcomes);
}
