//! The Microsoft Graph stand-in: callRecords by id with Graph's paging (sessions 60, participants_v2
//! 130 per answer, `@odata.nextLink`), List by `startDateTime`, subscriptions, and the PSTN logs
//! (`logs.rs`).

use super::*;

impl StandIns {
    pub(super) fn graph(&self, st: &mut State, route: &str, path: &str, req: &Request) -> Answer {
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
        // The PSTN logs have limits of their own (`logs.rs`).
        let log_request = route.contains("/getPstnCalls(") || route.contains("/getDirectRoutingCalls(");
        if self.latency.graph_per_tenant_20s > 0 && !log_request {
            // Graph counts per app per tenant; the token names its tenant (`standin.graph.<tenant>.<n>`).
            let auth = header(&req.headers, "authorization").unwrap_or_default();
            let tenant = auth.split('.').nth(2).unwrap_or_default().to_string();
            let now = self.now_ms();
            if let Err(retry_after) =
                st.throttle.entry(tenant).or_default().admit(now, self.latency.graph_per_tenant_20s)
            {
                st.counters.throttled += 1;
                return too_many(retry_after);
            }
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
        for log in callrecords::graph::pstn::PstnLog::ALL {
            if let Some(call) = rest.strip_prefix('/').filter(|r| r.starts_with(&format!("{}(", log.function()))) {
                let auth = header(&req.headers, "authorization").unwrap_or_default();
                let tenant = auth.split('.').nth(2).unwrap_or_default().to_string();
                let skip = params.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
                return self.logs(st, log, call, &tenant, skip);
            }
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

    pub(super) fn page(&self, items: &[Value], skip: usize, size: usize, next: &str) -> Answer {
        let value: Vec<Value> = items.iter().skip(skip).take(size).cloned().collect();
        let mut page = json!({ "value": value });
        if skip + size < items.len() {
            page["@odata.nextLink"] =
                json!(format!("{}/graph/v1.0/communications/callRecords/{next}$skiptoken={}", self.base, skip + size));
        }
        Answer::json(200, page)
    }

    pub(super) fn list(&self, st: &mut State, params: &HashMap<String, String>) -> Answer {
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
        // Graph's List returns each callRecord's own properties (not its sessions).
        let items: Vec<Value> = ids
            .iter()
            .map(|(id, c)| {
                let mut item = json!({"id": id, "startDateTime": c.start});
                for key in ["version", "type", "modalities", "lastModifiedDateTime", "endDateTime", "joinWebUrl"] {
                    if let Some(v) = c.record.get(key) {
                        item[key] = v.clone();
                    }
                }
                item
            })
            .collect();
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

    pub(super) fn subscriptions_api(&self, st: &mut State, rest: &str, req: &Request) -> Answer {
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
    pub(super) fn expiry_ok(&self, e: &str) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        callrecords::values::parse_timestamp(e).is_some_and(|t| t.secs > now as i64 && t.secs <= now as i64 + 4230 * 60)
    }
}
