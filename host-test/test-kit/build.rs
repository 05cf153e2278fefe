//! With the `misbehaving-twin` feature (the tests' dev-dependency turns it on), builds a
//! deliberately broken plugin component (`--features misbehave`: a wrong SharedKey signature)
//! so the conformance tests can prove `check` catches faults, and the same flaw in the service
//! component (which also spins forever on `/__spin`, for the sandbox tests). Nothing shipped
//! embeds them.

use std::path::PathBuf;

#[path = "../build-support/wasm.rs"]
mod wasm;
use wasm::{COMPONENT, CORE, build, copy, ensure_target};

fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_MISBEHAVING_TWIN");
    if std::env::var_os("CARGO_FEATURE_MISBEHAVING_TWIN").is_none() {
        return;
    }
    let (root, target_dir) = wasm::setup();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    ensure_target(COMPONENT);
    let broken = build(&root, &target_dir, CORE, COMPONENT, &["--features", "misbehave"], "debug");
    copy(&broken, &out_dir.join("misbehaving.wasm"));
    println!("cargo:rustc-env=CALLRECORDS_MISBEHAVING_WASM={}", out_dir.join("misbehaving.wasm").display());
    let spinning = build(&root, &target_dir, CORE, COMPONENT, &["--features", "service,misbehave"], "debug");
    copy(&spinning, &out_dir.join("misbehaving-service.wasm"));
    let service = out_dir.join("misbehaving-service.wasm");
    println!("cargo:rustc-env=CALLRECORDS_MISBEHAVING_SERVICE_WASM={}", service.display());
}
