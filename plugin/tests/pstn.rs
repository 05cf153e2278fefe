//! The PSTN and Direct Routing poll, natively with a scripted Graph that keeps to Microsoft's
//! documented rules (1,000 entries per page with an `@odata.nextLink`, getPstnCalls' `toDateTime`
//! inclusive and getDirectRoutingCalls' exclusive, ranges of at most 90 days, `Retry-After` on a
//! 429); expectations are worked out here from the rows the script holds.

use std::collections::{BTreeMap, BTreeSet};

use callrecords::config::Config;
use callrecords::expand::pstn::{log_page, log_row};
use callrecords::graph::pstn::{PstnLog, log_request};
use callrecords::pipeline::{Action, Job, Progress, Report, Run};
use serde_json::{Value, json};

const TENANT: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
const DOC_PSTN: &str = include_str!("../../examples/graph/documented/get-pstn-calls.json");
const DOC_DR: &str = include_str!("../../examples/graph/documented/get-direct-routing-calls.json");
const DOC_DR_BETA: &str = include_str!("../../examples/graph/documented/get-direct-routing-calls-beta.json");

/// 2026-11-28T00:00:00Z in Unix ms.
const NOW: u64 = 1_795_824_000_000;
const HOUR: u64 = 3_600_000;

fn env() -> Vec<(String, String)> {
    [
        ("CALLRECORDS_TENANT_ID", TENANT),
        ("CALLRECORDS_CLIENT_ID", "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"),
        ("CALLRECORDS_CLIENT_SECRET", "very-secret-client-secret"),
        ("CALLRECORDS_CLIENT_STATE", "very-secret-client-state"),
        ("CALLRECORDS_DCE_URL", "https://dce.westeurope-1.ingest.monitor.azure.com"),
        ("CALLRECORDS_DCR_ID", "dcr-00000000000000000000000000000000"),
        ("CALLRECORDS_GZIP", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

// ---- Microsoft's documented answers ---------------------------------------------------------------

#[test]
fn the_documented_pstn_answer_becomes_one_row_worked_out_by_hand() {
    let page = log_page(PstnLog::Pstn, DOC_PSTN).unwrap();
    assert_eq!(page.rows.len(), 1);
    // Followed as given, with Microsoft's `from=`/`to=` spelling.
    assert_eq!(
        page.next_link.as_deref(),
        Some(
            "https://graph.microsoft.com/v1.0/communications/callRecords/getPstnCalls(from=2026-11-16,to=2026-11-17)?$skip=1000"
        )
    );
    assert_eq!(page.rows[0].key, "pstn:9c4984c7-6c3c-427d-a30c-bd0b2eacee90@2026-11-16T00:00:08.2589935Z");
    let row: Value = serde_json::from_str(&page.rows[0].row).unwrap();
    assert_eq!(row["TimeGenerated"], "2026-11-16T00:00:08.2589935Z");
    assert_eq!(row["StartDateTime"], row["TimeGenerated"]);
    assert_eq!(row["EndDateTime"], "2026-11-16T00:03:47.2589935Z");
    assert_eq!(row["DurationSeconds"], 219);
    assert_eq!(row["CallType"], "user_in");
    assert_eq!(row["Direction"], "inbound");
    assert_eq!(row["Charge"], 0.0);
    assert_eq!(row["ConnectionCharge"], 0.0);
    assert_eq!(row["Currency"], "USD");
    assert_eq!(row["DestinationContext"], Value::Null);
    assert_eq!(row["ConferenceId"], Value::Null);
    assert_eq!(row["CallerNumber"], "+12065550123");
    assert_eq!(row["CalleeNumber"], "+14255550100");
    assert_eq!(row["CallId"], "1835317186_112562680@61.221.3.176");
    assert_eq!(row["LicenseCapability"], "MCOPSTNU");
    assert_eq!(row["CallDurationSource"], "microsoft");
    // Every column of the table, nothing else.
    let cols: BTreeSet<&str> = callrecords::schema::PSTN_CALL.columns.iter().map(|c| c.name).collect();
    assert_eq!(row.as_object().unwrap().keys().map(String::as_str).collect::<BTreeSet<_>>(), cols);
}

#[test]
fn the_documented_direct_routing_answers_become_rows_worked_out_by_hand() {
    let v1 = log_page(PstnLog::DirectRouting, DOC_DR).unwrap();
    let beta = log_page(PstnLog::DirectRouting, DOC_DR_BETA).unwrap();
    // The beta answer's extra fields are skipped: the same row.
    assert_eq!(v1.rows, beta.rows);
    let row: Value = serde_json::from_str(&v1.rows[0].row).unwrap();
    assert_eq!(v1.rows[0].key, "directRouting:9e8bba57-dc14-533a-a7dd-f0da6575eed1@2026-11-16T00:00:25.105Z");
    assert_eq!(row["TimeGenerated"], "2026-11-16T00:00:25.105Z");
    assert_eq!(row["InviteDateTime"], "2026-11-16T00:00:21.949Z");
    // 0001-01-01 is .NET's "no value".
    assert_eq!(row["FailureDateTime"], Value::Null);
    assert_eq!(row["EndDateTime"], "2026-11-16T00:00:30.105Z");
    assert_eq!(row["DurationSeconds"], 5);
    assert_eq!(row["Direction"], "inbound");
    assert_eq!(row["SuccessfulCall"], true);
    assert_eq!(row["FinalSipCode"], 0);
    assert_eq!(row["CallEndSubReason"], 540_000);
    assert_eq!(row["FinalSipCodePhrase"], "BYE");
    assert_eq!(row["TrunkFullyQualifiedDomainName"], "sbc1.contoso.com");
    assert_eq!(row["MediaBypassEnabled"], false);
    assert_eq!(row["CallerNumber"], "+12065550***");
}

#[test]
fn charges_as_decimal_strings_and_rows_without_an_id_still_have_a_stable_key() {
    let entry = json!({"startDateTime": "2026-11-16T09:00:00Z", "charge": "12.3456", "connectionCharge": "0.5",
        "currency": "EUR", "callType": "user_out_transfer", "duration": "61"});
    let a = log_row(PstnLog::Pstn, &entry).unwrap();
    let b = log_row(PstnLog::Pstn, &entry).unwrap();
    assert_eq!(a.key, b.key);
    assert!(a.key.starts_with("pstn:sha256-") && a.key.ends_with("@2026-11-16T09:00:00Z"), "{}", a.key);
    let row: Value = serde_json::from_str(&a.row).unwrap();
    assert_eq!(row["Charge"], 12.3456);
    assert_eq!(row["ConnectionCharge"], 0.5);
    assert_eq!(row["DurationSeconds"], 61);
    assert_eq!(row["Direction"], "outbound");
    // Another row, another key.
    let other = log_row(PstnLog::Pstn, &json!({"startDateTime": "2026-11-16T09:00:00Z", "charge": 1})).unwrap();
    assert_ne!(other.key, a.key);
}

#[test]
fn hostile_pages_are_refused_with_a_clear_error() {
    for (body, want) in [
        (r#"{"value":[1,2]}"#, "not an object"),
        (r#"{"value":{"id":"x"}}"#, "getPstnCalls"),
        (r#"{"error":{"code":"x"}}"#, "getPstnCalls"),
        ("<html>", "getPstnCalls"),
    ] {
        let e = log_page(PstnLog::Pstn, body).unwrap_err().to_string();
        assert!(e.contains(want), "{body}: {e}");
    }
}

#[test]
fn requests_name_the_function_and_refuse_more_than_90_days() {
    let r =
        log_request("https://graph.microsoft.com", PstnLog::Pstn, "2026-11-26T00:00:00Z", "2026-11-28T00:00:00Z", "t")
            .unwrap();
    assert_eq!(
        r.url,
        "https://graph.microsoft.com/v1.0/communications/callRecords/getPstnCalls(fromDateTime=2026-11-26T00:00:00Z,toDateTime=2026-11-28T00:00:00Z)"
    );
    assert_eq!(r.method, "GET");
    let r = log_request(
        "https://graph.microsoft.com",
        PstnLog::DirectRouting,
        "2026-08-30T00:00:00Z",
        "2026-11-28T00:00:00Z",
        "t",
    )
    .unwrap();
    assert!(r.url.contains("/getDirectRoutingCalls(fromDateTime=2026-08-30T00:00:00Z,"), "{}", r.url);
    let e =
        log_request("https://graph.microsoft.com", PstnLog::Pstn, "2026-08-29T23:59:59Z", "2026-11-28T00:00:00Z", "t")
            .unwrap_err();
    assert!(e.to_string().contains("90 days"), "{e}");
}

// ---- a scripted Graph -------------------------------------------------------------------------------

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(String, String)>, String);

/// Graph's two logs as a script: rows per log, pages of `page` entries with `$skip` links; the
/// rules it keeps are Microsoft's (see the module docs). It records when each log request came.
struct Logs {
    pstn: Vec<Value>,
    dr: Vec<Value>,
    page: usize,
    /// Answer the first log request with 429 and `Retry-After` of this many seconds.
    throttle_first: Option<u32>,
    /// Answer every Direct Routing request 403.
    forbid_dr: bool,
    /// Answer every request whose URL contains this with this status.
    fail: Option<(String, u16)>,
    /// Most log requests outstanding at once.
    max_pages_in_flight: usize,
    log_requests: Vec<(u64, String)>,
    rows: BTreeMap<String, Vec<Value>>,
}

fn ms(ts: &str) -> u64 {
    callrecords::values::parse_timestamp(ts).map(|t| t.secs as u64 * 1000).unwrap()
}

fn iso(ms: u64) -> String {
    callrecords::values::format_timestamp(callrecords::values::Instant { secs: (ms / 1000) as i64, ticks: 0 })
}

impl Logs {
    fn new(pstn: Vec<Value>, dr: Vec<Value>) -> Self {
        Logs {
            pstn,
            dr,
            page: 1000,
            throttle_first: None,
            forbid_dr: false,
            fail: None,
            max_pages_in_flight: 0,
            log_requests: vec![],
            rows: BTreeMap::new(),
        }
    }

    fn answer(&mut self, url: &str, now: u64) -> Answer {
        self.log_requests.push((now, url.to_string()));
        if let Some(s) = self.throttle_first.take() {
            let body = r#"{"error":{"code":"TooManyRequests","message":"Please retry again later."}}"#;
            return (429, vec![("Retry-After".into(), s.to_string())], body.into());
        }
        let pstn = url.contains("/getPstnCalls(");
        if let Some((part, status)) = &self.fail
            && url.contains(part.as_str())
        {
            return (
                *status,
                vec![],
                r#"{"error":{"code":"serviceNotAvailable","message":"Service unavailable"}}"#.into(),
            );
        }
        if !pstn && self.forbid_dr {
            let body =
                r#"{"error":{"code":"Forbidden","message":"Insufficient privileges to complete the operation."}}"#;
            return (403, vec![], body.into());
        }
        let args = url.split_once('(').unwrap().1.split_once(')').unwrap();
        let mut from = 0;
        let mut to = 0;
        for a in args.0.split(',') {
            let (k, v) = a.split_once('=').unwrap();
            match k {
                "fromDateTime" => from = ms(v),
                "toDateTime" => to = ms(v),
                _ => panic!("unexpected parameter {k}"),
            }
        }
        if to - from > 90 * 24 * HOUR {
            return (406, vec![], r#"{"error":{"code":"NotAcceptable","message":"range too large"}}"#.into());
        }
        let skip: usize = args.1.strip_prefix("?$skip=").map_or(0, |s| s.parse().unwrap());
        let rows: Vec<&Value> = (if pstn { &self.pstn } else { &self.dr })
            .iter()
            .filter(|r| {
                let s = ms(r["startDateTime"].as_str().unwrap());
                // getPstnCalls: toDateTime inclusive; getDirectRoutingCalls: exclusive.
                s >= from && if pstn { s <= to } else { s < to }
            })
            .collect();
        let page: Vec<&Value> = rows.iter().skip(skip).take(self.page).copied().collect();
        let mut body = json!({"@odata.count": page.len(), "value": page});
        if skip + self.page < rows.len() {
            let base = url.split_once('?').map_or(url, |(b, _)| b);
            body["@odata.nextLink"] = json!(format!("{base}?$skip={}", skip + self.page));
        }
        (200, vec![], body.to_string())
    }

    /// Run `job` to its end, answering tokens, log pages and ingestion; latency per request.
    fn run(&mut self, job: Job, latency_ms: u64) -> (Box<Report>, Vec<Progress>, u64) {
        let mut run = Run::start(Config::from_env(&env()).unwrap(), job, NOW).unwrap();
        let mut now = NOW;
        let mut progress = vec![];
        let mut in_flight: Vec<(u64, u64, Answer)> = vec![];
        let mut pages: Vec<u64> = vec![];
        loop {
            match run.next(now) {
                Action::Send { id, request, .. } => {
                    let answer = if request.url.contains("/oauth2/v2.0/token") {
                        (200, vec![], r#"{"access_token":"t","expires_in":3599}"#.to_string())
                    } else if request.url.contains("/communications/callRecords/get") {
                        pages.push(id);
                        self.max_pages_in_flight = self.max_pages_in_flight.max(pages.len());
                        self.answer(&request.url, now)
                    } else if request.method == "POST" && request.url.contains("/streams/Custom-") {
                        let stream = request.url.split("/streams/Custom-").nth(1).unwrap().split('?').next().unwrap();
                        let rows: Vec<Value> = serde_json::from_slice(&request.body).unwrap();
                        self.rows.entry(stream.to_string()).or_default().extend(rows);
                        (204, vec![], String::new())
                    } else {
                        panic!("unexpected request {}", request.url)
                    };
                    in_flight.push((id, now + latency_ms, answer));
                }
                Action::Wait(w) => {
                    // The earliest answer arrives, or the wait ends.
                    in_flight.sort_by_key(|(_, at, _)| *at);
                    match in_flight.first() {
                        Some((_, at, _)) if *at <= now + u64::from(w) => {
                            let (id, at, (status, headers, body)) = in_flight.remove(0);
                            pages.retain(|p| *p != id);
                            now = now.max(at);
                            run.respond(id, status, &headers, body.as_bytes(), now).unwrap();
                        }
                        _ => now += u64::from(w),
                    }
                }
                Action::Progress(p) => progress.push(p),
                Action::Done(r) => return (r, progress, now - NOW),
            }
        }
    }
}

fn pstn_entry(n: usize, start_ms: u64) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{n:012}"), "callId": format!("{n}@sbc"),
        "userId": "d1777154-3be3-566d-8c21-3239d04ecb7f", "userPrincipalName": "marek.dvorak@contoso.com",
        "startDateTime": iso(start_ms), "endDateTime": iso(start_ms + 60_000), "duration": 60,
        "charge": 0.25, "connectionCharge": 0.0, "currency": "EUR", "callType": "user_out",
        "callerNumber": "+4930555000", "calleeNumber": format!("+4989555{n:04}"),
        "destinationContext": "Domestic", "destinationName": "Germany",
    })
}

fn dr_entry(n: usize, start_ms: u64) -> Value {
    json!({
        "id": format!("11111111-0000-4000-8000-{n:012}"), "correlationId": "c98e1515-a937-4b81-b8a8-3992afde64e0",
        "startDateTime": iso(start_ms), "inviteDateTime": iso(start_ms), "failureDateTime": "0001-01-01T00:00:00Z",
        "endDateTime": iso(start_ms + 5_000), "duration": 5, "callType": "ByotOut", "successfulCall": true,
        "finalSipCode": 0, "callEndSubReason": 540000, "finalSipCodePhrase": "BYE",
        "trunkFullyQualifiedDomainName": "sbc1.contoso.com", "mediaBypassEnabled": false,
    })
}

fn poll(since: u64, until: u64, skip: Vec<String>) -> Job {
    Job::Pstn { since: iso(since), until: iso(until), skip }
}

// ---- the poll -----------------------------------------------------------------------------------------

#[test]
fn a_poll_pages_through_both_logs_ships_each_row_once_and_a_rerun_ships_nothing_new() {
    let since = NOW - 48 * HOUR;
    // 2,500 PSTN rows (three pages) and 30 Direct Routing rows over the 48 hours, plus rows
    // outside the window on either side that must not be asked for.
    let mut pstn: Vec<Value> = (0..2_500).map(|n| pstn_entry(n, since + n as u64 * 60_000)).collect();
    pstn.push(pstn_entry(9_001, since - HOUR));
    let dr: Vec<Value> = (0..30).map(|n| dr_entry(n, since + n as u64 * HOUR)).collect();
    let mut logs = Logs::new(pstn, dr);
    let (report, progress, _) = logs.run(poll(since, NOW, vec![]), 200);
    assert!(report.ok, "{:?}", report.error);
    let l = report.logs.as_ref().unwrap();
    assert_eq!((l.windows, l.pages), (1, 3 + 1));
    assert_eq!(l.listed["pstn"], 2_500);
    assert_eq!(l.listed["directRouting"], 30);
    assert_eq!((l.skipped, l.duplicates), (0, 0));
    assert_eq!(report.rows["TeamsPstnCall_CL"], 2_500);
    assert_eq!(report.rows["TeamsDirectRoutingCall_CL"], 30);
    // What the endpoint got: each id once.
    let ids: BTreeSet<&str> = logs.rows["TeamsPstnCall_CL"].iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2_500);
    assert!(!ids.contains("00000000-0000-4000-8000-000000009001"));
    // The progress names every key once, in the documented form.
    let keys: Vec<String> = progress.iter().flat_map(|p| p.shipped.iter().cloned()).collect();
    assert_eq!(keys.len(), 2_530);
    assert!(keys.contains(&format!("pstn:00000000-0000-4000-8000-000000000000@{}", iso(since))));
    assert!(keys.contains(&format!("directRouting:11111111-0000-4000-8000-000000000029@{}", iso(since + 29 * HOUR))));
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), keys.len());
    let last = progress.last().unwrap();
    assert_eq!((last.windows_done, last.windows_total), (2, 2));

    // An hour later, over the last 48 hours again, with the checkpoint: nothing new is shipped.
    logs.rows.clear();
    let mut later = Logs::new(logs.pstn.clone(), logs.dr.clone());
    let (report, progress, _) = later.run(poll(since + HOUR, NOW + HOUR, keys.clone()), 200);
    assert!(report.ok, "{:?}", report.error);
    let l = report.logs.as_ref().unwrap();
    // Rows of the first hour fell out of the window: 2,440 PSTN and 29 DR rows are listed again.
    assert_eq!(l.listed["pstn"], 2_500 - 60);
    assert_eq!(l.listed["directRouting"], 29);
    assert_eq!(l.skipped, 2_469);
    assert_eq!(report.total_rows(), 0);
    assert!(later.rows.is_empty());
    assert!(progress.iter().all(|p| p.shipped.is_empty()));
}

#[test]
fn a_span_over_90_days_is_read_in_parts_and_the_shared_edge_row_ships_once() {
    let since = NOW - 100 * 24 * HOUR;
    let edge = since + 90 * 24 * HOUR;
    // A PSTN row that starts exactly on the edge of the two ranges: getPstnCalls' toDateTime is
    // inclusive, so both ranges list it.
    let pstn = vec![pstn_entry(1, since + HOUR), pstn_entry(2, edge), pstn_entry(3, NOW - HOUR)];
    let dr = vec![dr_entry(1, edge)];
    let mut logs = Logs::new(pstn, dr);
    let (report, _, _) = logs.run(poll(since, NOW, vec![]), 50);
    assert!(report.ok, "{:?}", report.error);
    let l = report.logs.as_ref().unwrap();
    assert_eq!(l.windows, 2);
    assert_eq!(l.listed["pstn"], 4, "the edge row is listed by both ranges");
    assert_eq!(l.duplicates, 1);
    assert_eq!(l.listed["directRouting"], 1, "getDirectRoutingCalls' toDateTime is exclusive");
    assert_eq!(report.rows["TeamsPstnCall_CL"], 3);
    // Each request asked for at most 90 days (the script answers 406 otherwise).
    assert_eq!(logs.log_requests.len(), 4);
}

#[test]
fn the_logs_keep_to_graphs_pstn_limits_and_a_retry_after() {
    // 30,000 rows in pages of 100: 300 pages of getPstnCalls. At most 50 per 60 s per function
    // and 200 per 60 s per app and tenant.
    let since = NOW - 48 * HOUR;
    let pstn: Vec<Value> = (0..30_000).map(|n| pstn_entry(n, since + n as u64 * 5_000)).collect();
    let mut logs = Logs::new(pstn, vec![]);
    logs.page = 100;
    logs.throttle_first = Some(7);
    let (report, _, elapsed) = logs.run(poll(since, NOW, vec![]), 300);
    assert!(report.ok, "{:?}", report.error);
    assert_eq!(report.rows["TeamsPstnCall_CL"], 30_000);
    let times: Vec<u64> =
        logs.log_requests.iter().filter(|(_, u)| u.contains("getPstnCalls")).map(|(t, _)| *t).collect();
    assert_eq!(times.len(), 301, "300 pages and the throttled first try");
    for (i, t) in times.iter().enumerate() {
        let within = times[i..].iter().take_while(|u| **u < t + 60_000).count();
        assert!(within <= 50, "{within} getPstnCalls requests within 60 s from request {i}");
    }
    // The throttled request was repeated no sooner than Retry-After said.
    assert!(times[1] - times[0] >= 7_000, "{} ms", times[1] - times[0]);
    // 300 pages at 50 a minute take at least 5 minutes of (simulated) time.
    assert!(elapsed >= 5 * 60_000, "{elapsed} ms");
}

#[test]
fn a_log_the_app_may_not_read_fails_alone_and_names_the_permission() {
    let since = NOW - 48 * HOUR;
    let pstn: Vec<Value> = (0..10).map(|n| pstn_entry(n, since + n as u64 * HOUR)).collect();
    let mut logs = Logs::new(pstn, vec![dr_entry(1, since)]);
    logs.forbid_dr = true;
    let (report, progress, _) = logs.run(poll(since, NOW, vec![]), 100);
    assert!(!report.ok);
    assert_eq!(report.rows["TeamsPstnCall_CL"], 10, "the PSTN log still ships");
    assert!(!report.rows.contains_key("TeamsDirectRoutingCall_CL"));
    let e = report.error.clone().unwrap();
    assert!(
        e.starts_with(&format!("getDirectRoutingCalls ({} .. {}): ", iso(since), iso(NOW)))
            && e.contains("403")
            && e.contains("CallRecords.Read.All"),
        "{e}"
    );
    assert_eq!(report.logs.as_ref().unwrap().failed.len(), 1);
    assert_eq!(progress.iter().map(|p| p.shipped.len()).sum::<usize>(), 10);
    // A 403 is not retried.
    assert_eq!(logs.log_requests.iter().filter(|(_, u)| u.contains("getDirectRoutingCalls")).count(), 1);
}

#[test]
fn a_page_graph_keeps_refusing_ends_its_chain_only_and_pages_stay_bounded() {
    // 200 days: three ranges (90 + 90 + 20 days), 1,500 PSTN rows in each. Page 2 of the oldest
    // range is answered 503 every time: that range loses its second page, nothing else does.
    let since = NOW - 200 * 24 * HOUR;
    let ranges = [since, since + 90 * 24 * HOUR, since + 180 * 24 * HOUR];
    let pstn: Vec<Value> = ranges
        .iter()
        .enumerate()
        .flat_map(|(r, start)| (0..1_500).map(move |n| pstn_entry(r * 10_000 + n, start + HOUR + n as u64 * 60_000)))
        .collect();
    let mut logs = Logs::new(pstn, vec![]);
    logs.fail = Some((format!("fromDateTime={},toDateTime={})?$skip=1000", iso(since), iso(ranges[1])), 503));
    let (report, progress, _) = logs.run(poll(since, NOW, vec![]), 100);
    assert!(!report.ok);
    // Ranges 2 and 3 ship whole; range 1 its first page.
    assert_eq!(report.rows["TeamsPstnCall_CL"], 1_500 + 1_500 + 1_000);
    let l = report.logs.as_ref().unwrap();
    assert_eq!(l.failed.len(), 1, "{:?}", l.failed);
    assert!(
        l.failed[0].starts_with(&format!("getPstnCalls ({} .. {}): ", iso(since), iso(ranges[1]))),
        "{:?}",
        l.failed
    );
    assert!(l.failed[0].contains("503"), "{:?}", l.failed);
    // Every chain was counted down once.
    let last = progress.last().unwrap();
    assert_eq!((last.windows_done, last.windows_total), (6, 6));
    // Six chains, never more than 4 pages asked for at once.
    assert!(logs.max_pages_in_flight <= 4, "{} pages in flight", logs.max_pages_in_flight);
    assert!(logs.max_pages_in_flight >= 2, "the chains ran together");
}

/// A poll of the last hour against `page`, which answers each log request (by URL) with a body;
/// tokens are granted, 10 ms per answer; the poll's report and the simulated time it took.
fn run_with_pages(mut page: impl FnMut(&str) -> String) -> (Box<Report>, u64) {
    let mut run = Run::start(Config::from_env(&env()).unwrap(), poll(NOW - HOUR, NOW, vec![]), NOW).unwrap();
    let mut now = NOW;
    loop {
        match run.next(now) {
            Action::Send { id, request, .. } => {
                let body = if request.url.contains("token") {
                    r#"{"access_token":"t","expires_in":3599}"#.to_string()
                } else if request.url.contains("/get") {
                    page(&request.url)
                } else {
                    String::new()
                };
                now += 10;
                run.respond(id, 200, &[], body.as_bytes(), now).unwrap();
            }
            Action::Wait(w) => now += u64::from(w),
            Action::Progress(_) => {}
            Action::Done(r) => return (r, now - NOW),
        }
    }
}

#[test]
fn a_next_link_back_to_an_earlier_page_ends_the_chain() {
    // Page A links to B and B back to A: without the rule, the poll would never end.
    let mut pages = 0;
    let (report, _) = run_with_pages(|url| {
        pages += 1;
        assert!(pages < 20, "the chain never ends");
        let base = url.split('?').next().unwrap();
        let next = if url.ends_with("$skip=1000") { "$skip=2000" } else { "$skip=1000" };
        format!(r#"{{"value":[],"@odata.nextLink":"{base}?{next}"}}"#)
    });
    assert!(report.ok, "{:?}", report.error);
    // Per log: the first page, A ($skip=1000), B ($skip=2000) whose link names A again.
    assert_eq!(pages, 6);
    assert_eq!(report.logs.unwrap().looped, 2);
}

#[test]
fn a_next_link_to_the_page_just_read_ends_the_chain() {
    let mut pages = 0;
    let (report, _) = run_with_pages(|url| {
        pages += 1;
        // Every page of a log links to the same URL: the second page names itself.
        let base = url.split('?').next().unwrap();
        format!(r#"{{"value":[],"@odata.nextLink":"{base}?$skip=1000"}}"#)
    });
    assert!(report.ok, "{:?}", report.error);
    // Per log: the first page, then its link once (which names itself).
    assert_eq!(pages, 4);
}

#[test]
fn a_chain_of_new_next_links_that_never_ends_fails_its_chain_at_the_cap() {
    // Every getDirectRoutingCalls page is empty and links to a page never seen ($skip grows): the
    // loop rule cannot stop it, the page cap must. getPstnCalls ends after one page.
    let mut dr_pages = 0u32;
    let (report, elapsed) = run_with_pages(|url| {
        if !url.contains("/getDirectRoutingCalls") {
            return r#"{"value":[]}"#.to_string();
        }
        dr_pages += 1;
        assert!(dr_pages <= 10_000, "the chain went on past the cap");
        let base = url.split('?').next().unwrap();
        format!(r#"{{"value":[],"@odata.nextLink":"{base}?$skip={}"}}"#, dr_pages * 1000)
    });
    // 10,000 pages read (at Graph's 50 a minute: 200 simulated minutes), then the chain fails.
    assert_eq!(dr_pages, 10_000);
    assert!(!report.ok);
    let l = report.logs.unwrap();
    assert_eq!(l.failed.len(), 1, "{:?}", l.failed);
    assert!(
        l.failed[0].starts_with("getDirectRoutingCalls (") && l.failed[0].contains("past 10000 pages"),
        "{:?}",
        l.failed
    );
    assert!(elapsed >= 199 * 60_000, "{elapsed} ms: the per-function limit was kept");
}

#[test]
fn a_poll_refuses_bad_spans() {
    let c = || Config::from_env(&env()).unwrap();
    for (since, until) in [("yesterday", ""), ("2026-11-28T00:00:00Z", "2026-11-27T00:00:00Z")] {
        let job = Job::Pstn { since: since.into(), until: until.into(), skip: vec![] };
        assert!(Run::start(c(), job, NOW).is_err(), "{since} .. {until}");
    }
}
