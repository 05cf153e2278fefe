//! Integration tests: every export through the component, the CLI as a user runs it, the sandbox,
//! and property tests. One binary, so the component is compiled once.

mod cli;
mod properties;
mod sandbox;
mod sentinel;
mod suite;

use std::sync::LazyLock;

use host_test::Runtime;

/// The component under test, loaded once for this binary.
pub static RT: LazyLock<Runtime> = LazyLock::new(|| Runtime::embedded().expect("the built component loads"));

/// A fresh folder for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
