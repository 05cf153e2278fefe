//! The seeded fault plan: which requests get a 429, a 5xx, a 413 or a dropped connection.

/// Seeded fault injection. Rates are per request, 0.0..=1.0.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Seed of the plan.
    pub seed: u64,
    /// Graph answers 429 with `Retry-After`.
    pub graph_429: f64,
    /// `Retry-After` seconds on those 429s.
    pub graph_retry_after: u32,
    /// Graph answers 503.
    pub graph_5xx: f64,
    /// The token endpoint answers 503.
    pub token_5xx: f64,
    /// Ingestion answers 500/503.
    pub ingestion_5xx: f64,
    /// Ingestion answers 429 with `Retry-After: 0`.
    pub ingestion_429: f64,
    /// Connections dropped without an answer (any service).
    pub drop: f64,
    /// Ingestion refuses bodies larger than this with 413 (Azure's own limit is 1,000,000).
    pub ingestion_max_bytes: Option<usize>,
    /// Every Nth Graph callRecord request is answered 429 `Retry-After: 1` (the demo's occasional throttle).
    pub graph_429_every: Option<u32>,
    /// After this many Graph requests, every token issued so far is expired (once).
    pub expire_tokens_after: Option<u32>,
    /// Every ingestion request fails with 503 until this many have been refused.
    pub ingestion_outage: u32,
    /// Graph answers take this long (ms), to exceed deadlines.
    pub graph_delay_ms: u64,
}

/// True with probability `p`, from the plan's seeded sequence.
pub(super) fn chance(state: &mut u64, p: f64) -> bool {
    unit(state) <= p
}

/// The next number of the plan, uniform in 0.0..1.0 (xorshift64: reproducible, no dependency).
pub(super) fn unit(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}
