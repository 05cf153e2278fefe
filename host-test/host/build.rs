//! Builds the shipped artifacts this host embeds: the plugin component, the service component
//! (`--features service`: the plugin exports plus a wasi:http handler), the Fluent Bit
//! `filter_wasm` core module and the Envoy proxy-wasm filter.

use std::path::PathBuf;

#[path = "../build-support/wasm.rs"]
mod wasm;
use wasm::{COMPONENT, CORE, build, copy, ensure_target};

/// The Fluent Bit module's target (Fluent Bit's WAMR recommends it; it imports nothing).
const CORE_MODULE: &str = "wasm32-unknown-unknown";
/// The Envoy proxy-wasm filter's target (Envoy implements a WASI preview 1 subset).
const PROXY_WASM: &str = "wasm32-wasip1";

fn main() {
    let (root, target_dir) = wasm::setup();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    ensure_target(COMPONENT);
    ensure_target(CORE_MODULE);
    ensure_target(PROXY_WASM);

    let release = ["--profile", "wasm-release"];
    // The service build first: both builds write `callrecords.wasm`, and the plugin component is
    // the one users find there; the service component is also left as `callrecords-service.wasm`.
    let service_args = ["--profile", "wasm-release", "--features", "service"];
    let service = build(&root, &target_dir, CORE, COMPONENT, &service_args, "wasm-release");
    copy(&service, &out_dir.join("service.wasm"));
    copy(&service, &service.with_file_name("callrecords-service.wasm"));
    let plugin = build(&root, &target_dir, CORE, COMPONENT, &release, "wasm-release");
    copy(&plugin, &out_dir.join("plugin.wasm"));
    let fluent_bit = ("fluent-bit-filter", "callrecords_fluent_bit");
    let filter = build(&root, &target_dir, fluent_bit, CORE_MODULE, &release, "wasm-release");
    copy(&filter, &out_dir.join("fluent-bit-filter.wasm"));
    let envoy = build(&root, &target_dir, ("envoy-filter", "callrecords_envoy"), PROXY_WASM, &release, "wasm-release");
    copy(&envoy, &out_dir.join("envoy-filter.wasm"));

    println!("cargo:rustc-env=CALLRECORDS_PLUGIN_WASM={}", out_dir.join("plugin.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_SERVICE_WASM={}", out_dir.join("service.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_FLUENT_BIT_WASM={}", out_dir.join("fluent-bit-filter.wasm").display());
    println!("cargo:rustc-env=CALLRECORDS_ENVOY_WASM={}", out_dir.join("envoy-filter.wasm").display());
}
