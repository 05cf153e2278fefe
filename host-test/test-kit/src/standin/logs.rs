//! The Graph stand-in's PSTN and Direct Routing logs: `getPstnCalls(fromDateTime=…,toDateTime=…)`
//! and `getDirectRoutingCalls(…)` as Microsoft documents them. Rows are filtered on their
//! `startDateTime` (getPstnCalls' `toDateTime` inclusive, getDirectRoutingCalls' exclusive), sent
//! 1,000 per page with a `$skip` `@odata.nextLink` and `@odata.count` (the page's count), and a
//! range over 90 days is answered 406 (a contributor's note on Microsoft's page: the only source
//! for that status; the body is Graph's usual error shape). The PSTN limits are kept: 200 requests
//! per 60 s per app and tenant, 50 per function, then 429 with `Retry-After` (not counted against
//! the callRecords limits). Dates are taken as Microsoft's examples write them (`2019-11-01`) or as
//! full timestamps, and getPstnCalls' next link is spelled `getPstnCalls(from=…,to=…)?$skip=…` as
//! in Microsoft's example, so a client must follow it as given.

use super::*;
use callrecords::graph::pstn::PstnLog;
use callrecords::values::{Instant, format_timestamp, parse_timestamp};

// Microsoft's numbers, written here from its pages rather than taken from the code under test.
/// "The fromDateTime and toDateTime values cannot be more than a date range of 90 days."
const MAX_WINDOW_DAYS: i64 = 90;
/// "If there are more than 1,000 entries in the date range, the body also includes an @odata.NextLink."
const PAGE_SIZE: usize = 1_000;
/// PSTN call records throttling: 200 requests per 60 s per app per tenant ...
const PSTN_RATE_LIMIT: (usize, u64) = (200, 60_000);
/// ... and 50 per 60 s per collection.
const PSTN_COLLECTION_RATE_LIMIT: (usize, u64) = (50, 60_000);

/// The sample logs of the embedded default, next to `examples/graph/callrecords`.
pub(super) const LOG_FILES: [(PstnLog, &str); 2] =
    [(PstnLog::Pstn, "get-pstn-calls.json"), (PstnLog::DirectRouting, "get-direct-routing-calls.json")];

/// The rows of `dir`'s log files (`{"value": [...]}` as Graph pages them), their timestamps moved
/// so that the newest call started an hour before `now_secs`: sample calls that are always recent.
pub(super) fn sample_logs(dir: &Path, now_secs: i64) -> Result<BTreeMap<PstnLog, Vec<Value>>, String> {
    let mut logs = BTreeMap::new();
    let mut newest = i64::MIN;
    for (log, file) in LOG_FILES {
        let p = dir.join(file);
        let rows = match std::fs::read_to_string(&p) {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
                v["value"].as_array().cloned().ok_or_else(|| format!("{}: no value list", p.display()))?
            }
            Err(_) => vec![],
        };
        for r in &rows {
            if let Some(t) = r["startDateTime"].as_str().and_then(parse_timestamp) {
                newest = newest.max(t.secs);
            }
        }
        logs.insert(log, rows);
    }
    if newest == i64::MIN {
        return Ok(logs);
    }
    let shift = now_secs - 3600 - newest;
    for rows in logs.values_mut() {
        for r in rows.iter_mut() {
            for key in ["startDateTime", "endDateTime", "inviteDateTime", "failureDateTime"] {
                let moved = r[key]
                    .as_str()
                    .filter(|s| !s.starts_with("0001-"))
                    .and_then(parse_timestamp)
                    .map(|t| format_timestamp(Instant { secs: t.secs + shift, ticks: t.ticks }));
                if let Some(m) = moved {
                    r[key] = json!(m);
                }
            }
        }
    }
    Ok(logs)
}

impl StandIns {
    /// `rest` is `getPstnCalls(fromDateTime=…,toDateTime=…)`; `tenant` the token's.
    pub(super) fn logs(&self, st: &mut State, log: PstnLog, rest: &str, tenant: &str, skip: usize) -> Answer {
        let now = self.now_ms();
        for (key, limit) in [
            (format!("logs/{tenant}"), PSTN_RATE_LIMIT),
            (format!("logs/{tenant}/{}", log.function()), PSTN_COLLECTION_RATE_LIMIT),
        ] {
            if let Err(retry_after) = st.throttle.entry(key).or_default().admit_in(now, limit.0, limit.1) {
                st.counters.throttled += 1;
                return too_many(retry_after);
            }
        }
        let args =
            rest.strip_prefix(log.function()).and_then(|a| a.strip_prefix('(')).and_then(|a| a.strip_suffix(')'));
        let mut from = None;
        let mut to = None;
        // A date alone is midnight UTC.
        let date = |v: &str| parse_timestamp(v).or_else(|| parse_timestamp(&format!("{v}T00:00:00Z")));
        for a in args.unwrap_or_default().split(',') {
            match a.split_once('=') {
                Some(("fromDateTime" | "from", v)) => from = date(v),
                Some(("toDateTime" | "to", v)) => to = date(v),
                _ => {}
            }
        }
        let (Some(from), Some(to)) = (from, to) else {
            let args = args.unwrap_or_default();
            return self.refuse(st, 400, "BadRequest", &format!("Expression expected in '{args}'."));
        };
        if to.secs - from.secs > MAX_WINDOW_DAYS * 86_400 {
            return self.refuse(st, 406, "NotAcceptable", "The date range cannot be more than 90 days.");
        }
        let rows: Vec<&Value> = self
            .logs
            .get(&log)
            .into_iter()
            .flatten()
            .filter(|r| {
                r["startDateTime"].as_str().and_then(parse_timestamp).is_some_and(|s| {
                    s >= from
                        && match log {
                            PstnLog::Pstn => s <= to,
                            PstnLog::DirectRouting => s < to,
                        }
                })
            })
            .collect();
        let page: Vec<&Value> = rows.iter().skip(skip).take(PAGE_SIZE).copied().collect();
        let mut body = json!({
            "@odata.context": format!("{}/graph/v1.0/$metadata#Collection(microsoft.graph.callRecords.{})", self.base,
                match log { PstnLog::Pstn => "pstnCallLogRow", PstnLog::DirectRouting => "directRoutingLogRow" }),
            "@odata.count": page.len(),
            "value": page,
        });
        if skip + PAGE_SIZE < rows.len() {
            let call = match log {
                PstnLog::Pstn => format!("getPstnCalls(from={},to={})", format_timestamp(from), format_timestamp(to)),
                PstnLog::DirectRouting => rest.to_string(),
            };
            body["@odata.nextLink"] =
                json!(format!("{}/graph/v1.0/communications/callRecords/{call}?$skip={}", self.base, skip + PAGE_SIZE));
        }
        Answer::json(200, body)
    }

    /// Serve these log rows (Graph's JSON) instead of the sample's.
    pub fn set_logs(&mut self, pstn: Vec<Value>, direct_routing: Vec<Value>) {
        self.logs = BTreeMap::from([(PstnLog::Pstn, pstn), (PstnLog::DirectRouting, direct_routing)]);
    }
}
