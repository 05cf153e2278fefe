//! The ingestion stand-ins: Logs Ingestion (bearer token, DCR id, stream, undeclared columns dropped
//! as a DCR drops them, the 1 MB limit), the Data Collector API (SharedKey signature recomputed here) and the
//! forward-mode shipper input.

use super::*;

/// The Logs Ingestion API versions the service takes: the GA one the core sends, and the preview
/// one Fluent Bit's `azure_logs_ingestion` still sends (5.1.1).
const LOGS_INGESTION_API_VERSIONS: [&str; 2] = ["2023-01-01", "2021-11-01-preview"];

impl StandIns {
    pub(super) fn ingestion_fault(&self, st: &mut State) -> Option<Answer> {
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

    pub(super) fn logs_ingestion(&self, st: &mut State, rest: &str, path: &str, req: &Request) -> Answer {
        if let Err(a) = self.bearer_ok(st, req, "monitor") {
            return a;
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let ["dataCollectionRules", dcr, "streams", stream] = parts.as_slice() else {
            return self.refuse(st, 404, "NotFound", "expected /dataCollectionRules/{dcr}/streams/{stream}");
        };
        let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let version = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "api-version").map(|(_, v)| v);
        if !version.is_some_and(|v| LOGS_INGESTION_API_VERSIONS.contains(&v.as_ref())) {
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

    pub(super) fn refuse_413(&self, st: &mut State) -> Answer {
        st.counters.faults += 1;
        Answer::json(
            413,
            json!({"error": {"code": "ContentLengthLimitExceeded", "message": "Maximum allowed content length: 1000000 bytes"}}),
        )
    }

    pub(super) fn data_collector(&self, st: &mut State, path: &str, req: &Request) -> Answer {
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
        // `TimeGenerated` is a reserved name: the API refuses a record that carries one (its time
        // comes from the `time-generated-field` header).
        let rows: Vec<Value> =
            serde_json::from_slice(&req.body).ok().and_then(|v: Value| v.as_array().cloned()).unwrap_or_default();
        if rows.iter().any(|r| r.as_object().is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case("TimeGenerated"))))
        {
            return self.refuse(st, 400, "InvalidDataFormat", "TimeGenerated is a reserved field name");
        }
        if let Some(a) = self.ingestion_fault(st) {
            return a;
        }
        self.accept(st, &format!("{log_type}_CL"), &req.body.clone(), false)
    }

    pub(super) fn forward(&self, st: &mut State, table: &str, req: &Request) -> Answer {
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
    pub(super) fn accept(&self, st: &mut State, table: &str, body: &[u8], typed: bool) -> Answer {
        let mut rows: Vec<Value> = match serde_json::from_slice(body) {
            Ok(Value::Array(rows)) => rows,
            _ => return self.refuse(st, 400, "InvalidContent", "body must be a JSON array of rows"),
        };
        let known = callrecords::schema::TABLES.iter().find(|t| t.name == table);
        if typed {
            let Some(t) = known else {
                return self.refuse(st, 404, "InvalidStream", &format!("no stream declared for {table}"));
            };
            // A DCR keeps the columns its stream declares and drops the others without an error
            // (Fluent Bit adds `@timestamp` to every record); the dropped names are kept so tests
            // can tell the core never sends a column its own schema does not declare.
            for row in &mut rows {
                let Some(obj) = row.as_object_mut() else {
                    return self.refuse(st, 400, "InvalidContent", "a row is not an object");
                };
                obj.retain(|k, _| {
                    let declared = t.columns.iter().any(|c| c.name == k.as_str());
                    if !declared {
                        st.dropped_columns.insert(format!("{table}.{k}"));
                    }
                    declared
                });
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
