//! Graph's throttle, kept on the client side, and the holds that a `Retry-After` puts on a whole
//! service.
//!
//! Graph publishes, for callRecords: 40 requests per 20 s per call record, 40 per 20 s for List,
//! and 1,500 per 20 s per app per tenant. A step over any of them waits (or, past a webhook's
//! deadline, fails). The window is counted with a second of margin, because requests sent inside
//! one 20-s window reach Graph spread by network jitter. A `Retry-After` on one answer holds back
//! every request to the same service (the tenant's Graph, or the ingestion endpoint), not only
//! the one that got it.

use super::Run;
use super::step::Step;

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
            Step::Call(call) => vec![
                (format!("callRecords/{}", call.id()), GRAPH_RATE_LIMIT),
                (format!("tenant/{}", call.tenant()), GRAPH_TENANT_RATE_LIMIT),
            ],
            Step::ListPage { .. } => {
                vec![
                    ("callRecords".into(), GRAPH_RATE_LIMIT),
                    (format!("tenant/{own_tenant}"), GRAPH_TENANT_RATE_LIMIT),
                ]
            }
            _ => vec![],
        }
    }

    /// The service a `Retry-After` for this step holds back.
    pub(super) fn service(&self, own_tenant: &str) -> Option<String> {
        match self {
            Step::Call(call) => Some(format!("graph/{}", call.tenant())),
            Step::ListPage { .. } => Some(format!("graph/{own_tenant}")),
            Step::Subscription(s) => Some(format!("graph/{}", s.tenant().unwrap_or(own_tenant))),
            Step::Ship { .. } => Some("ingestion".into()),
            Step::Token { tenant, .. } => Some(format!("login/{tenant}")),
        }
    }
}

impl Run {
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
