//! Synthetic callRecords for benchmarks and property tests, grown from the sample data.

use serde_json::Value;

use crate::fixtures;

/// A group call with `sessions` sessions: the sample group call's sessions repeated with fresh
/// session and segment ids, as one merged record (no next link).
pub fn group_call(sessions: usize) -> String {
    let mut record: Value = serde_json::from_str(fixtures::GROUP_CALL).expect("sample group call is JSON");
    let mut templates: Vec<Value> = record["sessions"].as_array().cloned().unwrap_or_default();
    for page in [fixtures::GROUP_SESSIONS_2, fixtures::GROUP_SESSIONS_3] {
        let page: Value = serde_json::from_str(page).expect("sample page is JSON");
        templates.extend(page["value"].as_array().cloned().unwrap_or_default());
    }
    let out: Vec<Value> = (0..sessions)
        .map(|i| {
            let mut s = templates[i % templates.len()].clone();
            s["id"] = Value::from(format!("{:08x}-0000-4000-8000-{:012x}", i, i));
            if let Some(segs) = s["segments"].as_array_mut() {
                for (j, seg) in segs.iter_mut().enumerate() {
                    seg["id"] = Value::from(format!("{:08x}-0001-4000-8000-{:012x}", i, j));
                }
            }
            s
        })
        .collect();
    let obj = record.as_object_mut().expect("record is an object");
    obj.remove("sessions@odata.nextLink");
    obj.insert("sessions".into(), Value::Array(out));
    serde_json::to_string(&record).expect("serializes")
}

/// The sample peer-to-peer call as call number `n` (a fresh GUID-shaped id) that started at
/// `start` (ISO 8601), with its participants_v2 (for [`crate::standin::StandIns::add_call`]).
pub fn peer_to_peer(n: u64, start: &str) -> (String, Vec<Value>) {
    let mut v: Value = serde_json::from_str(fixtures::PEER_TO_PEER).expect("the sample parses");
    v["id"] = Value::from(format!("5a1e0000-0000-4000-8000-{n:012x}"));
    v["startDateTime"] = Value::from(start);
    let participants = v["participants_v2"].as_array().cloned().unwrap_or_default();
    (v.to_string(), participants)
}
