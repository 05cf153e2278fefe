//! Microsoft Entra ID: the client-credentials token request for Graph or Azure Monitor, and its
//! answer. Every token the pipeline uses comes from here.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{OutgoingRequest, base_url, check_response};

/// Scope of a Graph token.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Scope of an Azure Monitor (Logs Ingestion) token; the double slash is Microsoft's.
pub const MONITOR_SCOPE: &str = "https://monitor.azure.com//.default";

/// Which API a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Microsoft Graph.
    Graph,
    /// Azure Monitor Logs Ingestion.
    Monitor,
    /// Azure Storage (queue mode's shared queue).
    Storage,
}

impl Scope {
    /// The `scope` parameter value.
    pub fn value(self) -> &'static str {
        match self {
            Scope::Graph => GRAPH_SCOPE,
            Scope::Monitor => MONITOR_SCOPE,
            Scope::Storage => crate::storage::queue::STORAGE_SCOPE,
        }
    }
}

/// App registration credentials. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `https://login.microsoftonline.com` unless testing.
    pub login_base_url: String,
    /// Directory (tenant) id or domain.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("login_base_url", &self.login_base_url)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// A bearer token. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token.
    pub token: String,
    /// Lifetime in seconds from when it was issued.
    pub expires_in_seconds: u32,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in_seconds", &self.expires_in_seconds)
            .finish()
    }
}

/// The client-credentials token request (`POST {login}/{tenant}/oauth2/v2.0/token`).
pub fn token_request(credentials: &Credentials, scope: Scope) -> Result<OutgoingRequest> {
    let base = base_url("login-base-url", &credentials.login_base_url)?;
    let tenant = &credentials.tenant_id;
    if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(Error::arg("tenant-id must be a directory id (GUID) or a domain name"));
    }
    if credentials.client_id.trim().is_empty() {
        return Err(Error::arg("client-id is empty: set the application (client) id of the app registration"));
    }
    if credentials.client_secret.is_empty() {
        return Err(Error::arg("client-secret is empty: create a client secret for the app registration"));
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", credentials.client_id.trim())
        .append_pair("client_secret", &credentials.client_secret)
        .append_pair("scope", scope.value())
        .finish();
    Ok(OutgoingRequest {
        method: "POST".into(),
        url: format!("{base}/{tenant}/oauth2/v2.0/token"),
        headers: vec![
            ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
            ("Accept".into(), "application/json".into()),
        ],
        body: body.into_bytes(),
    })
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    expires_in: Option<Value>,
}

/// Read the token endpoint's answer.
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<AccessToken> {
    check_response(status, &[], body, 0)?;
    let t: TokenBody = serde_json::from_slice(body).map_err(|e| Error::json("token response", e))?;
    let token = t
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::InvalidJson("token response has no access_token".into()))?;
    // `expires_in` is a number, but some endpoints send it as a string.
    let expires_in_seconds = match t.expires_in {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
    .min(u32::MAX as u64) as u32;
    Ok(AccessToken { token, expires_in_seconds })
}
