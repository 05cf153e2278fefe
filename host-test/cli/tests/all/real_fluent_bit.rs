//! The shipped Fluent Bit filter config in a real Fluent Bit 5.1 built with WASM (`FLUENT_BIT`,
//! else `../shared/tools/fluent-bit/fluent-bit` beside the repository; without either these tests
//! say so and pass). The emulation in `fluentbit.rs` does not model WAMR's operand stack: the
//! shipped config once dropped every record there with "wasm operand stack overflow".
//!
//! The forward mode runs the service component with the shipped forward config's Fluent Bit
//! between it and a Logs Ingestion stand-in over TLS, as `azure_logs_ingestion` needs.
//!
//! Expected rows are read off the input callRecords here (ids, versions, session, segment and
//! stream counts), never asked of the module under test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use callrecords_conformance::real_fluent_bit::{self, Run};
use callrecords_host::artifacts::FLUENT_BIT_FILTER;
use callrecords_test_kit::{fixtures, synth};
use serde_json::{Value, json};

use crate::cli::{OutputText, callrecords};
use crate::service::{GROUP, P2P, TOKIO, callrecords_dir, expected_rows};
use crate::temp_dir;

/// The real Fluent Bit, or `None` after a printed notice.
fn fluent_bit(test: &str) -> Option<PathBuf> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/fluent-bit/fluent-bit");
    match real_fluent_bit::locate(&[shared]) {
        Ok(Some(binary)) => Some(binary),
        Ok(None) => {
            let notice = format!(
                "SKIPPED {test}: no Fluent Bit (set FLUENT_BIT to a Fluent Bit built with WASM, or put one at ../shared/tools/fluent-bit/fluent-bit)"
            );
            println!("{notice}");
            eprintln!("{notice}");
            None
        }
        Err(why) => panic!("{why}"),
    }
}

/// The sample group call with its session and participants_v2 pages merged by hand: what
/// `callrecords expand` writes for Fluent Bit's input.
fn merged_group_call() -> Value {
    let mut record: Value = serde_json::from_str(fixtures::GROUP_CALL).unwrap();
    let mut sessions = record["sessions"].as_array().cloned().unwrap();
    for page in [fixtures::GROUP_SESSIONS_2, fixtures::GROUP_SESSIONS_3] {
        sessions.extend(serde_json::from_str::<Value>(page).unwrap()["value"].as_array().cloned().unwrap());
    }
    let mut participants = record["participants_v2"].as_array().cloned().unwrap_or_default();
    for page in [fixtures::GROUP_PARTICIPANTS_1, fixtures::GROUP_PARTICIPANTS_2] {
        participants.extend(serde_json::from_str::<Value>(page).unwrap()["value"].as_array().cloned().unwrap());
    }
    let obj = record.as_object_mut().unwrap();
    obj.retain(|k, _| !k.ends_with("@odata.nextLink"));
    obj.insert("sessions".into(), Value::Array(sessions));
    obj.insert("participants_v2".into(), Value::Array(participants));
    record
}

/// The `TeamsCall_CL` values a callRecord must give, counted off the record itself.
fn expected_call_row(record: &Value) -> Value {
    let sessions = record["sessions"].as_array().unwrap();
    let segments: Vec<&Value> = sessions.iter().flat_map(|s| s["segments"].as_array().unwrap()).collect();
    let streams: usize = segments
        .iter()
        .flat_map(|seg| seg["media"].as_array().into_iter().flatten())
        .map(|m| m["streams"].as_array().map_or(0, Vec::len))
        .sum();
    json!({
        "CallId": record["id"], "CallVersion": record["version"], "CallType": record["type"],
        "SessionCount": sessions.len(), "SegmentCount": segments.len(), "StreamCount": streams,
    })
}

/// `examples/fluent-bit/fluent-bit.yaml` as shipped.
fn shipped_config() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fluent-bit/fluent-bit.yaml"))
        .unwrap()
}

/// `row` restricted to the keys of `want`.
fn pick(row: &Value, want: &Value) -> Value {
    Value::Object(want.as_object().unwrap().keys().map(|k| (k.clone(), row[k].clone())).collect())
}

#[test]
fn the_shipped_filter_config_runs_every_sample_in_real_fluent_bit() {
    let Some(binary) = fluent_bit("the_shipped_filter_config_runs_every_sample_in_real_fluent_bit") else { return };
    let dir = temp_dir("real-fluent-bit-filter");
    let module = dir.join("callrecords_fluent_bit.wasm");
    std::fs::write(&module, FLUENT_BIT_FILTER).unwrap();

    let large: Value = serde_json::from_str(&synth::group_call(1500)).unwrap();
    let mut calls: Vec<Value> = [fixtures::PEER_TO_PEER, fixtures::PSTN, fixtures::GUEST_ANONYMOUS, fixtures::ODDITIES]
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    calls.push(merged_group_call());
    calls.push(large);
    // Not callRecords: each is dropped, and the callRecord right after it still gives its rows.
    let mut lines = vec![];
    for (i, call) in calls.iter().enumerate() {
        match i {
            0 => lines.push(r#"{"hello":"world"}"#.to_string()),
            2 => lines.push(r#"{"id":42,"sessions":"none"}"#.to_string()),
            _ => {}
        }
        lines.push(serde_json::to_string(call).unwrap());
    }
    let largest = lines.iter().map(String::len).max().unwrap();
    assert!(largest > 5 << 20, "a multi-MB call is among the records ({largest} bytes)");
    let input = dir.join("callrecords.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let tags = ["callrecord.call", "callrecord.seed"];
    let run = real_fluent_bit::run(
        &binary,
        &dir,
        &real_fluent_bit::adapt_shipped(&shipped_config(), &module, true).unwrap(),
        &[("CALLRECORDS_NDJSON", &input)],
        Duration::from_secs(120),
        |r: &Run| tags.iter().all(|t| r.records(t).len() >= calls.len()),
    )
    .unwrap();
    assert!(!run.trapped(), "WAMR trapped in Fluent Bit:\n{}", run.log);
    assert!(run.finished, "not every row arrived within 2 minutes: {:?}\n{}", run.outputs.keys(), run.log);
    assert!(!run.log.contains("[error]"), "Fluent Bit logged an error:\n{}", run.log);

    let want: Vec<Value> = calls.iter().map(expected_call_row).collect();
    let got: Vec<Value> = run.records("callrecord.call").iter().zip(&want).map(|(row, w)| pick(row, w)).collect();
    assert_eq!(run.records("callrecord.call").len(), calls.len(), "one TeamsCall_CL row per callRecord");
    assert_eq!(got, want);
    let seed_ids: Vec<&Value> = run.records("callrecord.seed").iter().map(|r| &r["id"]).collect();
    let call_ids: Vec<&Value> = calls.iter().map(|c| &c["id"]).collect();
    assert_eq!(seed_ids, call_ids, "one seed-compatible row per callRecord, in order");
}

#[test]
fn check_measures_the_stack_a_module_needs_in_real_fluent_bit() {
    let Some(_) = fluent_bit("check_measures_the_stack_a_module_needs_in_real_fluent_bit") else { return };
    let dir = temp_dir("real-fluent-bit-check");
    let module = dir.join("callrecords_fluent_bit.wasm");
    std::fs::write(&module, FLUENT_BIT_FILTER).unwrap();
    let out = callrecords(&["check", module.to_str().unwrap()], None);
    let text = out.stdout_text();
    assert!(out.status.success(), "{text}{}", out.stderr_text());
    let line = text.lines().find(|l| l.starts_with("NOTE stack: wasm_stack_size ")).unwrap_or_else(|| panic!("{text}"));
    let kib: u32 = line["NOTE stack: wasm_stack_size ".len()..].split('K').next().unwrap().parse().unwrap();
    // What a build needs moves with code generation (builds of this module have needed 8K and
    // 16K); the shipped configs' 64K must be enough.
    assert!((real_fluent_bit::DEFAULT_STACK_KIB..=64).contains(&kib), "{line}");
    let shipped = shipped_config();
    let wasm_filters = shipped.matches("- name: wasm").count();
    assert_eq!(shipped.matches("wasm_stack_size: 64K").count(), wasm_filters, "every wasm filter sets its stack");
}

/// `examples/fluent-bit/fluent-bit-forward.yaml` for a test: the `http` input on `port`, and each
/// `azure_logs_ingestion` output told where the token endpoint is (`auth_url`, plain HTTP on
/// loopback) and not to verify the test DCE's self-signed certificate. Everything else as shipped.
fn adapt_forward(shipped: &str, port: u16, auth_url: &str) -> String {
    assert_eq!(shipped.matches("      port: 9880\n").count(), 1, "the shipped forward config listens on 9880");
    let mut out = shipped.replace("      port: 9880\n", &format!("      port: {port}\n"));
    out = out.replace(
        "    - name: azure_logs_ingestion\n",
        &format!("    - name: azure_logs_ingestion\n      auth_url: {auth_url}\n      tls.verify: off\n"),
    );
    out
}

#[test]
fn the_shipped_forward_config_ships_every_row_through_real_fluent_bit_to_a_tls_dce() {
    use callrecords_host::service::{Outbound, ServiceHost};
    use callrecords_host::transport::HttpClient;
    use callrecords_test_kit::demo::{self, CONTOSO, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_DCR};
    use callrecords_test_kit::standin::{Faults, StandIns, start_http, start_https};

    let test = "the_shipped_forward_config_ships_every_row_through_real_fluent_bit_to_a_tls_dce";
    let Some(binary) = fluent_bit(test) else { return };
    let dir = temp_dir("real-fluent-bit-forward");
    let (http, standins) =
        start_http("127.0.0.1:0", |base| StandIns::new(base, &callrecords_dir(), None, Faults::default())).unwrap();
    let dce = start_https("127.0.0.1:0", standins.clone()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fluent-bit/fluent-bit-forward.yaml"),
    )
    .unwrap();
    let config = adapt_forward(&shipped, port, &format!("http://{http}/login/{CONTOSO}/oauth2/v2.0/token"));

    let calls = [P2P, GROUP];
    let mut want: std::collections::BTreeMap<String, usize> = Default::default();
    for call in calls {
        for (table, n) in expected_rows(call) {
            *want.entry(table).or_default() += n;
        }
    }
    let landed = || -> std::collections::BTreeMap<String, usize> {
        standins.accepted().into_iter().map(|(table, rows)| (table, rows.len())).collect()
    };

    // The webhook service, forwarding to Fluent Bit once its http input listens.
    let mut env = demo::demo_env(&format!("http://{http}"), "forward");
    env.retain(|(k, _)| k != "CALLRECORDS_FORWARD_URL");
    env.push(("CALLRECORDS_FORWARD_URL".into(), format!("http://127.0.0.1:{port}")));
    let service = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "Fluent Bit's http input never listened");
            std::thread::sleep(Duration::from_millis(100));
        }
        let host = ServiceHost::embedded(env, Outbound::Network(HttpClient::new())).unwrap();
        let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        calls
            .iter()
            .map(|call| {
                let body = demo::delivery_body(&[call]);
                TOKIO.block_on(host.handle_parts("POST", "/notify", &headers, body))
            })
            .collect::<Vec<_>>()
    });

    let envs: Vec<(&str, String)> = vec![
        ("AZURE_TENANT_ID", CONTOSO.into()),
        ("AZURE_CLIENT_ID", DEMO_CLIENT_ID.into()),
        ("AZURE_CLIENT_SECRET", DEMO_CLIENT_SECRET.into()),
        ("DCE_URL", format!("https://{dce}")),
        ("DCR_ID", DEMO_DCR.into()),
    ];
    let envs: Vec<(&str, &Path)> = envs.iter().map(|(k, v)| (*k, Path::new(v.as_str()))).collect();
    let run =
        real_fluent_bit::run(&binary, &dir, &config, &envs, Duration::from_secs(90), |_| landed() == want).unwrap();
    for served in service.join().unwrap() {
        assert_eq!(served.status, 202, "{}", served.log);
    }
    assert!(
        run.finished,
        "rows landed {:?}, want {want:?}; refused: {:?}\n{}",
        landed(),
        standins.last_refusal(),
        run.log
    );
    assert!(!run.log.contains("[error]"), "Fluent Bit logged an error:\n{}", run.log);
    assert_eq!(standins.counters().refused, 0, "{:?}", standins.last_refusal());
    let ids: std::collections::BTreeSet<String> =
        standins.accepted()["TeamsCall_CL"].iter().map(|r| r["CallId"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, calls.iter().map(|c| c.to_string()).collect());
    // Fluent Bit adds its time key to every record; the DCR drops it, as it drops any column
    // its stream does not declare. Nothing else is dropped.
    let dropped = standins.dropped_columns();
    assert!(!dropped.is_empty() && dropped.iter().all(|c| c.ends_with(".@timestamp")), "{dropped:?}");
}
