//! callRecord JSON -> typed rows.
//!
//! The input is read with borrowed, lenient structs: unknown fields are skipped, unknown enum
//! values are kept as text, scalars of the wrong type (a double sent as `"NaN"`) become `null`,
//! and `_v2` identities win over the deprecated ones, which stay as the fallback.
//!
//! | file | rules |
//! |---|---|
//! | `expand/mod.rs` | [`expand`]: a callRecord into call, leg, stream and participant rows; [`call_row`] |
//! | `expand/record.rs` | the callRecord as Graph sends it, read leniently |
//! | `expand/identity.rs` | which identity of a set or endpoint a row names |
//! | `expand/rows.rs` | one leg, stream or participant row |
//! | [`pstn`] | a PSTN or Direct Routing log entry into a `TeamsPstnCall_CL` / `TeamsDirectRoutingCall_CL` row, with its dedup key |
//! | `expand/seed.rs` | [`seed_row`]: the 2020 setup's `TEAMSGraphCallRecords_CL` row |

mod identity;
pub mod pstn;
mod record;
mod rows;
mod seed;

use std::borrow::Cow;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::schema::{self, CallRow, LegRow, ParticipantRow, StreamRow, Table};
use crate::values::duration_between_ms;
use identity::Who;
use record::{parse_record, string_list, text, ts};
use rows::{leg_row, participant_row, stream_row};
pub use seed::seed_row;

/// The rows of one table, each a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRows {
    /// The table.
    pub table: &'static Table,
    /// Its rows.
    pub rows: Vec<String>,
}

/// Expand one callRecord (merged with all its pages) into rows of the call, leg, stream and
/// participant tables, in that order.
pub fn expand(call_record: &str) -> Result<Vec<TableRows>> {
    let mut folded = None;
    let record = parse_record(call_record, &mut folded)?;
    let call_id = record.id.get().cloned();
    let version = record.version.int();
    let call_start = ts(&record.start_date_time);
    let mut tenants: Vec<String> = vec![];
    let mut note_tenant = |t: &Option<Cow<str>>| {
        if let Some(t) = t {
            let t = t.to_ascii_lowercase();
            if !tenants.contains(&t) {
                tenants.push(t);
            }
        }
    };

    // Participants: organizer first, then participants_v2 (deprecated list as the fallback).
    let mut participants: Vec<ParticipantRow> = vec![];
    let ctx = Ctx { call_id: call_id.clone(), version, call_start: call_start.clone() };
    let push_participant = |role, id, set, source| participant_row(&ctx, role, id, set, source);
    let organizer = match (&record.organizer_v2.0, &record.organizer.0) {
        (Some(p), _) if p.identity.0.as_ref().and_then(Who::from_set).is_some() => {
            Some(push_participant("organizer", text(&p.id), p.identity.0.as_ref(), "organizer_v2"))
        }
        (_, Some(set)) if Who::from_set(set).is_some() => {
            Some(push_participant("organizer", None, Some(set), "organizer"))
        }
        _ => None,
    };
    if let Some(o) = organizer {
        participants.push(o);
    }
    if !record.participants_v2.0.is_empty() {
        for p in &record.participants_v2.0 {
            participants.push(push_participant("participant", text(&p.id), p.identity.0.as_ref(), "participants_v2"));
        }
    } else {
        for set in &record.participants.0 {
            participants.push(push_participant("participant", None, Some(set), "participants"));
        }
    }
    for p in &participants {
        note_tenant(&p.participant_tenant_id);
    }
    // No participant list at all (participants_v2 not fetched, deprecated list empty) is unknown, not 0.
    let participant_count = participants.iter().filter(|p| p.role.as_deref() == Some("participant")).count();
    let participant_count = (participant_count > 0).then_some(participant_count as i64);

    let mut legs: Vec<LegRow> = vec![];
    let mut streams: Vec<StreamRow> = vec![];
    let mut failed_segments = 0i64;
    for session in &record.sessions.0 {
        if session.segments.0.is_empty() {
            legs.push(leg_row(&ctx, session, None));
        }
        for segment in &session.segments.0 {
            let leg = leg_row(&ctx, session, Some(segment));
            if segment.failure_info.0.is_some() {
                failed_segments += 1;
            }
            for media in &segment.media.0 {
                streams.extend(media.streams.0.iter().map(|s| stream_row(&ctx, &leg, media, s)));
            }
            legs.push(leg);
        }
    }
    name_untyped_identities(&mut legs, &participants);
    for leg in &legs {
        note_tenant(&leg.caller_tenant_id);
        note_tenant(&leg.callee_tenant_id);
    }

    let organizer = participants.iter().find(|p| p.role.as_deref() == Some("organizer"));
    let call = CallRow {
        time_generated: call_start.clone().or_else(|| ts(&record.last_modified_date_time)),
        call_id: call_id.clone(),
        call_version: version,
        call_type: text(&record.call_type),
        modalities: string_list(&record.modalities.0),
        start_time: call_start.clone(),
        end_time: ts(&record.end_date_time),
        duration_ms: duration_between_ms(
            record.start_date_time.get().map(|s| &**s),
            record.end_date_time.get().map(|s| &**s),
        ),
        last_modified: ts(&record.last_modified_date_time),
        join_web_url: text(&record.join_web_url),
        organizer_id: organizer.and_then(|o| o.user_id.clone()),
        organizer_display_name: organizer.and_then(|o| o.display_name.clone()),
        organizer_upn: organizer.and_then(|o| o.upn.clone()),
        organizer_tenant_id: organizer.and_then(|o| o.participant_tenant_id.clone()),
        organizer_identity_type: organizer.and_then(|o| o.identity_type.clone()),
        participant_count,
        tenant_ids: Some(Value::Array(tenants.into_iter().map(Value::String).collect())),
        session_count: Some(record.sessions.0.len() as i64),
        segment_count: Some(record.sessions.0.iter().map(|s| s.segments.0.len() as i64).sum()),
        stream_count: Some(streams.len() as i64),
        failed_segment_count: Some(failed_segments),
    };

    Ok(vec![
        table_rows(&schema::CALL, std::slice::from_ref(&call))?,
        table_rows(&schema::LEG, &legs)?,
        table_rows(&schema::STREAM, &streams)?,
        table_rows(&schema::PARTICIPANT, &participants)?,
    ])
}

/// An `associatedIdentity` without `@odata.type` (as Microsoft's documented examples and
/// `odata.metadata=none` exports send it) says who but not what: its kind is the one
/// `participants_v2` gives the same id, else `user` when it carries a user principal name (a
/// user's sign-in name), else unknown.
fn name_untyped_identities<'a>(legs: &mut [LegRow<'a>], participants: &[ParticipantRow<'a>]) {
    let kind_of = |id: &Option<Cow<'a, str>>, upn: &Option<Cow<'a, str>>| -> Option<Cow<'a, str>> {
        let id = id.as_deref()?;
        participants
            .iter()
            .find(|p| p.user_id.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(id)))
            .and_then(|p| p.identity_type.clone())
            .or_else(|| upn.as_ref().map(|_| Cow::Borrowed("user")))
    };
    for leg in legs {
        if leg.caller_identity_type.is_none() {
            leg.caller_identity_type = kind_of(&leg.caller_id, &leg.caller_upn);
        }
        if leg.callee_identity_type.is_none() {
            leg.callee_identity_type = kind_of(&leg.callee_id, &leg.callee_upn);
        }
    }
}

/// The one `TeamsCall_CL` row of [`expand`], for hosts that emit one record per callRecord
/// (Fluent Bit's `filter_wasm` has no fan-out).
pub fn call_row(call_record: &str) -> Result<String> {
    let mut tables = expand(call_record)?;
    let call = tables.iter_mut().find(|t| t.table.name == schema::CALL.name).map(|t| std::mem::take(&mut t.rows));
    call.and_then(|rows| rows.into_iter().next()).ok_or_else(|| Error::InvalidJson("no call row".into()))
}

/// Call-level values every row repeats.
struct Ctx<'a> {
    call_id: Option<Cow<'a, str>>,
    version: Option<i64>,
    call_start: Option<Cow<'a, str>>,
}

fn table_rows<T: serde::Serialize>(table: &'static Table, items: &[T]) -> Result<TableRows> {
    let rows = items
        .iter()
        .map(|r| serde_json::to_string(r).map_err(|e| Error::json(table.name, e)))
        .collect::<Result<_>>()?;
    Ok(TableRows { table, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_row_is_the_call_table_row_alone() {
        let record = r#"{"id":"call-1","version":3,"type":"groupCall","startDateTime":"2026-11-20T08:00:00Z",
            "sessions":[{"id":"s1","segments":[{"id":"g1"},{"id":"g2"}]},{"id":"s2","segments":[{"id":"g3"}]}]}"#;
        let row: Value = serde_json::from_str(&call_row(record).unwrap()).unwrap();
        assert_eq!(row["CallId"], "call-1");
        assert_eq!(row["CallVersion"], 3);
        assert_eq!(row["CallType"], "groupCall");
        assert_eq!((row["SessionCount"].as_i64(), row["SegmentCount"].as_i64()), (Some(2), Some(3)));
        let columns: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want: Vec<&str> = schema::CALL.columns.iter().map(|c| c.name).collect();
        let mut got = columns.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "exactly the call table's columns");
        for bad in ["", "[1]", "{}", "not json"] {
            assert!(matches!(call_row(bad), Err(Error::InvalidJson(_))), "{bad:?}");
        }
    }
}
