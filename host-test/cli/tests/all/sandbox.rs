//! The sandbox: limits hold, and the host survives what the component does.

use callrecords_host::Limits;
use callrecords_host::artifacts::PLUGIN as EMBEDDED_PLUGIN;
use callrecords_host::{CallError, Error, Runtime};
use callrecords_test_kit::synth;

use crate::RT;

#[test]
fn a_call_over_its_memory_cap_fails_cleanly_and_the_next_call_works() {
    let rt = Runtime::new(EMBEDDED_PLUGIN, Limits { memory_bytes: 8 << 20, ..Limits::default() }, true).unwrap();
    let big = synth::group_call(3000);
    assert!(big.len() > 8 << 20, "input must exceed the cap: {} bytes", big.len());
    match rt.expand(&big) {
        Err(Error::Call(CallError::MemoryLimit(_))) => {}
        other => panic!("expected a memory-limit error, got {:?}", other.map(|t| t.len())),
    }
    let small = callrecords_test_kit::fixtures::PEER_TO_PEER;
    assert_eq!(rt.expand(small).unwrap().len(), 4, "the runtime survives");
}

#[test]
fn a_call_past_its_deadline_is_interrupted() {
    let rt = Runtime::new(
        EMBEDDED_PLUGIN,
        Limits { call_timeout: std::time::Duration::from_millis(1), ..Limits::default() },
        true,
    )
    .unwrap();
    let big = synth::group_call(3000);
    match rt.expand(&big) {
        Err(Error::Call(CallError::Timeout(_))) => {}
        other => panic!("expected a timeout, got {:?}", other.map(|t| t.len())),
    }
}

#[test]
fn large_calls_work_within_the_default_limits() {
    let big = synth::group_call(600);
    let tables = RT.expand(&big).unwrap();
    let legs = tables.iter().find(|t| t.table == "TeamsCallLeg_CL").unwrap();
    assert_eq!(legs.rows.len(), 600);
}

/// CPU time this thread has used (utime + stime from /proc, in clock ticks of 10 ms).
fn thread_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name in parentheses; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) * 10
}

/// A service component whose guest never returns is stopped at the host's timeout: the request
/// gets a 503, and the guest no longer runs afterwards (it used to be detached and spin on). On a
/// single-thread runtime a guest that never yields would also block every other request.
#[test]
fn a_service_guest_that_never_returns_is_stopped_at_the_timeout() {
    use callrecords_host::service::{Outbound, ServiceHost};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _runtime = rt.enter();
        let env = callrecords_test_kit::demo::demo_env("https://stand-ins.test", "logs-ingestion");
        let outbound = Outbound::Network(callrecords_host::transport::HttpClient::new());
        let host = ServiceHost::new(callrecords_test_kit::MISBEHAVING_SERVICE, env, outbound)
            .unwrap()
            .with_timeout(std::time::Duration::from_secs(2));
        let started = std::time::Instant::now();
        let served = rt.block_on(host.handle_parts("POST", "/__spin", &[], vec![]));
        let answered = started.elapsed();
        // Afterwards the runtime idles for a second: a guest still alive would spend it on this thread.
        let before = thread_cpu_ms();
        rt.block_on(tokio::time::sleep(std::time::Duration::from_secs(1)));
        let _ = tx.send((served.status, served.body, answered, thread_cpu_ms() - before));
    });
    let (status, body, answered, cpu_ms) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the host answered (a spinning guest held its thread)");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(answered < std::time::Duration::from_secs(10), "answered after {answered:?}");
    assert!(cpu_ms < 300, "the guest kept running after the timeout: {cpu_ms} ms of CPU in 1 s");
}

// ---- the code cache: per user, checked before wasmtime runs what it holds ---------------------------

/// A folder of this user's, `0700`, for one cache test.
fn private_dir(name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::temp_dir(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// The one `.cwasm` entry in `dir`.
fn entry(dir: &std::path::Path) -> std::path::PathBuf {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

#[test]
fn a_cache_entry_is_its_codes_sha256_then_the_code_and_a_tampered_one_is_compiled_again() {
    use sha2::Digest;
    let dir = private_dir("cache-tampered");
    let engine = wasmtime::Engine::default();
    let component =
        wat::parse_str("(component (core module (func (export \"f\") (result i32) i32.const 42)))").unwrap();
    assert!(callrecords_host::cache::load_in(&dir, &engine, &component, "t").is_some());
    let path = entry(&dir);
    let stored = std::fs::read(&path).unwrap();
    // Recomputed here: the first 32 bytes are the SHA-256 of the rest, which is the engine's own
    // precompiled form of the component.
    let (digest, code) = stored.split_at(32);
    assert_eq!(digest, sha2::Sha256::digest(code).as_slice());
    assert_eq!(code, engine.precompile_component(&component).unwrap().as_slice());

    // One flipped byte of code, or a file cut short: not loaded, compiled and stored again.
    for damage in [0, 1] {
        let mut bad = stored.clone();
        match damage {
            0 => *bad.last_mut().unwrap() ^= 0x40,
            _ => bad.truncate(stored.len() / 2),
        }
        std::fs::write(&path, &bad).unwrap();
        assert!(callrecords_host::cache::load_in(&dir, &engine, &component, "t").is_some());
        assert_eq!(std::fs::read(entry(&dir)).unwrap(), stored, "damage {damage} was replaced");
    }
}

#[test]
fn a_cache_folder_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let dir = private_dir("cache-shared");
    assert_eq!(callrecords_host::cache::usable(dir.clone()), Some(dir.clone()));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(callrecords_host::cache::usable(dir.clone()), None, "world-writable");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    assert_eq!(callrecords_host::cache::usable(dir.clone()), None, "group-writable");
    // A missing folder is made for this user alone.
    let made = dir.join("made");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(callrecords_host::cache::usable(made.clone()), Some(made.clone()));
    assert_eq!(std::fs::metadata(&made).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn a_cache_keeps_the_newest_entries_of_a_component_only() {
    let dir = private_dir("cache-prune");
    let engine = wasmtime::Engine::default();
    let older = callrecords_host::cache::KEEP + 3;
    for i in 0..older {
        std::fs::write(dir.join(format!("t-{i:032x}.cwasm")), b"an older build").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(dir.join("other-0.cwasm"), b"another component").unwrap();
    let component = wat::parse_str("(component)").unwrap();
    assert!(callrecords_host::cache::load_in(&dir, &engine, &component, "t").is_some());
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let mine = names.iter().filter(|n| n.starts_with("t-")).count();
    assert_eq!(mine, callrecords_host::cache::KEEP, "{names:?}");
    assert!(names.contains(&"other-0.cwasm".to_string()), "another component's entry stays");
    assert!(!names.contains(&format!("t-{:032x}.cwasm", 0)), "the oldest went first: {names:?}");
}

/// A service component that wants all the memory it can get stops at the host's cap: the request
/// gets a 500 that names the cap, and the host answers the next request as usual.
#[test]
fn a_service_guest_past_its_memory_cap_is_a_500_and_the_host_goes_on() {
    use callrecords_host::service::{Outbound, ServiceHost};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _runtime = rt.enter();
    let env = callrecords_test_kit::demo::demo_env("https://stand-ins.test", "logs-ingestion");
    let outbound = Outbound::Network(callrecords_host::transport::HttpClient::new());
    let host = ServiceHost::new(callrecords_test_kit::MISBEHAVING_SERVICE, env, outbound).unwrap();
    let served = rt.block_on(host.handle_parts("POST", "/__grow", &[], vec![]));
    assert_eq!(served.status, 500, "{}", served.log);
    assert!(served.log.contains("256 MiB memory cap"), "{}", served.log);
    let next = rt.block_on(host.handle_parts("POST", "/notify?validationToken=still%20here", &[], vec![]));
    assert_eq!((next.status, next.body.as_slice()), (200, b"still here".as_slice()), "{}", next.log);
}
