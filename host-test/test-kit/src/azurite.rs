//! Azurite, Microsoft's Azure Storage emulator, as the tests' Storage queue: the project pins it
//! (`host-test/azurite/package.json` and its lock file), `npm ci` installs it on first use, and
//! [`Azurite::start`] runs its queue service on a free local port with nothing kept on disk.
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

/// A running Azurite queue service; stopped when dropped.
pub struct Azurite {
    child: Child,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
}

impl Azurite {
    /// Install (once) and start Azurite's queue service.
    pub fn start() -> Result<Azurite, String> {
        let dir = Path::new(DIR);
        let bin = dir.join("node_modules/.bin/azurite-queue");
        if !bin.exists() {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir)
                .output()
                .map_err(|e| format!("cannot run npm (node 18+ and npm must be on PATH): {e}"))?;
            if !out.status.success() {
                return Err(format!("npm ci in {DIR} failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let mut child = Command::new(&bin)
            .args(["--queueHost", "127.0.0.1", "--queuePort", &port.to_string()])
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
                if line.contains("successfully listen") {
                    let _ = tx.send(());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while rx.recv_timeout(Duration::from_millis(100)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("azurite-queue exited at start: {status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("azurite-queue did not listen within 60 s".into());
            }
        }
        Ok(Azurite { child, base: format!("http://127.0.0.1:{port}") })
    }

    /// The URL of queue `name` in the emulator's account.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/{ACCOUNT}/{name}", self.base)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
