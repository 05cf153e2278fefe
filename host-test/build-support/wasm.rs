//! Building the wasm artifacts with a nested cargo, shared by the build scripts of
//! `callrecords-host` (the shipped artifacts) and `callrecords-test-kit` (the broken twin the
//! tests need), so `cargo run` / `cargo test` need no other setup step.
//!
//! The nested build uses its own target directory (`target/wasm`) so it never waits on the outer
//! build's lock, and a clean environment so outer settings (clippy's wrapper, host RUSTFLAGS)
//! don't leak into the wasm build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The core: package and library `callrecords`.
pub const CORE: (&str, &str) = ("callrecords", "callrecords");
/// The component's target.
pub const COMPONENT: &str = "wasm32-wasip2";

/// The workspace root and `target/wasm`, after telling cargo which sources the artifacts come from.
pub fn setup() -> (PathBuf, PathBuf) {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().expect("host-test/<crate> lives in the workspace");
    let inputs =
        ["plugin/src", "plugin/Cargo.toml", "plugin/fluent-bit", "plugin/envoy", "wit", "Cargo.toml", "Cargo.lock"];
    for p in inputs {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let target_dir = root.join("target").join("wasm");
    (root, target_dir)
}

/// rust-toolchain.toml lists the target, but rustup does not install it where auto-install is off.
pub fn ensure_target(target: &str) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().ok();
    let has_target = sysroot.is_some_and(|o| {
        let root = String::from_utf8_lossy(&o.stdout).trim().to_string();
        Path::new(&root).join("lib/rustlib").join(target).exists()
    });
    if has_target {
        return;
    }
    let status = Command::new("rustup").args(["target", "add", target]).status();
    if !status.is_ok_and(|s| s.success()) {
        panic!("the {target} target is missing and `rustup target add {target}` failed; install it and build again");
    }
}

/// Build `package` (whose library is `lib`) for `target`; the path of the `.wasm` it produced.
pub fn build(
    root: &Path,
    target_dir: &Path,
    (package, lib): (&str, &str),
    target: &str,
    args: &[&str],
    profile_dir: &str,
) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", package, "--lib", "--target", target, "--target-dir"])
        .arg(target_dir)
        .args(args);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let keep = k == "CARGO_HOME" || k == "CARGO_NET_OFFLINE" || k.starts_with("CARGO_REGISTRIES_");
        if (k.starts_with("CARGO_") && !keep) || k == "RUSTFLAGS" || k == "RUSTC_WORKSPACE_WRAPPER" || k == "RUSTC" {
            cmd.env_remove(&k);
        }
    }
    let out = cmd.output().expect("run cargo for a wasm artifact");
    if !out.status.success() {
        panic!("building {package} for {target} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    target_dir.join(target).join(profile_dir).join(format!("{lib}.wasm"))
}

/// Copy an artifact.
pub fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
