//! Queue mode's embedded store: one SQLite file (WAL, `synchronous=FULL`) that the webhook edge
//! commits accepted notifications to before it answers Graph, and that workers (inside
//! `callrecords serve`, or `callrecords work` processes sharing the file) claim calls from with a
//! lease, settle with the core's outcomes, and keep the shipped ledger and the dead letters in.
//!
//! What an outcome means (retry when, dead why) is the core's (`callrecords::pipeline::queue`);
//! this file only stores it. A call still waiting (not claimed) is not queued twice: a
//! redelivery, or another notification for it, folds into it (its fetch reads the newest
//! version). A call being worked on gets a new entry, since a new notification means a new version.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use callrecords::pipeline::queue::{Accepted, Listed, MAX_UNSETTLED_CLAIMS, Outcome, QueuedCall, unsettled_reason};
use rusqlite::{Connection, OptionalExtension, params};

/// The queue file and its connection.
pub struct Queue {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Woken when calls were committed, so that idle workers start at once.
    added: Condvar,
    added_lock: Mutex<u64>,
}

/// A claimed call: the queue's row id and the call.
pub type Claimed = (i64, QueuedCall);

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// New entries.
    pub queued: u32,
    /// Notifications for a call already waiting.
    pub folded: u32,
}

/// The queue's state, for `/metrics` and `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls waiting or being worked on.
    pub depth: u64,
    /// Of those, being worked on (claimed, lease not expired).
    pub in_progress: u64,
    /// When the oldest waiting notification was accepted (Unix ms).
    pub oldest_ms: Option<u64>,
    /// Dead letters.
    pub dead: u64,
    /// `(call, version)` pairs shipped.
    pub shipped: u64,
}

/// A dead letter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// callRecord id.
    pub call_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// When its notification was accepted (Unix ms).
    pub received_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was given up.
    pub reason: String,
    /// When (Unix ms).
    pub dead_ms: u64,
}

fn sql(e: rusqlite::Error) -> String {
    format!("queue: {e}")
}

impl Queue {
    /// Open (or create) the queue at `path`.
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path).map_err(|e| format!("cannot open the queue {}: {e}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS queue (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 call_id TEXT NOT NULL,
                 tenant_id TEXT NOT NULL,
                 change_type TEXT NOT NULL,
                 received_ms INTEGER NOT NULL,
                 not_before_ms INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 done_tables TEXT NOT NULL DEFAULT '[]',
                 last_error TEXT,
                 lease_until_ms INTEGER,
                 worker TEXT,
                 claims INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX IF NOT EXISTS queue_due ON queue (not_before_ms, id);
             CREATE INDEX IF NOT EXISTS queue_call ON queue (call_id);
             CREATE TABLE IF NOT EXISTS shipped (
                 call_id TEXT NOT NULL,
                 version INTEGER NOT NULL,
                 tenant_id TEXT NOT NULL,
                 shipped_ms INTEGER NOT NULL,
                 PRIMARY KEY (call_id, version));
             CREATE TABLE IF NOT EXISTS dead_letters (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 call_id TEXT NOT NULL,
                 tenant_id TEXT NOT NULL,
                 received_ms INTEGER NOT NULL,
                 attempts INTEGER NOT NULL,
                 reason TEXT NOT NULL,
                 dead_ms INTEGER NOT NULL);",
        )
        .map_err(sql)?;
        // Files made before claims were counted get the column.
        if conn.prepare("SELECT claims FROM queue LIMIT 0").is_err() {
            conn.execute_batch("ALTER TABLE queue ADD COLUMN claims INTEGER NOT NULL DEFAULT 0").map_err(sql)?;
        }
        Ok(Queue { conn: Mutex::new(conn), path: path.to_path_buf(), added: Condvar::new(), added_lock: Mutex::new(0) })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commit `accepted` (all or nothing, durably) at `now`.
    pub fn commit(&self, accepted: &[Accepted], now: u64) -> Result<Committed, String> {
        let mut c = Committed::default();
        {
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(sql)?;
            for a in accepted {
                let waiting: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM queue WHERE call_id = ?1 AND tenant_id = ?2
                           AND (lease_until_ms IS NULL OR lease_until_ms <= ?3) LIMIT 1",
                        params![a.call_id, a.tenant_id, now as i64],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql)?;
                if waiting.is_some() {
                    c.folded += 1;
                    continue;
                }
                tx.execute(
                    "INSERT INTO queue (call_id, tenant_id, change_type, received_ms, not_before_ms)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![a.call_id, a.tenant_id, a.change_type, now as i64],
                )
                .map_err(sql)?;
                c.queued += 1;
            }
            tx.commit().map_err(sql)?;
        }
        if c.queued > 0 {
            *self.added_lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            self.added.notify_all();
        }
        Ok(c)
    }

    /// Queue each call a sweep listed that the ledger has not shipped (that version, or without a
    /// version any version) and that is not queued already. Returns (queued, already shipped,
    /// already queued).
    pub fn reconcile(&self, listed: &[Listed], now: u64) -> Result<(u32, u32, u32), String> {
        let (mut queued, mut shipped, mut waiting) = (0, 0, 0);
        {
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(sql)?;
            for l in listed {
                let seen: Option<i64> = match l.version {
                    Some(v) => tx.query_row(
                        "SELECT 1 FROM shipped WHERE call_id = ?1 AND version >= ?2 LIMIT 1",
                        params![l.call_id, v],
                        |r| r.get(0),
                    ),
                    None => tx.query_row("SELECT 1 FROM shipped WHERE call_id = ?1 LIMIT 1", params![l.call_id], |r| {
                        r.get(0)
                    }),
                }
                .optional()
                .map_err(sql)?;
                if seen.is_some() {
                    shipped += 1;
                    continue;
                }
                let in_queue: Option<i64> = tx
                    .query_row("SELECT id FROM queue WHERE call_id = ?1 LIMIT 1", params![l.call_id], |r| r.get(0))
                    .optional()
                    .map_err(sql)?;
                if in_queue.is_some() {
                    waiting += 1;
                    continue;
                }
                tx.execute(
                    "INSERT INTO queue (call_id, tenant_id, change_type, received_ms, not_before_ms)
                     VALUES (?1, ?2, 'reconciled', ?3, ?3)",
                    params![l.call_id, l.tenant_id, now as i64],
                )
                .map_err(sql)?;
                queued += 1;
            }
            tx.commit().map_err(sql)?;
        }
        if queued > 0 {
            *self.added_lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            self.added.notify_all();
        }
        Ok((queued, shipped, waiting))
    }

    /// Wait until calls are committed or `timeout` passes.
    pub fn wait_for_work(&self, timeout: Duration) {
        let guard = self.added_lock.lock().unwrap_or_else(|p| p.into_inner());
        let seen = *guard;
        let _ = self.added.wait_timeout_while(guard, timeout, |n| *n == seen);
    }

    /// Claim up to `max` calls that are due at `now` and not claimed, for `lease` on behalf of
    /// `worker`. A call claimed [`MAX_UNSETTLED_CLAIMS`] times without an outcome (its workers
    /// died or trapped on it) goes to the dead letters instead.
    pub fn claim(&self, worker: &str, max: usize, now: u64, lease: Duration) -> Result<Vec<Claimed>, String> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let rows: Vec<(i64, QueuedCall, u32)> = {
            let mut st = tx
                .prepare(
                    "SELECT id, call_id, tenant_id, received_ms, attempts, done_tables, claims FROM queue
                     WHERE not_before_ms <= ?1 AND (lease_until_ms IS NULL OR lease_until_ms <= ?1)
                     ORDER BY not_before_ms, id LIMIT ?2",
                )
                .map_err(sql)?;
            let mapped = st
                .query_map(params![now as i64, max as i64], |r| {
                    let done: String = r.get(5)?;
                    Ok((
                        r.get::<_, i64>(0)?,
                        QueuedCall {
                            call_id: r.get(1)?,
                            tenant_id: r.get(2)?,
                            received_ms: r.get::<_, i64>(3)? as u64,
                            attempts: r.get::<_, i64>(4)? as u32,
                            done_tables: serde_json::from_str(&done).unwrap_or_default(),
                        },
                        r.get::<_, i64>(6)? as u32,
                    ))
                })
                .map_err(sql)?;
            mapped.collect::<Result<_, _>>().map_err(sql)?
        };
        let until = (now + lease.as_millis() as u64) as i64;
        let mut claimed = vec![];
        for (id, call, claims) in rows {
            if claims >= MAX_UNSETTLED_CLAIMS {
                tx.execute("DELETE FROM queue WHERE id = ?1", params![id]).map_err(sql)?;
                tx.execute(
                    "INSERT INTO dead_letters (call_id, tenant_id, received_ms, attempts, reason, dead_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        call.call_id,
                        call.tenant_id,
                        call.received_ms as i64,
                        call.attempts,
                        unsettled_reason(claims),
                        now as i64
                    ],
                )
                .map_err(sql)?;
                continue;
            }
            tx.execute(
                "UPDATE queue SET lease_until_ms = ?1, worker = ?2, claims = claims + 1 WHERE id = ?3",
                params![until, worker, id],
            )
            .map_err(sql)?;
            claimed.push((id, call));
        }
        tx.commit().map_err(sql)?;
        Ok(claimed)
    }

    /// Keep the lease of calls still being worked on.
    pub fn renew(&self, worker: &str, ids: &[i64], now: u64, lease: Duration) -> Result<(), String> {
        let conn = self.conn();
        let until = (now + lease.as_millis() as u64) as i64;
        for id in ids {
            conn.execute(
                "UPDATE queue SET lease_until_ms = ?1 WHERE id = ?2 AND worker = ?3",
                params![until, id, worker],
            )
            .map_err(sql)?;
        }
        Ok(())
    }

    /// Take calls off the queue that a drain turn has shipped already (its progress), before the
    /// turn ends: a crash later in the turn does not make them be shipped again.
    pub fn shipped_early(&self, ids: &[i64]) -> Result<(), String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        for id in ids {
            tx.execute("DELETE FROM queue WHERE id = ?1", params![id]).map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Record what became of claimed calls (the core's outcomes, in the claim's order).
    pub fn settle(&self, settled: &[(i64, Outcome)], now: u64) -> Result<(), String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        for (id, o) in settled {
            match o {
                Outcome::Shipped { call_id, tenant_id, version, .. } => {
                    tx.execute("DELETE FROM queue WHERE id = ?1", params![id]).map_err(sql)?;
                    tx.execute(
                        "INSERT OR IGNORE INTO shipped (call_id, version, tenant_id, shipped_ms) VALUES (?1, ?2, ?3, ?4)",
                        params![call_id, version, tenant_id, now as i64],
                    )
                    .map_err(sql)?;
                }
                Outcome::Retry { attempts, not_before_ms, done_tables, reason, .. } => {
                    let done = serde_json::to_string(done_tables).unwrap_or_else(|_| "[]".into());
                    tx.execute(
                        "UPDATE queue SET attempts = ?1, not_before_ms = ?2, done_tables = ?3, last_error = ?4,
                           lease_until_ms = NULL, worker = NULL, claims = 0 WHERE id = ?5",
                        params![attempts, *not_before_ms as i64, done, reason, id],
                    )
                    .map_err(sql)?;
                }
                Outcome::Dead { call_id, tenant_id, attempts, reason } => {
                    let received: i64 = tx
                        .query_row("SELECT received_ms FROM queue WHERE id = ?1", params![id], |r| r.get(0))
                        .optional()
                        .map_err(sql)?
                        .unwrap_or(now as i64);
                    tx.execute("DELETE FROM queue WHERE id = ?1", params![id]).map_err(sql)?;
                    tx.execute(
                        "INSERT INTO dead_letters (call_id, tenant_id, received_ms, attempts, reason, dead_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![call_id, tenant_id, received, attempts, reason, now as i64],
                    )
                    .map_err(sql)?;
                }
            }
        }
        tx.commit().map_err(sql)
    }

    /// Counts for `/metrics`, at `now`.
    pub fn stats(&self, now: u64) -> Result<Stats, String> {
        let conn = self.conn();
        let one = |q: &str| -> Result<i64, String> { conn.query_row(q, [], |r| r.get(0)).map_err(sql) };
        let in_progress: i64 = conn
            .query_row("SELECT COUNT(*) FROM queue WHERE lease_until_ms > ?1", params![now as i64], |r| r.get(0))
            .map_err(sql)?;
        let oldest: Option<i64> =
            conn.query_row("SELECT MIN(received_ms) FROM queue", [], |r| r.get(0)).map_err(sql)?;
        Ok(Stats {
            depth: one("SELECT COUNT(*) FROM queue")? as u64,
            in_progress: in_progress as u64,
            oldest_ms: oldest.map(|o| o as u64),
            dead: one("SELECT COUNT(*) FROM dead_letters")? as u64,
            shipped: one("SELECT COUNT(*) FROM shipped")? as u64,
        })
    }

    /// Whether a write can be made now (readiness): an immediate transaction, rolled back.
    pub fn writable(&self) -> Result<(), String> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        tx.rollback().map_err(sql)
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, String> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT call_id, tenant_id, received_ms, attempts, reason, dead_ms FROM dead_letters ORDER BY id")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok(DeadLetter {
                    call_id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    received_ms: r.get::<_, i64>(2)? as u64,
                    attempts: r.get::<_, i64>(3)? as u32,
                    reason: r.get(4)?,
                    dead_ms: r.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    /// Put every dead letter back on the queue, due now with no attempts; how many.
    pub fn requeue_dead(&self, now: u64) -> Result<u32, String> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let n = tx
            .execute(
                "INSERT INTO queue (call_id, tenant_id, change_type, received_ms, not_before_ms)
                 SELECT call_id, tenant_id, 'requeued', ?1, ?1 FROM dead_letters",
                params![now as i64],
            )
            .map_err(sql)?;
        tx.execute("DELETE FROM dead_letters", []).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(n as u32)
    }

    /// Whether `(call, version)` was shipped.
    pub fn was_shipped(&self, call_id: &str, version: i64) -> Result<bool, String> {
        let conn = self.conn();
        conn.query_row("SELECT 1 FROM shipped WHERE call_id = ?1 AND version = ?2", params![call_id, version], |_| {
            Ok(())
        })
        .optional()
        .map(|r| r.is_some())
        .map_err(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call whose every claim ends without an outcome (the worker killed, or its turn trapped)
    /// is a dead letter on the 17th claim, with the reason; a settled retry starts the count anew.
    #[test]
    fn a_call_claimed_16_times_without_an_outcome_is_a_dead_letter() {
        let dir = std::env::temp_dir().join(format!("callrecords-claims-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let q = Queue::open(&dir.join("q.sqlite3")).unwrap();
        let a = |id: &str| Accepted { call_id: id.into(), tenant_id: "t".into(), change_type: "updated".into() };
        q.commit(&[a("lost"), a("retried")], 0).unwrap();
        let lease = Duration::from_millis(10);
        let mut now = 1;
        for _ in 0..MAX_UNSETTLED_CLAIMS {
            let claimed = q.claim("w", 10, now, lease).unwrap();
            assert_eq!(claimed.len(), 2);
            // "retried" is settled every time (a retry due at once); "lost" never is.
            let retried = claimed.iter().find(|(_, c)| c.call_id == "retried").unwrap();
            let retry = Outcome::Retry {
                call_id: "retried".into(),
                tenant_id: "t".into(),
                attempts: 1,
                not_before_ms: now,
                done_tables: vec![],
                reason: "503".into(),
            };
            q.settle(&[(retried.0, retry)], now).unwrap();
            now += 20; // past the lease
        }
        let claimed = q.claim("w", 10, now, lease).unwrap();
        assert_eq!(claimed.iter().map(|(_, c)| c.call_id.as_str()).collect::<Vec<_>>(), ["retried"]);
        let dead = q.dead_letters().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].call_id, "lost");
        assert!(dead[0].reason.contains("16 times and never settled"), "{}", dead[0].reason);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
