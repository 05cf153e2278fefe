//! jco as a second component host: the built component, transpiled to JavaScript, answers every
//! export call of the conformance suite exactly as wasmtime does.
//!
//! `host-test/conformance/jco/` pins jco; `npm ci` runs there when `node_modules` is missing. The calls and
//! wasmtime's answers are recorded by `callrecords_conformance::jco::record_scenarios` and replayed by
//! `host-test/conformance/jco/replay.mjs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use callrecords_conformance as conformance;
use callrecords_host::artifacts::PLUGIN as EMBEDDED_PLUGIN;
use serde_json::Value;

use crate::{RT, temp_dir};

const JCO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../conformance/jco");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (node 20+ and npm must be on PATH)"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// The project's own pinned jco, installed from its lock file when missing.
fn install_jco() {
    if !Path::new(JCO_DIR).join("node_modules/.bin/jco").exists() {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(JCO_DIR));
    }
}

/// Transpile the component into `dir/out` as an ES module package; the path of `plugin.js`.
fn transpile(dir: &Path) -> PathBuf {
    let wasm = dir.join("plugin.wasm");
    std::fs::write(&wasm, EMBEDDED_PLUGIN).unwrap();
    let out = dir.join("out");
    run(Command::new("npx")
        .args(["--no-install", "jco", "transpile"])
        .arg(&wasm)
        .args(["--name", "plugin", "-o"])
        .arg(&out)
        .current_dir(JCO_DIR));
    std::fs::write(out.join("package.json"), r#"{"type":"module"}"#).unwrap();
    // The generated code imports the WASI shims by package name: resolve them from our install.
    std::os::unix::fs::symlink(Path::new(JCO_DIR).join("node_modules"), dir.join("node_modules")).unwrap();
    out.join("plugin.js")
}

/// Replay `dump` on the transpiled module: scenario name -> (equal, calls, diff).
fn replay(module: &Path, dump: &Value, dir: &Path, name: &str) -> Vec<(String, bool, u64, String)> {
    let path = dir.join(name);
    std::fs::write(&path, dump.to_string()).unwrap();
    let stdout = run(Command::new("node").arg(Path::new(JCO_DIR).join("replay.mjs")).arg(module).arg(&path));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("name"), s["equal"] == Value::Bool(true), s["calls"].as_u64().unwrap_or(0), text("diff"))
        })
        .collect()
}

#[test]
fn jco_answers_every_conformance_call_like_wasmtime() {
    install_jco();
    let dir = temp_dir("jco");
    let module = transpile(&dir);
    let dump = callrecords_conformance::jco::record_scenarios(&RT);
    for s in dump["scenarios"].as_array().unwrap() {
        assert_eq!(s["passed"], Value::Bool(true), "{} fails on wasmtime already", s["name"]);
    }

    let report = replay(&module, &dump, &dir, "dump.json");
    let names: Vec<&str> = report.iter().map(|r| r.0.as_str()).collect();
    let want: Vec<&str> = conformance::SCENARIOS.iter().map(|s| s.name).collect();
    assert_eq!(names, want, "every scenario replayed, in order");
    for (name, equal, calls, diff) in &report {
        assert!(*calls > 0, "{name} recorded no calls");
        assert!(equal, "{name}: {diff}");
    }

    // The comparison can fail: one answer changed in the dump is reported, and only there.
    let mut tampered = dump.clone();
    let scenario = tampered["scenarios"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["name"] == "shared-key-signature")
        .expect("shared-key-signature is recorded");
    let answer = &mut scenario["calls"][0]["result"]["returns"];
    *answer = Value::from(format!("{}x", answer.as_str().expect("a SharedKey header string")));
    let report = replay(&module, &tampered, &dir, "tampered.json");
    let unequal: Vec<&str> = report.iter().filter(|r| !r.1).map(|r| r.0.as_str()).collect();
    assert_eq!(unequal, ["shared-key-signature"]);
    let diff = &report.iter().find(|r| r.0 == "shared-key-signature").unwrap().3;
    assert!(diff.contains("sentinel.shared-key-authorization"), "{diff}");
}
