//! Cloud round-trip times for the stand-ins, and Graph's per-app-per-tenant throttle.
//!
//! Stand-ins that answer at once hide what the real services cost: Entra, Graph and the ingestion
//! endpoint each take hundreds of milliseconds. Every test or benchmark that claims a timing or
//! "nothing lost" runs with [`Latency::CLOUD`]; [`Latency::NONE`] stays for unit-speed tests.

use std::collections::VecDeque;
use std::time::Duration;

/// Per-endpoint delay before an answer, with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Entra token endpoint.
    pub token_ms: u64,
    /// Graph `GET callRecords/{id}` (the record with its first session page).
    pub record_ms: u64,
    /// Graph session pages (`sessions@odata.nextLink`).
    pub page_ms: u64,
    /// Graph `participants_v2` pages.
    pub participants_ms: u64,
    /// Graph List callRecords and subscription calls.
    pub list_ms: u64,
    /// Logs Ingestion / Data Collector / forward POSTs.
    pub ingestion_ms: u64,
    /// Each delay varies by up to ± this fraction (0.2 = ±20 %).
    pub jitter: f64,
    /// Graph's throttle per app per tenant: at most this many requests in any 20 s; beyond it,
    /// 429 with `Retry-After` (0 = not enforced).
    pub graph_per_tenant_20s: usize,
}

/// Graph's throttle window.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(20);

impl Latency {
    /// Instant answers, no throttle.
    pub const NONE: Latency = Latency {
        token_ms: 0,
        record_ms: 0,
        page_ms: 0,
        participants_ms: 0,
        list_ms: 0,
        ingestion_ms: 0,
        jitter: 0.0,
        graph_per_tenant_20s: 0,
    };

    /// Round trips measured through a proxy in front of the real services (Dec 2026): token
    /// 150 ms, GET 600 ms, page 400 ms, participants 300 ms, ingestion 250 ms, ±20 %; Graph's
    /// published 1,500 requests / 20 s per app per tenant.
    pub const CLOUD: Latency = Latency {
        token_ms: 150,
        record_ms: 600,
        page_ms: 400,
        participants_ms: 300,
        list_ms: 600,
        ingestion_ms: 250,
        jitter: 0.2,
        graph_per_tenant_20s: 1500,
    };

    /// The delay for a base of `ms`, jittered by `unit` (0.0..1.0, uniform).
    pub(super) fn jittered(&self, ms: u64, unit: f64) -> Duration {
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::from_micros((ms as f64 * 1000.0 * factor.max(0.0)) as u64)
    }
}

impl Default for Latency {
    fn default() -> Self {
        Latency::NONE
    }
}

/// A sliding 20-s window of request times (ms on the stand-ins' own clock).
#[derive(Debug, Default)]
pub(super) struct Window(VecDeque<u64>);

impl Window {
    /// Count a request at `now` if it fits under `limit`; otherwise the seconds until it would.
    pub(super) fn admit(&mut self, now: u64, limit: usize) -> Result<(), u32> {
        self.admit_in(now, limit, THROTTLE_WINDOW.as_millis() as u64)
    }

    /// [`Window::admit`] over a window of `window` ms.
    pub(super) fn admit_in(&mut self, now: u64, limit: usize, window: u64) -> Result<(), u32> {
        while self.0.front().is_some_and(|t| now.saturating_sub(*t) >= window) {
            self.0.pop_front();
        }
        if self.0.len() >= limit {
            let oldest = self.0.front().copied().unwrap_or(now);
            let wait_ms = (oldest + window).saturating_sub(now);
            return Err(wait_ms.div_ceil(1000).max(1) as u32);
        }
        self.0.push_back(now);
        Ok(())
    }
}
