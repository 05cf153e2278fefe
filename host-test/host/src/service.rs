//! Hosts the `service` component with wasmtime-wasi-http the way `wasmtime serve` does: a fresh
//! instance per request, the settings as its environment, its stderr captured as the request's
//! log line. Its outgoing requests go to the network (TLS with the webpki roots) or, when the
//! host intercepts them, straight to an in-process [`Responder`] (the test kit's stand-ins) with no
//! socket at all.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::keyvalue::{self, KeyValue};
use crate::transport::{Answer, HttpClient, Request, Responder, header_pairs};

/// Memory cap of one request's instance.
const MEMORY_BYTES: usize = 256 << 20;
/// A request's instance is stopped after this long, whatever its own deadline says (by default;
/// see [`ServiceHost::with_timeout`]).
const HARD_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest guest log kept per request.
const LOG_BYTES: usize = 64 << 10;

/// Where the component's outgoing requests go.
#[derive(Clone)]
pub enum Outbound {
    /// The network: Graph, Entra ID and Azure Monitor for real (or local stand-ins over HTTP),
    /// through one pool of kept-alive connections shared by every request's instance.
    Network(HttpClient),
    /// An in-process responder; a request for any other origin fails as "destination not found".
    Intercept(Arc<dyn Responder>),
}

/// What one request got.
#[derive(Debug, Clone)]
pub struct Served {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// What the component wrote to stderr (its log line).
    pub log: String,
    /// Wall time from the request to the end of the answer.
    pub elapsed: Duration,
}

impl Served {
    /// The body as the driver's JSON report, when it is one.
    pub fn report(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok().filter(|v: &serde_json::Value| v.is_object())
    }
}

/// State of one request's store.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: Hooks,
    limiter: Cap,
    keyvalue: KeyValue,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// The memory cap of one request's instance; `refused` tells the request's answer that the
/// component hit it.
struct Cap {
    max: usize,
    refused: Arc<std::sync::atomic::AtomicBool>,
}

impl ResourceLimiter for Cap {
    fn memory_growing(&mut self, _: usize, desired: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.max;
        if !ok {
            self.refused.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(ok)
    }
    fn table_growing(&mut self, _: usize, desired: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct Hooks {
    outbound: Outbound,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let outbound = self.outbound.clone();
        Box::new(async move {
            match outbound {
                Outbound::Network(client) => {
                    let head = options.and_then(|o| o.first_byte_timeout).unwrap_or(HARD_TIMEOUT);
                    let between = options.and_then(|o| o.between_bytes_timeout).unwrap_or(HARD_TIMEOUT);
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await?.to_bytes();
                    let request = http::Request::from_parts(parts, Full::new(body));
                    let (parts, body) = client.fetch(request, head, between).await.map_err(|e| e.code)?;
                    let body = Full::new(body).map_err(|e: Infallible| match e {}).boxed_unsync();
                    let answer = http::Response::from_parts(parts, body);
                    Ok((answer, Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>))
                }
                Outbound::Intercept(s) => {
                    let timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(HARD_TIMEOUT);
                    let answer = tokio::time::timeout(timeout, intercept(s, request))
                        .await
                        .map_err(|_| wasmtime_wasi_http::Error::ConnectionReadTimeout)??;
                    Ok((answer, Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>))
                }
            }
        })
    }
}

async fn intercept(
    s: Arc<dyn Responder>,
    request: http::Request<WasiBody>,
) -> wasmtime_wasi_http::Result<http::Response<WasiBody>> {
    let (parts, body) = request.into_parts();
    let base = s.base().to_string();
    let origin = format!(
        "{}://{}",
        parts.uri.scheme_str().unwrap_or("http"),
        parts.uri.authority().map(|a| a.as_str()).unwrap_or("")
    );
    if origin != base {
        return Err(wasmtime_wasi_http::Error::DestinationNotFound);
    }
    let body = body.collect().await?.to_bytes().to_vec();
    let req = Request::from_parts(&parts, body);
    let answer = tokio::task::spawn_blocking(move || s.answer(&req))
        .await
        .map_err(|_| wasmtime_wasi_http::Error::ConnectionTerminated)?;
    match answer {
        Answer::Drop => Err(wasmtime_wasi_http::Error::ConnectionTerminated),
        Answer::Response { status, headers, body } => {
            let mut r = http::Response::builder().status(status);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            let body = Full::new(Bytes::from(body)).map_err(|e: Infallible| match e {}).boxed_unsync();
            r.body(body).map_err(|_| wasmtime_wasi_http::Error::HttpProtocolError)
        }
    }
}

/// Called with the method, path and result of every request `serve` handled.
pub type OnServed = Arc<dyn Fn(&str, &str, &Served) + Send + Sync>;

/// A loaded service component.
pub struct ServiceHost {
    engine: Engine,
    pre: ProxyPre<State>,
    env: Vec<(String, String)>,
    outbound: Outbound,
    keyvalue: KeyValue,
    timeout: Duration,
    stop_ticker: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ServiceHost {
    fn drop(&mut self) {
        self.stop_ticker.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ServiceHost {
    /// Load `wasm` (a `service` world component) with these settings (`CALLRECORDS_*`).
    pub fn new(wasm: &[u8], env: Vec<(String, String)>, outbound: Outbound) -> Result<Self, String> {
        // Epochs stop a guest that never returns (a loop never reaches an await, so a timeout
        // around it alone would leave it spinning on its thread).
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
        let component = match crate::cache::load(&engine, wasm, "service") {
            Some(c) => c,
            None => Component::new(&engine, wasm).map_err(|e| format!("cannot load the component: {e:#}"))?,
        };
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| format!("{e:#}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(|e| format!("{e:#}"))?;
        keyvalue::add_to_linker(&mut linker, |s: &mut State| keyvalue::View::new(&s.keyvalue, &mut s.table))
            .map_err(|e| format!("{e:#}"))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| format!("cannot link the component: {e:#}"))?;
        let pre = ProxyPre::new(pre).map_err(|e| format!("it does not export wasi:http/incoming-handler: {e:#}"))?;
        let stop_ticker = crate::runtime::start_ticker(&engine)?;
        Ok(ServiceHost {
            engine,
            pre,
            env,
            outbound,
            keyvalue: KeyValue::default(),
            timeout: HARD_TIMEOUT,
            stop_ticker,
        })
    }

    /// Stop each request's instance after `timeout` instead of 60 s: it traps, its task ends and
    /// the request gets a 503.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `wasi:keyvalue` store every request's instance shares (where the component keeps its
    /// tokens).
    pub fn keyvalue(&self) -> &KeyValue {
        &self.keyvalue
    }

    /// The built-in service component.
    pub fn embedded(env: Vec<(String, String)>, outbound: Outbound) -> Result<Self, String> {
        Self::new(crate::artifacts::SERVICE, env, outbound)
    }

    /// Handle one request in a fresh instance.
    pub async fn handle<B>(&self, request: hyper::Request<B>) -> Served
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = Instant::now();
        let stderr = MemoryOutputPipe::new(LOG_BYTES);
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut wasi = WasiCtx::builder();
        wasi.envs(&self.env).stderr(stderr.clone());
        for dir in crate::runtime::credential_dirs(&self.env) {
            if let Err(e) = wasi.preopened_dir(&dir, &dir, FsPerms::ReadOnly) {
                let why = format!("cannot open {dir} for the component: {e:#}");
                return Served {
                    status: 500,
                    headers: vec![("Content-Type".into(), "text/plain".into())],
                    body: why.clone().into_bytes(),
                    log: why,
                    elapsed: started.elapsed(),
                };
            }
        }
        let wasi = wasi.build();
        let state = State {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: Hooks { outbound: self.outbound.clone() },
            limiter: Cap { max: MEMORY_BYTES, refused: refused.clone() },
            keyvalue: self.keyvalue.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every tick the guest yields to the executor (so it shares its thread); past the timeout
        // it traps, and its task ends.
        let limit = self.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if started.elapsed() >= limit { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });
        let failed = |status: u16, why: String, started: Instant| Served {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: why.clone().into_bytes(),
            log: why,
            elapsed: started.elapsed(),
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (req, out) = {
            let mut http = store.data_mut().http();
            let req = http.new_incoming_request(Scheme::Http, request);
            let out = http.new_response_outparam(sender);
            match (req, out) {
                (Ok(r), Ok(o)) => (r, o),
                (Err(e), _) | (_, Err(e)) => return failed(400, format!("bad request: {e:#}"), started),
            }
        };
        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
        });
        let answer = tokio::time::timeout(self.timeout, async {
            match receiver.await {
                Ok(Ok(resp)) => {
                    let (parts, body) = resp.into_parts();
                    match body.collect().await {
                        Ok(b) => Ok((parts, b.to_bytes().to_vec())),
                        Err(e) => Err(format!("the component's answer body failed: {e:?}")),
                    }
                }
                Ok(Err(code)) => Err(format!("the component answered with an error code: {code:?}")),
                Err(_) => Err("the component returned without answering".to_string()),
            }
        })
        .await;
        // With a real connection the instance may only finish once hyper has the answer (the request
        // body's end belongs to the connection), so it is not awaited after a good answer; a
        // watchdog stops it if it never ends. Without an answer, its result says why (a trap).
        let mut log = String::from_utf8_lossy(&stderr.contents()).trim_end().to_string();
        if matches!(answer, Ok(Ok(_))) {
            let abort = task.abort_handle();
            let limit = self.timeout;
            tokio::spawn(async move {
                if tokio::time::timeout(limit, task).await.is_err() {
                    abort.abort();
                }
            });
        } else if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), task).await {
            // A trap: the host survives, the request gets a 500.
            log = String::from_utf8_lossy(&stderr.contents()).trim_end().to_string();
            log += &format!("{}the component trapped: {}", if log.is_empty() { "" } else { "; " }, first_line(&e));
            if refused.load(std::sync::atomic::Ordering::Relaxed) {
                log += &format!(" (it wanted more than the {} MiB memory cap)", MEMORY_BYTES >> 20);
            }
        }
        match answer {
            Ok(Ok((parts, body))) => Served {
                status: parts.status.as_u16(),
                headers: header_pairs(&parts.headers),
                body,
                log,
                elapsed: started.elapsed(),
            },
            // A trap before the limit is a broken component; at the limit (its epoch deadline) it
            // ran out of time, and Graph should redeliver.
            Ok(Err(why)) if started.elapsed() < self.timeout => {
                failed(500, if log.is_empty() { why } else { format!("{why}: {log}") }, started)
            }
            Ok(Err(_)) | Err(_) => failed(
                503,
                format!("the component ran longer than {:.1} s and was stopped", self.timeout.as_secs_f64()),
                started,
            ),
        }
    }

    /// [`ServiceHost::handle`] for a request given as parts.
    pub async fn handle_parts(&self, method: &str, path: &str, headers: &[(String, String)], body: Vec<u8>) -> Served {
        let mut b = hyper::Request::builder().method(method).uri(format!("http://localhost{path}"));
        for (k, v) in headers {
            b = b.header(k, v);
        }
        let body = Full::new(Bytes::from(body)).map_err(|e: Infallible| -> wasmtime_wasi_http::Error { match e {} });
        match b.body(body) {
            Ok(req) => self.handle(req).await,
            Err(e) => Served {
                status: 400,
                headers: vec![],
                body: vec![],
                log: format!("bad request: {e}"),
                elapsed: Duration::ZERO,
            },
        }
    }

    /// Serve HTTP/1.1 on `listener` until the process ends; `on_served` sees every request's result.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener, on_served: OnServed) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let (host, on_served) = (self.clone(), on_served.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (host, on_served) = (host.clone(), on_served.clone());
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_string();
                        let served = host.handle(req).await;
                        on_served(&method, &path, &served);
                        let mut r = hyper::Response::builder().status(served.status);
                        for (k, v) in &served.headers {
                            r = r.header(k, v);
                        }
                        r.body(Full::new(Bytes::from(served.body)))
                    }
                });
                let io = wasmtime_wasi_http::io::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    }
}

fn first_line(e: &wasmtime::Error) -> String {
    format!("{e:#}").lines().next().unwrap_or("trap").to_string()
}
