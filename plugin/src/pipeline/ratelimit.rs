//! Graph's throttle, kept on the client side, and the holds that a `Retry-After` puts on a whole
//! service.
//!
//! Graph publishes, for callRecords: 40 requests per 20 s per call record, 40 per 20 s for List,
//! and 1,500 per 20 s per app per tenant. A step over any of them waits (or, past a webhook's
//! deadline, fails). The window is counted with a second of margin, because requests sent inside
//! one 20-s window reach Graph spread by network jitter. A `Retry-After` on one answer holds back
//! every request to the same service (the tenant's Graph, or the ingestion endpoint), not only
//! the one that got it. The PSTN and Direct Routing logs have their own limits (`graph/pstn.rs`).

use super::Run;
use super::step::Step;
use crate::graph::pstn::{PSTN_COLLECTION_RATE_LIMIT, PSTN_RATE_LIMIT};

/// Graph's throttle for callRecords: 40 requests per 20 s per call record, and for List.
pub const GRAPH_RATE_LIMIT: (usize, u64) = (40, 20_000);
/// Graph's throttle for callRecords per app per tenant: 1,500 requests per 20 s.
pub const GRAPH_TENANT_RATE_LIMIT: (usize, u64) = (1_500, 20_000);
/// Added to every window: requests sent inside one window may arrive spread over a longer one.
const WINDOW_MARGIN_MS: u64 = 1_000;

impl Step {
    /// The counters a step is counted against: (key, (requests, per ms)).
    fn rate_keys(&self, own_tenant: &str) -> Vec<(String, (usize, u64))> {
        match self {
            // Each tenant's record of a call id is a record of its own (see `CallKey`).
            Step::Call(call) => vec![
                (format!("callRecords/{}/{}", call.tenant().to_ascii_lowercase(), call.id()), GRAPH_RATE_LIMIT),
                (format!("tenant/{}", call.tenant()), GRAPH_TENANT_RATE_LIMIT),
            ],
            Step::ListPage { .. } => {
                vec![
                    ("callRecords".into(), GRAPH_RATE_LIMIT),
                    (format!("tenant/{own_tenant}"), GRAPH_TENANT_RATE_LIMIT),
                ]
            }
            // The PSTN call records limits: 200 per 60 s per app per tenant, 50 per 60 s per collection.
            Step::LogPage { log, .. } => vec![
                (format!("logs/{own_tenant}"), PSTN_RATE_LIMIT),
                (format!("logs/{own_tenant}/{}", log.function()), PSTN_COLLECTION_RATE_LIMIT),
            ],
            _ => vec![],
        }
    }

    /// The service a `Retry-After` for this step holds back.
    pub(super) fn service(&self, own_tenant: &str) -> Option<String> {
        match self {
            Step::Call(call) => Some(format!("graph/{}", call.tenant())),
            Step::ListPage { .. } => Some(format!("graph/{own_tenant}")),
            // The logs have limits of their own: a 429 there says nothing about callRecords.
            Step::LogPage { .. } => Some(format!("graph-logs/{own_tenant}")),
            Step::Subscription(s) => Some(format!("graph/{}", s.tenant().unwrap_or(own_tenant))),
            Step::Ship { .. } => Some("ingestion".into()),
            Step::Token { tenant, .. } => Some(format!("login/{tenant}")),
            Step::Storage(_) => Some("storage".into()),
        }
    }
}

/// Version of the saved-limits document; another version is ignored.
const SAVED_LIMITS_VERSION: u64 = 1;

impl Run {
    /// What this run sent to each tenant's Graph within the last window, and the `Retry-After`
    /// holds still running at `now`: for the host's next run of the same app, so that runs one
    /// after the other keep to the per-tenant limit together (queue mode's worker).
    pub fn saved_limits(&self, now: u64) -> Vec<u8> {
        let window = GRAPH_TENANT_RATE_LIMIT.1 + WINDOW_MARGIN_MS;
        let sent: serde_json::Map<String, serde_json::Value> = self
            .sent
            .iter()
            .filter(|(k, _)| k.starts_with("tenant/"))
            .map(|(k, times)| {
                let live: Vec<u64> = times.iter().copied().filter(|t| t + window > now).collect();
                (k.clone(), serde_json::json!(live))
            })
            .collect();
        let holds: serde_json::Map<String, serde_json::Value> = self
            .holds
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(k, u)| (k.clone(), serde_json::json!(u)))
            .collect();
        serde_json::json!({"v": SAVED_LIMITS_VERSION, "sent": sent, "holds": holds}).to_string().into_bytes()
    }

    /// Count what an earlier run saved with [`Run::saved_limits`] against this run's limits.
    /// Anything unreadable is ignored. Call it before the first [`Run::next`].
    pub fn restore_limits(&mut self, saved: &[u8], now: u64) {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(saved) else { return };
        if doc["v"].as_u64() != Some(SAVED_LIMITS_VERSION) {
            return;
        }
        let window = GRAPH_TENANT_RATE_LIMIT.1 + WINDOW_MARGIN_MS;
        for (key, times) in doc["sent"].as_object().into_iter().flatten() {
            if !key.starts_with("tenant/") {
                continue;
            }
            let mut all: Vec<u64> = times.as_array().into_iter().flatten().filter_map(|t| t.as_u64()).collect();
            all.retain(|t| t.saturating_add(window) > now && *t <= now);
            all.extend(self.sent.get(key).into_iter().flatten().copied());
            all.sort_unstable();
            self.sent.insert(key.clone(), all.into_iter().collect());
        }
        for (service, until) in doc["holds"].as_object().into_iter().flatten() {
            // A hold is a Retry-After being waited out: never longer than the longest one honoured.
            if let Some(u) =
                until.as_u64().filter(|u| *u > now).map(|u| u.min(now.saturating_add(super::retry::MAX_BACKOFF_MS)))
            {
                let h = self.holds.entry(service.clone()).or_insert(u);
                *h = (*h).max(u);
            }
        }
    }

    /// How long one more request of `step` must wait at `now` to keep to every limit, if at all.
    pub(super) fn rate_wait(&self, step: &Step, now: u64) -> Option<u64> {
        let mut wait = None;
        for (key, (max, window)) in step.rate_keys(&self.config.credentials.tenant_id) {
            let Some(times) = self.sent.get(&key) else { continue };
            let window = window + WINDOW_MARGIN_MS;
            let live = times.iter().position(|t| t + window > now).unwrap_or(times.len());
            let count = times.len() - live;
            if count >= max {
                let frees = times[live + count - max] + window - now;
                wait = Some(wait.map_or(frees, |w: u64| w.max(frees)));
            }
        }
        wait
    }

    /// Count the request of `step`, sent at `now`.
    pub(super) fn note_sent(&mut self, step: &Step, now: u64) {
        for (key, (_, window)) in step.rate_keys(&self.config.credentials.tenant_id) {
            let times = self.sent.entry(key).or_default();
            while times.front().is_some_and(|t| t + window + WINDOW_MARGIN_MS <= now) {
                times.pop_front();
            }
            times.push_back(now);
        }
    }

    /// How long the service of `step` is still held back after a `Retry-After`, if at all.
    pub(super) fn held(&self, step: &Step, now: u64) -> Option<u64> {
        let service = step.service(&self.config.credentials.tenant_id)?;
        self.holds.get(&service).filter(|until| **until > now).map(|until| until - now)
    }

    /// Hold back every request to the service of `step` until `until`.
    pub(super) fn hold(&mut self, step: &Step, until: u64) {
        if let Some(service) = step.service(&self.config.credentials.tenant_id) {
            let h = self.holds.entry(service).or_insert(until);
            *h = (*h).max(until);
        }
    }
}
