//! The conformance suite as data, for replaying on a second component host (jco, in node): every
//! export call each scenario makes, recorded with wasmtime's answers by
//! [`callrecords_host::record`]; `jco/replay.mjs` replays them on the jco-transpiled component.

use callrecords_host::Runtime;
use callrecords_host::record::recording;
use serde_json::{Value, json};

use crate::scenarios::SCENARIOS;

/// Run every conformance scenario on this thread and return, per scenario, its name, whether
/// it passed on wasmtime and every export call it made:
/// `{"scenarios": [{"name", "passed", "calls": [{"interface", "function", "args", "result"}]}]}`.
pub fn record_scenarios(rt: &Runtime) -> Value {
    let scenarios: Vec<Value> = SCENARIOS
        .iter()
        .map(|s| {
            let (result, calls) = recording(|| (s.run)(rt));
            json!({"name": s.name, "passed": result.is_ok(), "calls": calls})
        })
        .collect();
    json!({ "scenarios": scenarios })
}
