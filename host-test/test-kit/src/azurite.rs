//! Azurite, Microsoft's Azure Storage emulator, as the tests' Storage queue: the project pins it
//! (`host-test/azurite/package.json` and its lock file), `npm ci` installs it on first use, and
//! [`Azurite::start`] runs its queue and table services on free local ports with nothing kept on
//! disk.
//! Azurite checks SharedKey signatures as the service does, with the emulator's well-known account.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator's account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's published account key (documented by Microsoft; not a secret).
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../azurite");

/// Azurite's queue and table services; stopped when dropped.
pub struct Azurite {
    children: Vec<Child>,
    /// The queue service, `http://127.0.0.1:{port}`.
    pub base: String,
    /// The table service, `http://127.0.0.1:{port}`.
    pub table_base: String,
}

/// Start `azurite-{service}` on a free port; its base URL.
fn spawn(dir: &Path, service: &str, children: &mut Vec<Child>) -> Result<String, String> {
    let bin = dir.join(format!("node_modules/.bin/azurite-{service}"));
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let mut child = Command::new(&bin)
        .args([format!("--{service}Host"), "127.0.0.1".into(), format!("--{service}Port"), port.to_string()])
        .args(["--inMemoryPersistence", "--disableTelemetry", "--silent"])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    // It says when it listens.
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // "successfully listens on" (queue), "successfully started on" (table).
            if line.contains("successfully listens") || line.contains("successfully started") {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.recv_timeout(Duration::from_millis(100)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("azurite-{service} exited at start: {status}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("azurite-{service} did not listen within 60 s"));
        }
    }
    children.push(child);
    Ok(format!("http://127.0.0.1:{port}"))
}

impl Azurite {
    /// Install (once) and start Azurite's queue and table services.
    pub fn start() -> Result<Azurite, String> {
        let dir = Path::new(DIR);
        // Tests start it at once: one install.
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
        if !dir.join("node_modules/.bin/azurite-queue").exists() {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir)
                .output()
                .map_err(|e| format!("cannot run npm (node 18+ and npm must be on PATH): {e}"))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = err.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!("npm ci in {DIR} failed:\n{}", tail.join("\n")));
            }
        }
        drop(_installing);
        // Dropped on an error, it stops what did start.
        let mut az = Azurite { children: vec![], base: String::new(), table_base: String::new() };
        az.base = spawn(dir, "queue", &mut az.children)?;
        az.table_base = spawn(dir, "table", &mut az.children)?;
        Ok(az)
    }

    /// The URL of queue `name` in the emulator's account.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/{ACCOUNT}/{name}", self.base)
    }

    /// The URL of table `name` in the emulator's account.
    pub fn table_url(&self, name: &str) -> String {
        format!("{}/{ACCOUNT}/{name}", self.table_base)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
