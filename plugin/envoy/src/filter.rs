//! The proxy-wasm contexts. All state of the streams in progress sits in one [`Shared`] that the
//! root context and every HTTP context hold: a run may be resumed by its own stream (an http call
//! answered) or by the root context (its tick, when a wait is over, or an answer to a call made
//! during a tick, which the SDK routes to the root).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use callrecords::http::{IncomingRequest, Response};
use callrecords::pipeline::{Action as Step, Job, Report, Run};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::settings::Settings;

/// Tick period while a stream waits (`Wait`); a wait ends at most this much late.
const TICK_MS: u64 = 10;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root { shared: Rc::new(RefCell::new(Shared::default())) }));
}}

#[derive(Default)]
struct Shared {
    /// The plugin configuration, or why it is unusable.
    settings: Option<Result<Settings, String>>,
    /// Runs in progress, by stream context.
    runs: HashMap<u32, Run>,
    /// Outstanding http calls: Envoy's token → (stream context, the driver's request id).
    calls: HashMap<u32, (u32, u64)>,
    /// Waiting streams: (due, Unix ms; stream context).
    sleepers: BTreeSet<(u64, u32)>,
    /// The tick is on.
    ticking: bool,
    /// The tokens the last finished run saved (`Run::saved_tokens`), for the next runs: a token
    /// lives as long as this VM (one per Envoy worker), not one request. Kept in memory only.
    tokens: Option<Vec<u8>>,
}

type SharedRef = Rc<RefCell<Shared>>;

struct Root {
    shared: SharedRef,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        answer(&self.shared, token, body_size);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let parsed = Settings::parse(&bytes);
        if let Err(e) = &parsed {
            log(LogLevel::Error, &format!("callrecords: bad plugin configuration: {e}"));
        }
        self.shared.borrow_mut().settings = Some(parsed);
        // A bad configuration is reported on every request (500) instead of refusing the listener.
        true
    }

    fn on_tick(&mut self) {
        let now = now_ms();
        let due: Vec<u32> = {
            let mut s = self.shared.borrow_mut();
            let due: Vec<(u64, u32)> = s.sleepers.iter().take_while(|(t, _)| *t <= now).copied().collect();
            for d in &due {
                s.sleepers.remove(d);
            }
            due.into_iter().map(|(_, ctx)| ctx).collect()
        };
        for ctx in due {
            drive(&self.shared, ctx);
        }
        let mut s = self.shared.borrow_mut();
        if s.sleepers.is_empty() && s.ticking {
            s.ticking = false;
            let _ = hostcalls::set_tick_period(Duration::ZERO);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { id: context_id, shared: self.shared.clone(), started: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    id: u32,
    shared: SharedRef,
    started: bool,
}

impl Context for Stream {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        answer(&self.shared, token, body_size);
    }

    fn on_done(&mut self) -> bool {
        // The stream is gone (answered, or the client left): forget its run.
        let mut s = self.shared.borrow_mut();
        s.runs.remove(&self.id);
        s.calls.retain(|_, (ctx, _)| *ctx != self.id);
        s.sleepers.retain(|(_, ctx)| *ctx != self.id);
        true
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            self.start(vec![]);
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream || self.started {
            // Envoy keeps buffering; the next call sees the whole body so far.
            return Action::Pause;
        }
        let limit = match &self.shared.borrow().settings {
            Some(Ok(s)) => (s.config.webhook.max_body_bytes as usize).saturating_add(1),
            _ => 0,
        };
        // One byte over the limit is enough for the core to answer 413.
        let body = self.get_http_request_body(0, body_size.min(limit)).unwrap_or_default();
        self.start(body);
        Action::Pause
    }
}

impl Stream {
    fn start(&mut self, body: Vec<u8>) {
        self.started = true;
        let config = match &self.shared.borrow().settings {
            Some(Ok(s)) => Ok(s.config.clone()),
            Some(Err(e)) => Err(format!("the callrecords filter is not configured: {e}")),
            None => Err("the callrecords filter is not configured: no plugin configuration".to_string()),
        };
        let config = match config {
            Ok(c) => c,
            Err(e) => return respond(self.id, Response::text(500, e.clone()), &e),
        };
        let mut method = String::new();
        let mut path = String::new();
        let mut headers = vec![];
        for (k, v) in self.get_http_request_headers_bytes() {
            let v = String::from_utf8_lossy(&v).into_owned();
            match k.as_str() {
                ":method" => method = v,
                ":path" => path = v,
                _ if k.starts_with(':') => {}
                _ => headers.push((k, v)),
            }
        }
        let request = IncomingRequest { method, path_and_query: path, headers, body };
        match Run::start(config, Job::Webhook(request), now_ms()) {
            Ok(mut run) => {
                // Client assertions need entropy; proxy-wasm has no filesystem, so a certificate
                // must be inline (CALLRECORDS_CLIENT_CERTIFICATE) and workload identity is not offered.
                let mut seed = [0u8; 32];
                if getrandom::fill(&mut seed).is_ok() {
                    run.seed_entropy(seed);
                }
                let mut s = self.shared.borrow_mut();
                if let Some(saved) = &s.tokens {
                    run.restore_tokens(saved, now_ms());
                }
                s.runs.insert(self.id, run);
                drop(s);
                drive(&self.shared, self.id);
            }
            Err(e) => respond(self.id, Response::text(500, e.to_string()), &e.to_string()),
        }
    }
}

/// An http call came back: hand its answer to the run that made it, then step that run.
fn answer(shared: &SharedRef, token: u32, body_size: usize) {
    let Some((ctx, id)) = shared.borrow_mut().calls.remove(&token) else { return };
    let headers = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status =
        headers.iter().find(|(k, _)| k == ":status").and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok());
    {
        let mut s = shared.borrow_mut();
        let Some(run) = s.runs.get_mut(&ctx) else { return };
        match status {
            Some(_) if body_size > callrecords::http::MAX_ANSWER_BYTES => {
                let why = format!("the answer is larger than {} bytes", callrecords::http::MAX_ANSWER_BYTES);
                let _ = run.transport_error(id, &why, now_ms());
            }
            Some(status) => {
                let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let headers: Vec<(String, String)> = headers
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with(':'))
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect();
                // A refused id was abandoned by the driver (its deadline passed): nothing to do.
                let _ = run.respond(id, status, &headers, &body, now_ms());
            }
            // Envoy answers a failed call (reset, timeout, no healthy upstream) without headers.
            None => {
                let _ = run.transport_error(id, "the http call failed (no response from the cluster)", now_ms());
            }
        }
    }
    drive(shared, ctx);
}

/// Step the run of stream `ctx` until it waits for something or is done.
fn drive(shared: &SharedRef, ctx: u32) {
    loop {
        let mut s = shared.borrow_mut();
        let Some(Ok(settings)) = s.settings.clone() else { return };
        let Some(run) = s.runs.get_mut(&ctx) else { return };
        let now = now_ms();
        match run.next(now) {
            Step::Send { id, request, timeout_ms } => {
                // Calls made on behalf of a stream from the root's tick belong to that stream.
                let _ = hostcalls::set_effective_context(ctx);
                let sent = settings.call(&request).and_then(|call| {
                    let headers: Vec<(&str, &str)> =
                        call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let body = (!request.body.is_empty()).then_some(request.body.as_slice());
                    let timeout = Duration::from_millis(u64::from(timeout_ms.max(1)));
                    hostcalls::dispatch_http_call(&call.cluster, headers, body, vec![], timeout)
                        .map_err(|e| format!("dispatch_http_call to cluster {} refused: {e:?}", call.cluster))
                });
                // Keep asking: the driver may hand out more requests to have in flight together.
                match sent {
                    Ok(token) => {
                        s.calls.insert(token, (ctx, id));
                    }
                    Err(reason) => {
                        let _ = run.transport_error(id, &reason, now_ms());
                    }
                }
            }
            // An answer wakes the run too (`answer`); the tick covers the time limit.
            Step::Wait(ms) => {
                // One wake-up per stream: the latest wait replaces an earlier one.
                s.sleepers.retain(|(_, c)| *c != ctx);
                s.sleepers.insert((now + u64::from(ms), ctx));
                if !s.ticking {
                    s.ticking = true;
                    let _ = hostcalls::set_tick_period(Duration::from_millis(TICK_MS));
                }
                return;
            }
            Step::Progress(_) => {}
            Step::Done(report) => {
                if let Some(saved) = s.runs.remove(&ctx).and_then(|run| run.saved_tokens(now_ms())) {
                    s.tokens = Some(saved);
                }
                drop(s);
                let line = summary(&report);
                return respond(ctx, report.response, &line);
            }
        }
    }
}

/// Answer stream `ctx` and log one line.
fn respond(ctx: u32, response: Response, line: &str) {
    let _ = hostcalls::set_effective_context(ctx);
    let level = if response.status >= 500 { LogLevel::Warn } else { LogLevel::Info };
    log(level, &format!("callrecords: -> {} {line}", response.status));
    let headers: Vec<(&str, &str)> = response.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _ = hostcalls::send_http_response(u32::from(response.status), headers, Some(&response.body));
}

fn summary(report: &Report) -> String {
    let mut line = format!(
        "calls={} rows={} failed={} rejected={} retries={}",
        report.calls_done,
        report.total_rows(),
        report.failed_count,
        report.rejected,
        report.retries
    );
    if let Some(r) = &report.resync {
        line += &format!(" RESYNC NEEDED ({}): callrecords backfill --since {} --until {}", r.reason, r.since, r.until);
    }
    if let Some(e) = &report.error {
        line += &format!(" error: {e}");
    }
    line
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}
