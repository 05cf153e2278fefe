//! Fetching a call: the callRecord with its sessions, every further page of sessions, every page
//! of participants_v2; then the pages merged, expanded into rows and left for shipping. The
//! webhook and backfill jobs both fetch calls this way.

use super::step::{Pending, Step};
use super::{CallDone, CallFailed, JobKind, Run};
use crate::entra::Scope;
use crate::http::OutgoingRequest;
use crate::{expand, graph, schema};

/// A request about one call.
#[derive(Debug, Clone)]
pub(super) enum CallStep {
    /// The callRecord with its sessions and their segments.
    Record { id: String, tenant: String },
    /// A further page of its sessions.
    SessionPage { id: String, tenant: String, link: String },
    /// Its participants_v2: the first page (no link) or a further one.
    Participants { id: String, tenant: String, link: Option<String> },
}

impl CallStep {
    /// The callRecord id.
    pub(super) fn id(&self) -> &str {
        match self {
            CallStep::Record { id, .. } | CallStep::SessionPage { id, .. } | CallStep::Participants { id, .. } => id,
        }
    }

    /// The tenant the call belongs to (whose Graph token reads it).
    pub(super) fn tenant(&self) -> &str {
        match self {
            CallStep::Record { tenant, .. }
            | CallStep::SessionPage { tenant, .. }
            | CallStep::Participants { tenant, .. } => tenant,
        }
    }
}

/// The pages of a call read so far.
#[derive(Default)]
pub(super) struct Fetch {
    record: String,
    sessions: Vec<String>,
    participants: Vec<String>,
}

impl Step {
    fn call_id(&self) -> Option<&str> {
        match self {
            Step::Call(call) => Some(call.id()),
            _ => None,
        }
    }
}

impl Run {
    pub(super) fn call_request(&self, call: &CallStep) -> crate::Result<OutgoingRequest> {
        let g = self.config.graph_url.as_str();
        let token = self.cached_token(Scope::Graph, call.tenant());
        match call {
            CallStep::Record { id, .. } => graph::call_record_request(g, id, token),
            CallStep::SessionPage { link, .. } => graph::next_page_request(g, link, token),
            CallStep::Participants { id, link, .. } => match link {
                None => graph::participants_request(g, id, token),
                Some(l) => graph::next_page_request(g, l, token),
            },
        }
    }

    /// A page of a call: keep it, then ask for the next page, participants_v2, or finish the call.
    pub(super) fn on_call_page(&mut self, call: CallStep, body: &[u8]) {
        let text = || String::from_utf8_lossy(body).into_owned();
        match call {
            CallStep::Record { id, tenant } => {
                let record = text();
                let link = graph::next_link(&record);
                self.fetches.insert(id.clone(), Fetch { record, ..Default::default() });
                self.after_sessions(id, tenant, link, "callRecord");
            }
            CallStep::SessionPage { id, tenant, .. } => {
                let page = text();
                let link = graph::next_link(&page);
                if let Some(f) = self.fetches.get_mut(&id) {
                    f.sessions.push(page);
                }
                self.after_sessions(id, tenant, link, "session page");
            }
            CallStep::Participants { id, tenant, .. } => {
                let page = text();
                match graph::next_link(&page) {
                    Ok(link) => {
                        if let Some(f) = self.fetches.get_mut(&id) {
                            f.participants.push(page);
                        }
                        match link {
                            Some(l) => self.queue.push_front(Pending::new(Step::Call(CallStep::Participants {
                                id,
                                tenant,
                                link: Some(l),
                            }))),
                            None => self.finish_call(&id),
                        }
                    }
                    Err(e) => self.call_failed(&id, format!("participants_v2 page: {e}")),
                }
            }
        }
    }

    /// After the record or a page of its sessions (`what`), whose next-page link is `link`: the
    /// next page of sessions, else the first page of participants_v2.
    fn after_sessions(&mut self, id: String, tenant: String, link: crate::Result<Option<String>>, what: &str) {
        let step = match link {
            Ok(Some(link)) => CallStep::SessionPage { id, tenant, link },
            Ok(None) => CallStep::Participants { id, tenant, link: None },
            Err(e) => return self.call_failed(&id, format!("{what}: {e}")),
        };
        self.queue.push_front(Pending::new(Step::Call(step)));
    }

    pub(super) fn call_step_failed(&mut self, call: CallStep, reason: String) {
        match call {
            CallStep::Participants { id, .. } if self.fetches.contains_key(&id) => {
                // participants_v2 is a complement: without it the record's own lists still give rows.
                self.report.lifecycle.push(format!("call {id}: participants_v2 not read ({reason})"));
                self.finish_call(&id);
            }
            other => self.call_failed(other.id(), reason),
        }
    }

    /// The call cannot be fetched: drop what was read of it and every request left for it.
    fn call_failed(&mut self, id: &str, reason: String) {
        self.fetches.remove(id);
        self.queue.retain(|p| p.step.call_id() != Some(id));
        self.report.failed.push(CallFailed { id: id.into(), reason: reason.clone() });
        self.report.ok = false;
        self.report.error.get_or_insert_with(|| format!("call {id}: {reason}"));
    }

    /// Every page is read: merge, expand, and leave the rows for shipping.
    fn finish_call(&mut self, id: &str) {
        let Some(f) = self.fetches.remove(id) else { return };
        // An empty participants_v2 answer must not hide the record's own list.
        let participants: Vec<String> = f.participants.into_iter().filter(|p| !is_empty_page(p)).collect();
        let result = graph::merge_pages(&f.record, &f.sessions, &participants).and_then(|merged| {
            let tables = expand::expand(&merged)?;
            let seed = if self.config.seed_table { Some(expand::seed_row(&merged)?) } else { None };
            Ok((merged, tables, seed))
        });
        match result {
            Ok((merged, tables, seed)) => {
                let mut rows = 0;
                for t in tables {
                    rows += t.rows.len() as u32;
                    self.unshipped.entry(t.table.name).or_default().extend(t.rows);
                }
                if let Some(seed) = seed {
                    rows += 1;
                    self.unshipped.entry(schema::SEED.name).or_default().push(seed);
                }
                self.report.calls.push(CallDone { id: id.into(), version: record_version(&merged), rows });
                if self.job_kind == JobKind::Backfill {
                    self.progress = Some(self.progress_now(None));
                }
            }
            Err(e) => self.call_failed(id, format!("expand: {e}")),
        }
    }
}

fn is_empty_page(page: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(page).is_ok_and(|v| v["value"].as_array().is_some_and(|a| a.is_empty()))
}

fn record_version(record: &str) -> i64 {
    #[derive(serde::Deserialize)]
    struct V {
        version: Option<serde_json::Value>,
    }
    serde_json::from_str::<V>(record)
        .ok()
        .and_then(|v| v.version)
        .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .unwrap_or(0)
}
