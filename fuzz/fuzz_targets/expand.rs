//! callRecord expansion (`expand::expand`, `expand::call_row`, `expand::seed_row`): any text as a
//! merged callRecord. Seeds: `examples/graph/callrecords/`.
//!
//! Invariants: an `InvalidJson` error or the four tables in order, with one call row; every row a
//! JSON object with exactly its table's columns, each of its type, timestamps in UTC; every row
//! names the call row's CallId and CallVersion; the call row's counts agree with the rows;
//! `call_row` is the expansion's call row and `seed_row` a seed row, each exactly when `expand`
//! succeeds.

#![no_main]

use callrecords::Error;
use callrecords::expand::{self, TableRows};
use callrecords::schema;
use callrecords_fuzz::check_row;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tables = expand::expand(text);
    let call = expand::call_row(text);
    let seed = expand::seed_row(text);
    match tables {
        Err(e) => {
            assert!(matches!(e, Error::InvalidJson(_)), "expand: {e:?}");
            assert!(matches!(call, Err(Error::InvalidJson(_))), "call_row where expand failed: {call:?}");
            assert!(matches!(seed, Err(Error::InvalidJson(_))), "seed_row where expand failed: {seed:?}");
        }
        Ok(tables) => {
            check_tables(&tables);
            assert_eq!(call.as_ref().ok(), Some(&tables[0].rows[0]), "call_row is the call table's row");
            let seed = seed.unwrap_or_else(|e| panic!("seed_row failed where expand did not: {e}"));
            let seed = check_row(&schema::SEED, &seed);
            for nested in ["participants", "sessions"] {
                let s = seed[nested].as_str().expect("nested values as JSON strings");
                serde_json::from_str::<Value>(s).expect("the nested JSON string is JSON");
            }
        }
    }
});

fn check_tables(tables: &[TableRows]) {
    let names: Vec<&str> = tables.iter().map(|t| t.table.name).collect();
    let want = [schema::CALL.name, schema::LEG.name, schema::STREAM.name, schema::PARTICIPANT.name];
    assert_eq!(names, want, "the four tables, in order");
    assert_eq!(tables[0].rows.len(), 1, "one call row");
    let rows: Vec<Vec<serde_json::Map<String, Value>>> =
        tables.iter().map(|t| t.rows.iter().map(|r| check_row(t.table, r)).collect()).collect();
    let call = &rows[0][0];
    assert!(call["CallId"].is_string(), "the call row names its call");
    for row in rows.iter().flatten() {
        assert_eq!(row["CallId"], call["CallId"], "every row names the call");
        assert_eq!(row["CallVersion"], call["CallVersion"], "every row names the version");
    }
    let count = |name: &str| call[name].as_i64().unwrap_or_else(|| panic!("{name} is a count"));
    let (sessions, segments, streams) = (count("SessionCount"), count("SegmentCount"), count("StreamCount"));
    let legs = rows[1].len() as i64;
    assert_eq!(streams, rows[2].len() as i64, "StreamCount is the stream rows");
    assert!(
        legs >= segments && legs >= sessions && legs <= segments + sessions,
        "{legs} legs, {sessions} sessions, {segments} segments"
    );
    assert!((0..=segments).contains(&count("FailedSegmentCount")));
    let participants = rows[3].iter().filter(|p| p["Role"] == "participant").count() as i64;
    let organizers = rows[3].iter().filter(|p| p["Role"] == "organizer").count();
    assert_eq!(participants + organizers as i64, rows[3].len() as i64, "roles are organizer or participant");
    assert!(organizers <= 1, "one organizer at most");
    let want = (participants > 0).then_some(participants);
    assert_eq!(call["ParticipantCount"].as_i64(), want, "ParticipantCount is the participant rows");
    let tenants = call["TenantIds"].as_array().expect("TenantIds is an array");
    for (i, t) in tenants.iter().enumerate() {
        let t = t.as_str().expect("tenant ids are strings");
        assert_eq!(t, t.to_ascii_lowercase(), "tenant ids in lower case");
        assert!(!tenants[..i].contains(&Value::from(t)), "tenant {t} twice");
    }
}
