//! The one error type of the core; it mirrors the WIT `types.error` variant.

use std::fmt;

/// What a remote service answered when it refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status code.
    pub status: u16,
    /// The service's error code (`InvalidAuthenticationToken`, `invalid_client`, ...), or empty.
    pub code: String,
    /// The service's message, or a description of the status.
    pub message: String,
    /// Seconds to wait before retrying, when the service said so.
    pub retry_after_seconds: Option<u32>,
    /// Retrying the same request later can succeed (429, 408, 5xx).
    pub retryable: bool,
}

/// Every error the core returns. Messages say what was wrong and what to do, and never contain a
/// secret (client secret, shared key, token, clientState).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An argument is missing or has the wrong form.
    InvalidArgument(String),
    /// A JSON document could not be parsed or does not have the expected shape.
    InvalidJson(String),
    /// An input is larger than the service accepts.
    TooLarge(String),
    /// A remote service refused a request.
    Service(ServiceError),
}

impl Error {
    pub(crate) fn arg(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub(crate) fn json(what: &str, err: impl fmt::Display) -> Self {
        Error::InvalidJson(format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::InvalidJson(m) => write!(f, "invalid JSON: {m}"),
            Error::TooLarge(m) => write!(f, "too large: {m}"),
            Error::Service(e) => {
                write!(f, "service answered {}", e.status)?;
                if !e.code.is_empty() {
                    write!(f, " ({})", e.code)?;
                }
                write!(f, ": {}", e.message)?;
                if let Some(s) = e.retry_after_seconds {
                    write!(f, "; retry after {s} s")?;
                } else if e.retryable {
                    write!(f, "; retry later")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

/// Result of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
