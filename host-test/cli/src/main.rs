//! `callrecords`: the CLI. Every command runs the shipped artifacts under the product host
//! (`callrecords-host`); `serve` is the main job (see `serve.rs`).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use callrecords::monitor::templates::{self, Generated};
use callrecords_conformance::fluentbit::{self, FilterModule};
use callrecords_conformance::real_fluent_bit;
use callrecords_host::bindings::webhook;
use callrecords_host::{Limits, Runtime, jobs, rawhttp, transport};
use callrecords_test_kit::{demo, sample_data, standin};
use clap::{Parser, Subcommand};

mod replay;
mod serve;

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

/// Queue mode's options.
#[derive(clap::Args)]
struct QueueArgs {
    /// The queue's SQLite file (default: <workspace>/queue.sqlite3).
    #[arg(long)]
    queue: Option<PathBuf>,
    /// Worker threads. One keeps to Graph's per-tenant limit exactly (its turns count what the
    /// previous one sent); each more shares the limit only within its own turns.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// `text`, or `json`: one JSON object per line.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Calls a worker takes per turn (its drain job keeps up to 64 requests in flight).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// How long a worker's claim holds a call before another may take it (renewed while it works).
    #[arg(long, default_value_t = 60)]
    lease_seconds: u64,
}

impl QueueArgs {
    fn resolve(&self, workspace: &std::path::Path) -> (PathBuf, callrecords_host::worker::WorkerOptions) {
        serve::set_json_logs(self.log_format == "json");
        let path = self.queue.clone().unwrap_or_else(|| workspace.join("queue.sqlite3"));
        let workers = callrecords_host::worker::WorkerOptions {
            workers: self.workers.max(1),
            batch: self.batch.max(1),
            lease: std::time::Duration::from_secs(self.lease_seconds.max(1)),
            ..Default::default()
        };
        (path, workers)
    }
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
    /// Run the conformance suite against any component that claims the plugin world, or the
    /// Fluent Bit checks against a filter_wasm core module (rows compared with the embedded component's).
    Check {
        /// The component or Fluent Bit module (.wasm).
        wasm: PathBuf,
    },
    /// The Graph webhook service on a local address. Without CALLRECORDS_TENANT_ID it runs the
    /// embedded default (local Graph, login and ingestion stand-ins; rows land in
    /// ./workspace/<Table>.ndjson); with the CALLRECORDS_* settings it talks to Graph and Azure
    /// Monitor. Queue mode (the default) commits each delivery to a SQLite queue before it
    /// answers 202 and drains it with workers; --inline fetches and ships inside the request.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The sample folder the embedded Graph stand-in serves.
        #[arg(long, default_value = "examples/graph")]
        examples: PathBuf,
        /// Where the embedded ingestion stand-in appends rows, and the queue's default place.
        #[arg(long, default_value = "workspace")]
        workspace: PathBuf,
        /// Inline mode: no queue; answer Graph only after every row was accepted.
        #[arg(long)]
        inline: bool,
        /// Keep the subscription alive (create, renew, recreate) every this many minutes; 0 turns
        /// the keeper off. It runs when CALLRECORDS_NOTIFICATION_URL is set.
        #[arg(long, default_value_t = 15)]
        keep_minutes: u64,
        /// Queue mode: list the last 6 hours' callRecords this often and queue what the ledger has
        /// not shipped (notifications that never arrived); 0 turns it off.
        #[arg(long, default_value_t = 60)]
        sweep_minutes: u64,
        /// Poll the PSTN and Direct Routing logs (no notifications exist for them) at start and
        /// this often; 0 turns it off.
        #[arg(long, default_value_t = 60)]
        pstn_minutes: u64,
        /// Each PSTN poll reads calls that started within this many hours (overlapping polls; rows
        /// shipped before are skipped); further back after polls stopped, at most 90 days.
        #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(u64).range(1..))]
        pstn_hours: u64,
        /// The PSTN poll's checkpoint (default: <workspace>/pstn.checkpoint.json).
        #[arg(long)]
        pstn_checkpoint: Option<PathBuf>,
        #[command(flatten)]
        queue: QueueArgs,
    },
    /// Queue mode's workers only, on a queue that `serve` (or other `work` processes) share.
    Work {
        #[command(flatten)]
        queue: QueueArgs,
        /// Where the queue is when --queue is not given.
        #[arg(long, default_value = "workspace")]
        workspace: PathBuf,
    },
    /// Reconciliation on demand: list the callRecords that started in [since, until) and queue
    /// every one the queue's ledger has not shipped (a running `serve` or `work` drains them).
    Reconcile {
        /// ISO 8601 start (at most 30 days back).
        #[arg(long)]
        since: String,
        /// ISO 8601 end (default: now).
        #[arg(long)]
        until: Option<String>,
        /// The queue file.
        #[arg(long, default_value = "workspace/queue.sqlite3")]
        queue: PathBuf,
    },
    /// List the calls queue mode gave up on, with the reason (JSON per line); --requeue puts them
    /// back on the queue. With CALLRECORDS_QUEUE_URL: the first 32 of `<queue>-poison`, and
    /// both queues' lengths.
    DeadLetters {
        /// The queue file.
        #[arg(long, default_value = "workspace/queue.sqlite3")]
        queue: PathBuf,
        /// Put every dead letter back on the queue.
        #[arg(long)]
        requeue: bool,
    },
    /// Only the local stand-ins (Graph, login, ingestion), e.g. for `wasmtime serve`; prints the
    /// CALLRECORDS_* settings that point at them.
    StandIns {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
        /// The sample folder the Graph stand-in serves.
        #[arg(long, default_value = "examples/graph")]
        examples: PathBuf,
        /// Where the ingestion stand-in appends rows.
        #[arg(long, default_value = "workspace")]
        workspace: PathBuf,
        /// Sink the printed settings select: logs-ingestion, data-collector or forward.
        #[arg(long, default_value = "logs-ingestion")]
        sink: String,
    },
    /// Create the callRecords subscription (CALLRECORDS_NOTIFICATION_URL, clientState, lifecycle URL).
    Subscribe,
    /// Renew this webhook's callRecords subscriptions that expire within the margin (cron-safe).
    Renew {
        /// Renew what expires within this many minutes.
        #[arg(long, default_value_t = 1440)]
        margin_minutes: u32,
    },
    /// List the app's subscriptions.
    Subscriptions,
    /// Delete a subscription.
    Unsubscribe {
        /// Subscription id.
        id: String,
    },
    /// Ship every call that started in a window (at most 30 days back), resumable.
    Backfill {
        /// ISO 8601 start, e.g. 2026-11-20T00:00:00Z.
        #[arg(long)]
        since: String,
        /// ISO 8601 end (default: now).
        #[arg(long)]
        until: Option<String>,
        /// Calls are listed one window at a time; the checkpoint advances per window.
        #[arg(long, default_value_t = 24)]
        window_hours: u32,
        /// Checkpoint file: a rerun with the same window resumes after the last finished window.
        #[arg(long, default_value = "backfill.checkpoint.json")]
        checkpoint: PathBuf,
    },
    /// Ship the PSTN and Direct Routing call logs (Graph's getPstnCalls and getDirectRoutingCalls)
    /// of calls that started since a time; rows a poll shipped before (the checkpoint) are not
    /// shipped again. `serve` runs this every hour over the last 48 hours.
    Pstn {
        /// ISO 8601 start, or a span back from now: 48h, 7d.
        #[arg(long)]
        since: String,
        /// ISO 8601 end (default: now).
        #[arg(long)]
        until: Option<String>,
        /// Checkpoint file: the keys of the rows shipped (shared with `serve`'s poll).
        #[arg(long, default_value = "workspace/pstn.checkpoint.json")]
        checkpoint: PathBuf,
    },
    /// Write the Sentinel content generated from the schema: tables.json, dcr.json, the Kusto
    /// database schema of the KQL validator, the connector page, and the table schemas of
    /// Azure-Sentinel's KQL validation (validate/CustomTables/).
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

/// The first bytes of a core wasm module (a component has another version/layer).
const CORE_MODULE_HEADER: &[u8] = b"\0asm\x01\0\0\0";

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
    // Locked per line: `serve` prints from several threads.
    let mut out = |s: &str| {
        writeln!(std::io::stdout().lock(), "{s}").map_err(|e| match e.kind() {
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
        Command::Serve {
            listen,
            examples,
            workspace,
            inline,
            keep_minutes,
            sweep_minutes,
            pstn_minutes,
            pstn_hours,
            pstn_checkpoint,
            queue,
        } => {
            let examples = find_examples(&examples)?;
            let (path, workers) = queue.resolve(&workspace);
            let queue = (!inline).then_some(path);
            let pstn_checkpoint = pstn_checkpoint.unwrap_or_else(|| workspace.join("pstn.checkpoint.json"));
            let opts = serve::Options {
                listen,
                examples,
                workspace,
                queue,
                workers,
                keep_minutes,
                sweep_minutes,
                pstn_minutes,
                pstn_hours,
                pstn_checkpoint,
            };
            serve::run(opts)?;
        }
        Command::Work { queue, workspace } => {
            let (path, workers) = queue.resolve(&workspace);
            serve::work(&path, workers)?;
        }
        Command::Reconcile { since, until, queue } => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let env = serve::process_env();
            if !env.iter().any(|(k, _)| k == "CALLRECORDS_TENANT_ID") {
                return Err("reconcile needs the CALLRECORDS_* settings (CALLRECORDS_TENANT_ID is not set)".into());
            }
            let until = until.unwrap_or_default();
            let storage = env.iter().any(|(k, v)| k == "CALLRECORDS_QUEUE_URL" && !v.trim().is_empty());
            if storage && !env.iter().any(|(k, v)| k == "CALLRECORDS_LEDGER_URL" && !v.trim().is_empty()) {
                return Err(
                    "reconcile on the Storage queue needs its shipped ledger: set CALLRECORDS_LEDGER_URL".into()
                );
            }
            let q =
                callrecords_host::queue::Queue::open(if storage { std::path::Path::new(":memory:") } else { &queue })?;
            let net = transport::Network::new()?;
            out(&serve::sweep(&rt, &env, &q, &net, &since, &until)?)?;
        }
        Command::DeadLetters { requeue, .. } if serve::storage_queue(&serve::process_env()).is_some() => {
            use callrecords_host::bindings::driver::{Job, StorageQueueOptions};
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let env = serve::process_env();
            let net = transport::Network::new()?;
            let job = Job::StorageQueue(StorageQueueOptions { peek_dead: 32, requeue_dead: requeue });
            let r = rt.run_job(&env, &job, &net, &mut |_| {}).map_err(|e| e.to_string())?;
            if let Some(e) = &r.report.error {
                return Err(format!("dead-letters: {e}"));
            }
            let st = &r.detail["storage"];
            for d in st["dead_letters"].as_array().into_iter().flatten() {
                out(&d.to_string())?;
            }
            let n = |k: &str| st[k].as_u64().unwrap_or(0);
            out(&format!(
                "queue: about {} messages; poison queue: about {} dead letters",
                n("depth"),
                n("dead_depth")
            ))?;
            if requeue {
                out(&format!("requeued {} dead letters", n("requeued")))?;
            }
        }
        Command::DeadLetters { queue, requeue } => {
            if !queue.exists() {
                return Err(format!("no queue at {}", queue.display()));
            }
            let q = callrecords_host::queue::Queue::open(&queue)?;
            for d in q.dead_letters()? {
                out(&serde_json::to_string(&d).map_err(|e| e.to_string())?)?;
            }
            if requeue {
                let n = q.requeue_dead(jobs::now_ms())?;
                out(&format!("requeued {n} dead letters"))?;
            }
        }
        Command::StandIns { listen, examples, workspace, sink } => {
            let records = find_examples(&examples)?.join("callrecords");
            let ws = workspace.clone();
            let (addr, s) = standin::start_http(&listen, move |base| {
                standin::StandIns::new(base, &records, Some(ws), standin::Faults::default())
            })?;
            out(&format!(
                "stand-ins on http://{addr}: Graph {} calls, rows -> {}",
                s.call_ids().len(),
                workspace.display()
            ))?;
            for (k, v) in demo::demo_env(s.base(), &sink) {
                out(&format!("{k}={v}"))?;
            }
            loop {
                std::thread::park();
            }
        }
        Command::Subscribe | Command::Renew { .. } | Command::Subscriptions | Command::Unsubscribe { .. } => {
            use callrecords_host::bindings::driver::Job;
            let job = match command_job(&command) {
                Some(j) => j,
                None => Job::Subscriptions,
            };
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let env = serve::process_env();
            let net = transport::Network::new()?;
            let r = rt.run_job(&env, &job, &net, &mut |_| {}).map_err(|e| e.to_string())?;
            for line in r.detail["lifecycle"].as_array().into_iter().flatten() {
                out(line.as_str().unwrap_or_default())?;
            }
            if matches!(command, Command::Subscriptions | Command::Renew { .. }) {
                for s in r.detail["subscriptions"].as_array().into_iter().flatten() {
                    out(&s.to_string())?;
                }
            }
            if let Some(e) = r.report.error {
                return Err(e);
            }
        }
        Command::Backfill { since, until, window_hours, checkpoint } => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let env = serve::process_env();
            let until = until.unwrap_or_else(|| {
                let now = (jobs::now_ms() / 1000) as i64;
                callrecords::values::format_timestamp(callrecords::values::Instant { secs: now, ticks: 0 })
            });
            let net = transport::Network::new()?;
            let bar = std::io::stderr().is_terminal();
            let req =
                jobs::BackfillRequest { since: &since, until: &until, window_hours, checkpoint: &checkpoint, bar };
            let s = jobs::backfill(&rt, &env, &req, &net)?;
            let skipped =
                if s.skipped > 0 { format!(", {} calls skipped (shipped before)", s.skipped) } else { String::new() };
            out(&format!(
                "backfill {} .. {until}: {} windows, {} calls, {} rows, {} bytes, {} retries, {} calls failed{skipped}",
                s.resumed_from, s.windows, s.calls, s.rows, s.bytes, s.retries, s.failed
            ))?;
            // Rows shipped from a window Logs Ingestion will not time by the call.
            let logs_ingestion = callrecords::config::Config::from_env(&env)
                .is_ok_and(|c| matches!(c.sink, callrecords::config::SinkConfig::LogsIngestion { .. }));
            if let Some(note) = callrecords::monitor::time_generated_note(&since, (jobs::now_ms() / 1000) as i64)
                && logs_ingestion
                && s.rows > 0
            {
                eprintln!("{note}");
            }
            if let Some(e) = s.error {
                return Err(e);
            }
        }
        Command::Pstn { since, until, checkpoint } => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            let env = serve::process_env();
            let now = (jobs::now_ms() / 1000) as i64;
            let since = since_arg(&since, now)?;
            let until = until.unwrap_or_else(|| iso_secs(now));
            let net = transport::Network::new()?;
            let s = serve::pstn_poll(&rt, &env, &since, &until, &checkpoint, &net, std::io::stderr().is_terminal())?;
            out(&s.line)?;
            // Rows shipped from more than 2 days back: Logs Ingestion will not time them by the call.
            let logs_ingestion = callrecords::config::Config::from_env(&env)
                .is_ok_and(|c| matches!(c.sink, callrecords::config::SinkConfig::LogsIngestion { .. }));
            if let Some(note) = callrecords::monitor::time_generated_note(&since, now)
                && logs_ingestion
                && s.shipped > 0
            {
                eprintln!("{note}");
            }
            if let Some(e) = s.error {
                return Err(e);
            }
        }
        Command::Schema => {
            let rt = Runtime::embedded().map_err(|e| e.to_string())?;
            out(&rt.tables_json().map_err(|e| e.to_string())?)?;
        }
        Command::SentinelTemplates { out: dir, check } => {
            return sentinel_files(&templates::templates(), &dir, check, &mut out);
        }
        Command::SentinelSampleData { out: dir, check } => {
            return sentinel_files(&sample_data::sample_data()?, &dir, check, &mut out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn iso_secs(secs: i64) -> String {
    callrecords::values::format_timestamp(callrecords::values::Instant { secs, ticks: 0 })
}

/// `--since`: an ISO 8601 time, or a span back from `now` (`48h`, `7d`).
fn since_arg(since: &str, now: i64) -> Result<String, String> {
    let s = since.trim();
    let span = |unit: char, secs: i64| {
        s.strip_suffix(unit).and_then(|n| n.parse::<i64>().ok()).and_then(|n| n.checked_mul(secs)).filter(|b| *b < now)
    };
    if let Some(back) = span('h', 3600).or_else(|| span('d', 86_400)).filter(|b| *b > 0) {
        return Ok(iso_secs(now - back));
    }
    match callrecords::values::parse_timestamp(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!("--since {since}: give an ISO 8601 time (2026-11-20T00:00:00Z) or a span (48h, 7d)")),
    }
}

fn check(wasm: &Path, out: &mut dyn FnMut(&str) -> Result<(), String>) -> Result<ExitCode, String> {
    let mut load_failed = |why: String| -> Result<ExitCode, String> {
        out(&format!("FAIL load: {why}"))?;
        out("0 passed, 1 failed")?;
        Ok(ExitCode::FAILURE)
    };
    let bytes = match std::fs::read(wasm) {
        Ok(bytes) => bytes,
        Err(e) => return load_failed(format!("{}: {e}", wasm.display())),
    };
    let results = if bytes.starts_with(CORE_MODULE_HEADER) {
        // A core module: a Fluent Bit filter, checked against the embedded component's rows,
        // then (where a Fluent Bit binary is at hand) in Fluent Bit itself for the stack it needs.
        let module = match FilterModule::new(&bytes) {
            Ok(module) => module,
            Err(e) => return load_failed(format!("as a Fluent Bit filter_wasm module: {e}")),
        };
        let rt = Runtime::embedded().map_err(|e| e.to_string())?;
        let mut results = fluentbit::run_all(&module, &rt);
        let exports: Vec<&str> = module.module().exports().map(|e| e.name()).collect();
        out(&format!("NOTE heap: the module {}", real_fluent_bit::heap_advice(&exports)))?;
        if results.iter().all(|r| r.failure.is_none()) {
            results.push(wamr_stack(wasm, &rt, out)?);
        } else {
            out("NOTE stack: not measured in Fluent Bit: the module failed the checks above")?;
        }
        results
    } else {
        match Runtime::new(&bytes, Limits::default(), false) {
            Ok(rt) => callrecords_conformance::run_all(&rt),
            Err(e) => return load_failed(e.to_string()),
        }
    };
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

/// The `wasm_stack_size` the module needs in a real Fluent Bit (`FLUENT_BIT`, else `fluent-bit`
/// on PATH), printed as a note; a failure only when no size up to 256K runs the sample records.
fn wamr_stack(
    wasm: &Path,
    rt: &Runtime,
    out: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<callrecords_conformance::Outcome, String> {
    const NAME: &str = "fluent-bit-wamr-stack";
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("fluent-bit")).collect())
        .unwrap_or_default();
    let fail = |why: String| callrecords_conformance::Outcome { name: NAME, failure: Some(why) };
    let binary = match real_fluent_bit::locate(&on_path) {
        Ok(Some(binary)) => binary,
        Ok(None) => {
            out(&format!(
                "NOTE stack: not measured: no Fluent Bit found (set {} to a Fluent Bit built with WASM); shipped configs set wasm_stack_size: 64K",
                real_fluent_bit::FLUENT_BIT_VAR
            ))?;
            return Ok(callrecords_conformance::Outcome { name: NAME, failure: None });
        }
        Err(why) => return Ok(fail(why)),
    };
    let records = fluentbit::sample_records(rt)?;
    let dir = std::env::temp_dir().join(format!("callrecords-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let module = std::fs::canonicalize(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let needed = real_fluent_bit::stack_needed(&binary, &module, &records, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(match needed {
        Ok(Some(kib)) => {
            out(&format!(
                "NOTE stack: wasm_stack_size {kib}K is the smallest that ran every sample record in {} (default {}K); set more for headroom, e.g. {}K",
                binary.display(),
                real_fluent_bit::DEFAULT_STACK_KIB,
                (kib * 4).max(64)
            ))?;
            callrecords_conformance::Outcome { name: NAME, failure: None }
        }
        Ok(None) => {
            fail(format!("{} trapped on the sample records with every wasm_stack_size up to 256K", binary.display()))
        }
        Err(why) => fail(why),
    })
}

fn command_job(c: &Command) -> Option<callrecords_host::bindings::driver::Job> {
    use callrecords_host::bindings::driver::Job;
    Some(match c {
        Command::Subscribe => Job::Subscribe,
        Command::Renew { margin_minutes } => Job::Renew(*margin_minutes),
        Command::Subscriptions => Job::Subscriptions,
        Command::Unsubscribe { id } => Job::Unsubscribe(id.clone()),
        _ => return None,
    })
}

fn sentinel_files(
    files: &[Generated],
    given: &Path,
    check: bool,
    out: &mut dyn FnMut(&str) -> Result<(), String>,
) -> Result<ExitCode, String> {
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(given);
    let dir = if given.is_relative() && !given.is_dir() && fallback.is_dir() { fallback } else { given.to_path_buf() };
    let stale = write_or_check(files, &dir, check)?;
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

/// Write `files` under `out`, or with `check` compare them and return the stale ones (missing or
/// different), by path.
fn write_or_check(files: &[Generated], out: &Path, check: bool) -> Result<Vec<PathBuf>, String> {
    let mut stale = vec![];
    for f in files {
        let path = out.join(&f.path);
        if check {
            match std::fs::read_to_string(&path) {
                Ok(current) if current == f.contents => {}
                _ => stale.push(path),
            }
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::write(&path, &f.contents).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(stale)
}

/// `examples/graph` relative to the working directory, else the one next to this crate's source.
fn find_examples(given: &Path) -> Result<PathBuf, String> {
    if given.is_dir() {
        return Ok(given.to_path_buf());
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(given);
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
