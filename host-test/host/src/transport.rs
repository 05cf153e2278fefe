//! Where the requests a component's driver asks for go: the [`Network`] (Graph, Entra ID and
//! Azure Monitor for real, or local stand-ins over HTTP, through a [`HttpClient`] that reuses its
//! connections), or an in-process [`Responder`] that answers them with no socket at all (the test
//! kit's stand-ins).

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

/// Gets the answer of one request (or why none came), once, from whichever thread got it.
pub type Done = Box<dyn FnOnce(Result<Reply, String>) + Send>;

/// How the host sends the requests the component's driver asks for: many at once.
pub trait Transport: Send + Sync {
    /// Start sending `request` and return at once; `done` gets its whole answer, or why none came
    /// within `timeout`.
    fn start(&self, request: OutgoingRequest, timeout: Duration, done: Done);
}

/// An in-process responder answers each request on a thread of its own (it may take its time,
/// as the stand-ins at cloud latency do).
impl<R: Responder + ?Sized + 'static> Transport for std::sync::Arc<R> {
    fn start(&self, r: OutgoingRequest, _timeout: Duration, done: Done) {
        let responder = self.clone();
        std::thread::spawn(move || {
            let Some(path) = r.url.strip_prefix(responder.base()) else {
                return done(Err(format!("nothing answers {} in process", r.url)));
            };
            let req = Request { method: r.method, path: path.into(), headers: r.headers, body: r.body };
            done(match responder.answer(&req) {
                Answer::Response { status, headers, body } => Ok((status, headers, body)),
                Answer::Drop => Err("connection closed without an answer".into()),
            })
        });
    }
}

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per host, and for how long.
const IDLE_PER_HOST: usize = 64;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub use callrecords::http::MAX_ANSWER_BYTES;

/// Why a request got no answer: the wasi:http error code and a description.
#[derive(Debug)]
pub struct SendError {
    /// As `wasi:http` reports it to a component.
    pub code: wasmtime_wasi_http::Error,
    /// What happened, for a log line.
    pub detail: String,
}

impl SendError {
    fn new(code: wasmtime_wasi_http::Error, detail: impl Into<String>) -> Self {
        SendError { code, detail: detail.into() }
    }
}

type Pool = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// An HTTP/1.1 client that keeps connections (and their TLS sessions) alive and reuses them, with
/// the webpki roots wasmtime-wasi-http's own sender trusts. wasmtime-wasi-http's default sender
/// opens a new connection, and a new TLS handshake, for every request.
#[derive(Clone)]
pub struct HttpClient {
    pool: Pool,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with an empty pool. Connections belong to the tokio runtime that opened them.
    pub fn new() -> Self {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let pool = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(https);
        HttpClient { pool }
    }

    /// Send `request` (an absolute URL); its answer's head within `head_timeout`, then its whole
    /// body (at most [`MAX_ANSWER_BYTES`]) with no gap longer than `body_timeout`.
    pub async fn fetch(
        &self,
        request: http::Request<Full<Bytes>>,
        head_timeout: Duration,
        body_timeout: Duration,
    ) -> Result<(http::response::Parts, Bytes), SendError> {
        use wasmtime_wasi_http::Error as E;
        let answer = tokio::time::timeout(head_timeout, self.pool.request(request))
            .await
            .map_err(|_| SendError::new(E::ConnectionReadTimeout, "no answer in time"))?;
        let response = answer.map_err(|e| {
            let detail = error_chain(&e);
            SendError::new(if e.is_connect() { E::ConnectionRefused } else { E::HttpProtocolError }, detail)
        })?;
        let (parts, mut body) = response.into_parts();
        let mut bytes = bytes::BytesMut::new();
        loop {
            let frame = tokio::time::timeout(body_timeout, body.frame())
                .await
                .map_err(|_| SendError::new(E::ConnectionReadTimeout, "the answer's body stalled"))?;
            match frame {
                None => break,
                Some(Err(e)) => return Err(SendError::new(E::HttpResponseIncomplete, error_chain(&e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if bytes.len() + data.len() > MAX_ANSWER_BYTES {
                            let detail = format!("the answer is larger than {MAX_ANSWER_BYTES} bytes");
                            return Err(SendError::new(E::HttpResponseBodySize(None), detail));
                        }
                        bytes.extend_from_slice(&data);
                    }
                }
            }
        }
        Ok((parts, bytes.freeze()))
    }
}

/// An error and its sources, on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out += &format!(": {s}");
        source = s.source();
    }
    out
}

/// The network for driver jobs: a [`HttpClient`] on a runtime of its own, so its connections
/// outlive any one job. Each request is a task on that runtime.
pub struct Network {
    rt: tokio::runtime::Runtime,
    client: HttpClient,
}

impl Network {
    /// A client with its own small runtime.
    pub fn new() -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("callrecords-net")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Network { rt, client: HttpClient::new() })
    }
}

impl Transport for Network {
    fn start(&self, r: OutgoingRequest, timeout: Duration, done: Done) {
        let mut b = http::Request::builder().method(r.method.as_str()).uri(r.url.as_str());
        for (k, v) in &r.headers {
            b = b.header(k, v);
        }
        let request = match b.body(Full::new(Bytes::from(r.body))) {
            Ok(req) => req,
            Err(e) => return done(Err(format!("bad request: {e}"))),
        };
        let client = self.client.clone();
        self.rt.spawn(async move {
            let answer = client.fetch(request, timeout, timeout).await;
            done(
                answer
                    .map(|(parts, body)| (parts.status.as_u16(), header_pairs(&parts.headers), body.to_vec()))
                    .map_err(|e| format!("{:?}: {}", e.code, e.detail)),
            )
        });
    }
}
