//! Builds the plugin component, the service component (`--features service`: the plugin exports
//! plus a wasi:http handler), a deliberately broken twin for the conformance tests, and the Fluent
//! Bit `filter_wasm` core module and the Envoy proxy-wasm filter with a nested cargo, so `cargo run` / `cargo test` need no other
//! setup step.
//!
//! The nested build uses its own target directory (`target/wasm`) so it never waits on the outer
//! build's lock, and a clean environment so outer settings (clippy's wrapper, host RUSTFLAGS)
//! don't leak into the wasm build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The component's target.
const COMPONENT: &str = "wasm32-wasip2";
/// The Fluent Bit module's target (Fluent Bit's WAMR recommends it; it imports nothing).
const CORE_MODULE: &str = "wasm32-unknown-unknown";
/// The Envoy proxy-wasm filter's target (Envoy implements a WASI preview 1 subset).
const PROXY_WASM: &str = "wasm32-wasip1";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("host-test lives in the workspace").to_path_buf();
    let inputs =
        ["plugin/src", "plugin/Cargo.toml", "plugin/fluent-bit", "plugin/envoy", "wit", "Cargo.toml", "Cargo.lock"];
    for p in inputs {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = root.join("target").join("wasm");
    ensure_target(COMPONENT);
    ensure_target(CORE_MODULE);
    ensure_target(PROXY_WASM);

    let release = ["--profile", "wasm-release"];
    // The service build first: both builds write `callrecords.wasm`, and the plugin component is
    // the one users find there; the service component is also left as `callrecords-service.wasm`.
    let service_args = ["--profile", "wasm-release", "--features", "service"];
    let service = build(&root, &target_dir, ("plugin", "callrecords"), COMPONENT, &service_args, "wasm-release");
    copy(&service, &out_dir.join("service.wasm"));
    copy(&service, &service.with_file_name("callrecords-service.wasm"));
    let plugin = build(&root, &target_dir, ("plugin", "callrecords"), COMPONENT, &release, "wasm-release");
    copy(&plugin, &out_dir.join("plugin.wasm"));
    let broken = build(&root, &target_dir, ("plugin", "callrecords"), COMPONENT, &["--features", "misbehave"], "debug");
    copy(&broken, &out_dir.join("misbehaving.wasm"));
    let fluent_bit = ("fluent-bit-filter", "callrecords_fluent_bit");
    let filter = build(&root, &target_dir, fluent_bit, CORE_MODULE, &release, "wasm-release");
    copy(&filter, &out_dir.join("fluent-bit-filter.wasm"));
    let envoy = build(&root, &target_dir, ("envoy-filter", "callrecords_envoy"), PROXY_WASM, &release, "wasm-release");
    copy(&envoy, &out_dir.join("envoy-filter.wasm"));

    println!("cargo:rustc-env=CALLRECORDS_PLUGIN_WASM={}", out_dir.join("plugin.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_SERVICE_WASM={}", out_dir.join("service.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_MISBEHAVING_WASM={}", out_dir.join("misbehaving.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_FLUENT_BIT_WASM={}", out_dir.join("fluent-bit-filter.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_ENVOY_WASM={}", out_dir.join("envoy-filter.wasm").display());
}

/// rust-toolchain.toml lists the target, but rustup does not install it where auto-install is off.
fn ensure_target(target: &str) {
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
fn build(
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

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
