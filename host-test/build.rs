//! Builds the plugin component, the service component (`--features service`: the plugin exports
//! plus a wasi:http handler) and a deliberately broken twin for the conformance tests with a
//! nested cargo, so `cargo run` / `cargo test` need no other setup step.
//!
//! The nested build uses its own target directory (`target/wasm`) so it never waits on the outer
//! build's lock, and a clean environment so outer settings (clippy's wrapper, host RUSTFLAGS)
//! don't leak into the wasm build.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("host-test lives in the workspace").to_path_buf();
    for p in ["plugin/src", "plugin/Cargo.toml", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = root.join("target").join("wasm");
    ensure_target();

    // The service build first: both builds write `callrecords.wasm`, and the plugin component is
    // the one users find there; the service component is also left as `callrecords-service.wasm`.
    let service = build(&root, &target_dir, &["--profile", "wasm-release", "--features", "service"], "wasm-release");
    copy(&service, &out_dir.join("service.wasm"));
    copy(&service, &service.with_file_name("callrecords-service.wasm"));
    let plugin = build(&root, &target_dir, &["--profile", "wasm-release"], "wasm-release");
    copy(&plugin, &out_dir.join("plugin.wasm"));
    let broken = build(&root, &target_dir, &["--features", "misbehave"], "debug");
    copy(&broken, &out_dir.join("misbehaving.wasm"));

    println!("cargo:rustc-env=CALLRECORDS_PLUGIN_WASM={}", out_dir.join("plugin.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_SERVICE_WASM={}", out_dir.join("service.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_MISBEHAVING_WASM={}", out_dir.join("misbehaving.wasm").display());
}

/// rust-toolchain.toml lists the target, but rustup does not install it where auto-install is off.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().ok();
    let has_target = sysroot.is_some_and(|o| {
        let root = String::from_utf8_lossy(&o.stdout).trim().to_string();
        Path::new(&root).join("lib/rustlib").join(TARGET).exists()
    });
    if has_target {
        return;
    }
    let status = Command::new("rustup").args(["target", "add", TARGET]).status();
    if !status.is_ok_and(|s| s.success()) {
        panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed; install it and build again");
    }
}

fn build(root: &Path, target_dir: &Path, args: &[&str], profile_dir: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", "plugin", "--lib", "--target", TARGET, "--target-dir"])
        .arg(target_dir)
        .args(args);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let keep = k == "CARGO_HOME" || k == "CARGO_NET_OFFLINE" || k.starts_with("CARGO_REGISTRIES_");
        if (k.starts_with("CARGO_") && !keep) || k == "RUSTFLAGS" || k == "RUSTC_WORKSPACE_WRAPPER" || k == "RUSTC" {
            cmd.env_remove(&k);
        }
    }
    let out = cmd.output().expect("run cargo for the wasm component");
    if !out.status.success() {
        panic!("building the plugin component failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    target_dir.join(TARGET).join(profile_dir).join("callrecords.wasm")
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
