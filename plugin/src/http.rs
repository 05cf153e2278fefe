//! HTTP shapes exchanged with the host, the rules every outgoing request shares (base URLs, the
//! bearer header), and the one judge of every service response.

use std::fmt;

use crate::error::{Error, Result, ServiceError};

/// Header list in wire order.
pub type Headers = Vec<(String, String)>;

/// An HTTP request as the webhook endpoint received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingRequest {
    /// Method as received.
    pub method: String,
    /// Path and query, still percent-encoded.
    pub path_and_query: String,
    /// Headers as received.
    pub headers: Headers,
    /// The whole body.
    pub body: Vec<u8>,
}

/// An HTTP response for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A short plain-text response (`text/plain; charset=utf-8`, `nosniff`).
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            headers: vec![
                ("Content-Type".into(), "text/plain; charset=utf-8".to_string()),
                ("X-Content-Type-Options".into(), "nosniff".into()),
            ],
            body: body.into().into_bytes(),
        }
    }
}

/// A request for the host to send. Its `Debug` hides the `Authorization` header and the body
/// (which may carry a client secret).
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
}

impl fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let shown = if n.eq_ignore_ascii_case("authorization") { "<redacted>" } else { v.as_str() };
                (n.as_str(), shown)
            })
            .collect();
        f.debug_struct("OutgoingRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// `Bearer {token}`, refusing tokens that would break the header.
pub(crate) fn bearer(token: &str) -> Result<String> {
    if token.is_empty() {
        return Err(Error::arg("token is empty: request one with token-request first"));
    }
    if token.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(Error::arg("token contains characters a bearer token cannot have"));
    }
    Ok(format!("Bearer {token}"))
}

/// Largest answer any host reads from Graph, Entra or an ingestion endpoint (32 MiB): a Graph
/// page is far smaller (60 sessions, 130 participants), so a larger one is refused as an error
/// before it is read, whatever the host.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// A base URL without its trailing slash: `https://host[:port][/path]` (or `http://` to a loopback
/// host), no query or fragment.
pub fn base_url<'a>(name: &str, url: &'a str) -> Result<&'a str> {
    let trimmed = url.trim_end_matches('/');
    let (rest, plain) = match (trimmed.strip_prefix("https://"), trimmed.strip_prefix("http://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => {
            return Err(Error::arg(format!("{name} must start with https:// (or http:// for a stand-in on loopback)")));
        }
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::arg(format!("{name} must be a plain base URL such as https://host[:port]")));
    }
    // Bearer tokens and signatures go to these URLs: in clear only to this machine.
    if plain && !is_loopback(host) {
        return Err(Error::arg(format!(
            "{name} must start with https:// (plain http:// is allowed only for 127.0.0.0/8, localhost or [::1])"
        )));
    }
    Ok(trimmed)
}

/// Whether `authority` (`host[:port]`) names this machine: 127.0.0.0/8, `localhost`, `[::1]`.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => return v6.split(']').next() == Some("::1"),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<core::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Longest service message kept in an error.
const MAX_MESSAGE_CHARS: usize = 400;

/// Judge any Graph, Entra (login) or Azure Monitor response: `Ok` for 2xx; otherwise the service's
/// error code and message, `Retry-After` (delta seconds or an HTTP date, `now` in Unix seconds) and
/// whether a retry can help.
pub fn check_response(status: u16, headers: &[(String, String)], body: &[u8], now: u64) -> Result<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let (code, mut message) = error_body(body).unwrap_or_default();
    if message.trim().is_empty() {
        message = status_text(status);
    }
    let retry_after_seconds = header(headers, "retry-after").and_then(|v| retry_after(v, now));
    Err(Error::Service(ServiceError {
        status,
        code,
        message,
        retry_after_seconds,
        retryable: status == 408 || status == 429 || status >= 500,
    }))
}

/// `{"error":{"code","message"}}` (Graph, Azure Monitor) or `{"error":"…","error_description":"…"}`
/// (OAuth 2.0 token endpoint).
fn error_body(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    let (code, message) = match err {
        serde_json::Value::Object(o) => (
            o.get("code").and_then(|c| c.as_str()).unwrap_or_default(),
            o.get("message").and_then(|m| m.as_str()).unwrap_or_default(),
        ),
        serde_json::Value::String(code) => {
            (code.as_str(), v.get("error_description").and_then(|d| d.as_str()).unwrap_or_default())
        }
        _ => return None,
    };
    let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    Some((code.to_string(), message))
}

fn retry_after(value: &str, now: u64) -> Option<u32> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.min(u32::MAX as u64) as u32);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(now).min(u32::MAX as u64) as u32)
}

fn status_text(status: u16) -> String {
    let text = match status {
        400 => "bad request",
        401 => "unauthorized: the token is missing, expired or for another audience",
        403 => "forbidden: the app lacks the permission or role assignment",
        404 => "not found (callRecords older than 30 days are gone)",
        408 => "request timeout",
        413 => "payload too large",
        429 => "too many requests",
        500..=599 => "server error",
        _ => "unexpected status",
    };
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: &str, v: &str) -> Vec<(String, String)> {
        vec![(n.to_string(), v.to_string())]
    }

    #[test]
    fn success_statuses_pass() {
        for s in [200, 202, 204] {
            assert_eq!(check_response(s, &[], b"", 0), Ok(()));
        }
    }

    #[test]
    fn graph_throttling_with_retry_after_seconds() {
        let body = br#"{"error":{"code":"TooManyRequests","message":"Too many requests","innerError":{}}}"#;
        let Err(Error::Service(e)) = check_response(429, &h("Retry-After", "7"), body, 0) else {
            panic!("expected service error")
        };
        assert_eq!((e.code.as_str(), e.retry_after_seconds, e.retryable), ("TooManyRequests", Some(7), true));
    }

    #[test]
    fn retry_after_as_http_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777 (RFC 9110's example date).
        let Err(Error::Service(e)) =
            check_response(503, &h("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"), b"", 784_111_770)
        else {
            panic!()
        };
        assert_eq!(e.retry_after_seconds, Some(7));
        assert_eq!(e.message, "server error");
    }

    #[test]
    fn oauth_error_shape() {
        let body =
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        let Err(Error::Service(e)) = check_response(401, &[], body, 0) else { panic!() };
        assert_eq!(e.code, "invalid_client");
        assert!(e.message.starts_with("AADSTS7000215"));
        assert!(!e.retryable);
    }

    #[test]
    fn debug_hides_authorization() {
        let r = OutgoingRequest {
            method: "GET".into(),
            url: "https://x".into(),
            headers: h("Authorization", "Bearer SECRET-TOKEN"),
            body: b"client_secret=SECRET".to_vec(),
        };
        let d = format!("{r:?}");
        assert!(!d.contains("SECRET"), "{d}");
    }
}
