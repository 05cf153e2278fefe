//! Graph's throttle, kept on the client side: at most 40 requests per 20 s per call record, and as
//! many for List callRecords; a step over the limit waits (or, past a webhook's deadline, fails).

use super::Run;
use super::step::Step;

/// Graph's throttle for callRecords: 40 requests per 20 s per call record, and for List.
pub const GRAPH_RATE_LIMIT: (usize, u64) = (40, 20_000);

impl Step {
    /// The resource a rate limit counts the step against.
    pub(super) fn rate_key(&self) -> Option<String> {
        match self {
            Step::Call(call) => Some(format!("callRecords/{}", call.id())),
            Step::ListPage { .. } => Some("callRecords".into()),
            _ => None,
        }
    }
}

impl Run {
    /// How long one more request for `key` must wait at `now` to keep to the limit, if at all.
    pub(super) fn rate_wait(&mut self, key: &str, now: u64) -> Option<u64> {
        let (max, window) = GRAPH_RATE_LIMIT;
        let times = self.sent.get_mut(key)?;
        while times.front().is_some_and(|t| *t + window <= now) {
            times.pop_front();
        }
        (times.len() >= max).then(|| times[0] + window - now)
    }

    /// Count the request of `step`, sent at `now`.
    pub(super) fn note_sent(&mut self, step: &Step, now: u64) {
        if let Some(key) = step.rate_key() {
            self.sent.entry(key).or_default().push_back(now);
        }
    }
}
