//! A proxy-wasm (ABI 0.2.1) host on wasmtime, driving an HTTP filter the way Envoy's
//! `envoy.filters.http.wasm` does, with the filter's http calls answered in process.
//!
//! What [`Vm::start`] and [`Vm::request`] do, in Envoy's order: `_initialize` (or `_start`) if
//! exported; `proxy_on_context_create(root, 0)`, `proxy_on_vm_start(root, 0)`,
//! `proxy_on_configure(root, config_size)`; per request `proxy_on_context_create(ctx, root)`,
//! `proxy_on_request_headers(ctx, n, end_of_stream)` (true when there is no body), then
//! `proxy_on_request_body(ctx, size, true)`; then, until the filter answers with
//! `proxy_send_local_response`: every `proxy_http_call` goes to its upstream at once (after the
//! callback that made it returned), all of them in flight together on threads of their own as
//! Envoy's connections would be, and each is answered, in the order the answers come, with
//! `proxy_on_http_call_response(ctx, token, headers, body_size, 0)` — a failed call with no headers
//! and no body, as Envoy does; while waiting, when a tick period is set, the host calls
//! `proxy_on_tick(root)` on time (real time); at the end `proxy_on_done`, `proxy_on_log`,
//! `proxy_on_delete`.
//!
//! Host functions: `proxy_log`, `proxy_get_current_time_nanoseconds`,
//! `proxy_set_tick_period_milliseconds`, `proxy_get_buffer_bytes` (request body, http call
//! response body, VM and plugin configuration), `proxy_get_header_map_pairs` and
//! `proxy_get_header_map_value` (request headers, http call response headers),
//! `proxy_send_local_response`, `proxy_http_call`, `proxy_set_effective_context`,
//! `proxy_continue_stream`, `proxy_close_stream`, `proxy_done`; every other `env` import answers
//! `NotFound` (1) and is counted, never trapping. Buffers go to the guest through its exported
//! `proxy_on_memory_allocate` (or `malloc`), their pointer and size written to the return slots.
//! WASI preview 1 comes from wasmtime-wasi (stderr inherited, nothing else granted).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Config, Engine, Extern, Instance, Linker, Module, Store, Val};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use callrecords_host::transport::Answer;

/// proxy-wasm status codes.
const OK: i32 = 0;
const NOT_FOUND: i32 = 1;
const BAD_ARGUMENT: i32 = 2;
const SERIALIZATION_FAILURE: i32 = 3;
/// Buffer types.
const BUF_REQUEST_BODY: i32 = 0;
const BUF_CALL_RESPONSE_BODY: i32 = 4;
const BUF_VM_CONFIGURATION: i32 = 6;
const BUF_PLUGIN_CONFIGURATION: i32 = 7;
/// Map types.
const MAP_REQUEST_HEADERS: i32 = 0;
const MAP_CALL_RESPONSE_HEADERS: i32 = 6;
/// The root context's id.
const ROOT: u32 = 1;
/// A request that is not answered within this long is a failure of the filter.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// Header list; values may be any bytes.
pub type Headers = Vec<(String, Vec<u8>)>;

/// A compiled proxy-wasm module.
pub struct FilterModule {
    engine: Engine,
    module: Module,
}

impl FilterModule {
    /// The Envoy filter built with this harness.
    pub fn embedded() -> Result<Self, String> {
        Self::new(callrecords_host::artifacts::ENVOY_FILTER)
    }

    /// Compile a module and check that it speaks proxy-wasm 0.2.1.
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        let engine = Engine::new(&Config::new()).map_err(|e| format!("{e:#}"))?;
        let module = Module::new(&engine, bytes).map_err(|e| format!("not a core module: {e:#}"))?;
        for name in ["proxy_abi_version_0_2_1", "proxy_on_context_create", "proxy_on_memory_allocate", "memory"] {
            if module.get_export(name).is_none() {
                return Err(format!("no `{name}` export: not a proxy-wasm 0.2.1 module"));
            }
        }
        Ok(FilterModule { engine, module })
    }

    /// The `env` functions the module imports.
    pub fn env_imports(&self) -> Vec<String> {
        self.module.imports().filter(|i| i.module() == "env").map(|i| i.name().to_string()).collect()
    }
}

/// One http call the filter made, as Envoy would send it to the cluster.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// The cluster named by the filter.
    pub cluster: String,
    /// Headers including `:method`, `:path`, `:authority`.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Timeout the filter asked for (ms).
    pub timeout_ms: u32,
}

impl HttpCall {
    /// A header's value (names compared in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Answers the filter's http calls: the clusters of this "Envoy" (called from several threads at
/// once, one per call in flight).
pub type Upstream = std::sync::Arc<dyn Fn(&HttpCall) -> Answer + Send + Sync>;

/// The answer the filter gave one request, and what happened on the way.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Status of the local response.
    pub status: u16,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
    /// The http calls the filter made, in order.
    pub calls: Vec<HttpCall>,
    /// `proxy_on_tick` calls made while the request was open.
    pub ticks: u32,
    /// Wall time from the request's headers to the answer.
    pub elapsed: Duration,
}

impl Exchange {
    /// The body parsed as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Status, headers and body of a local response.
type LocalResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// A stream's request as the host holds it.
#[derive(Default)]
struct StreamState {
    headers: Headers,
    body: Vec<u8>,
    answer: Option<LocalResponse>,
}

struct PendingCall {
    token: u32,
    context: u32,
    call: HttpCall,
}

struct Host {
    wasi: WasiP1Ctx,
    plugin_configuration: Vec<u8>,
    effective: u32,
    streams: HashMap<u32, StreamState>,
    pending: VecDeque<PendingCall>,
    made: Vec<HttpCall>,
    next_token: u32,
    /// Headers and body of the call being answered (valid during `proxy_on_http_call_response`).
    call_response: Option<(Headers, Vec<u8>)>,
    tick_period_ms: u32,
    logs: Vec<(i32, String)>,
    unsupported: Vec<String>,
}

/// A live VM with its root context configured.
pub struct Vm {
    store: Store<Host>,
    instance: Instance,
    upstream: Upstream,
    next_context: u32,
    configured: bool,
}

impl Vm {
    /// Instantiate `module`, create the root context and configure it with `plugin_configuration`
    /// (the filter's `configuration` string). A trap or a missing export is an error.
    pub fn start(module: &FilterModule, plugin_configuration: &[u8], upstream: Upstream) -> Result<Vm, String> {
        let wasi = WasiCtxBuilder::new().inherit_stderr().build_p1();
        let host = Host {
            wasi,
            plugin_configuration: plugin_configuration.to_vec(),
            effective: ROOT,
            streams: HashMap::new(),
            pending: VecDeque::new(),
            made: vec![],
            next_token: 1,
            call_response: None,
            tick_period_ms: 0,
            logs: vec![],
            unsupported: vec![],
        };
        let mut store = Store::new(&module.engine, host);
        let mut linker: Linker<Host> = Linker::new(&module.engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi).map_err(|e| format!("{e:#}"))?;
        add_env(&mut linker, &module.module)?;
        let instance = linker.instantiate(&mut store, &module.module).map_err(|e| format!("instantiation: {e:#}"))?;
        let mut vm = Vm { store, instance, upstream, next_context: ROOT + 1, configured: false };
        for init in ["_initialize", "_start"] {
            if vm.instance.get_func(&mut vm.store, init).is_some() {
                vm.call(init, &[])?;
                break;
            }
        }
        vm.call("proxy_on_context_create", &[ROOT, 0])?;
        let started = vm.call("proxy_on_vm_start", &[ROOT, 0])?;
        if started == Some(0) {
            return Err("proxy_on_vm_start returned false".into());
        }
        let size = vm.store.data().plugin_configuration.len() as u32;
        vm.configured = vm.call("proxy_on_configure", &[ROOT, size])? != Some(0);
        Ok(vm)
    }

    /// `proxy_on_configure` returned true (Envoy would refuse the filter otherwise).
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// Log lines the module wrote with `proxy_log` (level, message).
    pub fn logs(&self) -> &[(i32, String)] {
        &self.store.data().logs
    }

    /// Imports the module called that this host does not implement.
    pub fn unsupported_calls(&self) -> &[String] {
        &self.store.data().unsupported
    }

    /// Send one request through the filter and run it to its local response. `path` includes
    /// the query. Errors: a trap, or no answer while nothing is in flight and no tick is set.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Exchange, String> {
        let ctx = self.next_context;
        self.next_context += 1;
        let started = Instant::now();
        let made_before = self.store.data().made.len();
        let mut all: Headers = vec![
            (":method".into(), method.as_bytes().to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"teams-sentinel.example.com".to_vec()),
            (":scheme".into(), b"https".to_vec()),
        ];
        all.extend(headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())));
        if !body.is_empty() {
            all.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        let n_headers = all.len() as u32;
        self.call("proxy_on_context_create", &[ctx, ROOT])?;
        self.store.data_mut().streams.insert(ctx, StreamState { headers: all, body: body.to_vec(), answer: None });
        self.store.data_mut().effective = ctx;
        self.call("proxy_on_request_headers", &[ctx, n_headers, u32::from(body.is_empty())])?;
        if !body.is_empty() && !self.answered(ctx) {
            self.store.data_mut().effective = ctx;
            self.call("proxy_on_request_body", &[ctx, body.len() as u32, 1])?;
        }
        let mut ticks = 0;
        let mut next_tick: Option<Instant> = None;
        let (tx, rx) = std::sync::mpsc::channel::<(PendingCall, Answer)>();
        let mut outstanding = 0usize;
        while !self.answered(ctx) {
            if started.elapsed() > REQUEST_LIMIT {
                return Err(format!("no answer after {REQUEST_LIMIT:?}"));
            }
            // Every call the filter has made goes out now, all of them together.
            while let Some(p) = self.store.data_mut().pending.pop_front() {
                let (upstream, tx) = (self.upstream.clone(), tx.clone());
                outstanding += 1;
                std::thread::spawn(move || {
                    let answer = upstream(&p.call);
                    let _ = tx.send((p, answer));
                });
            }
            let period = self.store.data().tick_period_ms;
            if outstanding == 0 && period == 0 {
                return Err("the filter stalled: no local response, no http call in flight, no tick period".into());
            }
            let due = (period > 0)
                .then(|| *next_tick.get_or_insert_with(|| Instant::now() + Duration::from_millis(period.into())));
            if outstanding > 0 {
                let until = due.unwrap_or_else(|| started + REQUEST_LIMIT);
                if let Ok((p, answer)) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    outstanding -= 1;
                    self.answer_call(p, answer)?;
                    continue;
                }
            }
            let Some(due) = due else { continue };
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            next_tick = Some(due + Duration::from_millis(period.into()));
            ticks += 1;
            self.store.data_mut().effective = ROOT;
            self.call("proxy_on_tick", &[ROOT])?;
        }
        let elapsed = started.elapsed();
        for f in ["proxy_on_done", "proxy_on_log", "proxy_on_delete"] {
            self.store.data_mut().effective = ctx;
            self.call(f, &[ctx])?;
        }
        let state = self.store.data_mut().streams.remove(&ctx).unwrap_or_default();
        let (status, headers, body) = state.answer.unwrap_or_default();
        let calls = self.store.data().made[made_before..].to_vec();
        Ok(Exchange { status, headers, body, calls, ticks, elapsed })
    }

    fn answered(&self, ctx: u32) -> bool {
        self.store.data().streams.get(&ctx).is_some_and(|s| s.answer.is_some())
    }

    fn answer_call(&mut self, p: PendingCall, answer: Answer) -> Result<(), String> {
        let (headers, body): (Headers, Vec<u8>) = match answer {
            Answer::Response { status, headers, body } => {
                let mut h: Headers = vec![(":status".into(), status.to_string().into_bytes())];
                h.extend(headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.into_bytes())));
                (h, body)
            }
            Answer::Drop => (vec![], vec![]),
        };
        let (n, size) = (headers.len() as u32, body.len() as u32);
        let data = self.store.data_mut();
        data.call_response = Some((headers, body));
        data.effective = p.context;
        let result = self.call("proxy_on_http_call_response", &[p.context, p.token, n, size, 0]);
        self.store.data_mut().call_response = None;
        result.map(|_| ())
    }

    /// Call an export with i32 arguments; its i32 result, if it has one. A missing export is
    /// skipped (`None`), a trap is an error.
    fn call(&mut self, name: &str, args: &[u32]) -> Result<Option<i32>, String> {
        let Some(f) = self.instance.get_func(&mut self.store, name) else { return Ok(None) };
        let ty = f.ty(&self.store);
        let params: Vec<Val> = ty
            .params()
            .zip(args.iter().chain(std::iter::repeat(&0)))
            .map(|(t, a)| match t {
                wasmtime::ValType::I64 => Val::I64(i64::from(*a)),
                _ => Val::I32(*a as i32),
            })
            .collect();
        let mut results: Vec<Val> = ty.results().map(|_| Val::I32(0)).collect();
        f.call(&mut self.store, &params, &mut results).map_err(|e| format!("`{name}` trapped: {e:#}"))?;
        Ok(results.first().and_then(Val::i32))
    }
}

fn memory(caller: &mut Caller<'_, Host>) -> Option<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

fn read(caller: &mut Caller<'_, Host>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let mem = memory(caller)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    mem.data(&caller).get(ptr..ptr.checked_add(len)?).map(<[u8]>::to_vec)
}

fn write(caller: &mut Caller<'_, Host>, ptr: i32, bytes: &[u8]) -> bool {
    let Some(mem) = memory(caller) else { return false };
    mem.write(caller, ptr as u32 as usize, bytes).is_ok()
}

/// Copy `bytes` into memory the guest allocates and store its pointer and size in the return
/// slots; the status to answer.
fn give(caller: &mut Caller<'_, Host>, bytes: &[u8], ret_ptr: i32, ret_size: i32) -> Result<i32, wasmtime::Error> {
    let alloc = ["proxy_on_memory_allocate", "malloc"]
        .iter()
        .find_map(|n| caller.get_export(n).and_then(Extern::into_func))
        .ok_or_else(|| wasmtime::Error::msg("the module exports no proxy_on_memory_allocate"))?;
    let alloc = alloc.typed::<i32, i32>(&caller)?;
    let ptr = alloc.call(&mut *caller, bytes.len() as i32)?;
    if ptr == 0 && !bytes.is_empty() {
        return Ok(BAD_ARGUMENT);
    }
    let ok = write(caller, ptr, bytes)
        && write(caller, ret_ptr, &ptr.to_le_bytes())
        && write(caller, ret_size, &(bytes.len() as u32).to_le_bytes());
    Ok(if ok { OK } else { BAD_ARGUMENT })
}

/// The proxy-wasm header map encoding: count, then each key and value length (u32 LE), then
/// each key and value followed by a NUL.
pub fn serialize_map(map: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = (map.len() as u32).to_le_bytes().to_vec();
    for (k, v) in map {
        out.extend((k.len() as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        out.extend(k.as_bytes());
        out.push(0);
        out.extend(v);
        out.push(0);
    }
    out
}

/// Decode a header map the guest passed; `None` when it is malformed.
pub fn deserialize_map(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    if bytes.is_empty() {
        return Some(vec![]);
    }
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?) as usize)
    };
    let n = u32_at(0)?;
    let mut p = n.checked_mul(8)?.checked_add(4)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for i in 0..n {
        let mut field = |len: usize| -> Option<String> {
            let s = String::from_utf8_lossy(bytes.get(p..p.checked_add(len)?)?).into_owned();
            (*bytes.get(p + len)? == 0).then_some(())?;
            p += len + 1;
            Some(s)
        };
        let key = field(u32_at(4 + i * 8)?)?;
        let value = field(u32_at(8 + i * 8)?)?;
        out.push((key, value));
    }
    Some(out)
}

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The headers or body a map/buffer type names for the effective context.
fn map_of(h: &Host, map: i32) -> Option<Headers> {
    match map {
        MAP_REQUEST_HEADERS => h.streams.get(&h.effective).map(|s| s.headers.clone()),
        MAP_CALL_RESPONSE_HEADERS => h.call_response.as_ref().map(|(hd, _)| hd.clone()),
        _ => None,
    }
}

/// The `env` functions this host implements.
const IMPLEMENTED: &[&str] = &[
    "proxy_log",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_get_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_set_effective_context",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_done",
];

fn add_env(linker: &mut Linker<Host>, module: &Module) -> Result<(), String> {
    let e = |e: wasmtime::Error| format!("{e:#}");
    linker
        .func_wrap("env", "proxy_log", |mut c: Caller<'_, Host>, level: i32, ptr: i32, len: i32| -> i32 {
            let Some(msg) = read(&mut c, ptr, len) else { return BAD_ARGUMENT };
            c.data_mut().logs.push((level, String::from_utf8_lossy(&msg).into_owned()));
            OK
        })
        .map_err(e)?;
    linker
        .func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: Caller<'_, Host>, ret: i32| -> i32 {
            if write(&mut c, ret, &wall_ns().to_le_bytes()) { OK } else { BAD_ARGUMENT }
        })
        .map_err(e)?;
    linker
        .func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: Caller<'_, Host>, ms: i32| -> i32 {
            c.data_mut().tick_period_ms = ms as u32;
            OK
        })
        .map_err(e)?;
    linker
        .func_wrap(
            "env",
            "proxy_get_buffer_bytes",
            |mut c: Caller<'_, Host>, kind: i32, start: i32, max: i32, ret_ptr: i32, ret_size: i32| {
                let h = c.data();
                let buffer = match kind {
                    BUF_REQUEST_BODY => h.streams.get(&h.effective).map(|s| s.body.clone()),
                    BUF_CALL_RESPONSE_BODY => h.call_response.as_ref().map(|(_, b)| b.clone()),
                    BUF_PLUGIN_CONFIGURATION => Some(h.plugin_configuration.clone()),
                    BUF_VM_CONFIGURATION => Some(vec![]),
                    _ => None,
                };
                let Some(buffer) = buffer else { return Ok(NOT_FOUND) };
                let start = (start as u32 as usize).min(buffer.len());
                let end = start.saturating_add(max as u32 as usize).min(buffer.len());
                if start == end {
                    return Ok(NOT_FOUND);
                }
                give(&mut c, &buffer[start..end], ret_ptr, ret_size)
            },
        )
        .map_err(e)?;
    linker
        .func_wrap(
            "env",
            "proxy_get_header_map_pairs",
            |mut c: Caller<'_, Host>, map: i32, ret_ptr: i32, ret_size: i32| {
                let Some(headers) = map_of(c.data(), map) else { return Ok(NOT_FOUND) };
                give(&mut c, &serialize_map(&headers), ret_ptr, ret_size)
            },
        )
        .map_err(e)?;
    linker
        .func_wrap(
            "env",
            "proxy_get_header_map_value",
            |mut c: Caller<'_, Host>, map: i32, key_ptr: i32, key_len: i32, ret_ptr: i32, ret_size: i32| {
                let Some(key) = read(&mut c, key_ptr, key_len) else { return Ok(BAD_ARGUMENT) };
                let key = String::from_utf8_lossy(&key).to_ascii_lowercase();
                let Some(headers) = map_of(c.data(), map) else { return Ok(NOT_FOUND) };
                match headers.into_iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => give(&mut c, &v, ret_ptr, ret_size),
                    None => Ok(NOT_FOUND),
                }
            },
        )
        .map_err(e)?;
    linker
        .func_wrap(
            "env",
            "proxy_send_local_response",
            |mut c: Caller<'_, Host>,
             status: i32,
             _details_ptr: i32,
             _details_len: i32,
             body_ptr: i32,
             body_len: i32,
             headers_ptr: i32,
             headers_len: i32,
             _grpc: i32|
             -> i32 {
                let (Some(body), Some(headers)) =
                    (read(&mut c, body_ptr, body_len), read(&mut c, headers_ptr, headers_len))
                else {
                    return BAD_ARGUMENT;
                };
                let Some(headers) = deserialize_map(&headers) else { return SERIALIZATION_FAILURE };
                let ctx = c.data().effective;
                match c.data_mut().streams.get_mut(&ctx) {
                    Some(s) if s.answer.is_none() => {
                        s.answer = Some((status as u16, headers, body));
                        OK
                    }
                    _ => NOT_FOUND,
                }
            },
        )
        .map_err(e)?;
    linker
        .func_wrap(
            "env",
            "proxy_http_call",
            |mut c: Caller<'_, Host>,
             upstream_ptr: i32,
             upstream_len: i32,
             headers_ptr: i32,
             headers_len: i32,
             body_ptr: i32,
             body_len: i32,
             _trailers_ptr: i32,
             _trailers_len: i32,
             timeout_ms: i32,
             ret_token: i32|
             -> i32 {
                let (Some(cluster), Some(headers), Some(body)) = (
                    read(&mut c, upstream_ptr, upstream_len),
                    read(&mut c, headers_ptr, headers_len),
                    read(&mut c, body_ptr, body_len),
                ) else {
                    return BAD_ARGUMENT;
                };
                let Some(mut headers) = deserialize_map(&headers) else { return BAD_ARGUMENT };
                // Envoy refuses a call without these.
                for required in [":method", ":path", ":authority"] {
                    if !headers.iter().any(|(k, v)| k == required && !v.is_empty()) {
                        return BAD_ARGUMENT;
                    }
                }
                if !body.is_empty() {
                    headers.retain(|(k, _)| k != "content-length");
                    headers.push(("content-length".into(), body.len().to_string()));
                }
                let call = HttpCall {
                    cluster: String::from_utf8_lossy(&cluster).into_owned(),
                    headers,
                    body,
                    timeout_ms: timeout_ms as u32,
                };
                let h = c.data_mut();
                let token = h.next_token;
                h.next_token += 1;
                let context = h.effective;
                h.made.push(call.clone());
                h.pending.push_back(PendingCall { token, context, call });
                if write(&mut c, ret_token, &token.to_le_bytes()) { OK } else { BAD_ARGUMENT }
            },
        )
        .map_err(e)?;
    linker
        .func_wrap("env", "proxy_set_effective_context", |mut c: Caller<'_, Host>, ctx: i32| -> i32 {
            let ctx = ctx as u32;
            if ctx == ROOT || c.data().streams.contains_key(&ctx) {
                c.data_mut().effective = ctx;
                OK
            } else {
                BAD_ARGUMENT
            }
        })
        .map_err(e)?;
    for name in ["proxy_continue_stream", "proxy_close_stream"] {
        linker.func_wrap("env", name, |_: Caller<'_, Host>, _stream: i32| -> i32 { OK }).map_err(e)?;
    }
    linker.func_wrap("env", "proxy_done", |_: Caller<'_, Host>| -> i32 { OK }).map_err(e)?;
    // Everything else the module imports from `env`: NotFound, counted.
    for import in module.imports().filter(|i| i.module() == "env") {
        let name = import.name().to_string();
        if IMPLEMENTED.contains(&name.as_str()) {
            continue;
        }
        let Some(ty) = import.ty().func().cloned() else { continue };
        let shown = name.clone();
        linker
            .func_new("env", &name, ty, move |mut c, _params, results| {
                c.data_mut().unsupported.push(shown.clone());
                for r in results.iter_mut() {
                    *r = Val::I32(NOT_FOUND);
                }
                Ok(())
            })
            .map_err(e)?;
    }
    Ok(())
}
