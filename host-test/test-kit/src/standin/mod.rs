//! Local stand-ins for the three services the pipeline talks to, checking requests the way Azure
//! would: an Entra token endpoint, Microsoft Graph (callRecords with Graph's paging, List, and
//! subscriptions) and the ingestion endpoints (Logs Ingestion with bearer tokens, the Data
//! Collector API with SharedKey signatures recomputed here, and a forward-mode shipper input).
//! Accepted rows are appended to `<workspace>/<Table>.ndjson` and kept in memory for tests.
//!
//! One [`StandIns`] answers requests given as values ([`StandIns::answer`]); it is reached either
//! through a real local HTTP server ([`start_http`]) or directly by a host that intercepts the
//! component's outgoing requests (it is a [`Responder`]). Faults (429, 5xx, 413, dropped connections, expired tokens) are
//! injected by a seeded plan, so a run can be repeated.
//!
//! | file | answers |
//! |---|---|
//! | `login.rs` | Entra ID's token endpoint |
//! | `identity.rs` | client assertions (certificate, workload identity) as Entra checks them; the managed identity endpoints (IMDS, App Service) |
//! | `graph.rs` | Microsoft Graph: callRecords and their pages, List, subscriptions |
//! | `logs.rs` | Graph's PSTN and Direct Routing logs (`getPstnCalls`, `getDirectRoutingCalls`) and their limits |
//! | `ingestion.rs` | Logs Ingestion, the Data Collector API, the forward input |
//! | `faults.rs` | the seeded fault plan |
//! | `latency.rs` | cloud round-trip times and Graph's per-tenant throttle |
//! | `http.rs` | all of them over HTTP on a local address, and over HTTPS |

mod faults;
mod graph;
mod http;
mod identity;
mod ingestion;
mod latency;
mod login;
mod logs;

pub use faults::Faults;
use faults::{chance, unit};
pub use http::{start_http, start_https};
pub use identity::{EXCHANGE_AUDIENCE, Identities};
use latency::Window;
pub use latency::{Latency, THROTTLE_WINDOW};

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::demo::{CONTOSO, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_DCR, DEMO_SHARED_KEY, DEMO_WORKSPACE, FABRIKAM};
pub use callrecords_host::transport::{Answer, Request, Responder};

/// Graph pages sessions at 60 per answer.
pub const SESSIONS_PAGE: usize = 60;
/// Graph pages participants_v2 at 130.
pub const PARTICIPANTS_PAGE: usize = 130;
/// List callRecords pages at 60.
pub const LIST_PAGE: usize = 60;
/// Largest Logs Ingestion body Azure takes.
pub const INGESTION_MAX_BYTES: usize = 1_000_000;

/// Counters of what the stand-ins saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Tokens issued.
    pub tokens: u32,
    /// Graph requests answered (any status).
    pub graph: u32,
    /// Ingestion requests answered (any status).
    pub ingestion: u32,
    /// Ingestion requests accepted.
    pub ingestion_accepted: u32,
    /// Faults injected.
    pub faults: u32,
    /// Requests refused because they were wrong (bad token, bad signature, unknown stream...).
    pub refused: u32,
    /// Graph requests answered 429 because the app went over Graph's per-tenant throttle
    /// ([`Latency::graph_per_tenant_20s`]; injected faults are not counted here).
    pub throttled: u32,
    /// Most requests that were being answered at once.
    pub max_concurrent: u32,
    /// TCP connections accepted (over HTTP, [`start_http`]); with kept-alive connections far
    /// fewer than the requests.
    pub connections: u32,
}

struct Call {
    record: Map<String, Value>,
    sessions: Vec<Value>,
    participants: Vec<Value>,
    start: String,
}

struct State {
    rng: u64,
    tokens: HashMap<String, &'static str>,
    counters: Counters,
    graph_requests: u32,
    tokens_expired_once: bool,
    outage_left: u32,
    accepted: BTreeMap<String, Vec<Value>>,
    subscriptions: BTreeMap<String, Value>,
    last_refusal: Option<String>,
    dropped_columns: std::collections::BTreeSet<String>,
    throttle: HashMap<String, Window>,
    concurrent: u32,
    identity: identity::IdentityState,
}

/// The stand-ins. Cheap to share (`Arc`).
pub struct StandIns {
    base: String,
    calls: HashMap<String, Call>,
    faults: Faults,
    latency: Latency,
    identities: Identities,
    started: std::time::Instant,
    workspace: Option<PathBuf>,
    /// The PSTN and Direct Routing log rows (`logs.rs`).
    logs: BTreeMap<callrecords::graph::pstn::PstnLog, Vec<Value>>,
    state: Mutex<State>,
}

impl StandIns {
    /// Stand-ins reachable at `base` (`http://127.0.0.1:PORT`), serving the callRecords of
    /// `examples/graph/callrecords` (their session and participant pages merged, then paged the
    /// way Graph pages), writing accepted rows under `workspace` when given.
    pub fn new(base: &str, callrecords: &Path, workspace: Option<PathBuf>, faults: Faults) -> Result<Self, String> {
        let mut files: BTreeMap<String, Value> = BTreeMap::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(callrecords)
            .map_err(|e| format!("{}: {e}", callrecords.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        for p in names {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            files.insert(p.file_stem().unwrap_or_default().to_string_lossy().into_owned(), v);
        }
        if let Some(dir) = &workspace {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        let mut s = StandIns {
            base: base.trim_end_matches('/').to_string(),
            calls: HashMap::new(),
            faults: faults.clone(),
            latency: Latency::NONE,
            identities: Identities::default(),
            started: std::time::Instant::now(),
            workspace,
            logs: callrecords::graph::pstn::PstnLog::ALL.into_iter().map(|l| (l, vec![])).collect(),
            state: Mutex::new(State {
                rng: faults.seed.max(1),
                tokens: HashMap::new(),
                counters: Counters::default(),
                graph_requests: 0,
                tokens_expired_once: false,
                outage_left: faults.ingestion_outage,
                accepted: BTreeMap::new(),
                subscriptions: BTreeMap::new(),
                last_refusal: None,
                dropped_columns: Default::default(),
                throttle: HashMap::new(),
                concurrent: 0,
                identity: Default::default(),
            }),
        };
        if let Some(dir) = callrecords.parent().map(|p| p.join("pstn")) {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            s.logs = logs::sample_logs(&dir, now as i64)?;
        }
        for (stem, v) in &files {
            if v.get("value").is_some() || v.get("id").is_none() {
                continue;
            }
            let mut record = v.clone();
            // Follow the sample's own page files, then serve the whole list with Graph's paging.
            let mut link = record.get("sessions@odata.nextLink").and_then(Value::as_str).map(String::from);
            let mut sessions = record.get("sessions").and_then(Value::as_array).cloned().unwrap_or_default();
            while let Some(l) = link.take() {
                let key = l.split("$skiptoken=").nth(1).unwrap_or_default().split('&').next().unwrap_or_default();
                let Some(page) = files.get(key) else { break };
                sessions.extend(page["value"].as_array().cloned().unwrap_or_default());
                link = page.get("@odata.nextLink").and_then(Value::as_str).map(String::from);
            }
            let mut participants = vec![];
            for n in 1.. {
                match files.get(&format!("{stem}.participants-{n}")) {
                    Some(p) => participants.extend(p["value"].as_array().cloned().unwrap_or_default()),
                    None => break,
                }
            }
            if participants.is_empty() {
                participants = record.get("participants_v2").and_then(Value::as_array).cloned().unwrap_or_default();
            }
            record["sessions"] = Value::Array(sessions);
            s.add_call(&record.to_string(), participants)?;
        }
        Ok(s)
    }

    /// Serve one more callRecord (a merged record: all sessions inline) with these participants.
    pub fn add_call(&mut self, record: &str, participants: Vec<Value>) -> Result<(), String> {
        let mut record: Map<String, Value> = serde_json::from_str(record).map_err(|e| format!("callRecord: {e}"))?;
        let id = record.get("id").and_then(Value::as_str).ok_or("callRecord without id")?.to_string();
        let sessions = match record.remove("sessions") {
            Some(Value::Array(a)) => a,
            _ => vec![],
        };
        record.remove("sessions@odata.nextLink");
        record.remove("participants_v2");
        let start = record.get("startDateTime").and_then(Value::as_str).unwrap_or_default().to_string();
        self.calls.insert(id, Call { record, sessions, participants, start });
        Ok(())
    }

    /// The base URL the stand-ins answer for.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Ids of the calls served.
    pub fn call_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.calls.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Rows accepted so far, per table.
    pub fn accepted(&self) -> BTreeMap<String, Vec<Value>> {
        self.state.lock().map(|s| s.accepted.clone()).unwrap_or_default()
    }

    /// What the stand-ins saw.
    pub fn counters(&self) -> Counters {
        self.state.lock().map(|s| s.counters.clone()).unwrap_or_default()
    }

    /// Count a TCP connection accepted.
    pub(crate) fn connection_accepted(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.counters.connections += 1;
        }
    }

    /// Why the last request was refused as wrong (not as an injected fault).
    pub fn last_refusal(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.last_refusal.clone())
    }

    /// `Table.column` names that Logs Ingestion rows carried but the table does not declare, which
    /// the DCR dropped (the core's own rows must never have any).
    pub fn dropped_columns(&self) -> Vec<String> {
        self.state.lock().map(|s| s.dropped_columns.iter().cloned().collect()).unwrap_or_default()
    }

    /// Subscriptions created through the Graph stand-in.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.state.lock().map(|s| s.subscriptions.values().cloned().collect()).unwrap_or_default()
    }

    /// Register credentials on the demo app and its Azure resource (see [`Identities`]).
    pub fn set_identities(&mut self, identities: Identities) {
        self.identities = identities;
    }

    /// Client assertions accepted (`certificate`, `federated`) and managed identity tokens given
    /// (`imds`, `app-service`), by kind.
    pub fn identity_counts(&self) -> BTreeMap<&'static str, u32> {
        self.state.lock().map(|s| s.identity.accepted.clone()).unwrap_or_default()
    }

    /// The client assertions the token endpoint accepted, as they were sent.
    pub fn assertions(&self) -> Vec<String> {
        self.state.lock().map(|s| s.identity.assertions.clone()).unwrap_or_default()
    }

    /// Answer after these round-trip times (see [`Latency`]; [`Latency::NONE`] at first).
    pub fn set_latency(&mut self, latency: Latency) {
        self.latency = latency;
    }

    /// Milliseconds since these stand-ins started (their throttle's clock).
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Answer one request, after its endpoint's latency.
    pub fn answer(&self, req: &Request) -> Answer {
        let route = req.path.split('?').next().unwrap_or_default();
        let base_ms = match route {
            r if r.starts_with("/login/") || r == "/metadata/identity/oauth2/token" || r == "/msi/token" => {
                self.latency.token_ms
            }
            r if r.starts_with("/graph/v1.0/communications/callRecords/") => {
                let rest = &r["/graph/v1.0/communications/callRecords/".len()..];
                match rest.split('/').nth(1) {
                    None => self.latency.record_ms,
                    Some("participants_v2") => self.latency.participants_ms,
                    Some(_) => self.latency.page_ms,
                }
            }
            r if r.starts_with("/graph/") => self.latency.list_ms,
            _ => self.latency.ingestion_ms,
        };
        let unit = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.concurrent += 1;
            st.counters.max_concurrent = st.counters.max_concurrent.max(st.concurrent);
            if base_ms > 0 && self.latency.jitter > 0.0 { unit(&mut st.rng) } else { 0.5 }
        };
        if base_ms > 0 {
            std::thread::sleep(self.latency.jittered(base_ms, unit));
        }
        let answer = self.answer_now(req);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.concurrent -= 1;
        answer
    }

    fn answer_now(&self, req: &Request) -> Answer {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let path = req.path.clone();
        let route = path.split('?').next().unwrap_or_default().to_string();
        if self.faults.drop > 0.0 && chance(&mut st.rng, self.faults.drop) {
            st.counters.faults += 1;
            return Answer::Drop;
        }
        if let Some(rest) = route.strip_prefix("/login/") {
            return self.token(&mut st, rest, req);
        }
        if route == "/metadata/identity/oauth2/token" || route == "/msi/token" {
            return self.managed_identity(&mut st, &route, &path, req);
        }
        if route.starts_with("/graph/") {
            st.counters.graph += 1;
            drop(st);
            if self.faults.graph_delay_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(self.faults.graph_delay_ms));
            }
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            return self.graph(&mut st, &route, &path, req);
        }
        // `/ingest` is the prefix of the plain-HTTP stand-in's DCE; a real DCE (and the HTTPS
        // stand-in, `start_https`) serves `/dataCollectionRules/…` at its root.
        if let Some(rest) =
            route.strip_prefix("/ingest/").or(route.strip_prefix("/").filter(|r| r.starts_with("dataCollectionRules/")))
        {
            st.counters.ingestion += 1;
            return self.logs_ingestion(&mut st, rest, &path, req);
        }
        if route == "/ods/api/logs" {
            st.counters.ingestion += 1;
            return self.data_collector(&mut st, &path, req);
        }
        if let Some(table) = route.strip_prefix("/forward/") {
            st.counters.ingestion += 1;
            return self.forward(&mut st, table, req);
        }
        Answer::json(404, json!({"error": {"code": "NotFound", "message": format!("no stand-in at {route}")}}))
    }

    fn refuse(&self, st: &mut State, status: u16, code: &str, message: &str) -> Answer {
        st.counters.refused += 1;
        st.last_refusal = Some(format!("{status} {code}: {message}"));
        Answer::json(status, json!({"error": {"code": code, "message": message}}))
    }
}

fn too_many(retry_after: u32) -> Answer {
    Answer::json(429, json!({"error": {"code": "TooManyRequests", "message": "Too many requests."}}))
        .with_header("Retry-After", &retry_after.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl Responder for StandIns {
    fn base(&self) -> &str {
        StandIns::base(self)
    }
    fn answer(&self, request: &Request) -> Answer {
        StandIns::answer(self, request)
    }
}
