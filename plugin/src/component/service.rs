//! The `service` world's `wasi:http/incoming-handler`: read the request, run the core's pipeline with
//! `wasi:http/outgoing-handler` as its transport and the monotonic clock for its waits, write the
//! answer. The run's tokens are restored from, and saved to, the host's default `wasi:keyvalue`
//! store. Only ABI translation lives here; every rule is in [`crate::pipeline`].

use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, FutureIncomingResponse, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, RequestOptions, ResponseOutparam, Scheme,
};
use wasip2::io::poll;
use wasip2::io::streams::{InputStream, StreamError};

use super::Component;
use super::bindings::wasi::keyvalue::store;
use crate::config::Config;
use crate::http::{self, Response};
use crate::pipeline::{self, Action, Run, TOKEN_CACHE_KEY};

/// `blocking-write-and-flush` takes at most 4096 bytes per call.
const WRITE_CHUNK: usize = 4096;

impl super::bindings::exports::wasi::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let started = monotonic_clock::now();
        let env: Vec<(String, String)> = std::env::vars().collect();
        let (method, path) = (method_name(&request.method()), request.path_with_query().unwrap_or_default());
        let shown_path = path.split('?').next().unwrap_or_default().to_string();
        // The test twin's guest that never returns (the host must stop it).
        #[cfg(feature = "misbehave")]
        if shown_path == "/__spin" {
            loop {
                std::hint::spin_loop();
            }
        }
        // And the one that wants all the memory it can get (the host's cap must stop it).
        #[cfg(feature = "misbehave")]
        if shown_path == "/__grow" {
            let mut held: Vec<Vec<u8>> = vec![];
            loop {
                held.push(vec![1; 1 << 20]);
            }
        }
        let (response, line) = match Config::from_env(&env) {
            Err(e) => (Response::text(500, format!("the service is not configured: {e}")), format!("config: {e}")),
            Ok(config) => {
                let max = config.webhook.max_body_bytes as usize;
                let body = read_body(request.consume().ok(), max.saturating_add(1));
                let headers = fields(&request.headers());
                let incoming = http::IncomingRequest { method: method.clone(), path_and_query: path, headers, body };
                serve(config, incoming)
            }
        };
        let ms = (monotonic_clock::now() - started) / 1_000_000;
        eprintln!("{method} {shown_path} -> {} {line} {ms} ms", response.status);
        send_response(response_out, response);
    }
}

/// Drive one webhook job to its end; returns the answer and a log line.
fn serve(config: Config, request: http::IncomingRequest) -> (Response, String) {
    let job = pipeline::webhook_job(&config, request);
    let mut run = match Run::start(config, job, now_ms()) {
        Ok(r) => r,
        Err(e) => return (Response::text(500, e.to_string()), e.to_string()),
    };
    super::give_wasi_io(&mut run);
    // The host's token store; without one (or with a host that keeps it per request) every request
    // gets its own tokens.
    let bucket = store::open("").ok();
    if let Some(Ok(Some(saved))) = bucket.as_ref().map(|b| b.get(TOKEN_CACHE_KEY)) {
        run.restore_tokens(&saved, now_ms());
    }
    // Requests in flight: (the driver's id, the response future).
    let mut flying: Vec<(u64, FutureIncomingResponse)> = vec![];
    loop {
        match run.next(now_ms()) {
            Action::Send { id, request, timeout_ms } => match start(&request, timeout_ms) {
                Ok(future) => flying.push((id, future)),
                Err(reason) => {
                    let _ = run.transport_error(id, &reason, now_ms());
                }
            },
            Action::Wait(ms) => {
                for (id, answer) in wait_any(&mut flying, ms) {
                    // An id the driver no longer knows was abandoned by it: nothing to do.
                    let _ = match answer {
                        Ok((status, headers, body)) => run.respond(id, status, &headers, &body, now_ms()),
                        Err(reason) => run.transport_error(id, &reason, now_ms()),
                    };
                }
            }
            Action::Progress(_) => {}
            Action::Done(report) => {
                if let (Some(b), Some(saved)) = (&bucket, run.saved_tokens(now_ms())) {
                    let _ = b.set(TOKEN_CACHE_KEY, &saved);
                }
                let calls: Vec<String> =
                    report.calls.iter().take(3).map(|c| format!("{} v{} {} rows", c.id, c.version, c.rows)).collect();
                let more = report.calls.len().saturating_sub(3);
                let mut line = format!(
                    "calls={} [{}{}] rows={} failed={} rejected={} retries={}",
                    report.calls_done,
                    calls.join(", "),
                    if more > 0 { format!(", +{more}") } else { String::new() },
                    report.total_rows(),
                    report.failed_count,
                    report.rejected,
                    report.retries
                );
                if let Some(q) = &report.storage {
                    line += &format!(" queued={}", q.enqueued);
                }
                if let Some(r) = &report.resync {
                    line += &format!(
                        " RESYNC NEEDED ({}): callrecords backfill --since {} --until {}",
                        r.reason, r.since, r.until
                    );
                }
                if let Some(e) = &report.error {
                    line += &format!(" error: {e}");
                }
                return (report.response, line);
            }
        }
    }
}

fn now_ms() -> u64 {
    let t = wall_clock::now();
    t.seconds * 1000 + u64::from(t.nanoseconds) / 1_000_000
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(o) => o.clone(),
    }
}

fn fields(f: &Fields) -> Vec<(String, String)> {
    f.entries().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect()
}

/// Read at most `limit` bytes (the core answers 413 when the body is larger than allowed).
fn read_body(body: Option<IncomingBody>, limit: usize) -> Vec<u8> {
    let Some(body) = body else { return vec![] };
    let out = body.stream().map(|s| read_stream(&s, limit)).unwrap_or_default();
    IncomingBody::finish(body);
    out
}

fn read_stream(stream: &InputStream, limit: usize) -> Vec<u8> {
    let mut out = vec![];
    while out.len() < limit {
        match stream.blocking_read((limit - out.len()).min(64 * 1024) as u64) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => break,
        }
    }
    out
}

fn write_all(body: &OutgoingBody, bytes: &[u8]) -> Result<(), String> {
    let stream = body.write().map_err(|_| "body stream unavailable".to_string())?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk).map_err(|e| format!("write failed: {e:?}"))?;
    }
    Ok(())
}

fn send_response(out: ResponseOutparam, r: Response) {
    let headers: Vec<(String, Vec<u8>)> = r.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let resp = OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
    let _ = resp.set_status_code(r.status);
    let Ok(body) = resp.body() else { return };
    ResponseOutparam::set(out, Ok(resp));
    let _ = write_all(&body, &r.body);
    let _ = OutgoingBody::finish(body, None);
}

/// Send one request with `wasi:http/outgoing-handler`; the status, headers and body, or why not.
/// Status, headers and body of an answer.
type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// Wait until at least one request in flight has its answer's head, or `ms` pass; the answers
/// that came, each with its body read.
fn wait_any(flying: &mut Vec<(u64, FutureIncomingResponse)>, ms: u32) -> Vec<(u64, Result<Reply, String>)> {
    let ready: Vec<u32> = {
        let timer = monotonic_clock::subscribe_duration(u64::from(ms) * 1_000_000);
        let pollables: Vec<_> = flying.iter().map(|(_, f)| f.subscribe()).collect();
        let mut all: Vec<&poll::Pollable> = pollables.iter().collect();
        all.push(&timer);
        poll::poll(&all)
        // The pollables (children of the futures) are dropped here, before any future is.
    };
    let mut done = vec![];
    let mut ready: Vec<usize> = ready.into_iter().map(|i| i as usize).filter(|i| *i < flying.len()).collect();
    ready.sort_unstable_by(|a, b| b.cmp(a));
    for i in ready {
        let (id, future) = flying.swap_remove(i);
        done.push((id, finish(&future)));
    }
    done
}

fn start(r: &http::OutgoingRequest, timeout_ms: u32) -> Result<FutureIncomingResponse, String> {
    let (scheme, rest) = r.url.split_once("://").ok_or("URL without a scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut headers: Vec<(String, Vec<u8>)> =
        r.headers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
    if !r.body.is_empty() {
        headers.push(("Content-Length".into(), r.body.len().to_string().into_bytes()));
    }
    let req = OutgoingRequest::new(Fields::from_list(&headers).map_err(|e| format!("header refused: {e:?}"))?);
    let method = match r.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "PUT" => Method::Put,
        other => Method::Other(other.into()),
    };
    req.set_method(&method).map_err(|_| "method refused")?;
    req.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }))
        .map_err(|_| "scheme refused")?;
    req.set_authority(Some(authority)).map_err(|_| "authority refused")?;
    req.set_path_with_query(Some(path)).map_err(|_| "path refused")?;
    let body = req.body().map_err(|_| "request body unavailable")?;
    let options = RequestOptions::new();
    let ns = u64::from(timeout_ms.max(1)) * 1_000_000;
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));
    let future = outgoing_handler::handle(req, Some(options)).map_err(|e| format!("{e:?}"))?;
    write_all(&body, &r.body)?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    Ok(future)
}

/// The answer of a request whose future is ready (or, if not, once it is).
fn finish(future: &FutureIncomingResponse) -> Result<Reply, String> {
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response = response.map_err(|_| "answer already taken")?.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let headers = fields(&response.headers());
    let body = read_body(response.consume().ok(), crate::http::MAX_ANSWER_BYTES);
    Ok((status, headers, body))
}
