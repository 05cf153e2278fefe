//! Integration tests: every export through the component, the Fluent Bit module through the
//! filter_wasm convention, the CLI as a user runs it, the sandbox, and property tests. One binary,
//! so each wasm artifact is compiled once.

mod cli;
mod credentials;
mod envoy;
mod fluentbit;
mod jco;
mod jobs_cli;
mod properties;
mod pstn;
mod queue;
mod real_fluent_bit;
mod sandbox;
mod sentinel;
mod service;
mod stock;
mod storage_queue;
mod suite;

use std::sync::LazyLock;

use callrecords_conformance::fluentbit::FilterModule;
use callrecords_host::Runtime;

/// The component under test, loaded once for this binary.
pub static RT: LazyLock<Runtime> = LazyLock::new(|| Runtime::embedded().expect("the built component loads"));

/// The Fluent Bit filter module under test, compiled once for this binary.
pub static FILTER: LazyLock<FilterModule> =
    LazyLock::new(|| FilterModule::embedded().expect("the built Fluent Bit module loads"));

/// A fresh folder for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
