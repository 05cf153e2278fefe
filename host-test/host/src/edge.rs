//! Queue mode's webhook edge (`callrecords serve`): each request is judged by the core's `accept`
//! job (handshake, clientState, tenant, lifecycle actions), its accepted notifications committed to
//! the [`Queue`], and only then answered with the core's 202 (503 when the commit failed, so Graph
//! delivers again). `GET /healthz` and `GET /metrics` are answered here too. A client that has not
//! sent its request within [`BODY_TIMEOUT`] is cut off.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callrecords::pipeline::queue::Accepted;
use http_body_util::{BodyExt, Full};

use crate::Runtime;
use crate::bindings::driver::{Job, StorageQueueOptions};
use crate::bindings::types::IncomingRequest;
use crate::jobs::now_ms;
use crate::queue::{Queue, Stats};
use crate::transport::{Request, Transport};
use crate::worker::Metrics;

/// Largest request body read; the core answers 413 above its own limit (1 MiB by default).
pub const MAX_BODY_READ: usize = 16 << 20;
/// A client that has not sent its whole request (head and body) by then is cut off.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Gets each request's log line, and a resync `(since, until, reason)` the core asked for.
pub type OnLine = Arc<dyn Fn(&str, Option<(String, String, String)>) + Send + Sync>;

/// What the edge needs.
pub struct Edge {
    /// The plugin component.
    pub rt: Arc<Runtime>,
    /// The `CALLRECORDS_*` settings.
    pub env: Vec<(String, String)>,
    /// Where accepted notifications go.
    pub queue: Arc<Queue>,
    /// For lifecycle actions (reauthorize, renew, recreate).
    pub transport: Arc<dyn Transport>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Log lines.
    pub on_line: OnLine,
}

type Body = Full<Bytes>;

fn answer(status: u16, content_type: &str, body: impl Into<Bytes>) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

impl Edge {
    /// Queue mode on the Azure Storage queue of `CALLRECORDS_QUEUE_URL`.
    fn storage(&self) -> bool {
        self.env.iter().any(|(k, v)| k == "CALLRECORDS_QUEUE_URL" && !v.trim().is_empty())
    }

    /// Serve HTTP/1.1 on `listener` until `shutdown` completes; then stop accepting and give the
    /// requests being answered up to [`BODY_TIMEOUT`] to finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let open = Arc::new(());
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut shutdown => break,
            };
            let open = open.clone();
            let edge = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let edge = edge.clone();
                    async move { Ok::<_, std::convert::Infallible>(edge.handle(req).await) }
                });
                let io = wasmtime_wasi_http::io::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(BODY_TIMEOUT)
                    .serve_connection(io, service)
                    .await;
                drop(open);
            });
        }
        drop(listener);
        let waited = Instant::now();
        while Arc::strong_count(&open) > 1 && waited.elapsed() < BODY_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// [`Edge::handle`] for a request given as parts: its status and body.
    pub async fn handle_parts(
        self: Arc<Self>,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> (u16, Vec<u8>) {
        let mut b = hyper::Request::builder().method(method).uri(format!("http://localhost{path}"));
        for (k, v) in headers {
            b = b.header(k, v);
        }
        let Ok(req) = b.body(Full::new(Bytes::from(body))) else { return (400, b"bad request".to_vec()) };
        let r = self.handle(req).await;
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        (status, body)
    }

    /// One request: `/healthz`, `/metrics`, or a delivery judged, committed and answered.
    pub async fn handle<B>(self: Arc<Self>, req: hyper::Request<B>) -> hyper::Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let (method, path) = (parts.method.to_string(), parts.uri.path().to_string());
        if method == "GET" && path == "/healthz" {
            let mut queue = self.queue.writable();
            if self.storage() && self.metrics.storage_failing.load(Ordering::Relaxed) {
                queue = Err("the Azure Storage queue refused or did not answer the last request".into());
            }
            let (alive, subscription) = self.metrics.subscription(now_ms());
            let body = serde_json::json!({
                "live": true,
                "ready": queue.is_ok() && alive,
                "queue": queue.err().unwrap_or_else(|| "writable".into()),
                "subscription": subscription,
            });
            return answer(if body["ready"] == true { 200 } else { 503 }, "application/json", body.to_string());
        }
        if method == "GET" && path == "/metrics" && self.storage() {
            // The Storage queue's lengths, as the service reports them (approximate).
            let e = self.clone();
            let job = Job::StorageQueue(StorageQueueOptions { peek_dead: 0, requeue_dead: false });
            let r = tokio::task::spawn_blocking(move || {
                e.rt.run_job(&e.env, &job, e.transport.as_ref(), &mut |_| {}).map_err(|x| x.to_string())
            })
            .await
            .map_err(|x| x.to_string())
            .and_then(|r| r);
            let st = match &r {
                Ok(r) if r.report.ok => &r.detail["storage"],
                Ok(r) => return answer(503, "text/plain", r.report.error.clone().unwrap_or_default()),
                Err(x) => return answer(503, "text/plain", x.clone()),
            };
            let n = |k: &str| st[k].as_u64().unwrap_or(0);
            let stats = Stats { depth: n("depth"), dead: n("dead_depth"), ..Stats::default() };
            return answer(200, "text/plain; version=0.0.4", self.metrics.render(&stats, now_ms()));
        }
        if method == "GET" && path == "/metrics" {
            return match self.queue.stats(now_ms()) {
                Ok(stats) => answer(200, "text/plain; version=0.0.4", self.metrics.render(&stats, now_ms())),
                Err(e) => answer(503, "text/plain", e),
            };
        }
        let limited = http_body_util::Limited::new(body, MAX_BODY_READ);
        let body = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
            Err(_) => return answer(408, "text/plain", "the request body did not arrive in time"),
            // Over the cap: one byte more than the core allows is enough for it to answer 413.
            Ok(Err(_)) => vec![0u8; MAX_BODY_READ + 1],
            Ok(Ok(b)) => b.to_bytes().to_vec(),
        };
        let request = Request::from_parts(&parts, body);
        let incoming = IncomingRequest {
            method: request.method,
            path_and_query: request.path,
            headers: request.headers,
            body: request.body,
        };
        let e = self.clone();
        let judged = tokio::task::spawn_blocking(move || {
            e.rt.run_job(&e.env, &Job::Accept(incoming), e.transport.as_ref(), &mut |_| {}).map_err(|x| x.to_string())
        })
        .await
        .map_err(|x| x.to_string())
        .and_then(|r| r);
        let report = match judged {
            Ok(r) => r,
            Err(x) => return answer(500, "text/plain", format!("the webhook could not judge the request: {x}")),
        };
        let accepted: Vec<Accepted> = serde_json::from_value(report.detail["accepted"].clone()).unwrap_or_default();
        let m = &self.metrics;
        let rejected = report.detail["rejected"].as_u64().unwrap_or(0);
        m.token_requests.fetch_add(report.detail["token_requests"].as_u64().unwrap_or(0), Ordering::Relaxed);
        m.rejected.fetch_add(rejected, Ordering::Relaxed);
        let (mut status, mut headers, mut body) = {
            let r = &report.report.response;
            (r.status, r.headers.clone(), r.body.clone())
        };
        let mut line = String::new();
        // On an Azure Storage queue the core put the messages itself: its answer is the answer.
        let storage = report.detail.get("storage").filter(|s| !s.is_null());
        if let Some(st) = storage {
            let put = st["enqueued"].as_u64().unwrap_or(0);
            if !accepted.is_empty() {
                m.deliveries.fetch_add(1, Ordering::Relaxed);
                m.last_delivery_ms.store(now_ms(), Ordering::Relaxed);
            }
            m.queued.fetch_add(put, Ordering::Relaxed);
            line = format!("queued={put}");
            if status == 503 {
                m.commit_failures.fetch_add(1, Ordering::Relaxed);
                m.storage_failing.store(true, Ordering::Relaxed);
                line = format!("enqueue failed: {}", report.detail["error"].as_str().unwrap_or("?"));
            } else if put > 0 {
                m.storage_failing.store(false, Ordering::Relaxed);
            }
        } else if !accepted.is_empty() {
            m.deliveries.fetch_add(1, Ordering::Relaxed);
            m.last_delivery_ms.store(now_ms(), Ordering::Relaxed);
            let q = self.queue.clone();
            let committed = tokio::task::spawn_blocking(move || q.commit(&accepted, now_ms()))
                .await
                .map_err(|x| x.to_string())
                .and_then(|r| r);
            match committed {
                Ok(c) => {
                    m.queued.fetch_add(u64::from(c.queued), Ordering::Relaxed);
                    m.folded.fetch_add(u64::from(c.folded), Ordering::Relaxed);
                    line = format!("queued={} folded={}", c.queued, c.folded);
                }
                Err(x) => {
                    m.commit_failures.fetch_add(1, Ordering::Relaxed);
                    let r = callrecords::pipeline::queue::commit_failed(&x);
                    (status, headers, body) = (r.status, r.headers, r.body);
                    line = format!("commit failed: {x}");
                }
            }
        }
        if rejected > 0 {
            line += &format!(" rejected={rejected}");
        }
        let resync = report.detail.get("resync").filter(|r| !r.is_null()).map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("since"), s("until"), s("reason"))
        });
        let detail = if line.trim().is_empty() { String::new() } else { format!("{} ", line.trim()) };
        let line = format!("{method} {path} {status} {detail}({} ms)", started.elapsed().as_millis());
        (self.on_line)(&line, resync);
        let mut r = answer(status, "text/plain", body);
        r.headers_mut().remove(hyper::header::CONTENT_TYPE);
        for (k, v) in &headers {
            if let (Ok(k), Ok(v)) =
                (hyper::header::HeaderName::from_bytes(k.as_bytes()), hyper::header::HeaderValue::from_str(v))
            {
                r.headers_mut().append(k, v);
            }
        }
        r
    }
}
