//! A real Fluent Bit (built with WASM support) running a filter module: what the emulation in
//! [`crate::fluentbit`] cannot show, WAMR's own limits above all.
//!
//! WAMR's fast interpreter gives `filter_wasm` 8 KiB of operand stack unless `wasm_stack_size`
//! says otherwise; a module that needs more makes Fluent Bit log
//! `Got exception running wasm code: Exception: wasm operand stack overflow` and drop the record.
//! [`stack_needed`] finds the smallest `wasm_stack_size` that runs every given record, by running
//! Fluent Bit itself, and [`heap_advice`] reads the heap rule off the module's exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The variable that names the Fluent Bit binary.
pub const FLUENT_BIT_VAR: &str = "FLUENT_BIT";

/// What WAMR's fast interpreter gives a module when the config sets no `wasm_stack_size`.
pub const DEFAULT_STACK_KIB: u32 = 8;

/// The stack sizes [`stack_needed`] tries, in KiB.
const STACK_STEPS_KIB: [u32; 6] = [8, 16, 32, 64, 128, 256];

/// Where a Fluent Bit run's log says WAMR trapped.
const EXCEPTION: &str = "exception running wasm code";

/// The Fluent Bit binary: `FLUENT_BIT` when set (an error if it names nothing runnable), else
/// the first of `fallbacks` that exists, else `None`.
pub fn locate(fallbacks: &[PathBuf]) -> Result<Option<PathBuf>, String> {
    if let Some(path) = std::env::var_os(FLUENT_BIT_VAR) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(Some(path))
        } else {
            Err(format!("{FLUENT_BIT_VAR}={} is not a file", path.display()))
        };
    }
    Ok(fallbacks.iter().find(|p| p.is_file()).cloned())
}

/// What one Fluent Bit run left: its log and, per tag, the records its `file` outputs wrote.
#[derive(Debug, Default)]
pub struct Run {
    /// Fluent Bit's stdout and stderr.
    pub log: String,
    /// Records written per tag (one JSON object per line in `<out>/<tag>`).
    pub outputs: BTreeMap<String, Vec<Value>>,
    /// Whether `done` said yes before the time limit.
    pub finished: bool,
}

impl Run {
    /// Whether WAMR trapped on any record.
    pub fn trapped(&self) -> bool {
        self.log.to_ascii_lowercase().contains(EXCEPTION)
    }

    /// Records written under `tag`.
    pub fn records(&self, tag: &str) -> &[Value] {
        self.outputs.get(tag).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Runs `binary -c <dir>/fluent-bit.yaml` with `config`, with `envs` set, until `done` holds for
/// what the outputs under `<dir>/out` wrote, WAMR traps, or `limit` passes; then stops it.
/// `config`'s `file` outputs must write under `<dir>/out` (see [`file_outputs`]).
pub fn run(
    binary: &Path,
    dir: &Path,
    config: &str,
    envs: &[(&str, &Path)],
    limit: Duration,
    done: impl Fn(&Run) -> bool,
) -> Result<Run, String> {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let config_path = dir.join("fluent-bit.yaml");
    std::fs::write(&config_path, config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let log_path = dir.join("fluent-bit.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(binary);
    cmd.arg("-c").arg(&config_path).env("CALLRECORDS_TEST_OUT", &out);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let started = Instant::now();
    let finished = loop {
        std::thread::sleep(Duration::from_millis(100));
        let seen = read(&out, &log_path);
        let exited = child.try_wait().map_err(|e| e.to_string())?;
        if done(&seen) {
            break true;
        }
        if seen.trapped() || exited.is_some() || started.elapsed() > limit {
            break false;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut last = read(&out, &log_path);
    last.finished = finished;
    Ok(last)
}

fn read(out: &Path, log: &Path) -> Run {
    let mut outputs = BTreeMap::new();
    for entry in std::fs::read_dir(out).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        // A line still being written does not parse yet; it is read on a later look.
        let rows = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        outputs.insert(entry.file_name().to_string_lossy().into_owned(), rows);
    }
    Run { log: std::fs::read_to_string(log).unwrap_or_default(), outputs, finished: false }
}

/// An `outputs:` section that writes every tag's records as JSON lines under the run's `out`
/// folder, in place of a config's own outputs.
pub fn file_outputs() -> &'static str {
    "  outputs:\n    - name: file\n      match: \"*\"\n      path: ${CALLRECORDS_TEST_OUT}\n      format: plain\n"
}

/// A shipped config (`examples/fluent-bit/fluent-bit.yaml`) for a test or a benchmark: its
/// settings, inputs and filters as shipped, every `wasm_path` set to `module`, and
/// [`file_outputs`] in place of its outputs. With `filters: false` the filters are left out too
/// (the same pipeline without the module).
pub fn adapt_shipped(shipped: &str, module: &Path, filters: bool) -> Result<String, String> {
    let (pipeline, _outputs) = shipped.split_once("\n  outputs:\n").ok_or("the config has no outputs section")?;
    let mut lines: Vec<String> = vec![];
    let mut in_filters = false;
    for line in pipeline.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") {
            in_filters = line == "  filters:";
        }
        if in_filters && !filters {
            continue;
        }
        lines.push(match line.split_once("wasm_path:") {
            Some((indent, _)) => format!("{indent}wasm_path: {}", module.display()),
            None => line.to_string(),
        });
    }
    Ok(format!("{}\n{}", lines.join("\n"), file_outputs()))
}

/// A config that tails `${CALLRECORDS_NDJSON}` twice and runs `module`'s two row functions on
/// them with `stack_kib` KiB of stack (no `wasm_stack_size` line when `None`).
fn probe_config(module: &Path, stack_kib: Option<u32>) -> String {
    let stack = stack_kib.map(|k| format!("      wasm_stack_size: {k}K\n")).unwrap_or_default();
    let mut config = String::from(
        "service:\n  flush: 0.2\n  log_level: info\n\nparsers:\n  - name: json\n    format: json\n\npipeline:\n  inputs:\n",
    );
    for tag in [crate::fluentbit::CALL_ROW, crate::fluentbit::SEED_ROW] {
        config += &format!(
            "    - name: tail\n      tag: {tag}\n      path: ${{CALLRECORDS_NDJSON}}\n      parser: json\n      read_from_head: true\n      buffer_chunk_size: 1M\n      buffer_max_size: 64M\n"
        );
    }
    config += "  filters:\n";
    for function in [crate::fluentbit::CALL_ROW, crate::fluentbit::SEED_ROW] {
        config += &format!(
            "    - name: wasm\n      match: {function}\n      event_format: json\n      wasm_path: {}\n      function_name: {function}\n{stack}",
            module.display()
        );
    }
    config + file_outputs()
}

/// The smallest `wasm_stack_size` (KiB, from 8 to 256) with which `binary` turns each of
/// `records` (callRecords, one JSON object each) into both rows without a trap; `None` if none
/// of them does. Each size is one Fluent Bit run in a folder under `dir`.
pub fn stack_needed(binary: &Path, module: &Path, records: &[String], dir: &Path) -> Result<Option<u32>, String> {
    let input = dir.join("records.ndjson");
    // One record per line, as `tail` reads them.
    let mut text = String::new();
    for record in records {
        let value: Value = serde_json::from_str(record).map_err(|e| format!("a record is not JSON: {e}"))?;
        text += &format!("{value}\n");
    }
    std::fs::write(&input, text).map_err(|e| format!("{}: {e}", input.display()))?;
    let want = records.len();
    for kib in STACK_STEPS_KIB {
        let config = probe_config(module, (kib != DEFAULT_STACK_KIB).then_some(kib));
        let run = run(binary, dir, &config, &[("CALLRECORDS_NDJSON", &input)], Duration::from_secs(60), |r| {
            [crate::fluentbit::CALL_ROW, crate::fluentbit::SEED_ROW].iter().all(|t| r.records(t).len() >= want)
        })?;
        if run.finished && !run.trapped() {
            return Ok(Some(kib));
        }
    }
    Ok(None)
}

/// What `wasm_heap_size` a module needs, read off its exports: with `malloc` and `free` WAMR
/// copies each record with the module's own allocator, so the default 8 KiB app heap is enough
/// for records of any size; without them the app heap must hold the largest record.
pub fn heap_advice(exports: &[&str]) -> &'static str {
    if exports.contains(&"malloc") && exports.contains(&"free") {
        "exports malloc/free, so Fluent Bit's default wasm_heap_size (8K) is enough for records of any size"
    } else {
        "does not export malloc/free: set wasm_heap_size larger than the largest record, or Fluent Bit passes it as a NULL pointer"
    }
}
