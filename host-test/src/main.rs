//! `callrecords`: the harness CLI. Every command runs the plugin component under wasmtime.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use host_test::bindings::webhook;
use host_test::{Runtime, conformance, rawhttp, replay, sentinel_content};

#[derive(Parser)]
#[command(
    name = "callrecords",
    version,
    about = "Microsoft Teams callRecords -> Microsoft Sentinel, through the WASI component"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The offline pipeline over the sample data: webhook requests -> callRecords (paged, from a
    /// Graph stand-in) -> rows -> signed Sentinel requests written to a folder.
    Replay {
        /// The sample folder (with notifications/ and callrecords/).
        #[arg(long, default_value = "examples/graph")]
        examples: PathBuf,
        /// Where rows/, requests/ and summary.json go.
        #[arg(long, default_value = "replay-out")]
        out: PathBuf,
    },
    /// Expand a callRecord (Graph's JSON) into NDJSON rows: {"table": ..., "row": {...}} per line.
    Expand {
        /// callRecord file, or - for stdin.
        file: PathBuf,
        /// Further session pages (the sessions@odata.nextLink answers), in order.
        #[arg(long = "session-page")]
        session_pages: Vec<PathBuf>,
        /// participants_v2 pages, in order.
        #[arg(long = "participant-page")]
        participant_pages: Vec<PathBuf>,
        /// Also print the seed-compatible TEAMSGraphCallRecords_CL row.
        #[arg(long)]
        seed: bool,
    },
    /// Judge a raw HTTP/1.1 request to the webhook; prints the response and what it carried as JSON.
    Webhook {
        /// Accepted clientState (repeatable).
        #[arg(long = "client-state", required = true, env = "CALLRECORDS_CLIENT_STATE", hide_env_values = true)]
        client_states: Vec<String>,
        /// Allowed tenant id (repeatable; none means any).
        #[arg(long = "allowed-tenant")]
        allowed_tenants: Vec<String>,
        /// Largest body accepted (0 = 1 MiB).
        #[arg(long, default_value_t = 0)]
        max_body_bytes: u32,
        /// Raw request file, or - for stdin.
        request: PathBuf,
    },
    /// Print the SharedKey Authorization header value of a Data Collector request.
    Sign {
        /// Log Analytics workspace id.
        #[arg(long)]
        workspace_id: String,
        /// Workspace key (base64).
        #[arg(long, env = "CALLRECORDS_SHARED_KEY", hide_env_values = true)]
        shared_key: String,
        /// x-ms-date, RFC 1123: "Mon, 04 Apr 2016 08:00:00 GMT".
        #[arg(long)]
        date: String,
        /// Body length in bytes.
        #[arg(long)]
        content_length: u64,
    },
    /// Print the table schemas as JSON.
    Schema,
    /// Run the conformance suite against any component that claims the plugin world.
    Check {
        /// The component (.wasm).
        wasm: PathBuf,
    },
    /// Write the Sentinel deployment templates generated from the schema: tables.json, dcr.json and
    /// the Kusto database schema of the KQL validator.
    SentinelTemplates {
        /// The Sentinel content folder.
        #[arg(long, default_value = "examples/sentinel")]
        out: PathBuf,
        /// Compare instead of writing; fail naming the stale files.
        #[arg(long)]
        check: bool,
    },
    /// Write the sample data: synthetic calls with planted attacks, expanded into rows per table.
    SentinelSampleData {
        /// The Sentinel content folder (files go to sample-data/ inside).
        #[arg(long, default_value = "examples/sentinel")]
        out: PathBuf,
        /// Compare instead of writing; fail naming the stale files.
        #[arg(long)]
        check: bool,
    },
}

/// What a write to a closed stdout reports.
const BROKEN_PIPE: &str = "stdout closed";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        // The reader went away (`callrecords expand x | head`): stop quietly, like other tools.
        Err(e) if e == BROKEN_PIPE => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    let mut stdout = std::io::stdout().lock();
    let mut out = |s: &str| {
        writeln!(stdout, "{s}").map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => BROKEN_PIPE.to_string(),
            _ => format!("stdout: {e}"),
        })
    };
    match command {
        Command::Check { wasm } => return check(&wasm, &mut out),
        Command::Replay { examples, out: dir } => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let examples = find_examples(&examples)?;
            let started = std::time::Instant::now();
            let s = replay::run(&rt, &examples, &dir, &mut |line| eprintln!("{line}"))?;
            let rows: usize = s.rows.values().sum();
            out(&format!(
                "replayed {} webhook requests in {:.2} s: {} notifications, {} lifecycle events, {} rejected items",
                s.webhook_requests,
                started.elapsed().as_secs_f64(),
                s.notifications,
                s.lifecycle_events,
                s.rejected.values().sum::<usize>()
            ))?;
            out(&format!(
                "fetched {} calls ({} Graph requests, {} extra pages), {} not fetched",
                s.calls,
                s.graph_requests,
                s.pages,
                s.failed_calls.len()
            ))?;
            for (table, n) in &s.rows {
                out(&format!("  {n:>5} rows  {table}"))?;
            }
            out(&format!(
                "{rows} rows -> {} signed ingestion requests ({} bytes) in {}",
                s.ingestion_requests,
                s.ingestion_bytes,
                dir.join("requests").display()
            ))?;
        }
        Command::Expand { file, session_pages, participant_pages, seed } => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let mut record = read_text(&file)?;
            if !session_pages.is_empty() || !participant_pages.is_empty() {
                let s: Vec<String> = session_pages.iter().map(|p| read_text(p)).collect::<Result<_, _>>()?;
                let p: Vec<String> = participant_pages.iter().map(|p| read_text(p)).collect::<Result<_, _>>()?;
                record = rt.merge_pages(&record, &s, &p).map_err(|e| e.to_string())?;
            }
            for t in rt.expand(&record).map_err(|e| e.to_string())? {
                for row in t.rows {
                    out(&format!(r#"{{"table":{},"row":{row}}}"#, serde_json::Value::from(t.table.as_str())))?;
                }
            }
            if seed {
                let row = rt.seed_row(&record).map_err(|e| e.to_string())?;
                out(&format!(r#"{{"table":"{}","row":{row}}}"#, callrecords::schema::SEED.name))?;
            }
        }
        Command::Webhook { client_states, allowed_tenants, max_body_bytes, request } => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let raw = read_bytes(&request)?;
            let req = rawhttp::parse_request(&raw)?;
            let settings = webhook::Settings { client_states, allowed_tenants, max_body_bytes };
            let o = rt.handle(&settings, &req).map_err(|e| e.to_string())?;
            out(&outcome_json(&o).to_string())?;
        }
        Command::Sign { workspace_id, shared_key, date, content_length } => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let header = rt
                .shared_key_authorization(&workspace_id, &shared_key, &date, content_length)
                .map_err(|e| e.to_string())?;
            out(&header)?;
        }
        Command::Schema => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            out(&rt.tables_json().map_err(|e| e.to_string())?)?;
        }
        Command::SentinelTemplates { out: dir, check } => {
            return sentinel_files(&sentinel_content::templates(), &dir, check, &mut out);
        }
        Command::SentinelSampleData { out: dir, check } => {
            return sentinel_files(&sentinel_content::sample_data()?, &dir, check, &mut out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(wasm: &Path, out: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<ExitCode, String> {
    let rt = match Runtime::from_file(wasm) {
        Ok(rt) => rt,
        Err(e) => {
            out(&format!("FAIL load: {e}"))?;
            out("0 passed, 1 failed")?;
            return Ok(ExitCode::FAILURE);
        }
    };
    let results = conformance::run_all(&rt);
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for r in &results {
        match &r.failure {
            None => out(&format!("PASS {}", r.name))?,
            Some(why) => out(&format!("FAIL {}: {why}", r.name))?,
        }
    }
    out(&format!("{} passed, {failed} failed", results.len() - failed))?;
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn sentinel_files(
    files: &[sentinel_content::Generated],
    given: &Path,
    check: bool,
    out: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<ExitCode, String> {
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(given);
    let dir = if given.is_relative() && !given.is_dir() && fallback.is_dir() { fallback } else { given.to_path_buf() };
    let stale = sentinel_content::write_or_check(files, &dir, check)?;
    if !check {
        out(&format!("wrote {} files under {}", files.len(), dir.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    for path in &stale {
        eprintln!("stale: {} (run the same command without --check to regenerate)", path.display());
    }
    if stale.is_empty() {
        out(&format!("{} files up to date under {}", files.len(), dir.display()))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// `examples/graph` relative to the working directory, else the one next to this crate's source.
fn find_examples(given: &Path) -> Result<PathBuf, String> {
    if given.is_dir() {
        return Ok(given.to_path_buf());
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(given);
    if given.is_relative() && fallback.is_dir() {
        return Ok(fallback);
    }
    Err(format!("{}: no such folder (expected notifications/ and callrecords/ inside)", given.display()))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, String> {
    if path == Path::new("-") {
        let mut buf = vec![];
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("stdin: {e}"))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read_bytes(path)?).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

fn outcome_json(o: &webhook::Outcome) -> serde_json::Value {
    use serde_json::json;
    let headers: serde_json::Map<String, serde_json::Value> =
        o.response.headers.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
    json!({
        "kind": o.kind.wit_name(),
        "response": {
            "status": o.response.status,
            "headers": headers,
            "body": String::from_utf8_lossy(&o.response.body),
        },
        "notifications": o.notifications.iter().map(|n| json!({
            "callId": n.call_id, "subscriptionId": n.subscription_id, "tenantId": n.tenant_id,
            "changeType": n.change_type, "resource": n.resource, "subscriptionExpiration": n.subscription_expiration,
        })).collect::<Vec<_>>(),
        "lifecycle": o.lifecycle.iter().map(|l| json!({
            "kind": l.kind.wit_name(), "event": l.event, "subscriptionId": l.subscription_id,
            "tenantId": l.tenant_id, "subscriptionExpiration": l.subscription_expiration,
        })).collect::<Vec<_>>(),
        "rejected": o.rejected.iter().map(|r| json!({
            "index": r.index, "reason": r.reason.wit_name(), "detail": r.detail,
        })).collect::<Vec<_>>(),
        "duplicates": o.duplicates,
    })
}
