//! The seed-compatible row: one `TEAMSGraphCallRecords_CL` row per callRecord, shaped as the 2020
//! Data Collector setup wrote it.

use std::borrow::Cow;

use serde_json::Value;

use super::record::{parse_record, string_list, text, ts};
use crate::error::{Error, Result};
use crate::schema::{self, SeedRow};

/// The one `TEAMSGraphCallRecords_CL` row of the 2020 setup: scalars as they are, the organizer
/// flattened with `_` (organizer_v2 fills it when the deprecated organizer is empty), participants
/// and sessions as JSON strings.
pub fn seed_row(call_record: &str) -> Result<String> {
    let mut folded = None;
    let record = parse_record(call_record, &mut folded)?;
    let raw: Value = serde_json::from_str(call_record).map_err(|e| Error::json("callRecord", e))?;
    let organizer_set = match (&record.organizer.0, &record.organizer_v2.0) {
        (Some(set), _) if !set.entries.is_empty() => Some(set),
        (_, Some(p)) => p.identity.0.as_ref(),
        _ => None,
    };
    let entry = |kind: &str| organizer_set.and_then(|s| s.entries.iter().find(|(k, _)| k == kind)).map(|(_, i)| i);
    let (user, phone) = (entry("user"), entry("phone"));
    let participants = match raw.get("participants") {
        Some(Value::Array(a)) if !a.is_empty() => Value::Array(a.clone()),
        _ => Value::Array(
            raw.get("participants_v2")
                .and_then(Value::as_array)
                .map(|ps| ps.iter().filter_map(|p| p.get("identity").cloned()).collect())
                .unwrap_or_default(),
        ),
    };
    let sessions = raw.get("sessions").cloned().unwrap_or(Value::Array(vec![]));
    let row = SeedRow {
        id: text(&record.id),
        version: record.version.int(),
        call_type: text(&record.call_type),
        modalities: string_list(&record.modalities.0).map(|v| Cow::Owned(v.to_string())),
        last_modified: ts(&record.last_modified_date_time),
        start_time: ts(&record.start_date_time),
        end_time: ts(&record.end_date_time),
        join_web_url: text(&record.join_web_url),
        organizer_user_id: user.and_then(|i| text(&i.id)),
        organizer_user_display_name: user.and_then(|i| text(&i.display_name)),
        organizer_user_tenant_id: user.and_then(|i| text(&i.tenant_id)),
        organizer_phone_id: phone.and_then(|i| text(&i.id)),
        organizer_phone_display_name: phone.and_then(|i| text(&i.display_name)),
        participants: Some(Cow::Owned(participants.to_string())),
        sessions: Some(Cow::Owned(sessions.to_string())),
    };
    serde_json::to_string(&row).map_err(|e| Error::json(schema::SEED.name, e))
}
