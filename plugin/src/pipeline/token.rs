//! The Entra token cache: which token each step needs, a token request when it is missing or
//! about to expire, keeping it until a minute before it does, and dropping it after a 401; and
//! the same cache carried from one run to the next by a host that keeps state between requests
//! ([`Run::saved_tokens`], [`Run::restore_tokens`]).

use super::Run;
use super::step::{Pending, Step};
use crate::config::SinkConfig;
use crate::entra::certificate::SigningCertificate;
use crate::entra::{self, ClientAuth, Credential, Scope};
use crate::http::OutgoingRequest;
use crate::storage::queue::QueueTarget;

/// The host's way to read a file for the core: the path's bytes, or why not.
pub type ReadFile = Box<dyn Fn(&str) -> Result<Vec<u8>, String> + Send>;

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
            Step::ListPage { .. } | Step::LogPage { .. } => Some((Scope::Graph, own())),
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

    /// The token request for `scope` in `tenant`, proved the way the settings say.
    pub(super) fn token_request(&mut self, scope: Scope, tenant: &str, now: u64) -> crate::Result<OutgoingRequest> {
        let creds = &self.config.credentials;
        match &creds.credential {
            Credential::Secret(secret) => {
                entra::client_credentials_request(creds, tenant, ClientAuth::Secret(secret), scope)
            }
            Credential::Certificate(settings) => {
                let audience = creds.token_url(tenant)?;
                let (algorithm, client_id) = (settings.algorithm, creds.client_id.clone());
                let certificate = self.signing_certificate(now)?;
                let Some(rng) = self.rng.as_mut() else {
                    return Err(crate::Error::arg(
                        "this host gave the core no entropy for client assertions (a host bug)",
                    ));
                };
                let jwt = certificate.assertion(algorithm, client_id.trim(), &audience, now / 1000, rng);
                entra::client_credentials_request(&self.config.credentials, tenant, ClientAuth::Assertion(&jwt), scope)
            }
            Credential::WorkloadIdentity { token_file } => {
                // Read for every request: Kubernetes rotates the file's token (hourly by default).
                let bytes = self.read_file(token_file)?;
                let jwt = String::from_utf8(bytes).map_err(|_| {
                    crate::Error::arg(format!("AZURE_FEDERATED_TOKEN_FILE {token_file} does not hold a token"))
                })?;
                let jwt = jwt.trim();
                if jwt.is_empty() {
                    return Err(crate::Error::arg(format!("AZURE_FEDERATED_TOKEN_FILE {token_file} is empty")));
                }
                entra::client_credentials_request(creds, tenant, ClientAuth::Assertion(jwt), scope)
            }
            Credential::ManagedIdentity(identity) => {
                if !tenant.eq_ignore_ascii_case(&creds.tenant_id) {
                    return Err(crate::Error::arg(format!(
                        "a managed identity has tokens for its own tenant only, not for {tenant}: a multi-tenant set-up needs an app registration (CALLRECORDS_CREDENTIAL=certificate or workload-identity)"
                    )));
                }
                identity.token_request(scope)
            }
        }
    }

    /// The certificate credential's key and certificate, read once per run (from the file, through
    /// the host, or from the inline PEM).
    fn signing_certificate(&mut self, now: u64) -> crate::Result<SigningCertificate> {
        if let Some(c) = &self.signing {
            return Ok(c.clone());
        }
        let Credential::Certificate(settings) = &self.config.credentials.credential else {
            return Err(crate::Error::arg("not a certificate credential"));
        };
        let settings = settings.clone();
        let bytes = match settings.file() {
            Some(path) => {
                Some(self.read_file(path).map_err(|e| crate::Error::arg(format!("{}: {e}", settings.setting())))?)
            }
            None => None,
        };
        let certificate = settings.load(bytes.as_deref(), now / 1000)?;
        self.signing = Some(certificate.clone());
        Ok(certificate)
    }

    /// A file's bytes, through the host's reader.
    fn read_file(&self, path: &str) -> crate::Result<Vec<u8>> {
        let Some(read) = &self.files else {
            return Err(crate::Error::arg(format!(
                "this host lets the core read no files, so {path} cannot be read (a certificate can be given inline in CALLRECORDS_CLIENT_CERTIFICATE)"
            )));
        };
        read(path).map_err(|why| crate::Error::arg(format!("{path} cannot be read: {why}")))
    }

    /// Let this run read the credential files the settings name ([`Credential::files`]): the
    /// host's IO, given to the core. Without it a certificate must be inline and workload identity
    /// cannot work.
    pub fn allow_files(&mut self, read: ReadFile) {
        self.files = Some(read);
    }

    /// Seed the randomness of client assertions (their `jti` and PSS salt) with 32 bytes from the
    /// host's secure random source. Call it before the first [`Run::next`].
    pub fn seed_entropy(&mut self, seed: [u8; 32]) {
        use rand_chacha::rand_core::SeedableRng;
        self.rng = Some(rand_chacha::ChaCha20Rng::from_seed(seed));
    }

    /// The application whose tokens these are: a saved token is only taken back by a run with the
    /// same login endpoint and client id (the tenant is part of each token's key).
    fn token_owner(&self) -> String {
        let c = &self.config.credentials;
        match &c.credential {
            Credential::ManagedIdentity(m) => format!("{m:?}"),
            _ => format!("{} {}", c.login_base_url.trim_end_matches('/'), c.client_id),
        }
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
        match entra::parse_token_answer(body, Some(now / 1000)) {
            Ok(t) => {
                let life = u64::from(t.expires_in_seconds.max(1)) * 1000;
                let margin = if life > 2 * TOKEN_MARGIN_MS { TOKEN_MARGIN_MS } else { life / 2 };
                self.tokens.insert((scope, tenant), Token { value: t.token, expires_at: now + life - margin });
                self.tokens_changed = true;
            }
            Err(e) => self.fatal(format!("token: {e}")),
        }
    }

    pub(super) fn token_failed(&mut self, scope: Scope, reason: String, refused: bool) {
        // Refused (not a timeout or a 5xx): the credential is what to fix, and the message says where.
        let hint = if refused { format!(" ({})", self.config.credentials.credential.hint()) } else { String::new() };
        self.fatal(format!("{} token: {reason}{hint}", scope.name()))
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Graph => "graph",
        Scope::Monitor => "monitor",
        Scope::Storage => "storage",
    }
}
