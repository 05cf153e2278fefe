//! Where the requests a component's driver asks for go: the [`Network`] (Graph, Entra ID and
//! Azure Monitor for real, or local stand-ins over HTTP), or an in-process [`Responder`] that
//! answers them with no socket at all (the test kit's stand-ins).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::bindings::types::OutgoingRequest;

/// Answers requests in process, for one origin.
pub trait Responder: Send + Sync {
    /// The origin it answers for, e.g. `http://127.0.0.1:8081`; requests to any other fail.
    fn base(&self) -> &str;
    /// The answer to one request.
    fn answer(&self, request: &Request) -> Answer;
}

/// Header pairs of an `http` header map, values read as (lossy) UTF-8.
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

impl Request {
    /// The request of an `http` request's head and its whole body.
    pub fn from_parts(parts: &http::request::Parts, body: Vec<u8>) -> Self {
        Request {
            method: parts.method.to_string(),
            path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            headers: header_pairs(&parts.headers),
            body,
        }
    }
}

impl<R: Responder + ?Sized> Responder for std::sync::Arc<R> {
    fn base(&self) -> &str {
        self.as_ref().base()
    }
    fn answer(&self, request: &Request) -> Answer {
        self.as_ref().answer(request)
    }
}

/// A request as an in-process [`Responder`] sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, e.g. `/graph/v1.0/communications/callRecords/…`.
    pub path: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// What a [`Responder`] answers: a response, or a dropped connection.
#[derive(Debug, Clone)]
pub enum Answer {
    /// An HTTP response.
    Response {
        /// Status.
        status: u16,
        /// Headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// The connection is closed without an answer.
    Drop,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, v: serde_json::Value) -> Self {
        Answer::Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    /// An answer without a body.
    pub fn empty(status: u16) -> Self {
        Answer::Response { status, headers: vec![], body: vec![] }
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Answer::Response { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// The status, or 0 for a dropped connection.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Response { status, .. } => *status,
            Answer::Drop => 0,
        }
    }
}

/// An answer: status, headers, body.
pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// How the host sends the requests the component's driver asks for.
pub trait Transport {
    /// Send and wait at most `timeout` for the whole answer; `Err` when none came.
    fn send(&self, request: &OutgoingRequest, timeout: Duration) -> Result<Reply, String>;
}

impl<R: Responder + ?Sized> Transport for R {
    fn send(&self, r: &OutgoingRequest, _timeout: Duration) -> Result<Reply, String> {
        let path = r.url.strip_prefix(self.base()).ok_or_else(|| format!("nothing answers {} in process", r.url))?;
        let req =
            Request { method: r.method.clone(), path: path.into(), headers: r.headers.clone(), body: r.body.clone() };
        match self.answer(&req) {
            Answer::Response { status, headers, body } => Ok((status, headers, body)),
            Answer::Drop => Err("connection closed without an answer".into()),
        }
    }
}

/// The network, with the TLS client wasmtime-wasi-http uses (webpki roots).
pub struct Network {
    rt: tokio::runtime::Runtime,
}

impl Network {
    /// A client with its own small runtime.
    pub fn new() -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Network { rt })
    }
}

impl Transport for Network {
    fn send(&self, r: &OutgoingRequest, timeout: Duration) -> Result<Reply, String> {
        let mut b = http::Request::builder().method(r.method.as_str()).uri(r.url.as_str());
        let authority = r.url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default();
        b = b.header("Host", authority);
        for (k, v) in &r.headers {
            b = b.header(k, v);
        }
        b = b.header("Content-Length", r.body.len());
        let body = Full::new(Bytes::from(r.body.clone()))
            .map_err(|e: std::convert::Infallible| -> wasmtime_wasi_http::Error { match e {} });
        let req = b.body(body).map_err(|e| format!("bad request: {e}"))?;
        let options = wasmtime_wasi_http::RequestOptions {
            connect_timeout: Some(timeout),
            first_byte_timeout: Some(timeout),
            between_bytes_timeout: Some(timeout),
        };
        self.rt.block_on(async {
            let (resp, io) =
                wasmtime_wasi_http::default_send_request(req, Some(options)).await.map_err(|e| format!("{e:?}"))?;
            let io = tokio::spawn(io);
            let (parts, body) = resp.into_parts();
            let body = tokio::time::timeout(timeout, body.collect())
                .await
                .map_err(|_| "answer body timed out".to_string())?
                .map_err(|e| format!("{e:?}"))?
                .to_bytes()
                .to_vec();
            io.abort();
            Ok((parts.status.as_u16(), header_pairs(&parts.headers), body))
        })
    }
}
