//! Loads a `plugin` component once per process and calls its exports in fresh, sandboxed stores:
//! a memory cap and a wall-clock deadline per call, traps turned into errors, the host unharmed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Plugin, PluginPre};

/// Instances that can be alive at once per runtime (one per concurrent call).
const POOL_SLOTS: u32 = 64;
/// Heap bytes per slot kept mapped between calls.
const KEEP_RESIDENT: usize = 32 << 20;
/// How often the deadline clock ticks.
const TICK: Duration = Duration::from_millis(5);

/// Per-call limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest linear memory of one call's instance.
    pub memory_bytes: usize,
    /// Longest wall time of one call.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 256 << 20, call_timeout: Duration::from_secs(10) }
    }
}

/// Why a call into the component did not return a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The component could not be loaded or does not export the `plugin` world.
    Load(String),
    /// The call ran past its deadline.
    Timeout(Duration),
    /// The call wanted more memory than its cap.
    MemoryLimit(usize),
    /// The component trapped (a bug in it; the host is unaffected).
    Trap(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Load(m) => write!(f, "cannot load the component: {m}"),
            CallError::Timeout(d) => write!(f, "the component ran longer than {} ms", d.as_millis()),
            CallError::MemoryLimit(b) => write!(f, "the component wanted more than {} MiB of memory", b >> 20),
            CallError::Trap(m) => write!(f, "the component trapped: {m}"),
        }
    }
}

impl std::error::Error for CallError {}

/// State of one call's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps memory and remembers that it refused, so the trap that follows is reported as what it is.
struct Limiter {
    memory_bytes: usize,
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A loaded component, ready to instantiate cheaply for every call.
pub struct Runtime {
    engine: Engine,
    pre: PluginPre<HostState>,
    limits: Limits,
    stop_ticker: Arc<AtomicBool>,
    /// The tokens the last driver job saved, for the next one (see [`crate::jobs`]).
    pub(crate) tokens: std::sync::Mutex<Option<Vec<u8>>>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// One instance of the component, good for one call. Exports are reached through
/// [`Instance::plugin`] with [`Instance::store`].
pub struct Instance {
    /// The store the instance lives in.
    pub store: Store<HostState>,
    /// The instance's exports.
    pub plugin: Plugin,
    timeout: Duration,
    memory_bytes: usize,
}

impl Instance {
    /// Give the next call in `store` the whole budget `timeout` again (for an instance that serves
    /// a sequence of calls, like a driver run).
    pub fn refresh_deadline(store: &mut Store<HostState>, timeout: Duration) {
        store.set_epoch_deadline((timeout.as_nanos() / TICK.as_nanos()).max(1) as u64);
    }

    /// Turn a wasmtime error from a call into a [`CallError`].
    pub fn fail(&self, e: wasmtime::Error) -> CallError {
        if self.store.data().limiter.refused {
            return CallError::MemoryLimit(self.memory_bytes);
        }
        if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
            return CallError::Timeout(self.timeout);
        }
        CallError::Trap(format!("{e:#}").lines().next().unwrap_or("trap").to_string())
    }
}

impl Runtime {
    /// The component built with this harness, precompiled once and kept in the user's code cache
    /// ([`crate::cache`]).
    pub fn embedded() -> Result<Self, CallError> {
        Self::new(crate::artifacts::PLUGIN, Limits::default(), true)
    }

    /// Any component file that claims the `plugin` world.
    pub fn from_file(path: &Path) -> Result<Self, CallError> {
        let bytes = std::fs::read(path).map_err(|e| CallError::Load(format!("{}: {e}", path.display())))?;
        Self::new(&bytes, Limits::default(), false)
    }

    /// Load `bytes`; `cache` keeps the compiled code on disk (only for our own artifacts).
    pub fn new(bytes: &[u8], limits: Limits, cache: bool) -> Result<Self, CallError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // A fresh instance per call is cheap with the pooling allocator: slots are reused and
        // their first pages stay resident, so a call does not pay page faults for its heap again.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 4)
            .total_memories(POOL_SLOTS)
            .total_tables(POOL_SLOTS * 4)
            // One page more than the cap, so that the limiter (which reports it) refuses first.
            .max_memory_size(limits.memory_bytes + (64 << 10))
            .linear_memory_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| CallError::Load(format!("{e:#}")))?;
        let component = if cache { crate::cache::load(&engine, bytes, "plugin") } else { None };
        let component = match component {
            Some(c) => c,
            None => Component::new(&engine, bytes).map_err(|e| CallError::Load(format!("{e:#}")))?,
        };
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| CallError::Load(format!("{e:#}")))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| CallError::Load(format!("{e:#}")))?;
        let pre =
            PluginPre::new(pre).map_err(|e| CallError::Load(format!("it does not export the plugin world: {e:#}")))?;
        let stop_ticker = start_ticker(&engine).map_err(CallError::Load)?;
        Ok(Runtime { engine, pre, limits, stop_ticker, tokens: std::sync::Mutex::new(None) })
    }

    /// The per-call limits (fixed at load: the instance pool is sized from them).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A fresh instance in a fresh store with the limits applied.
    pub fn instance(&self) -> Result<Instance, CallError> {
        self.instance_for(&[])
    }

    /// A fresh instance that may read the credential files `env` names (read-only preopens of
    /// their directories: see [`credential_dirs`]).
    pub fn instance_for(&self, env: &[(String, String)]) -> Result<Instance, CallError> {
        let mut wasi = WasiCtx::builder();
        for dir in credential_dirs(env) {
            wasi.preopened_dir(&dir, &dir, FsPerms::ReadOnly)
                .map_err(|e| CallError::Load(format!("cannot open {dir} for the component: {e:#}")))?;
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter { memory_bytes: self.limits.memory_bytes, refused: false },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = (self.limits.call_timeout.as_nanos() / TICK.as_nanos()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let timeout = self.limits.call_timeout;
        let memory_bytes = self.limits.memory_bytes;
        match self.pre.instantiate(&mut store) {
            Ok(plugin) => {
                // The call gets the whole budget, whatever instantiation used of it.
                store.set_epoch_deadline(ticks);
                Ok(Instance { store, plugin, timeout, memory_bytes })
            }
            Err(_) if store.data().limiter.refused => Err(CallError::MemoryLimit(memory_bytes)),
            Err(e) if matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt)) => {
                Err(CallError::Timeout(timeout))
            }
            Err(e) => Err(CallError::Trap(format!("instantiation failed: {e:#}"))),
        }
    }

    /// Run `f` against a fresh instance, mapping a trap to a [`CallError`].
    pub fn call<R>(
        &self,
        f: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let mut i = self.instance()?;
        let result = f(&i.plugin, &mut i.store);
        result.map_err(|e| i.fail(e))
    }
}

/// Advance `engine`'s epoch every [`TICK`] from a thread of its own, until the engine is dropped
/// or the returned flag is set: the clock that epoch deadlines count in.
pub(crate) fn start_ticker(engine: &Engine) -> Result<Arc<AtomicBool>, String> {
    let stop_ticker = Arc::new(AtomicBool::new(false));
    let (weak, stop) = (engine.weak(), stop_ticker.clone());
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map_err(|e| format!("cannot start the deadline clock: {e}"))?;
    Ok(stop_ticker)
}

/// The directories of the credential files the settings name (a certificate's PEM, the workload
/// identity token): the component reads them through WASI, so the host grants each, read-only, at
/// the same path. Settings the core refuses name none (the run reports what is wrong).
pub fn credential_dirs(env: &[(String, String)]) -> Vec<String> {
    let Ok(config) = callrecords::config::Config::from_env(env) else { return vec![] };
    let mut dirs: Vec<String> = config
        .credentials
        .credential
        .files()
        .iter()
        .filter_map(|f| std::path::Path::new(f).parent().map(|d| d.to_string_lossy().into_owned()))
        .map(|d| if d.is_empty() { ".".into() } else { d })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}
