//! Shipping rows: the rows of many calls gathered per table and cut into batches the sink takes
//! (≤ 1 MB for Logs Ingestion), one request per batch (Logs Ingestion with the Monitor token, Data
//! Collector signed at `now`, or forward), all of them in flight together; the tally of what was
//! accepted, and the halves of a batch the endpoint found too large.
//!
//! Rows wait for more calls' rows while calls are still being fetched, and go when no fetch is
//! left, when a batch's worth has gathered, or (a backfill, which ships as it goes) when the
//! oldest has waited [`FLUSH_AFTER_MS`].
//!
//! Each flush is numbered and knows the calls whose rows it took. Once every batch of a flush is
//! accepted, those calls are shipped: a backfill reports them in its next progress, so that its
//! checkpoint moves call by call and a rerun skips them. A flush with a batch that was not
//! accepted reports none of its calls (a rerun does them again).

use std::time::{Duration, UNIX_EPOCH};

use super::step::{Pending, Step};
use super::{JobKind, Run};
use crate::config::SinkConfig;
use crate::entra::Scope;
use crate::http::OutgoingRequest;
use crate::{monitor, schema};

/// A backfill ships rows that have waited this long, whatever else is being fetched.
pub const FLUSH_AFTER_MS: u64 = 2_000;
/// Rows of this many bytes make a batch worth sending at once.
const FLUSH_AT_BYTES: usize = monitor::LOGS_INGESTION_MAX_BYTES;

/// The batches of one flush still to be accepted, and the calls whose rows it holds.
#[derive(Default)]
pub(super) struct Flush {
    outstanding: u32,
    calls: Vec<String>,
    failed: bool,
}

impl Run {
    /// Keep the rows of a call expanded at `now` for the next batch of `table`.
    pub(super) fn keep_unshipped(&mut self, table: &'static str, rows: Vec<String>, now: u64) {
        self.unshipped_bytes += rows.iter().map(|r| r.len() + 1).sum::<usize>();
        self.unshipped_since.get_or_insert(now);
        self.unshipped.entry(table).or_default().extend(rows);
    }

    /// Whether the rows kept so far should be batched and sent now (see the module docs).
    pub(super) fn should_flush(&self, now: u64) -> bool {
        if self.unshipped.is_empty() {
            return false;
        }
        let waited = self.unshipped_since.is_some_and(|t| now >= t + FLUSH_AFTER_MS);
        !self.fetching() || self.unshipped_bytes >= FLUSH_AT_BYTES || (self.job_kind == JobKind::Backfill && waited)
    }

    /// Queue a request for every batch of the rows expanded so far: one flush.
    pub(super) fn queue_unshipped(&mut self) {
        self.unshipped_since = None;
        self.unshipped_bytes = 0;
        let flush = self.next_flush;
        self.next_flush += 1;
        let mut f = Flush { calls: std::mem::take(&mut self.expanded_unshipped), ..Flush::default() };
        for (table, rows) in std::mem::take(&mut self.unshipped) {
            for s in ship_steps(table, &rows, &self.config.sink, flush) {
                match s {
                    Ok(step) => {
                        f.outstanding += 1;
                        self.queue.push_back(Pending::new(step));
                    }
                    Err(e) => {
                        f.failed = true;
                        self.ship_failed(rows.len(), format!("{table}: {e}"));
                    }
                }
            }
        }
        self.flushes.insert(flush, f);
        self.settle_if_done(flush);
    }

    /// Queue the two halves of `rows`, a batch of `flush` the endpoint found too large (413),
    /// ahead of the rest and in their order.
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
        if let Some(f) = self.flushes.get_mut(&flush) {
            f.outstanding = f.outstanding + queued - 1;
            f.failed |= failed;
        }
        self.settle_if_done(flush);
    }

    /// One batch of `flush` is settled: accepted, or given up.
    pub(super) fn batch_settled(&mut self, flush: u64, accepted: bool) {
        if let Some(f) = self.flushes.get_mut(&flush) {
            f.outstanding = f.outstanding.saturating_sub(1);
            f.failed |= !accepted;
        }
        self.settle_if_done(flush);
    }

    /// Once no batch of `flush` is left: its calls are shipped, unless one was not accepted.
    fn settle_if_done(&mut self, flush: u64) {
        if self.flushes.get(&flush).is_some_and(|f| f.outstanding == 0)
            && let Some(f) = self.flushes.remove(&flush)
            && !f.failed
            && !f.calls.is_empty()
        {
            self.newly_shipped.extend(f.calls);
            if self.job_kind == JobKind::Backfill {
                self.progress = Some(self.progress_now(None));
            }
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
    pub(super) fn on_shipped(&mut self, table: &str, rows: usize, sent_bytes: usize, flush: u64) {
        *self.report.rows.entry(table.to_string()).or_default() += rows as u64;
        self.report.ingestion_requests += 1;
        self.report.ingestion_bytes += sent_bytes as u64;
        if self.job_kind == JobKind::Backfill {
            self.progress = Some(self.progress_now(None));
        }
        self.batch_settled(flush, true);
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
