//! The Entra token cache: which token each step needs, a token request when it is missing or
//! about to expire, keeping it until a minute before it does, and dropping it after a 401; and
//! the same cache carried from one run to the next by a host that keeps state between requests
//! ([`Run::saved_tokens`], [`Run::restore_tokens`]).

use super::Run;
use super::step::{Pending, Step};
use crate::config::SinkConfig;
use crate::entra::{self, Credentials, Scope};
use crate::http::OutgoingRequest;
use crate::storage::queue::QueueTarget;

/// A token is renewed this long before it expires.
const TOKEN_MARGIN_MS: u64 = 60_000;

/// The key under which a host keeps [`Run::saved_tokens`] (the service component's
/// `wasi:keyvalue` bucket).
pub const TOKEN_CACHE_KEY: &str = "callrecords/tokens";

/// Version of the saved-tokens document; another version is ignored.
const SAVED_TOKENS_VERSION: u64 = 1;

/// A cached token.
pub(super) struct Token {
    value: String,
    expires_at: u64,
}

impl Step {
    /// The token a step needs: (scope, tenant).
    fn token(&self, own_tenant: &str, sink: &SinkConfig, queue: Option<&QueueTarget>) -> Option<(Scope, String)> {
        let own = || own_tenant.to_string();
        match self {
            Step::Token { .. } => None,
            Step::Call(call) => Some((Scope::Graph, call.tenant().to_string())),
            Step::Subscription(s) => Some((Scope::Graph, s.tenant().unwrap_or(own_tenant).to_string())),
            Step::ListPage { .. } => Some((Scope::Graph, own())),
            Step::Ship { .. } => matches!(sink, SinkConfig::LogsIngestion { .. }).then(|| (Scope::Monitor, own())),
            Step::Storage(_) => queue.is_some_and(QueueTarget::needs_token).then(|| (Scope::Storage, own())),
        }
    }
}

impl Run {
    fn token_key(&self, step: &Step) -> Option<(Scope, String)> {
        step.token(&self.config.credentials.tenant_id, &self.config.sink, self.config.queue.as_ref())
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
        let ship = Step::Ship { table: "", rows: vec![], body: vec![], flush: 0 };
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
            self.tokens_changed = true;
        }
        pending.refreshed = true;
        true
    }

    pub(super) fn token_request(&self, scope: Scope, tenant: &str) -> crate::Result<OutgoingRequest> {
        let creds = Credentials { tenant_id: tenant.to_string(), ..self.config.credentials.clone() };
        entra::token_request(&creds, scope)
    }

    /// The application whose tokens these are: a saved token is only taken back by a run with the
    /// same login endpoint and client id (the tenant is part of each token's key).
    fn token_owner(&self) -> String {
        let c = &self.config.credentials;
        format!("{} {}", c.login_base_url.trim_end_matches('/'), c.client_id)
    }

    /// The tokens this run holds that are still good at `now`, as one document for a host that
    /// keeps them for its next runs; `None` when nothing changed since [`Run::restore_tokens`]
    /// (or there is nothing to keep). The document holds bearer tokens: a secret.
    pub fn saved_tokens(&self, now: u64) -> Option<Vec<u8>> {
        if !self.tokens_changed {
            return None;
        }
        let tokens: Vec<serde_json::Value> = self
            .tokens
            .iter()
            .filter(|(_, t)| t.expires_at > now)
            .map(|((scope, tenant), t)| {
                serde_json::json!({"scope": scope_name(*scope), "tenant": tenant, "token": t.value, "renew_at_ms": t.expires_at})
            })
            .collect();
        let doc = serde_json::json!({"v": SAVED_TOKENS_VERSION, "app": self.token_owner(), "tokens": tokens});
        Some(doc.to_string().into_bytes())
    }

    /// Take back the tokens of [`Run::saved_tokens`] that belong to this run's application and are
    /// good at `now`; anything else in `saved` (another app, another version, garbage) is ignored.
    /// Returns how many were taken. Call it before the first [`Run::next`].
    pub fn restore_tokens(&mut self, saved: &[u8], now: u64) -> u32 {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(saved) else { return 0 };
        if doc["v"].as_u64() != Some(SAVED_TOKENS_VERSION) || doc["app"].as_str() != Some(&self.token_owner()) {
            return 0;
        }
        let mut taken = 0;
        for t in doc["tokens"].as_array().into_iter().flatten() {
            let scope = match t["scope"].as_str() {
                Some("graph") => Scope::Graph,
                Some("monitor") => Scope::Monitor,
                Some("storage") => Scope::Storage,
                _ => continue,
            };
            let (Some(tenant), Some(value), Some(renew_at)) =
                (t["tenant"].as_str(), t["token"].as_str(), t["renew_at_ms"].as_u64())
            else {
                continue;
            };
            if renew_at <= now || value.is_empty() || self.tokens.contains_key(&(scope, tenant.to_string())) {
                continue;
            }
            self.tokens.insert((scope, tenant.to_string()), Token { value: value.to_string(), expires_at: renew_at });
            taken += 1;
        }
        // A token request queued at the start (the sink's, fetched ahead) is not needed now.
        let tokens = &self.tokens;
        self.queue.retain(
            |p| !matches!(&p.step, Step::Token { scope, tenant } if tokens.contains_key(&(*scope, tenant.clone()))),
        );
        taken
    }

    pub(super) fn on_token(&mut self, scope: Scope, tenant: String, body: &[u8], now: u64) {
        match entra::parse_token_response(200, body) {
            Ok(t) => {
                let life = u64::from(t.expires_in_seconds.max(1)) * 1000;
                let margin = if life > 2 * TOKEN_MARGIN_MS { TOKEN_MARGIN_MS } else { life / 2 };
                self.tokens.insert((scope, tenant), Token { value: t.token, expires_at: now + life - margin });
                self.tokens_changed = true;
            }
            Err(e) => self.fatal(format!("token: {e}")),
        }
    }

    pub(super) fn token_failed(&mut self, scope: Scope, reason: String) {
        let what = match scope {
            Scope::Graph => "Graph",
            Scope::Monitor => "Azure Monitor",
            Scope::Storage => "Azure Storage",
        };
        self.fatal(format!("{what} token: {reason}"))
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Graph => "graph",
        Scope::Monitor => "monitor",
        Scope::Storage => "storage",
    }
}
