//! The Entra token cache: which token each step needs, a token request when it is missing or
//! about to expire, keeping it until a minute before it does, and dropping it after a 401.

use super::Run;
use super::step::{Pending, Step};
use crate::config::SinkConfig;
use crate::entra::{self, Credentials, Scope};
use crate::http::OutgoingRequest;

/// A token is renewed this long before it expires.
const TOKEN_MARGIN_MS: u64 = 60_000;

/// A cached token.
pub(super) struct Token {
    value: String,
    expires_at: u64,
}

impl Step {
    /// The token a step needs: (scope, tenant).
    fn token(&self, own_tenant: &str, sink: &SinkConfig) -> Option<(Scope, String)> {
        let own = || own_tenant.to_string();
        match self {
            Step::Token { .. } => None,
            Step::Call(call) => Some((Scope::Graph, call.tenant().to_string())),
            Step::Subscription(s) => Some((Scope::Graph, s.tenant().unwrap_or(own_tenant).to_string())),
            Step::ListPage { .. } => Some((Scope::Graph, own())),
            Step::Ship { .. } => matches!(sink, SinkConfig::LogsIngestion { .. }).then(|| (Scope::Monitor, own())),
        }
    }
}

impl Run {
    fn token_key(&self, step: &Step) -> Option<(Scope, String)> {
        step.token(&self.config.credentials.tenant_id, &self.config.sink)
    }

    /// The token `step` needs when the cache holds none that is still good at `now`.
    pub(super) fn stale_token(&self, step: &Step, now: u64) -> Option<(Scope, String)> {
        let key = self.token_key(step)?;
        self.tokens.get(&key).is_none_or(|t| t.expires_at <= now).then_some(key)
    }

    /// A request for this token is queued or in flight already (its answer serves every step
    /// that waits for it).
    pub(super) fn token_pending(&self, scope: Scope, tenant: &str) -> bool {
        let is_it = |step: &Step| matches!(step, Step::Token { scope: s, tenant: t } if *s == scope && t == tenant);
        self.queue.iter().any(|p| is_it(&p.step)) || self.in_flight.values().any(|(p, _)| is_it(&p.step))
    }

    /// The rows of the calls being fetched will need the sink's token: ask for it now, alongside
    /// the fetches, rather than after them.
    pub(super) fn prefetch_sink_token(&mut self) {
        let ship = Step::Ship { table: "", rows: vec![], body: vec![] };
        let Some((scope, tenant)) = self.token_key(&ship) else { return };
        if !self.tokens.contains_key(&(scope, tenant.clone())) && !self.token_pending(scope, &tenant) {
            self.queue.push_back(Pending::new(Step::Token { scope, tenant }));
        }
    }

    /// The token the request of `step` carries now, if it carries one.
    pub(super) fn token_for(&self, step: &Step) -> Option<String> {
        self.token_key(step).and_then(|key| self.tokens.get(&key)).map(|t| t.value.clone())
    }

    /// The cached token for `scope` in `tenant`; empty when there is none (the request builders
    /// refuse an empty token).
    pub(super) fn cached_token(&self, scope: Scope, tenant: &str) -> &str {
        self.tokens.get(&(scope, tenant.to_string())).map(|t| t.value.as_str()).unwrap_or_default()
    }

    /// After a 401: drop the token `pending` carried so that a new one is asked for, once per
    /// request. False when that was done already or the request carries no token.
    pub(super) fn drop_rejected_token(&mut self, pending: &mut Pending) -> bool {
        if pending.refreshed {
            return false;
        }
        let Some(key) = self.token_key(&pending.step) else { return false };
        // Requests in flight carry the token of their time: a 401 for an older one than the cache
        // holds now says nothing about the new one.
        if self.tokens.get(&key).is_some_and(|t| Some(&t.value) == pending.sent_token.as_ref()) {
            self.tokens.remove(&key);
        }
        pending.refreshed = true;
        true
    }

    pub(super) fn token_request(&self, scope: Scope, tenant: &str) -> crate::Result<OutgoingRequest> {
        let creds = Credentials { tenant_id: tenant.to_string(), ..self.config.credentials.clone() };
        entra::token_request(&creds, scope)
    }

    pub(super) fn on_token(&mut self, scope: Scope, tenant: String, body: &[u8], now: u64) {
        match entra::parse_token_response(200, body) {
            Ok(t) => {
                let life = u64::from(t.expires_in_seconds.max(1)) * 1000;
                let margin = if life > 2 * TOKEN_MARGIN_MS { TOKEN_MARGIN_MS } else { life / 2 };
                self.tokens.insert((scope, tenant), Token { value: t.token, expires_at: now + life - margin });
            }
            Err(e) => self.fatal(format!("token: {e}")),
        }
    }

    pub(super) fn token_failed(&mut self, scope: Scope, reason: String) {
        let what = if scope == Scope::Graph { "Graph" } else { "Azure Monitor" };
        self.fatal(format!("{what} token: {reason}"))
    }
}
