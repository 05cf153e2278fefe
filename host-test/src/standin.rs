//! Local stand-ins for the three services the pipeline talks to, checking requests the way Azure
//! would: an Entra token endpoint, Microsoft Graph (callRecords with Graph's paging, List, and
//! subscriptions) and the ingestion endpoints (Logs Ingestion with bearer tokens, the Data
//! Collector API with SharedKey signatures recomputed here, and a forward-mode shipper input).
//! Accepted rows are appended to `<workspace>/<Table>.ndjson` and kept in memory for tests.
//!
//! One [`StandIns`] answers requests given as values ([`StandIns::answer`]); it is reached either
//! through a real local HTTP server ([`serve_http`]) or directly by a harness that intercepts the
//! component's outgoing requests. Faults (429, 5xx, 413, dropped connections, expired tokens) are
//! injected by a seeded plan, so a run can be repeated.

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

use crate::conformance::{CONTOSO, DEMO_CLIENT_STATE, FABRIKAM};
use crate::replay::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_DCR, DEMO_SHARED_KEY, DEMO_WORKSPACE};

/// Graph pages sessions at 60 per answer.
pub const SESSIONS_PAGE: usize = 60;
/// Graph pages participants_v2 at 130.
pub const PARTICIPANTS_PAGE: usize = 130;
/// List callRecords pages at 60.
pub const LIST_PAGE: usize = 60;
/// Largest Logs Ingestion body Azure takes.
pub const INGESTION_MAX_BYTES: usize = 1_000_000;

/// A request as the stand-ins see it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, e.g. `/graph/v1.0/communications/callRecords/…`.
    pub path: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// What the stand-ins answer: a response, or a dropped connection.
#[derive(Debug, Clone)]
pub enum Answer {
    /// An HTTP response.
    Response {
        /// Status.
        status: u16,
        /// Headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// The connection is closed without an answer.
    Drop,
}

impl Answer {
    fn json(status: u16, v: Value) -> Self {
        Answer::Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    fn empty(status: u16) -> Self {
        Answer::Response { status, headers: vec![], body: vec![] }
    }

    fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Answer::Response { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// The status, or 0 for a dropped connection.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Response { status, .. } => *status,
            Answer::Drop => 0,
        }
    }
}

/// Seeded fault injection. Rates are per request, 0.0..=1.0.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Seed of the plan.
    pub seed: u64,
    /// Graph answers 429 with `Retry-After`.
    pub graph_429: f64,
    /// `Retry-After` seconds on those 429s.
    pub graph_retry_after: u32,
    /// Graph answers 503.
    pub graph_5xx: f64,
    /// The token endpoint answers 503.
    pub token_5xx: f64,
    /// Ingestion answers 500/503.
    pub ingestion_5xx: f64,
    /// Ingestion answers 429 with `Retry-After: 0`.
    pub ingestion_429: f64,
    /// Connections dropped without an answer (any service).
    pub drop: f64,
    /// Ingestion refuses bodies larger than this with 413 (Azure's own limit is 1,000,000).
    pub ingestion_max_bytes: Option<usize>,
    /// Every Nth Graph callRecord request is answered 429 `Retry-After: 1` (the demo's occasional throttle).
    pub graph_429_every: Option<u32>,
    /// After this many Graph requests, every token issued so far is expired (once).
    pub expire_tokens_after: Option<u32>,
    /// Every ingestion request fails with 503 until this many have been refused.
    pub ingestion_outage: u32,
    /// Graph answers take this long (ms), to exceed deadlines.
    pub graph_delay_ms: u64,
}

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
    /// Requests refused because they were wrong (bad token, bad signature, unknown column...).
    pub refused: u32,
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
}

/// The stand-ins. Cheap to share (`Arc`).
pub struct StandIns {
    base: String,
    calls: HashMap<String, Call>,
    faults: Faults,
    workspace: Option<PathBuf>,
    state: Mutex<State>,
}

/// The settings that point the pipeline at stand-ins reachable at `base` (demo tenant, app, DCR,
/// workspace and clientState; nothing real).
pub fn demo_env(base: &str, sink: &str) -> Vec<(String, String)> {
    let v = |k: &str, v: &str| (k.to_string(), v.to_string());
    vec![
        v("CALLRECORDS_TENANT_ID", CONTOSO),
        v("CALLRECORDS_CLIENT_ID", DEMO_CLIENT_ID),
        v("CALLRECORDS_CLIENT_SECRET", DEMO_CLIENT_SECRET),
        v("CALLRECORDS_CLIENT_STATE", DEMO_CLIENT_STATE),
        v("CALLRECORDS_ALLOWED_TENANTS", &format!("{CONTOSO},{FABRIKAM}")),
        v("CALLRECORDS_SINK", sink),
        v("CALLRECORDS_DCE_URL", &format!("{base}/ingest")),
        v("CALLRECORDS_DCR_ID", DEMO_DCR),
        v("CALLRECORDS_WORKSPACE_ID", DEMO_WORKSPACE),
        v("CALLRECORDS_SHARED_KEY", DEMO_SHARED_KEY),
        v("CALLRECORDS_DATA_COLLECTOR_URL", &format!("{base}/ods")),
        v("CALLRECORDS_FORWARD_URL", &format!("{base}/forward")),
        v("CALLRECORDS_GRAPH_URL", &format!("{base}/graph")),
        v("CALLRECORDS_LOGIN_URL", &format!("{base}/login")),
        v("CALLRECORDS_NOTIFICATION_URL", "https://teams-sentinel.example.com/notify"),
        v("CALLRECORDS_LIFECYCLE_URL", "https://teams-sentinel.example.com/lifecycle"),
    ]
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
            workspace,
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
            }),
        };
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

    /// Why the last request was refused as wrong (not as an injected fault).
    pub fn last_refusal(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.last_refusal.clone())
    }

    /// Subscriptions created through the Graph stand-in.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.state.lock().map(|s| s.subscriptions.values().cloned().collect()).unwrap_or_default()
    }

    /// Answer one request.
    pub fn answer(&self, req: &Request) -> Answer {
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
        if route.starts_with("/graph/") {
            st.counters.graph += 1;
            drop(st);
            if self.faults.graph_delay_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(self.faults.graph_delay_ms));
            }
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            return self.graph(&mut st, &route, &path, req);
        }
        if let Some(rest) = route.strip_prefix("/ingest/") {
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

    fn token(&self, st: &mut State, rest: &str, req: &Request) -> Answer {
        if self.faults.token_5xx > 0.0 && chance(&mut st.rng, self.faults.token_5xx) {
            st.counters.faults += 1;
            return Answer::json(503, json!({"error": "temporarily_unavailable", "error_description": "AADSTS90033"}));
        }
        let form: HashMap<String, String> = form_urlencoded::parse(&req.body).into_owned().collect();
        let tenant = rest.split('/').next().unwrap_or_default();
        let f = |k: &str| form.get(k).map(String::as_str);
        if req.method != "POST" || !rest.ends_with("/oauth2/v2.0/token") || ![CONTOSO, FABRIKAM].contains(&tenant) {
            return self.refuse(st, 400, "invalid_request", "AADSTS90002: Tenant not found.");
        }
        if f("grant_type") != Some("client_credentials")
            || f("client_id") != Some(DEMO_CLIENT_ID)
            || f("client_secret") != Some(DEMO_CLIENT_SECRET)
        {
            return Answer::json(
                401,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            );
        }
        let audience = match f("scope") {
            Some("https://graph.microsoft.com/.default") => "graph",
            Some("https://monitor.azure.com//.default") => "monitor",
            _ => {
                return self.refuse(
                    st,
                    400,
                    "invalid_scope",
                    "AADSTS70011: The provided value for scope is not valid.",
                );
            }
        };
        st.counters.tokens += 1;
        let token = format!("standin.{audience}.{tenant}.{}", st.counters.tokens);
        st.tokens.insert(token.clone(), audience);
        Answer::json(200, json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}))
    }

    fn bearer_ok(&self, st: &mut State, req: &Request, audience: &str) -> Result<(), Answer> {
        let auth = header(&req.headers, "authorization").unwrap_or_default();
        let token = auth.strip_prefix("Bearer ").unwrap_or_default();
        match st.tokens.get(token) {
            Some(a) if *a == audience => Ok(()),
            Some(_) => Err(self.refuse(st, 401, "InvalidAuthenticationToken", "The token is for another audience.")),
            None if token.starts_with("standin.") => Err(Answer::json(
                401,
                json!({"error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed, the token is expired."}}),
            )),
            None => Err(self.refuse(st, 401, "InvalidAuthenticationToken", "Access token is empty or invalid.")),
        }
    }

    fn graph(&self, st: &mut State, route: &str, path: &str, req: &Request) -> Answer {
        st.graph_requests += 1;
        if let Some(n) = self.faults.expire_tokens_after
            && !st.tokens_expired_once
            && st.graph_requests > n
        {
            st.tokens_expired_once = true;
            st.tokens.clear();
        }
        if let Err(a) = self.bearer_ok(st, req, "graph") {
            return a;
        }
        if let Some(n) = self.faults.graph_429_every
            && n > 0
            && st.graph_requests.is_multiple_of(n)
        {
            st.counters.faults += 1;
            return too_many(1);
        }
        if self.faults.graph_429 > 0.0 && chance(&mut st.rng, self.faults.graph_429) {
            st.counters.faults += 1;
            return too_many(self.faults.graph_retry_after);
        }
        if self.faults.graph_5xx > 0.0 && chance(&mut st.rng, self.faults.graph_5xx) {
            st.counters.faults += 1;
            return Answer::json(
                503,
                json!({"error": {"code": "serviceNotAvailable", "message": "Service unavailable"}}),
            );
        }
        let rest = route.strip_prefix("/graph/v1.0/").unwrap_or_default();
        let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        if let Some(sub) = rest.strip_prefix("subscriptions") {
            return self.subscriptions_api(st, sub.trim_start_matches('/'), req);
        }
        let Some(rest) = rest.strip_prefix("communications/callRecords") else {
            return self.refuse(st, 404, "NotFound", "Resource not found.");
        };
        if rest.is_empty() {
            return self.list(st, &params);
        }
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let Some(call) = self.calls.get(parts[0]) else {
            return Answer::json(
                404,
                json!({"error": {"code": "NotFound", "message": "The requested resource does not exist."}}),
            );
        };
        let id = parts[0];
        let skip: usize = params.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
        match parts.get(1).copied() {
            None => {
                if params.get("$expand").map(String::as_str) != Some("sessions($expand=segments)") {
                    return self.refuse(st, 400, "BadRequest", "expected $expand=sessions($expand=segments)");
                }
                let mut record = call.record.clone();
                let page: Vec<Value> = call.sessions.iter().take(SESSIONS_PAGE).cloned().collect();
                record.insert("sessions".into(), Value::Array(page));
                if call.sessions.len() > SESSIONS_PAGE {
                    record.insert(
                        "sessions@odata.nextLink".into(),
                        json!(format!("{}/graph/v1.0/communications/callRecords/{id}/sessions?$expand=segments&$skiptoken={SESSIONS_PAGE}", self.base)),
                    );
                }
                Answer::json(200, Value::Object(record))
            }
            Some("sessions") => {
                self.page(&call.sessions, skip, SESSIONS_PAGE, &format!("{id}/sessions?$expand=segments&"))
            }
            Some("participants_v2") => {
                self.page(&call.participants, skip, PARTICIPANTS_PAGE, &format!("{id}/participants_v2?"))
            }
            _ => self.refuse(st, 404, "NotFound", "Resource not found."),
        }
    }

    fn page(&self, items: &[Value], skip: usize, size: usize, next: &str) -> Answer {
        let value: Vec<Value> = items.iter().skip(skip).take(size).cloned().collect();
        let mut page = json!({ "value": value });
        if skip + size < items.len() {
            page["@odata.nextLink"] =
                json!(format!("{}/graph/v1.0/communications/callRecords/{next}$skiptoken={}", self.base, skip + size));
        }
        Answer::json(200, page)
    }

    fn list(&self, st: &mut State, params: &HashMap<String, String>) -> Answer {
        let filter = params.get("$filter").cloned().unwrap_or_default();
        let bound = |op: &str| {
            filter.split(&format!("startDateTime {op} ")).nth(1).and_then(|r| r.split(' ').next()).map(String::from)
        };
        let (Some(ge), Some(lt)) = (bound("ge"), bound("lt")) else {
            return self.refuse(st, 400, "BadRequest", "expected $filter=startDateTime ge X and startDateTime lt Y");
        };
        let (ge, lt) = (callrecords::values::parse_timestamp(&ge), callrecords::values::parse_timestamp(&lt));
        let (Some(ge), Some(lt)) = (ge, lt) else {
            return self.refuse(st, 400, "BadRequest", "startDateTime bounds must be ISO 8601");
        };
        let mut ids: Vec<(&String, &Call)> = self
            .calls
            .iter()
            .filter(|(_, c)| callrecords::values::parse_timestamp(&c.start).is_some_and(|t| t >= ge && t < lt))
            .collect();
        ids.sort_by(|a, b| a.0.cmp(b.0));
        let items: Vec<Value> = ids.iter().map(|(id, c)| json!({"id": id, "startDateTime": c.start})).collect();
        let skip: usize = params.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
        let value: Vec<Value> = items.iter().skip(skip).take(LIST_PAGE).cloned().collect();
        let mut page = json!({ "value": value });
        if skip + LIST_PAGE < items.len() {
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("$filter", &filter)
                .append_pair("$skiptoken", &(skip + LIST_PAGE).to_string())
                .finish()
                .replace('+', "%20");
            page["@odata.nextLink"] = json!(format!("{}/graph/v1.0/communications/callRecords?{q}", self.base));
        }
        Answer::json(200, page)
    }

    fn subscriptions_api(&self, st: &mut State, rest: &str, req: &Request) -> Answer {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("POST", []) => {
                let ok = body["resource"] == "/communications/callRecords"
                    && body["notificationUrl"].as_str().is_some_and(|u| u.starts_with("https://"))
                    && body["clientState"].as_str().is_some_and(|c| !c.is_empty() && c.len() <= 128)
                    && body["expirationDateTime"].as_str().is_some_and(|e| self.expiry_ok(e));
                if !ok {
                    return self.refuse(
                        st,
                        400,
                        "InvalidRequest",
                        "subscription request is incomplete or expires too late",
                    );
                }
                let id = format!("5ub5c41b-0000-4000-8000-{:012}", st.subscriptions.len() + 1);
                let mut sub = json!({
                    "id": id,
                    "resource": body["resource"],
                    "changeType": body["changeType"],
                    "notificationUrl": body["notificationUrl"],
                    "expirationDateTime": body["expirationDateTime"],
                });
                if let Some(l) = body.get("lifecycleNotificationUrl") {
                    sub["lifecycleNotificationUrl"] = l.clone();
                }
                st.subscriptions.insert(id, sub.clone());
                Answer::json(201, sub)
            }
            ("GET", []) => Answer::json(200, json!({"value": st.subscriptions.values().cloned().collect::<Vec<_>>()})),
            ("PATCH", [id]) => {
                let Some(e) = body["expirationDateTime"].as_str().filter(|e| self.expiry_ok(e)) else {
                    return self.refuse(st, 400, "InvalidRequest", "expirationDateTime missing or too late");
                };
                match st.subscriptions.get_mut(*id) {
                    Some(sub) => {
                        sub["expirationDateTime"] = json!(e);
                        Answer::json(200, sub.clone())
                    }
                    None => Answer::json(
                        404,
                        json!({"error": {"code": "ResourceNotFound", "message": "no such subscription"}}),
                    ),
                }
            }
            ("POST", [id, "reauthorize"]) => {
                if st.subscriptions.contains_key(*id) {
                    Answer::empty(200)
                } else {
                    Answer::json(404, json!({"error": {"code": "ResourceNotFound", "message": "no such subscription"}}))
                }
            }
            ("DELETE", [id]) => match st.subscriptions.remove(*id) {
                Some(_) => Answer::empty(204),
                None => {
                    Answer::json(404, json!({"error": {"code": "ResourceNotFound", "message": "no such subscription"}}))
                }
            },
            _ => self.refuse(st, 405, "MethodNotAllowed", "not a subscriptions operation"),
        }
    }

    /// Graph refuses an expiry beyond 4230 minutes from now.
    fn expiry_ok(&self, e: &str) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        callrecords::values::parse_timestamp(e).is_some_and(|t| t.secs > now as i64 && t.secs <= now as i64 + 4230 * 60)
    }

    fn ingestion_fault(&self, st: &mut State) -> Option<Answer> {
        if st.outage_left > 0 {
            st.outage_left -= 1;
            st.counters.faults += 1;
            return Some(Answer::json(503, json!({"error": {"code": "ServiceUnavailable", "message": "outage"}})));
        }
        if self.faults.ingestion_429 > 0.0 && chance(&mut st.rng, self.faults.ingestion_429) {
            st.counters.faults += 1;
            return Some(
                Answer::json(429, json!({"error": {"code": "TooManyRequests", "message": "throttled"}}))
                    .with_header("Retry-After", "0"),
            );
        }
        if self.faults.ingestion_5xx > 0.0 && chance(&mut st.rng, self.faults.ingestion_5xx) {
            st.counters.faults += 1;
            let status = if chance(&mut st.rng, 0.5) { 500 } else { 503 };
            return Some(Answer::json(
                status,
                json!({"error": {"code": "InternalServerError", "message": "try again"}}),
            ));
        }
        None
    }

    fn logs_ingestion(&self, st: &mut State, rest: &str, path: &str, req: &Request) -> Answer {
        if let Err(a) = self.bearer_ok(st, req, "monitor") {
            return a;
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let ["dataCollectionRules", dcr, "streams", stream] = parts.as_slice() else {
            return self.refuse(st, 404, "NotFound", "expected /dataCollectionRules/{dcr}/streams/{stream}");
        };
        if !path.ends_with("?api-version=2023-01-01") {
            return self.refuse(st, 400, "InvalidApiVersion", "api-version=2023-01-01 expected");
        }
        if *dcr != DEMO_DCR {
            return self.refuse(st, 404, "DcrNotFound", "Data collection rule not found.");
        }
        let Some(table) = stream.strip_prefix("Custom-") else {
            return self.refuse(st, 400, "InvalidStream", "stream must start with Custom-");
        };
        let max = self.faults.ingestion_max_bytes.unwrap_or(INGESTION_MAX_BYTES).min(INGESTION_MAX_BYTES);
        if req.body.len() > max {
            return self.refuse_413(st);
        }
        let body = if header(&req.headers, "content-encoding") == Some("gzip") {
            let mut out = vec![];
            if flate2::read::GzDecoder::new(&req.body[..]).read_to_end(&mut out).is_err() {
                return self.refuse(st, 400, "InvalidContent", "body is not gzip");
            }
            out
        } else {
            req.body.clone()
        };
        if body.len() > max {
            return self.refuse_413(st);
        }
        if let Some(a) = self.ingestion_fault(st) {
            return a;
        }
        self.accept(st, table, &body, true)
    }

    fn refuse_413(&self, st: &mut State) -> Answer {
        st.counters.faults += 1;
        Answer::json(
            413,
            json!({"error": {"code": "ContentLengthLimitExceeded", "message": "Maximum allowed content length: 1000000 bytes"}}),
        )
    }

    fn data_collector(&self, st: &mut State, path: &str, req: &Request) -> Answer {
        if !path.ends_with("?api-version=2016-04-01") {
            return self.refuse(st, 400, "InvalidApiVersion", "api-version=2016-04-01 expected");
        }
        let date = header(&req.headers, "x-ms-date").unwrap_or_default();
        let log_type = header(&req.headers, "log-type").unwrap_or_default().to_string();
        if header(&req.headers, "content-type") != Some("application/json") {
            return self.refuse(st, 403, "InvalidAuthorization", "Content-Type must be application/json exactly");
        }
        // The signature is recomputed here from the request, the way the service checks it.
        let to_sign = format!("POST\n{}\napplication/json\nx-ms-date:{date}\n/api/logs", req.body.len());
        let key = BASE64.decode(DEMO_SHARED_KEY).unwrap_or_default();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(to_sign.as_bytes());
        let expected = format!("SharedKey {DEMO_WORKSPACE}:{}", BASE64.encode(mac.finalize().into_bytes()));
        if header(&req.headers, "authorization") != Some(expected.as_str()) {
            return self.refuse(st, 403, "InvalidAuthorization", "An invalid scheme or signature was specified.");
        }
        if log_type.is_empty() || !log_type.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return self.refuse(st, 400, "InvalidLogType", "Log-Type must be letters, digits and underscores");
        }
        if let Some(a) = self.ingestion_fault(st) {
            return a;
        }
        self.accept(st, &format!("{log_type}_CL"), &req.body.clone(), false)
    }

    fn forward(&self, st: &mut State, table: &str, req: &Request) -> Answer {
        if header(&req.headers, "content-type") != Some("application/json") {
            return self.refuse(st, 415, "UnsupportedMediaType", "application/json expected");
        }
        if req.body.len() > self.faults.ingestion_max_bytes.unwrap_or(INGESTION_MAX_BYTES) {
            return self.refuse_413(st);
        }
        if let Some(a) = self.ingestion_fault(st) {
            return a;
        }
        self.accept(st, table, &req.body.clone(), true)
    }

    /// Check the rows against the table's columns (as a DCR stream declaration would) and keep them.
    fn accept(&self, st: &mut State, table: &str, body: &[u8], typed: bool) -> Answer {
        let rows: Vec<Value> = match serde_json::from_slice(body) {
            Ok(Value::Array(rows)) => rows,
            _ => return self.refuse(st, 400, "InvalidContent", "body must be a JSON array of rows"),
        };
        let known = callrecords::schema::TABLES.iter().find(|t| t.name == table);
        if typed {
            let Some(t) = known else {
                return self.refuse(st, 404, "InvalidStream", &format!("no stream declared for {table}"));
            };
            for row in &rows {
                let Some(obj) = row.as_object() else {
                    return self.refuse(st, 400, "InvalidContent", "a row is not an object");
                };
                if let Some(c) = obj.keys().find(|k| !t.columns.iter().any(|c| c.name == k.as_str())) {
                    return self.refuse(st, 400, "InvalidContent", &format!("column {c} is not declared for {table}"));
                }
            }
        }
        if let Some(dir) = &self.workspace {
            let mut text = String::new();
            for r in &rows {
                text += &r.to_string();
                text.push('\n');
            }
            let path = dir.join(format!("{table}.ndjson"));
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()));
            if written.is_err() {
                return Answer::json(
                    500,
                    json!({"error": {"code": "InternalServerError", "message": "cannot store rows"}}),
                );
            }
        }
        st.counters.ingestion_accepted += 1;
        st.accepted.entry(table.to_string()).or_default().extend(rows);
        Answer::empty(if typed { 204 } else { 200 })
    }
}

fn too_many(retry_after: u32) -> Answer {
    Answer::json(429, json!({"error": {"code": "TooManyRequests", "message": "Too many requests."}}))
        .with_header("Retry-After", &retry_after.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// xorshift64: a reproducible fault plan without a dependency.
fn chance(state: &mut u64, p: f64) -> bool {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64 <= p
}

/// Bind `addr` (port 0 = any free port) and serve the stand-ins built for that address over
/// HTTP/1.1 from a background thread, until the process ends.
pub fn start_http(
    addr: &str,
    build: impl FnOnce(&str) -> Result<StandIns, String>,
) -> Result<(SocketAddr, Arc<StandIns>), String> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let standins = Arc::new(build(&format!("http://{local}"))?);
    let s = standins.clone();
    std::thread::Builder::new()
        .name("stand-ins".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
            let Ok(rt) = rt else { return };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                while let Ok((stream, _)) = listener.accept().await {
                    let s = s.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| answer_http(s.clone(), req));
                        let io = wasmtime_wasi_http::io::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                    });
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok((local, standins))
}

async fn answer_http(
    s: Arc<StandIns>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::io::Error> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes().to_vec();
    let request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
    };
    let answer = tokio::task::spawn_blocking(move || s.answer(&request)).await.map_err(std::io::Error::other)?;
    match answer {
        Answer::Drop => Err(std::io::Error::other("connection dropped by the fault plan")),
        Answer::Response { status, headers, body } => {
            let mut r = hyper::Response::builder().status(status);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.body(http_body_util::Full::new(bytes::Bytes::from(body))).map_err(std::io::Error::other)
        }
    }
}
