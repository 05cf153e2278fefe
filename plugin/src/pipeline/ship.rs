//! Shipping rows: the rows of many calls gathered per table and cut into batches the sink takes
//! (≤ 1 MB for Logs Ingestion), one request per batch (Logs Ingestion with the Monitor token, Data
//! Collector signed at `now`, or forward), all of them in flight together; the tally of what was
//! accepted, and the halves of a batch the endpoint found too large.
//!
//! Rows wait for more calls' rows while calls are still being fetched, and go when no fetch is
//! left, when a batch's worth has gathered, or (a backfill, which ships as it goes) when the
//! oldest has waited [`FLUSH_AFTER_MS`].
//!
//! Each flush is numbered and knows the calls whose rows it took, and which tables each has rows
//! in. Once every batch of a table in a flush is settled, that table is settled for those calls;
//! a call whose tables were all accepted is shipped (a backfill names it in its next progress, so
//! its checkpoint moves call by call). A call with a table refused is not shipped, and the tables
//! that were accepted are reported (`tables_accepted`), so that a queue's retry sends only the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use super::step::{Pending, Step};
use super::{CallKey, JobKind, Run};
use crate::config::SinkConfig;
use crate::entra::Scope;
use crate::http::OutgoingRequest;
use crate::{monitor, schema};

/// A backfill ships rows that have waited this long, whatever else is being fetched.
pub const FLUSH_AFTER_MS: u64 = 2_000;
/// Rows of this many bytes make a batch worth sending at once.
const FLUSH_AT_BYTES: usize = monitor::LOGS_INGESTION_MAX_BYTES;

/// One flush: per table, its batches not settled yet (and whether one was refused); and the calls
/// whose rows it took, each with the tables it has rows in.
#[derive(Default)]
pub(super) struct Flush {
    tables: BTreeMap<&'static str, Tally>,
    calls: Vec<(CallKey, Vec<&'static str>)>,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    outstanding: u32,
    refused: bool,
}

/// A call whose rows are being shipped: the tables still to settle, those accepted (including
/// the ones an earlier attempt had shipped), and whether one was refused.
#[derive(Default)]
pub(super) struct Shipping {
    pending: BTreeSet<&'static str>,
    pub(super) accepted: BTreeSet<String>,
    refused: bool,
}

impl Run {
    /// Keep the rows of a call expanded at `now` for the next batch of `table`.
    pub(super) fn keep_unshipped(&mut self, table: &'static str, rows: Vec<String>, now: u64) {
        self.unshipped_bytes += rows.iter().map(|r| r.len() + 1).sum::<usize>();
        self.unshipped_since.get_or_insert(now);
        self.unshipped.entry(table).or_default().extend(rows);
    }

    /// Call `key` was expanded: its rows of `tables` wait in `unshipped` for the next flush.
    pub(super) fn expanded(&mut self, key: &CallKey, tables: Vec<&'static str>) {
        let s = self.shipping.entry(key.clone()).or_default();
        s.pending.extend(tables.iter().copied());
        self.expanded_unshipped.push((key.clone(), tables));
    }

    /// Whether the rows kept so far should be batched and sent now (see the module docs).
    pub(super) fn should_flush(&self, now: u64) -> bool {
        if self.unshipped.is_empty() {
            return false;
        }
        let waited = self.unshipped_since.is_some_and(|t| now >= t + FLUSH_AFTER_MS);
        !self.fetching()
            || self.unshipped_bytes >= FLUSH_AT_BYTES
            || (matches!(self.job_kind, JobKind::Backfill | JobKind::Poll) && waited)
    }

    /// Queue a request for every batch of the rows expanded so far: one flush.
    pub(super) fn queue_unshipped(&mut self) {
        self.unshipped_since = None;
        self.unshipped_bytes = 0;
        let flush = self.next_flush;
        self.next_flush += 1;
        let mut f = Flush { calls: std::mem::take(&mut self.expanded_unshipped), ..Flush::default() };
        for (table, rows) in std::mem::take(&mut self.unshipped) {
            let tally = f.tables.entry(table).or_default();
            for s in ship_steps(table, &rows, &self.config.sink, flush) {
                match s {
                    Ok(step) => {
                        tally.outstanding += 1;
                        self.queue.push_back(Pending::new(step));
                    }
                    Err(e) => {
                        tally.refused = true;
                        self.ship_failed(rows.len(), format!("{table}: {e}"));
                    }
                }
            }
        }
        // Calls without rows, and tables whose every batch was refused at once, settle now.
        let calls: Vec<(CallKey, Vec<&'static str>)> = f.calls.iter().filter(|(_, t)| t.is_empty()).cloned().collect();
        let done: Vec<(&'static str, bool)> =
            f.tables.iter().filter(|(_, t)| t.outstanding == 0).map(|(n, t)| (*n, !t.refused)).collect();
        self.flushes.insert(flush, f);
        for (key, _) in calls {
            self.call_settled(&key);
        }
        for (table, accepted) in done {
            self.table_settled(flush, table, accepted);
        }
        self.forget_if_settled(flush);
    }

    /// Queue the two halves of `rows`, a batch of `table` in `flush` the endpoint found too large
    /// (413), ahead of the rest and in their order.
    pub(super) fn ship_halves(&mut self, table: &'static str, rows: &[String], flush: u64) {
        let (a, b) = rows.split_at(rows.len() / 2);
        let mut queued = 0;
        let mut failed = false;
        for half in [b, a] {
            for s in ship_steps(table, half, &self.config.sink, flush).into_iter().rev() {
                match s {
                    Ok(step) => {
                        queued += 1;
                        self.queue.push_front(Pending::new(step));
                    }
                    Err(err) => {
                        failed = true;
                        self.ship_failed(half.len(), format!("{table}: {err}"));
                    }
                }
            }
        }
        // The halves replace the batch that was too large.
        let tally = self.flushes.get_mut(&flush).and_then(|f| f.tables.get_mut(table));
        if let Some(t) = tally {
            t.outstanding = t.outstanding + queued - 1;
            t.refused |= failed;
            if t.outstanding == 0 {
                let accepted = !t.refused;
                self.table_settled(flush, table, accepted);
                self.forget_if_settled(flush);
            }
        }
    }

    /// One batch of `table` in `flush` is settled: accepted, or given up.
    pub(super) fn batch_settled(&mut self, flush: u64, table: &'static str, accepted: bool) {
        let tally = self.flushes.get_mut(&flush).and_then(|f| f.tables.get_mut(table));
        if let Some(t) = tally {
            t.outstanding = t.outstanding.saturating_sub(1);
            t.refused |= !accepted;
            if t.outstanding == 0 {
                let accepted = !t.refused;
                self.table_settled(flush, table, accepted);
                self.forget_if_settled(flush);
            }
        }
    }

    /// Every batch of `table` in `flush` is settled: so is that table for each call of the flush.
    fn table_settled(&mut self, flush: u64, table: &'static str, accepted: bool) {
        let calls: Vec<CallKey> = match self.flushes.get_mut(&flush) {
            Some(f) => {
                f.tables.remove(table);
                f.calls.iter().filter(|(_, t)| t.contains(&table)).map(|(key, _)| key.clone()).collect()
            }
            None => return,
        };
        for key in calls {
            if let Some(s) = self.shipping.get_mut(&key) {
                s.pending.remove(table);
                if accepted {
                    s.accepted.insert(table.to_string());
                } else {
                    s.refused = true;
                }
            }
            self.call_settled(&key);
        }
    }

    /// Once no table of call `key` is left to settle: shipped when every one was accepted.
    fn call_settled(&mut self, key: &CallKey) {
        if !self.shipping.get(key).is_some_and(|s| s.pending.is_empty()) {
            return;
        }
        let Some(s) = self.shipping.remove(key) else { return };
        if let Some(c) = self.report.calls.iter_mut().rev().find(|c| key.is(&c.tenant_id, &c.id)) {
            c.shipped = !s.refused;
            c.tables_accepted = s.accepted.iter().cloned().collect();
        }
        // A progress names ids: in a drain, one only once every tenant's record of it is shipped.
        if !s.refused && (self.job_kind != JobKind::Drain || self.drained_id_shipped(&key.id)) {
            self.newly_shipped.push(key.id.clone());
            // A backfill's checkpoint and a queue's entries move as calls are shipped.
            if matches!(self.job_kind, JobKind::Backfill | JobKind::Poll | JobKind::Drain) {
                self.progress = Some(self.progress_now(None));
            }
        }
    }

    fn forget_if_settled(&mut self, flush: u64) {
        if self.flushes.get(&flush).is_some_and(|f| f.tables.is_empty()) {
            self.flushes.remove(&flush);
        }
    }

    pub(super) fn ship_request(&self, table: &str, body: &[u8], now: u64) -> crate::Result<OutgoingRequest> {
        match &self.config.sink {
            SinkConfig::LogsIngestion { endpoint, dcr_immutable_id, gzip } => {
                let target = monitor::LogsIngestionTarget {
                    endpoint: endpoint.clone(),
                    dcr_immutable_id: dcr_immutable_id.clone(),
                    stream: schema::stream_name(table),
                };
                let token = self.cached_token(Scope::Monitor, &self.config.credentials.tenant_id);
                monitor::logs_ingestion_request(&target, token, body, *gzip)
            }
            SinkConfig::DataCollector { workspace_id, shared_key, base_url } => {
                let seed = table == schema::SEED.name;
                let target = monitor::DataCollectorTarget {
                    workspace_id: workspace_id.clone(),
                    shared_key: shared_key.clone(),
                    log_type: table.trim_end_matches("_CL").into(),
                    time_generated_field: Some(if seed { "startDateTime" } else { "TimeGenerated" }.into()),
                    base_url: base_url.clone(),
                };
                let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(now));
                monitor::data_collector_request(&target, &date, body)
            }
            SinkConfig::Forward { url } => monitor::forward_request(url, table, body),
        }
    }

    /// The sink accepted a batch of `rows` rows whose body was `sent_bytes` long.
    pub(super) fn on_shipped(&mut self, table: &'static str, rows: usize, sent_bytes: usize, flush: u64) {
        *self.report.rows.entry(table.to_string()).or_default() += rows as u64;
        self.report.ingestion_requests += 1;
        self.report.ingestion_bytes += sent_bytes as u64;
        if matches!(self.job_kind, JobKind::Backfill | JobKind::Poll) {
            self.progress = Some(self.progress_now(None));
        }
        self.batch_settled(flush, table, true);
    }

    pub(super) fn ship_failed(&mut self, rows: usize, reason: String) {
        self.report.rows_not_accepted += rows as u64;
        self.report.ok = false;
        self.report.error.get_or_insert_with(|| format!("rows not accepted: {reason}"));
    }
}

/// One ship step per batch of `rows` the sink takes.
fn ship_steps(table: &'static str, rows: &[String], sink: &SinkConfig, flush: u64) -> Vec<crate::Result<Step>> {
    let kind = match sink {
        SinkConfig::DataCollector { .. } => monitor::Sink::DataCollector,
        _ => monitor::Sink::LogsIngestion,
    };
    let batches = match monitor::batch_rows(rows, kind) {
        Ok(b) => b,
        Err(e) => return vec![Err(e)],
    };
    let mut start = 0;
    batches
        .into_iter()
        .map(|b| {
            let end = start + b.rows as usize;
            let step = Step::Ship { table, rows: rows[start..end].to_vec(), body: b.body, flush };
            start = end;
            Ok(step)
        })
        .collect()
}
