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
