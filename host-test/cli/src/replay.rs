//! The offline pipeline: recorded webhook requests -> notifications -> callRecords (from a Graph
//! stand-in that serves the sample files, paging included) -> rows -> ready-to-send, signed
//! Sentinel requests written to a folder. Every step runs in the component.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use callrecords_host::Runtime;
use callrecords_host::bindings::{graph, sentinel, types};
use callrecords_host::rawhttp::parse_request;
use callrecords_test_kit::demo::{
    CONTOSO, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_DCE, DEMO_DCR, DEMO_SHARED_KEY, DEMO_WORKSPACE, FABRIKAM,
    demo_settings,
};

/// Graph base URL the replay pretends to call.
pub const GRAPH_BASE: &str = "https://graph.microsoft.com";
/// Login base URL the replay pretends to call.
pub const LOGIN_BASE: &str = "https://login.microsoftonline.com";
/// The seed-compatible table, sent with the Data Collector API as the 2020 setup did.
const SEED_TABLE: &str = callrecords::schema::SEED.name;
/// Token the stand-in token endpoint issues.
const DEMO_GRAPH_TOKEN: &str = "demo-graph-token";
const DEMO_MONITOR_TOKEN: &str = "demo-monitor-token";

/// What the replay did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Webhook requests read.
    pub webhook_requests: usize,
    /// Validation handshakes answered.
    pub validations: usize,
    /// callRecord notifications accepted (after folding duplicates).
    pub notifications: usize,
    /// Lifecycle events seen.
    pub lifecycle_events: usize,
    /// Items rejected, by reason.
    pub rejected: BTreeMap<String, usize>,
    /// Distinct calls fetched and expanded.
    pub calls: usize,
    /// Calls that could not be fetched, with the reason.
    pub failed_calls: Vec<(String, String)>,
    /// Requests sent to the Graph stand-in (tokens, records, pages).
    pub graph_requests: usize,
    /// Session and participant pages followed.
    pub pages: usize,
    /// Rows per table.
    pub rows: BTreeMap<String, usize>,
    /// Ingestion requests written.
    pub ingestion_requests: usize,
    /// Bytes of those requests' bodies.
    pub ingestion_bytes: usize,
    /// Where they were written.
    pub out_dir: PathBuf,
}

/// Run the replay over `examples` (the `examples/graph` folder), writing to `out`.
pub fn run(rt: &Runtime, examples: &Path, out: &Path, progress: &mut dyn FnMut(String)) -> Result<Summary, String> {
    let mut summary = Summary { out_dir: out.to_path_buf(), ..Default::default() };
    let graph_stand_in = GraphStandIn::load(&examples.join("callrecords"))?;
    for sub in ["rows", "requests"] {
        let dir = out.join(sub);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("clear {}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }

    // 1. Webhook requests.
    let settings = demo_settings(&[CONTOSO, FABRIKAM]);
    let mut call_ids: Vec<String> = vec![];
    for path in sorted_files(&examples.join("notifications"), "http")? {
        let raw = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let req = parse_request(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
        let o = rt.handle(&settings, &req).map_err(|e| format!("{}: {e}", path.display()))?;
        summary.webhook_requests += 1;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let mut line = format!("webhook  {name:<42} -> {}", o.response.status);
        if matches!(o.kind, callrecords_host::bindings::webhook::RequestKind::Validation) {
            summary.validations += 1;
            line += " validation token echoed";
        } else {
            line += &format!(
                " {} notification(s), {} lifecycle, {} rejected",
                o.notifications.len(),
                o.lifecycle.len(),
                o.rejected.len()
            );
        }
        for l in &o.lifecycle {
            line += &format!("; lifecycle {} for subscription {}", l.event, l.subscription_id);
        }
        for r in &o.rejected {
            *summary.rejected.entry(r.reason.wit_name().to_string()).or_default() += 1;
            line += &format!("; rejected item {}: {}", r.index, r.detail);
        }
        summary.lifecycle_events += o.lifecycle.len();
        for n in o.notifications {
            summary.notifications += 1;
            if !call_ids.contains(&n.call_id) {
                call_ids.push(n.call_id);
            }
        }
        progress(line);
    }

    // 2. Tokens (client credentials, answered by the stand-in token endpoint).
    let creds = graph::Credentials {
        login_base_url: LOGIN_BASE.into(),
        tenant_id: CONTOSO.into(),
        client_id: DEMO_CLIENT_ID.into(),
        client_secret: DEMO_CLIENT_SECRET.into(),
    };
    let graph_token = token(rt, &creds, graph::Scope::Graph, &mut summary)?;
    let monitor_token = token(rt, &creds, graph::Scope::Monitor, &mut summary)?;

    // 3. Fetch, merge and expand every call.
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in &call_ids {
        match fetch(rt, &graph_stand_in, id, &graph_token, &mut summary) {
            Ok(record) => {
                let tables = rt.expand(&record).map_err(|e| format!("expand {id}: {e}"))?;
                let seed = rt.seed_row(&record).map_err(|e| format!("seed row {id}: {e}"))?;
                let mut counts = vec![];
                for t in tables {
                    counts.push(format!("{} {}", t.rows.len(), t.table));
                    rows.entry(t.table).or_default().extend(t.rows);
                }
                rows.entry(SEED_TABLE.into()).or_default().push(seed);
                summary.calls += 1;
                progress(format!("call     {id} -> {}", counts.join(", ")));
            }
            Err(reason) => {
                progress(format!("call     {id} -> not fetched: {reason}"));
                summary.failed_calls.push((id.clone(), reason));
            }
        }
    }

    // 4. Rows to files, then batched and signed requests (each table's stream as the schema names it).
    let streams: HashMap<String, String> =
        rt.tables().map_err(|e| format!("schema: {e}"))?.into_iter().map(|t| (t.name, t.stream)).collect();
    let mut n = 0;
    for (table, table_rows) in &rows {
        summary.rows.insert(table.clone(), table_rows.len());
        let mut ndjson = table_rows.join("\n");
        ndjson.push('\n');
        write(&out.join("rows").join(format!("{table}.ndjson")), ndjson.as_bytes())?;
        let seed = table == SEED_TABLE;
        let sink = if seed { sentinel::Sink::DataCollector } else { sentinel::Sink::LogsIngestion };
        for batch in rt.batch_rows(table_rows, sink).map_err(|e| format!("batch {table}: {e}"))? {
            let req = if seed {
                let target = sentinel::DataCollectorTarget {
                    workspace_id: DEMO_WORKSPACE.into(),
                    shared_key: DEMO_SHARED_KEY.into(),
                    log_type: table.trim_end_matches("_CL").into(),
                    time_generated_field: Some("startDateTime".into()),
                    base_url: None,
                };
                let date = httpdate::fmt_http_date(SystemTime::now());
                rt.data_collector_request(&target, &date, &batch.body)
            } else {
                let target = sentinel::LogsIngestionTarget {
                    endpoint: DEMO_DCE.into(),
                    dcr_immutable_id: DEMO_DCR.into(),
                    stream: streams.get(table).cloned().ok_or_else(|| format!("{table}: not in the schema"))?,
                };
                rt.logs_ingestion_request(&target, &monitor_token, &batch.body, true)
            }
            .map_err(|e| format!("request for {table}: {e}"))?;
            n += 1;
            summary.ingestion_requests += 1;
            summary.ingestion_bytes += req.body.len();
            let kind = if seed { "data-collector" } else { "logs-ingestion" };
            let path = out.join("requests").join(format!("{n:03}-{kind}-{table}.http"));
            write(&path, &raw_http(&req))?;
            progress(format!(
                "request  {} -> {} rows, {} bytes{}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                batch.rows,
                req.body.len(),
                if batch.truncated_fields > 0 {
                    format!(", {} field(s) cut", batch.truncated_fields)
                } else {
                    String::new()
                }
            ));
        }
    }
    let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    write(&out.join("summary.json"), json.as_bytes())?;
    Ok(summary)
}

fn token(
    rt: &Runtime,
    creds: &graph::Credentials,
    scope: graph::Scope,
    summary: &mut Summary,
) -> Result<String, String> {
    let req = rt.token_request(creds, scope).map_err(|e| format!("token request: {e}"))?;
    summary.graph_requests += 1;
    let (status, body) = token_stand_in(&req, scope);
    Ok(rt.parse_token_response(status, &body).map_err(|e| format!("token: {e}"))?.token)
}

/// A token endpoint that checks the client-credentials form like Entra does.
fn token_stand_in(req: &types::OutgoingRequest, scope: graph::Scope) -> (u16, Vec<u8>) {
    let form: HashMap<String, String> = form_urlencoded::parse(&req.body).into_owned().collect();
    let ok = req.method == "POST"
        && req.url == format!("{LOGIN_BASE}/{CONTOSO}/oauth2/v2.0/token")
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(DEMO_CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(DEMO_CLIENT_SECRET);
    if !ok {
        return (
            401,
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#
                .to_vec(),
        );
    }
    let token = match scope {
        graph::Scope::Graph => DEMO_GRAPH_TOKEN,
        graph::Scope::Monitor => DEMO_MONITOR_TOKEN,
    };
    (200, format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{token}"}}"#).into_bytes())
}

fn fetch(rt: &Runtime, g: &GraphStandIn, id: &str, token: &str, summary: &mut Summary) -> Result<String, String> {
    let send = |req: types::OutgoingRequest, summary: &mut Summary| -> Result<String, String> {
        summary.graph_requests += 1;
        let (status, body) = g.answer(&req, token);
        rt.check_response(status, &[], body.as_bytes(), 0).map_err(|e| e.to_string())?;
        Ok(body)
    };
    let record = send(rt.call_record_request(GRAPH_BASE, id, token).map_err(|e| e.to_string())?, summary)?;
    let mut session_pages = vec![];
    let mut link = rt.next_link(&record).map_err(|e| e.to_string())?;
    while let Some(l) = link {
        let page = send(rt.next_page_request(GRAPH_BASE, &l, token).map_err(|e| e.to_string())?, summary)?;
        link = rt.next_link(&page).map_err(|e| e.to_string())?;
        session_pages.push(page);
    }
    let mut participant_pages = vec![];
    let mut req = Some(rt.participants_request(GRAPH_BASE, id, token).map_err(|e| e.to_string())?);
    while let Some(r) = req.take() {
        let page = send(r, summary)?;
        if let Some(l) = rt.next_link(&page).map_err(|e| e.to_string())? {
            req = Some(rt.next_page_request(GRAPH_BASE, &l, token).map_err(|e| e.to_string())?);
        }
        participant_pages.push(page);
    }
    // A participants_v2 answer with no participants must not hide the record's own data.
    participant_pages.retain(|p| {
        serde_json::from_str::<Value>(p).is_ok_and(|v| v["value"].as_array().is_some_and(|a| !a.is_empty()))
    });
    summary.pages += session_pages.len() + participant_pages.len();
    rt.merge_pages(&record, &session_pages, &participant_pages).map_err(|e| e.to_string())
}

/// Serves `examples/graph/callrecords` like Graph: records by id, pages by their skiptoken,
/// participants_v2 from `<record>.participants-N.json` or the record's inline list; checks the
/// bearer token; 404 with a Graph error body for anything else.
struct GraphStandIn {
    records: HashMap<String, (String, String)>,
    pages: HashMap<String, String>,
}

impl GraphStandIn {
    fn load(dir: &Path) -> Result<Self, String> {
        let mut records = HashMap::new();
        let mut pages = HashMap::new();
        for path in sorted_files(dir, "json")? {
            let body = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let v: Value = serde_json::from_str(&body).map_err(|e| format!("{}: {e}", path.display()))?;
            match v["id"].as_str() {
                Some(id) if v.get("value").is_none() => {
                    records.insert(id.to_string(), (stem, body));
                }
                _ => {
                    pages.insert(stem, body);
                }
            }
        }
        Ok(GraphStandIn { records, pages })
    }

    fn answer(&self, req: &types::OutgoingRequest, token: &str) -> (u16, String) {
        let auth = req.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.as_str());
        if auth != Some(&format!("Bearer {token}")) {
            return (401, graph_error("InvalidAuthenticationToken", "Access token is empty or invalid."));
        }
        let url = &req.url;
        if let Some((_, token)) = url.split_once("$skiptoken=") {
            let key = token.split('&').next().unwrap_or_default();
            return match self.pages.get(key) {
                Some(p) => (200, p.clone()),
                None => (404, graph_error("NotFound", "No such page.")),
            };
        }
        let prefix = format!("{GRAPH_BASE}/v1.0/communications/callRecords/");
        let Some(rest) = url.strip_prefix(&prefix) else {
            return (404, graph_error("NotFound", "Resource not found."));
        };
        let path = rest.split('?').next().unwrap_or_default();
        let (id, participants) = match path.strip_suffix("/participants_v2") {
            Some(id) => (id, true),
            None => (path, false),
        };
        let Some((stem, body)) = self.records.get(id) else {
            return (404, graph_error("NotFound", "The requested resource does not exist."));
        };
        if !participants {
            return (200, body.clone());
        }
        if let Some(p) = self.pages.get(&format!("{stem}.participants-1")) {
            return (200, p.clone());
        }
        let inline = serde_json::from_str::<Value>(body).ok().and_then(|v| v.get("participants_v2").cloned());
        (200, serde_json::json!({"value": inline.unwrap_or(Value::Array(vec![]))}).to_string())
    }
}

fn graph_error(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
}

/// A request as HTTP/1.1 bytes, ready for `curl --data-binary` or `nc`.
pub fn raw_http(req: &types::OutgoingRequest) -> Vec<u8> {
    let (host, path) = req
        .url
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into())))
        .unwrap_or(("", req.url.clone()));
    let mut out = format!("{} {path} HTTP/1.1\r\nHost: {host}\r\n", req.method);
    for (n, v) in &req.headers {
        out += &format!("{n}: {v}\r\n");
    }
    out += &format!("Content-Length: {}\r\n\r\n", req.body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&req.body);
    bytes
}
