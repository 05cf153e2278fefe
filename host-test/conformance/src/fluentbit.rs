//! Fluent Bit's `filter_wasm` calling convention, emulated with wasmtime, and the checks a
//! Fluent Bit core module must pass.
//!
//! What Fluent Bit (4.1+, WAMR) does per record, and so what [`Filter::call`] does: copy the tag
//! and the record's JSON, each NUL-terminated, into guest memory with the module's `malloc`
//! (WAMR's `wasm_runtime_module_dup_data`); call the function with
//! `(tag_ptr, tag_len, time_sec, time_nsec, record_ptr, record_len)` (lengths without the NUL);
//! read the returned pointer as a C string and copy it (never free it); free the two copies with
//! the module's `free`. When the copy cannot be made WAMR passes a NULL record pointer with the
//! real length ([`Record::Null`]). The instance lives as long as the filter, across records,
//! and a trap drops only that record.

use serde_json::Value;
use wasmtime::{Config, Engine, Instance, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, TypedFunc, ValType};

use callrecords_host::Runtime;
use callrecords_host::runtime::CallError;
use callrecords_test_kit::{fixtures, synth};

/// `function_name` of the `TeamsCall_CL` filter.
pub const CALL_ROW: &str = "callrecords_call_row";
/// `function_name` of the seed-compatible `TEAMSGraphCallRecords_CL` filter.
pub const SEED_ROW: &str = "callrecords_seed_row";
/// Instructions one record may take before the harness stops it (WAMR itself has no limit).
const FUEL_PER_CALL: u64 = 20_000_000_000;
/// Largest linear memory of an instance.
const MEMORY_BYTES: usize = 512 << 20;

/// A compiled Fluent Bit core module, ready to instantiate.
pub struct FilterModule {
    engine: Engine,
    module: Module,
}

/// The record argument of a call.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// The record's JSON, copied into the guest as Fluent Bit does.
    Json(&'a [u8]),
    /// A NULL record pointer with this length: what WAMR passes when it could not copy the record.
    Null(u32),
}

/// What Fluent Bit makes of a returned string.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// `""`: the record is dropped.
    Dropped,
    /// A JSON object: it replaces the record.
    Row(serde_json::Map<String, Value>),
    /// Anything else: Fluent Bit logs "invalid JSON format" and drops it, which is risky (a valid
    /// result followed by an invalid one in a chunk has crashed Fluent Bit).
    Invalid(String),
}

impl Verdict {
    /// Judge the bytes of a returned C string the way `filter_wasm` does.
    pub fn of(bytes: &[u8]) -> Verdict {
        if bytes.is_empty() {
            return Verdict::Dropped;
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(row)) => Verdict::Row(row),
            Ok(other) => Verdict::Invalid(format!("not a JSON object: {}", preview(&other.to_string()))),
            Err(e) => Verdict::Invalid(format!("not JSON ({e}): {}", preview(&String::from_utf8_lossy(bytes)))),
        }
    }
}

fn preview(s: &str) -> String {
    s.chars().take(80).collect()
}

/// One live instance, as Fluent Bit keeps it for the filter's lifetime.
pub struct Filter {
    store: Store<StoreLimits>,
    instance: Instance,
    memory: Memory,
    malloc: TypedFunc<i32, i32>,
    free: TypedFunc<i32, ()>,
}

type FilterFn = TypedFunc<(i32, i32, i32, i32, i32, i32), i32>;

impl FilterModule {
    /// The module built with this harness.
    pub fn embedded() -> Result<Self, CallError> {
        Self::new(callrecords_host::artifacts::FLUENT_BIT_FILTER)
    }

    /// Load a module (binary or text) and check that Fluent Bit could call it: no imports (this
    /// harness provides none), a memory, `malloc(i32) -> i32`, `free(i32)`, and both filter
    /// functions with six i32 parameters and an i32 result.
    pub fn new(bytes: &[u8]) -> Result<Self, CallError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| CallError::Load(format!("{e:#}")))?;
        let module = Module::new(&engine, bytes).map_err(|e| CallError::Load(format!("not a core module: {e:#}")))?;
        let imports: Vec<String> = module.imports().map(|i| format!("{}::{}", i.module(), i.name())).collect();
        if !imports.is_empty() {
            return Err(CallError::Load(format!(
                "it imports {}; a filter module must import nothing",
                imports.join(", ")
            )));
        }
        let export = |name: &str| module.get_export(name).ok_or_else(|| CallError::Load(format!("no `{name}` export")));
        export("memory")?.memory().ok_or_else(|| CallError::Load("`memory` is not a memory".into()))?;
        for (name, params, results) in [("malloc", 1, 1), ("free", 1, 0), (CALL_ROW, 6, 1), (SEED_ROW, 6, 1)] {
            let f =
                export(name)?.func().cloned().ok_or_else(|| CallError::Load(format!("`{name}` is not a function")))?;
            if !all_i32(f.params(), params) || !all_i32(f.results(), results) {
                return Err(CallError::Load(format!(
                    "`{name}` has the type {f:?}; expected {params} i32 parameters and {results} i32 result(s)"
                )));
            }
        }
        Ok(FilterModule { engine, module })
    }

    /// The compiled module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// A fresh instance (what Fluent Bit creates when the filter starts).
    pub fn instance(&self) -> Result<Filter, CallError> {
        let limits = StoreLimitsBuilder::new().memory_size(MEMORY_BYTES).build();
        let mut store = Store::new(&self.engine, limits);
        store.limiter(|l| l);
        store.set_fuel(FUEL_PER_CALL).map_err(|e| CallError::Load(format!("{e:#}")))?;
        let instance = Instance::new(&mut store, &self.module, &[])
            .map_err(|e| CallError::Trap(format!("instantiation failed: {e:#}")))?;
        let load = |e: wasmtime::Error| CallError::Load(format!("{e:#}"));
        let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| CallError::Load("no memory".into()))?;
        let malloc = instance.get_typed_func(&mut store, "malloc").map_err(load)?;
        let free = instance.get_typed_func(&mut store, "free").map_err(load)?;
        Ok(Filter { store, instance, memory, malloc, free })
    }
}

impl Filter {
    /// Run `function` on one record as Fluent Bit does; the returned C string's bytes (without the
    /// NUL). A trap is an error; the instance stays usable, as in Fluent Bit.
    pub fn call(&mut self, function: &str, tag: &str, time: (i32, i32), record: Record) -> Result<Vec<u8>, CallError> {
        let f: FilterFn = self
            .instance
            .get_typed_func(&mut self.store, function)
            .map_err(|e| CallError::Load(format!("`{function}`: {e:#}")))?;
        self.store.set_fuel(FUEL_PER_CALL).map_err(|e| CallError::Load(format!("{e:#}")))?;
        let tag_ptr = self.dup(tag.as_bytes())?;
        let (record_ptr, record_len) = match record {
            Record::Json(bytes) => (self.dup(bytes)?, len(bytes.len())?),
            Record::Null(len) => (0, len as i32),
        };
        let result = f.call(&mut self.store, (tag_ptr, len(tag.len())?, time.0, time.1, record_ptr, record_len));
        let result = result.map_err(|e| self.trap(e)).and_then(|ptr| self.c_string(ptr));
        for ptr in [tag_ptr, record_ptr] {
            if ptr != 0 {
                self.free.call(&mut self.store, ptr).map_err(|e| self.trap(e))?;
            }
        }
        result
    }

    /// The instance's linear memory size in bytes (to see that copies are freed).
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// `wasm_runtime_module_dup_data(data, len + 1)`: a NUL-terminated copy in the module's heap.
    fn dup(&mut self, bytes: &[u8]) -> Result<i32, CallError> {
        let size = len(bytes.len() + 1)?;
        let ptr = self.malloc.call(&mut self.store, size).map_err(|e| self.trap(e))?;
        if ptr == 0 {
            return Err(CallError::MemoryLimit(MEMORY_BYTES));
        }
        let start = ptr as u32 as usize;
        let dest = self
            .memory
            .data_mut(&mut self.store)
            .get_mut(start..start + bytes.len() + 1)
            .ok_or_else(|| CallError::Trap(format!("malloc returned {ptr:#x}, outside the memory")))?;
        dest[..bytes.len()].copy_from_slice(bytes);
        dest[bytes.len()] = 0;
        Ok(ptr)
    }

    /// `wasm_runtime_validate_app_str_addr` + `strdup`.
    fn c_string(&self, ptr: i32) -> Result<Vec<u8>, CallError> {
        let data = self.memory.data(&self.store);
        let tail = data.get(ptr as u32 as usize..).filter(|_| ptr != 0);
        let tail = tail.ok_or_else(|| CallError::Trap(format!("returned pointer {ptr:#x} is outside the memory")))?;
        let end = tail
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| CallError::Trap(format!("returned string at {ptr:#x} has no NUL before the memory ends")))?;
        Ok(tail[..end].to_vec())
    }

    fn trap(&self, e: wasmtime::Error) -> CallError {
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => {
                CallError::Trap(format!("ran past the harness's budget of {FUEL_PER_CALL} instructions"))
            }
            _ => CallError::Trap(format!("{e:#}").lines().next().unwrap_or("trap").to_string()),
        }
    }
}

/// `n` value types, all i32.
fn all_i32(mut types: impl ExactSizeIterator<Item = ValType>, n: usize) -> bool {
    types.len() == n && types.all(|t| matches!(t, ValType::I32))
}

fn len(n: usize) -> Result<i32, CallError> {
    i32::try_from(n).map_err(|_| CallError::Trap(format!("{n} bytes do not fit a wasm32 length")))
}

// ---- checks ------------------------------------------------------------------------------------

/// One check of a Fluent Bit module; the component (`rt`) is the reference for rows.
pub struct Scenario {
    /// Short name, printed by `check`.
    pub name: &'static str,
    /// Runs it; `Err` says what differed.
    pub run: fn(&FilterModule, &Runtime) -> Result<(), String>,
}

/// Every check, in the order `check` prints them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario { name: "fluent-bit-call-rows", run: call_rows },
    Scenario { name: "fluent-bit-seed-rows", run: seed_rows },
    Scenario { name: "fluent-bit-large-record", run: large_record },
    Scenario { name: "fluent-bit-hostile-records", run: hostile },
    Scenario { name: "fluent-bit-long-lived-instance", run: long_lived_instance },
];

/// Run every check.
pub fn run_all(module: &FilterModule, rt: &Runtime) -> Vec<crate::Outcome> {
    SCENARIOS.iter().map(|s| crate::Outcome { name: s.name, failure: (s.run)(module, rt).err() }).collect()
}

const TAG: &str = "graph.callrecords";
const TIME: (i32, i32) = (1_795_680_000, 123_456_789);

/// Every sample callRecord, the group call merged with its pages by the component.
pub fn sample_records(rt: &Runtime) -> Result<Vec<String>, String> {
    let mut records: Vec<String> = fixtures::RECORDS.iter().map(|s| s.to_string()).collect();
    let sessions = [fixtures::GROUP_SESSIONS_2.to_string(), fixtures::GROUP_SESSIONS_3.to_string()];
    let participants = [fixtures::GROUP_PARTICIPANTS_1.to_string(), fixtures::GROUP_PARTICIPANTS_2.to_string()];
    records.push(rt.merge_pages(fixtures::GROUP_CALL, &sessions, &participants).map_err(|e| e.to_string())?);
    Ok(records)
}

/// The component's row of `table` for `record`, parsed.
fn component_row(rt: &Runtime, function: &str, record: &str) -> Result<Value, String> {
    let row = if function == SEED_ROW {
        rt.seed_row(record).map_err(|e| e.to_string())?
    } else {
        let tables = rt.expand(record).map_err(|e| e.to_string())?;
        let call = tables.into_iter().find(|t| t.table == "TeamsCall_CL").ok_or("no TeamsCall_CL rows")?;
        match <[String; 1]>::try_from(call.rows) {
            Ok([row]) => row,
            Err(rows) => return Err(format!("{} TeamsCall_CL rows from the component", rows.len())),
        }
    };
    serde_json::from_str(&row).map_err(|e| format!("component row: {e}"))
}

/// The filter's answer for `record`, which must be a row.
fn filter_row(filter: &mut Filter, function: &str, record: &[u8]) -> Result<Value, String> {
    let out = filter.call(function, TAG, TIME, Record::Json(record)).map_err(|e| e.to_string())?;
    match Verdict::of(&out) {
        Verdict::Row(row) => Ok(Value::Object(row)),
        other => Err(format!("{function}: expected a row, got {other:?}")),
    }
}

fn same_rows(module: &FilterModule, rt: &Runtime, function: &str) -> Result<(), String> {
    let mut filter = module.instance().map_err(|e| e.to_string())?;
    for record in sample_records(rt)? {
        let want = component_row(rt, function, &record)?;
        let got = filter_row(&mut filter, function, record.as_bytes())?;
        if got != want {
            let id = want.get("CallId").or(want.get("id")).cloned().unwrap_or_default();
            return Err(format!("{function} of {id}: the row differs from the component's"));
        }
    }
    Ok(())
}

fn call_rows(module: &FilterModule, rt: &Runtime) -> Result<(), String> {
    same_rows(module, rt, CALL_ROW)
}

fn seed_rows(module: &FilterModule, rt: &Runtime) -> Result<(), String> {
    same_rows(module, rt, SEED_ROW)
}

fn large_record(module: &FilterModule, rt: &Runtime) -> Result<(), String> {
    let big = synth::group_call(1500);
    if big.len() <= 1 << 20 {
        return Err(format!("the synthetic record is only {} bytes", big.len()));
    }
    let mut filter = module.instance().map_err(|e| e.to_string())?;
    for function in [CALL_ROW, SEED_ROW] {
        let got = filter_row(&mut filter, function, big.as_bytes())?;
        if got != component_row(rt, function, &big)? {
            return Err(format!("{function} of a {} byte record differs from the component's", big.len()));
        }
    }
    Ok(())
}

/// Records no filter can use, each named.
pub fn hostile_records() -> Vec<(&'static str, Vec<u8>)> {
    let huge = fixtures::PEER_TO_PEER.replacen("\"peerToPeer\"", &format!("\"{}\"", "x".repeat(3 << 20)), 1);
    let deep = format!("{{\"id\":\"x\",\"extra\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let mut bad_utf8 = fixtures::PEER_TO_PEER.as_bytes().to_vec();
    bad_utf8.splice(20..20, [0xff, 0xfe, 0xc3]);
    vec![
        ("empty", vec![]),
        ("not JSON", b"callRecord?".to_vec()),
        ("a JSON array", b"[{\"id\":\"x\"}]".to_vec()),
        ("a number", b"42".to_vec()),
        ("an object without id", b"{\"version\":1}".to_vec()),
        ("cut short", fixtures::PEER_TO_PEER.as_bytes()[..500].to_vec()),
        ("a 3 MB string", huge.into_bytes()),
        ("100000 nested arrays", deep.into_bytes()),
        ("50000 nested objects", deep_object.into_bytes()),
        ("invalid UTF-8", bad_utf8),
        ("sessions holding a number", b"{\"id\":\"x\",\"sessions\":[3]}".to_vec()),
        ("a NUL inside", b"{\"id\":\"x\"\0, \"version\": 1}".to_vec()),
    ]
}

fn hostile(module: &FilterModule, rt: &Runtime) -> Result<(), String> {
    let mut filter = module.instance().map_err(|e| e.to_string())?;
    let good = fixtures::PEER_TO_PEER;
    let mut cases: Vec<(&str, Record)> = vec![];
    let owned = hostile_records();
    cases.extend(owned.iter().map(|(name, bytes)| (*name, Record::Json(bytes))));
    cases.push(("a NULL pointer with a length", Record::Null(good.len() as u32)));
    cases.push(("a NULL pointer with 2 MB", Record::Null(2 << 20)));
    for function in [CALL_ROW, SEED_ROW] {
        let want = component_row(rt, function, good)?;
        for (name, record) in &cases {
            match filter.call(function, TAG, TIME, *record) {
                Err(e) => return Err(format!("{function} on {name}: {e}")),
                Ok(out) => {
                    if let Verdict::Invalid(why) = Verdict::of(&out) {
                        return Err(format!("{function} on {name} returned invalid output: {why}"));
                    }
                }
            }
            let next = filter_row(&mut filter, function, good.as_bytes())?;
            if next != want {
                return Err(format!("{function}: the record after {name} got a different row"));
            }
        }
    }
    Ok(())
}

fn long_lived_instance(module: &FilterModule, rt: &Runtime) -> Result<(), String> {
    let mut filter = module.instance().map_err(|e| e.to_string())?;
    let big = synth::group_call(300);
    let want = component_row(rt, CALL_ROW, &big)?;
    filter_row(&mut filter, CALL_ROW, big.as_bytes())?;
    let settled = filter.memory_bytes();
    for i in 0..40 {
        if filter_row(&mut filter, CALL_ROW, big.as_bytes())? != want {
            return Err(format!("call {i} on the same instance gave a different row"));
        }
    }
    // 40 copies of the record that were never freed would need 40 times its size.
    let grown = filter.memory_bytes() - settled;
    if grown > 4 * big.len() {
        return Err(format!("memory grew by {grown} bytes over 40 records of {} bytes: copies leak", big.len()));
    }
    Ok(())
}
