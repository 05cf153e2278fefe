//! Microsoft Entra ID: how the app proves who it is, the token request for Graph, Azure Monitor or
//! Azure Storage, and its answer. Every token the pipeline uses comes from here.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the credential kinds, the client-credentials request (secret or client assertion), the answer |
//! | [`certificate`] | a certificate credential: the PEM key and certificate, the signed client assertion (PS256 / RS256) |
//! | [`pkcs12`] | a PKCS#12 (.pfx) file's key and certificates |
//! | [`managed`] | managed identity: the Azure Instance Metadata Service and the App Service / Container Apps endpoint |
//!
//! Workload identity (AKS) needs no module of its own: the Kubernetes-issued token in
//! `AZURE_FEDERATED_TOKEN_FILE` is the client assertion, sent as a certificate's would be.
//!
//! Sources: Microsoft identity platform, "certificate credentials" (assertion format, PS256 and
//! `x5t#S256`), "client credentials flow" (the form fields), "workload identity federation", and
//! "How to use managed identities for Azure resources on an Azure VM to acquire an access token" /
//! App Service "REST endpoint reference" (the two managed identity endpoints).

pub mod certificate;
pub mod managed;
pub mod pkcs12;

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{OutgoingRequest, base_url, check_response};

/// Scope of a Graph token.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Scope of an Azure Monitor (Logs Ingestion) token; the double slash is Microsoft's.
pub const MONITOR_SCOPE: &str = "https://monitor.azure.com//.default";
/// `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

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

    /// The `resource` parameter of the managed identity endpoints: the scope without `/.default`
    /// (so Azure Monitor's is `https://monitor.azure.com/`, as Azure's SDKs send it).
    pub fn resource(self) -> &'static str {
        self.value().strip_suffix("/.default").unwrap_or(self.value())
    }

    /// What a person calls it.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Graph => "Graph",
            Scope::Monitor => "Azure Monitor",
            Scope::Storage => "Azure Storage",
        }
    }
}

/// How the app proves who it is to Entra ID (`CALLRECORDS_CREDENTIAL`). `Debug` hides the
/// material; a file is named by its path only.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A client secret of the app registration (the default).
    Secret(String),
    /// A certificate uploaded to the app registration; its private key signs a client assertion.
    Certificate(certificate::CertificateSettings),
    /// The managed identity of the Azure resource the service runs on.
    ManagedIdentity(managed::ManagedIdentity),
    /// Workload identity federation (AKS): the token Kubernetes writes to this file is the client
    /// assertion. Read again for every token request, so a rotated token is picked up.
    WorkloadIdentity {
        /// `AZURE_FEDERATED_TOKEN_FILE`.
        token_file: String,
    },
}

impl Credential {
    /// The setting's value: `secret`, `certificate`, `managed-identity` or `workload-identity`.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Secret(_) => "secret",
            Credential::Certificate(_) => "certificate",
            Credential::ManagedIdentity(_) => "managed-identity",
            Credential::WorkloadIdentity { .. } => "workload-identity",
        }
    }

    /// Files the host must let the core read (see [`crate::pipeline::Run::allow_files`]).
    pub fn files(&self) -> Vec<String> {
        match self {
            Credential::Certificate(c) => c.file().into_iter().map(str::to_string).collect(),
            Credential::WorkloadIdentity { token_file } => vec![token_file.clone()],
            _ => vec![],
        }
    }

    /// What to check when Entra (or the identity endpoint) refuses this credential: the setting
    /// to fix, never its value.
    pub fn hint(&self) -> String {
        match self {
            Credential::Secret(_) => {
                "check CALLRECORDS_CLIENT_SECRET: a current secret of the app registration (Certificates & secrets)".into()
            }
            Credential::Certificate(c) => format!(
                "check {}: the certificate uploaded to the app registration (Certificates & secrets), not expired, with its private key",
                c.setting()
            ),
            Credential::ManagedIdentity(m) => m.hint(),
            Credential::WorkloadIdentity { .. } => {
                "check AZURE_FEDERATED_TOKEN_FILE and the app registration's federated credential (issuer = the cluster's OIDC issuer URL, subject = system:serviceaccount:<namespace>:<service account>)".into()
            }
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Secret(<redacted>)"),
            Credential::Certificate(c) => write!(f, "Certificate({c:?})"),
            Credential::ManagedIdentity(m) => write!(f, "ManagedIdentity({m:?})"),
            Credential::WorkloadIdentity { token_file } => write!(f, "WorkloadIdentity({token_file:?})"),
        }
    }
}

/// App registration credentials. `Debug` hides the secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `https://login.microsoftonline.com` unless testing.
    pub login_base_url: String,
    /// Directory (tenant) id or domain.
    pub tenant_id: String,
    /// Application (client) id; with a managed identity, the user-assigned identity's client id
    /// (empty for the system-assigned one).
    pub client_id: String,
    /// How the app proves who it is.
    pub credential: Credential,
}

impl Credentials {
    /// Client-secret credentials (the WIT `graph.credentials` record).
    pub fn secret(login_base_url: &str, tenant_id: &str, client_id: &str, client_secret: &str) -> Credentials {
        Credentials {
            login_base_url: login_base_url.into(),
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential: Credential::Secret(client_secret.into()),
        }
    }

    /// Where this credential's token requests go: the Entra ID base URL, or the managed identity
    /// endpoint (for hosts that must name every upstream ahead, such as Envoy's clusters).
    pub fn token_service_url(&self) -> String {
        match &self.credential {
            Credential::ManagedIdentity(m) => match &m.endpoint {
                managed::Endpoint::Imds(url) | managed::Endpoint::AppService { url, .. } => url.clone(),
            },
            _ => self.login_base_url.clone(),
        }
    }

    /// `{login}/{tenant}/oauth2/v2.0/token`: where token requests go, and the `aud` of a client
    /// assertion.
    pub fn token_url(&self, tenant: &str) -> Result<String> {
        let base = base_url("login-base-url", &self.login_base_url)?;
        if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(Error::arg("tenant-id must be a directory id (GUID) or a domain name"));
        }
        Ok(format!("{base}/{tenant}/oauth2/v2.0/token"))
    }
}

impl Credentials {
    /// Check the credential where that is possible before any request (its files can be read, the
    /// certificate is good at `now_seconds`) and say what is in use, never its material: for a
    /// host's startup banner. `read` is the host's file reader. An error names the setting to fix.
    pub fn describe(
        &self,
        read: &dyn Fn(&str) -> std::result::Result<Vec<u8>, String>,
        now_seconds: u64,
    ) -> Result<String> {
        match &self.credential {
            Credential::Secret(_) => Ok("client secret of app registration ".to_string() + &self.client_id),
            Credential::Certificate(c) => {
                let bytes = match c.file() {
                    Some(path) => Some(
                        read(path).map_err(|e| Error::arg(format!("{}: {path} cannot be read: {e}", c.setting())))?,
                    ),
                    None => None,
                };
                let cert = c.load(bytes.as_deref(), now_seconds)?;
                let days = cert.not_after().saturating_sub(now_seconds) / 86_400;
                let soon = if days < 30 {
                    format!(" (in {days} days: upload the next certificate to the app registration now)")
                } else {
                    String::new()
                };
                let thumbprint = match c.algorithm {
                    certificate::Algorithm::Ps256 => format!("x5t#S256 {}", cert.thumbprint_sha256()),
                    certificate::Algorithm::Rs256 => format!("x5t {}", cert.thumbprint_sha1()),
                };
                Ok(format!(
                    "certificate of app registration {} ({}, {thumbprint}), expires {}{soon}",
                    self.client_id,
                    c.algorithm.name(),
                    crate::values::format_timestamp(crate::values::Instant { secs: cert.not_after() as i64, ticks: 0 })
                ))
            }
            Credential::ManagedIdentity(m) => {
                Ok(format!("managed identity: {}, from the {}", m.identity_name(), m.endpoint_name()))
            }
            Credential::WorkloadIdentity { token_file } => {
                let token = read(token_file)
                    .map_err(|e| Error::arg(format!("AZURE_FEDERATED_TOKEN_FILE: {token_file} cannot be read: {e}")))?;
                if token.iter().all(u8::is_ascii_whitespace) {
                    return Err(Error::arg(format!("AZURE_FEDERATED_TOKEN_FILE: {token_file} is empty")));
                }
                Ok(format!(
                    "workload identity federation for app registration {}, token from {token_file} (read again for every token)",
                    self.client_id
                ))
            }
        }
    }
}

/// How a client-credentials request proves the client.
pub enum ClientAuth<'a> {
    /// `client_secret`.
    Secret(&'a str),
    /// `client_assertion` (a signed JWT: the app's own, or a federated token).
    Assertion(&'a str),
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

/// The client-credentials token request with a client secret (`POST {login}/{tenant}/oauth2/v2.0/token`).
pub fn token_request(credentials: &Credentials, scope: Scope) -> Result<OutgoingRequest> {
    let Credential::Secret(secret) = &credentials.credential else {
        return Err(Error::arg("token-request takes a client secret; the driver handles the other credentials"));
    };
    if secret.is_empty() {
        return Err(Error::arg("client-secret is empty: create a client secret for the app registration"));
    }
    client_credentials_request(credentials, &credentials.tenant_id, ClientAuth::Secret(secret), scope)
}

/// The client-credentials token request for `tenant`, proved by `auth`.
pub fn client_credentials_request(
    credentials: &Credentials,
    tenant: &str,
    auth: ClientAuth<'_>,
    scope: Scope,
) -> Result<OutgoingRequest> {
    let url = credentials.token_url(tenant)?;
    if credentials.client_id.trim().is_empty() {
        return Err(Error::arg("client-id is empty: set the application (client) id of the app registration"));
    }
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials").append_pair("client_id", credentials.client_id.trim());
    match auth {
        ClientAuth::Secret(secret) => form.append_pair("client_secret", secret),
        ClientAuth::Assertion(jwt) => {
            form.append_pair("client_assertion_type", JWT_BEARER).append_pair("client_assertion", jwt)
        }
    };
    let body = form.append_pair("scope", scope.value()).finish();
    Ok(OutgoingRequest {
        method: "POST".into(),
        url,
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
    expires_on: Option<Value>,
}

/// Read the token endpoint's answer.
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<AccessToken> {
    check_response(status, &[], body, 0)?;
    parse_token_answer(body, None)
}

/// Read a token answer of Entra ID or of a managed identity endpoint. `expires_in` is a number
/// (Entra), or a string (IMDS); the App Service endpoint sends only `expires_on`, Unix seconds,
/// which needs `now_seconds` to become a lifetime.
pub fn parse_token_answer(body: &[u8], now_seconds: Option<u64>) -> Result<AccessToken> {
    let t: TokenBody = serde_json::from_slice(body).map_err(|e| Error::json("token response", e))?;
    let token = t
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::InvalidJson("token response has no access_token".into()))?;
    let seconds = |v: &Value| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let expires_in_seconds = match (t.expires_in.as_ref().and_then(seconds), t.expires_on.as_ref().and_then(seconds)) {
        (Some(n), _) => n,
        (None, Some(on)) => now_seconds.map_or(0, |now| on.saturating_sub(now)),
        _ => 0,
    }
    .min(u32::MAX as u64) as u32;
    Ok(AccessToken { token, expires_in_seconds })
}
