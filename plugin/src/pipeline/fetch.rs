//! Fetching a call: the callRecord with its sessions and, at the same time, its participants_v2;
//! then every further page of each (two chains of `@odata.nextLink`s in parallel); then the pages
//! merged, expanded into rows and left for shipping. The webhook and backfill jobs both fetch
//! calls this way, many calls at once.

use super::step::{Failure, Pending, Step};
use super::{CallDone, CallFailed, CallKey, JobKind, Run};
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

    /// The record it is about: its tenant's record of its id.
    pub(super) fn key(&self) -> CallKey {
        CallKey::new(self.tenant(), self.id())
    }
}

/// Pages of one chain (sessions after the record, or participants_v2) followed for one call:
/// 60,000 sessions and 130,000 participants at Graph's page sizes, far past any real meeting. A
/// chain that goes on (a bug or a hostile answer) fails its call instead of running forever.
pub(super) const MAX_PAGES_PER_CHAIN: usize = 1_000;

/// The pages of a call read so far.
#[derive(Default)]
pub(super) struct Fetch {
    record: Option<String>,
    sessions: Vec<String>,
    sessions_done: bool,
    participants: Vec<String>,
    participants_done: bool,
}

impl Step {
    /// A request about the record `key`.
    fn is_about(&self, key: &CallKey) -> bool {
        matches!(self, Step::Call(call) if key.is(call.tenant(), call.id()))
    }
}

impl Run {
    /// Fetch call `id` of `tenant`: the record and its participants_v2 go out together.
    pub(super) fn queue_call(&mut self, id: String, tenant: String) {
        self.fetches.insert(CallKey::new(&tenant, &id), Fetch::default());
        let participants = CallStep::Participants { id: id.clone(), tenant: tenant.clone(), link: None };
        self.queue.push_back(Pending::new(Step::Call(CallStep::Record { id, tenant })));
        self.queue.push_back(Pending::new(Step::Call(participants)));
        self.prefetch_sink_token();
    }

    /// Calls being fetched (queued, in flight or waiting for pages).
    pub(super) fn fetching(&self) -> bool {
        !self.fetches.is_empty()
    }

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

    /// A page of a call: keep it, then ask for the next page of its chain, or finish the call.
    pub(super) fn on_call_page(&mut self, call: CallStep, body: &[u8], now: u64) {
        let page = String::from_utf8_lossy(body).into_owned();
        let key = call.key();
        let id = key.id.clone();
        // An answer for a call that failed meanwhile (its other chain gave up) is of no use.
        if !self.fetches.contains_key(&key) {
            return;
        }
        let link = graph::next_link(&page);
        // The page just read, to tell a link that names it again (Microsoft's own List
        // participants_v2 example does): following it would read the same page until the cap.
        let asked = self.call_request(&call).ok().map(|r| r.url);
        let f = self.fetches.get_mut(&key).expect("checked above");
        let (what, chain_next) = match call {
            CallStep::Record { tenant, .. } => {
                f.record = Some(page);
                ("callRecord", link.map(|l| l.map(|link| CallStep::SessionPage { id: id.clone(), tenant, link })))
            }
            CallStep::SessionPage { tenant, .. } => {
                f.sessions.push(page);
                ("session page", link.map(|l| l.map(|link| CallStep::SessionPage { id: id.clone(), tenant, link })))
            }
            CallStep::Participants { tenant, .. } => {
                f.participants.push(page);
                let next = link.map(|l| l.map(|l| CallStep::Participants { id: id.clone(), tenant, link: Some(l) }));
                ("participants_v2 page", next)
            }
        };
        let read = if what == "participants_v2 page" { f.participants.len() } else { f.sessions.len() };
        let chain_next = match chain_next {
            Ok(Some(next)) if asked.is_some() && self.call_request(&next).ok().map(|r| r.url) == asked => {
                let note =
                    format!("call {id}: the {what}'s @odata.nextLink names the page just read; taken as the last");
                self.report.lifecycle.push(note);
                Ok(None)
            }
            other => other,
        };
        match chain_next {
            Ok(Some(_)) if read >= MAX_PAGES_PER_CHAIN => self.call_failed(
                &key,
                format!("{what}: Graph's @odata.nextLink chain goes past {MAX_PAGES_PER_CHAIN} pages"),
                Failure::Unusable,
            ),
            Ok(Some(next)) => self.queue.push_front(Pending::new(Step::Call(next))),
            Ok(None) => {
                let f = self.fetches.get_mut(&key).expect("checked above");
                if what == "participants_v2 page" {
                    f.participants_done = true;
                } else {
                    f.sessions_done = true;
                }
                self.finish_call_if_read(&key, now);
            }
            Err(e) => self.call_failed(&key, format!("{what}: {e}"), Failure::Unusable),
        }
    }

    pub(super) fn call_step_failed(&mut self, call: CallStep, reason: String, why: Failure, now: u64) {
        let key = call.key();
        match call {
            // Already given up (the other chain failed first).
            _ if !self.fetches.contains_key(&key) => {}
            CallStep::Participants { id, .. } => {
                // participants_v2 is a complement: without it the record's own lists still give rows.
                self.report.lifecycle.push(format!("call {id}: participants_v2 not read ({reason})"));
                if let Some(f) = self.fetches.get_mut(&key) {
                    f.participants_done = true;
                }
                self.finish_call_if_read(&key, now);
            }
            _ => self.call_failed(&key, reason, why),
        }
    }

    /// The call cannot be fetched: drop what was read of it and every request left for it.
    fn call_failed(&mut self, key: &CallKey, reason: String, why: Failure) {
        self.fetches.remove(key);
        self.queue.retain(|p| !p.step.is_about(key));
        let (status, malformed) = (why.status(), why == Failure::Unusable);
        let (id, tenant_id) = (key.id.clone(), key.tenant.clone());
        self.report.failed.push(CallFailed { id, tenant_id, reason: reason.clone(), status, malformed });
        self.report.failed_count += 1;
        if self.job_kind == JobKind::Backfill {
            keep_latest(&mut self.report.failed);
        }
        self.report.ok = false;
        self.report.error.get_or_insert_with(|| format!("call {}: {reason}", key.id));
    }

    /// Once both chains are read: merge, expand, and leave the rows for shipping.
    fn finish_call_if_read(&mut self, key: &CallKey, now: u64) {
        if !self.fetches.get(key).is_some_and(|f| f.sessions_done && f.participants_done) {
            return;
        }
        let Some(f) = self.fetches.remove(key) else { return };
        let Some(record) = f.record else { return };
        // An empty participants_v2 answer must not hide the record's own list.
        let participants: Vec<String> = f.participants.into_iter().filter(|p| !is_empty_page(p)).collect();
        let result = graph::merge_pages(&record, &f.sessions, &participants).and_then(|merged| {
            let tables = expand::expand(&merged)?;
            let seed = if self.config.seed_table { Some(expand::seed_row(&merged)?) } else { None };
            Ok((merged, tables, seed))
        });
        match result {
            Ok((merged, tables, seed)) => {
                // Tables an earlier attempt shipped (a queued call's retry) are not sent again.
                let done = self.done_tables.remove(key).unwrap_or_default();
                let mut all: Vec<(&'static str, Vec<String>)> =
                    tables.into_iter().map(|t| (t.table.name, t.rows)).collect();
                if let Some(seed) = seed {
                    all.push((schema::SEED.name, vec![seed]));
                }
                let (mut rows, mut with_rows) = (0, vec![]);
                for (table, table_rows) in all {
                    if done.contains(table) || table_rows.is_empty() || !self.config.sink.takes(table) {
                        continue;
                    }
                    rows += table_rows.len() as u32;
                    with_rows.push(table);
                    self.keep_unshipped(table, table_rows, now);
                }
                let version = record_version(&merged);
                let (id, tenant_id) = (key.id.clone(), key.tenant.clone());
                let call = CallDone { id, tenant_id, version, rows, shipped: false, tables_accepted: vec![] };
                self.report.calls.push(call);
                self.report.calls_done += 1;
                self.shipping.entry(key.clone()).or_default().accepted.extend(done);
                self.expanded(key, with_rows);
                if self.job_kind == JobKind::Backfill {
                    keep_latest(&mut self.report.calls);
                    self.progress = Some(self.progress_now(None));
                }
            }
            Err(e) => self.call_failed(key, format!("expand: {e}"), Failure::Unusable),
        }
    }
}

/// A backfill's report keeps only the latest calls (they are all counted).
fn keep_latest<T>(list: &mut Vec<T>) {
    if list.len() > super::REPORT_CALLS_KEPT {
        list.drain(..list.len() - super::REPORT_CALLS_KEPT);
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
