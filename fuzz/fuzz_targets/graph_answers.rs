//! What Graph and Entra ID answer, read by the core: the judge of every answer
//! (`http::check_response`: status, error bodies, `Retry-After`), token answers, `@odata.nextLink`s
//! and the next-page request they lead to, List pages, subscription answers, and pages merged into
//! a callRecord. The input is an answer body, or a raw response (`HTTP/1.1 429 ...`, headers, blank
//! line, body); `\x1e` separates the callRecord from further pages for the merge. Seeds:
//! `examples/graph/callrecords/` and `examples/graph/documented/` (records and pages) and
//! `fuzz/seeds/graph_answers/` (responses).
//!
//! Invariants: `Ok` exactly for 2xx, else a typed service error with the status, a message of at
//! most 400 characters, `Retry-After` as sent and retryable exactly for 408, 429 and 5xx; a token
//! answer gives a non-empty token, and a request carries it exactly when it is a valid header
//! value; a next link is followed only under the Graph base URL, as it is; a List page pairs each id
//! with its version, and only ids make requests; a merge keeps every session and participant of
//! every page and drops the link; a PSTN or Direct Routing log page gives rows with exactly their
//! table's columns, each keyed `{log}:…@…`, or an error naming the function.

#![no_main]

use callrecords::http::{check_response, header};
use callrecords::{Error, entra, graph};
use callrecords_fuzz::{message, struct_field};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const GRAPH: &str = "https://graph.microsoft.com";
const STAND_IN: &str = "http://127.0.0.1:8080/";
/// 2026-11-28T00:00:00Z.
const NOW: u64 = 1_795_824_000;

fuzz_target!(|data: &[u8]| {
    let m = message(data, |d| d.starts_with(b"HTTP/"));
    let status = m.start.as_deref().and_then(|s| s.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(200u16);
    let body = m.body;
    // The driver reads pages as text the same way.
    let text = String::from_utf8_lossy(body);

    judge(status, &m.headers, body);
    token(status, body);
    next_link(&text);
    list_page(&text);
    log_pages(&text);
    if let Ok((subs, _)) = graph::subscriptions::parse_subscription_page(&text) {
        subs.iter().for_each(|s| _ = s.is_call_records());
    }
    if let Ok(s) = graph::subscriptions::parse_subscription(&text) {
        _ = s.is_call_records();
    }
    merge(&text);
});

fn judge(status: u16, headers: &[(String, String)], body: &[u8]) {
    let ok = (200..300).contains(&status);
    match check_response(status, headers, body, NOW) {
        Ok(()) => assert!(ok, "{status} accepted"),
        Err(Error::Service(e)) => {
            assert!(!ok, "{status} refused");
            assert_eq!(e.status, status);
            assert!(!e.message.trim().is_empty(), "an error says something");
            assert!(e.message.chars().count() <= 400, "service messages are cut at 400 characters");
            assert_eq!(e.retryable, status == 408 || status == 429 || status >= 500, "retryable for {status}");
            let retry_after = header(headers, "retry-after");
            match retry_after.map(str::trim).map(str::parse::<u64>) {
                None => assert_eq!(e.retry_after_seconds, None),
                Some(Ok(s)) => assert_eq!(e.retry_after_seconds, Some(s.min(u64::from(u32::MAX)) as u32)),
                Some(Err(_)) => {} // an HTTP date, or unreadable
            }
        }
        Err(other) => panic!("the judge answers a service error, not {other:?}"),
    }
}

fn token(status: u16, body: &[u8]) {
    match entra::parse_token_response(status, body) {
        Ok(t) => {
            assert!((200..300).contains(&status) && !t.token.is_empty());
            let usable = t.token.bytes().all(|b| (0x21..=0x7e).contains(&b));
            match graph::call_record_request(GRAPH, "id-1", &t.token) {
                Ok(r) => {
                    assert!(usable, "a token that breaks the header was sent");
                    let auth = header(&r.headers, "authorization").expect("a bearer header");
                    assert_eq!(auth.strip_prefix("Bearer "), Some(t.token.as_str()));
                }
                Err(e) => assert!(!usable && matches!(e, Error::InvalidArgument(_)), "a usable token refused: {e}"),
            }
        }
        Err(Error::Service(_)) => assert!(!(200..300).contains(&status)),
        Err(Error::InvalidJson(_)) => assert!((200..300).contains(&status)),
        Err(other) => panic!("token answer: {other:?}"),
    }
}

fn next_link(text: &str) {
    match graph::next_link(text) {
        Ok(Some(link)) => {
            assert!(!link.is_empty(), "an empty link is no link");
            for base in [GRAPH, STAND_IN] {
                let prefix = format!("{}/", base.trim_end_matches('/'));
                let allowed = link.starts_with(&prefix) && !link.chars().any(|c| c.is_whitespace() || c.is_control());
                match graph::next_page_request(base, &link, "token") {
                    Ok(r) => {
                        assert!(allowed, "the token would go to {link:?} (base {base})");
                        assert_eq!((r.method.as_str(), r.url.as_str()), ("GET", link.as_str()));
                    }
                    Err(e) => assert!(!allowed && matches!(e, Error::InvalidArgument(_)), "{link:?} refused: {e}"),
                }
            }
        }
        Ok(None) => {}
        Err(e) => assert!(matches!(e, Error::InvalidJson(_)), "{e:?}"),
    }
}

fn list_page(text: &str) {
    let Ok(page) = graph::parse_list_page(text) else { return };
    assert_eq!(page.ids.len(), page.versions.len(), "a version (or none) per id");
    for id in &page.ids {
        match graph::call_record_request(GRAPH, id, "token") {
            Ok(r) => {
                assert!(graph::is_valid_call_id(id), "a request for {id:?}");
                let want = format!("{GRAPH}/v1.0/communications/callRecords/{id}?$expand=sessions($expand=segments)");
                assert_eq!(r.url, want);
            }
            Err(e) => assert!(!graph::is_valid_call_id(id) && matches!(e, Error::InvalidArgument(_))),
        }
    }
}

/// `record \x1e page \x1e page ...`: odd parts are session pages, even ones participants_v2 pages.
fn merge(text: &str) {
    let mut parts = text.split('\u{1e}');
    let record = parts.next().unwrap_or_default();
    let (mut sessions, mut participants) = (vec![], vec![]);
    for (i, p) in parts.enumerate() {
        if i % 2 == 0 { sessions.push(p.to_string()) } else { participants.push(p.to_string()) }
    }
    match graph::merge_pages(record, &sessions, &participants) {
        Ok(merged) => {
            let v: Value = serde_json::from_str(&merged).expect("the merge is JSON");
            let obj = v.as_object().expect("the merge is an object");
            assert!(!obj.contains_key(graph::SESSIONS_NEXT_LINK), "the sessions link is dropped");
            let values = |page: &String| -> usize {
                let page: Value = serde_json::from_str(page).unwrap();
                struct_field(&page, "value", 0).and_then(Value::as_array).expect("a read page has values").len()
            };
            // What the merge writes went through one more JSON round trip than the record (serde_json
            // may move a float's last digit then): compare with the record after the same one.
            let first: Value = serde_json::from_str(record).unwrap();
            let first: Value = serde_json::from_str(&first.to_string()).unwrap();
            let own = first["sessions"].as_array().map_or(0, Vec::len);
            let want = own + sessions.iter().map(values).sum::<usize>();
            assert_eq!(obj["sessions"].as_array().map(Vec::len), Some(want), "every session kept");
            if participants.is_empty() {
                assert_eq!(obj.get("participants_v2"), first.get("participants_v2"), "participants_v2 left alone");
            } else {
                let want = participants.iter().map(values).sum::<usize>();
                assert_eq!(obj["participants_v2"].as_array().map(Vec::len), Some(want), "every participant kept");
            }
            // The merge goes on to the expansion: it may refuse it, never panic.
            if let Err(e) = callrecords::expand::expand(&merged) {
                assert!(matches!(e, Error::InvalidJson(_)), "{e:?}");
            }
        }
        Err(e) => assert!(matches!(e, Error::InvalidJson(_)), "{e:?}"),
    }
}

fn log_pages(text: &str) {
    use callrecords::graph::pstn::PstnLog;
    for log in PstnLog::ALL {
        match callrecords::expand::pstn::log_page(log, text) {
            Ok(page) => {
                let columns: Vec<&str> = log.table().columns.iter().map(|c| c.name).collect();
                for r in page.rows {
                    assert!(r.key.starts_with(&format!("{}:", log.name())) && r.key.contains('@'), "{}", r.key);
                    let row: serde_json::Map<String, Value> = serde_json::from_str(&r.row).expect("a row is an object");
                    assert_eq!(row.keys().count(), columns.len());
                    assert!(columns.iter().all(|c| row.contains_key(*c)));
                }
                assert!(page.next_link.as_deref() != Some(""));
            }
            Err(e) => assert!(e.to_string().contains(log.function()), "{e}"),
        }
    }
}
