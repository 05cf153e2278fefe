//! Managed identity: the Azure resource the service runs on asks a local endpoint for tokens; no
//! secret exists anywhere.
//!
//! - **Azure Instance Metadata Service** (VMs, scale sets, AKS nodes):
//!   `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   with `Metadata: true` (IMDS refuses a request without it: 400, "Required metadata header not
//!   specified"). The answer's `expires_in` is a string of seconds.
//! - **App Service / Azure Functions / Container Apps**: the platform sets `IDENTITY_ENDPOINT` and
//!   `IDENTITY_HEADER`; `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…` with
//!   `X-IDENTITY-HEADER: {IDENTITY_HEADER}`. The answer gives `expires_on` (Unix seconds) only.
//!
//! Both take `client_id=` to choose a user-assigned identity; without it the system-assigned one
//! answers. Either gives tokens for the identity's own tenant only.

use std::fmt;

use crate::error::{Error, Result};
use crate::http::OutgoingRequest;

use super::Scope;

/// The Instance Metadata Service, unless `CALLRECORDS_IMDS_URL` points at a stand-in.
pub const DEFAULT_IMDS_URL: &str = "http://169.254.169.254";
/// The IMDS token API version.
pub const IMDS_API_VERSION: &str = "2018-02-01";
/// The App Service identity endpoint's API version.
pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";

/// Which endpoint gives the tokens.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The Instance Metadata Service at this base URL.
    Imds(String),
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (a secret: it proves the caller is inside the
    /// app's sandbox).
    AppService {
        /// `IDENTITY_ENDPOINT`.
        url: String,
        /// `IDENTITY_HEADER`.
        header: String,
    },
}

/// A managed identity. `Debug` hides `IDENTITY_HEADER`.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagedIdentity {
    /// Where tokens come from.
    pub endpoint: Endpoint,
    /// The client id of a user-assigned identity; `None` for the system-assigned one.
    pub client_id: Option<String>,
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}", self.endpoint_name(), self.identity_name())
    }
}

impl ManagedIdentity {
    /// Which endpoint, for the banner: `IMDS <url>` or `IDENTITY_ENDPOINT <url>`.
    pub fn endpoint_name(&self) -> String {
        match &self.endpoint {
            Endpoint::Imds(url) => format!("Instance Metadata Service {url}"),
            Endpoint::AppService { url, .. } => format!("IDENTITY_ENDPOINT {url}"),
        }
    }

    /// Which identity, for the banner.
    pub fn identity_name(&self) -> String {
        match &self.client_id {
            Some(id) => format!("user-assigned identity {id}"),
            None => "system-assigned identity".into(),
        }
    }

    /// What to check when the endpoint refuses.
    pub fn hint(&self) -> String {
        let which = match &self.client_id {
            Some(_) => {
                "check CALLRECORDS_CLIENT_ID: the client id of a user-assigned identity attached to this resource"
            }
            None => {
                "check that this resource's system-assigned identity is on (or set CALLRECORDS_CLIENT_ID to a user-assigned identity's client id)"
            }
        };
        match &self.endpoint {
            Endpoint::Imds(_) => {
                format!("{which}; the Instance Metadata Service answers only on Azure VMs, scale sets and AKS nodes")
            }
            Endpoint::AppService { .. } => {
                format!("{which}; IDENTITY_ENDPOINT and IDENTITY_HEADER are set by App Service / Container Apps")
            }
        }
    }

    /// Whether an answer with `status` is worth repeating. Besides 429 and 5xx (as for every
    /// service), IMDS answers 404 and 410 while it is updating (Microsoft: retry with backoff, a
    /// 410 for up to 70 s).
    pub fn retryable(&self, status: u16) -> bool {
        matches!(self.endpoint, Endpoint::Imds(_)) && matches!(status, 404 | 410)
    }

    /// The token request for `scope`.
    pub fn token_request(&self, scope: Scope) -> Result<OutgoingRequest> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let (url, api_version, header) = match &self.endpoint {
            Endpoint::Imds(base) => (
                format!("{}/metadata/identity/oauth2/token", base.trim_end_matches('/')),
                IMDS_API_VERSION,
                ("Metadata".to_string(), "true".to_string()),
            ),
            Endpoint::AppService { url, header } => {
                if header.is_empty() {
                    return Err(Error::arg("IDENTITY_HEADER is empty"));
                }
                (url.clone(), APP_SERVICE_API_VERSION, ("X-IDENTITY-HEADER".to_string(), header.clone()))
            }
        };
        query.append_pair("api-version", api_version).append_pair("resource", scope.resource());
        if let Some(id) = &self.client_id {
            query.append_pair("client_id", id);
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok(OutgoingRequest {
            method: "GET".into(),
            url: format!("{url}{sep}{}", query.finish()),
            headers: vec![header, ("Accept".into(), "application/json".into())],
            body: vec![],
        })
    }
}

/// Check a managed identity endpoint URL: https, or plain http to this machine or to the
/// link-local range (169.254.0.0/16) where IMDS and the platforms' identity endpoints live.
pub fn endpoint_url(name: &str, url: &str) -> Result<String> {
    let trimmed = url.trim();
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| Error::arg(format!("{name} must start with http:// or https://")))?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() || trimmed.contains(['#', '@']) || trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::arg(format!("{name} must be a plain URL such as http://169.254.169.254")));
    }
    let name_only = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let local = name_only == "localhost"
        || name_only.starts_with("127.")
        || name_only.starts_with("169.254.")
        || name_only == "[::1]";
    if trimmed.starts_with("http://") && !local {
        return Err(Error::arg(format!(
            "{name}: plain http:// is allowed only to this machine or the link-local 169.254.0.0/16 (the identity endpoints)"
        )));
    }
    Ok(trimmed.to_string())
}
