//! PSTN and Direct Routing call logs (Graph `getPstnCalls`, `getDirectRoutingCalls`) into rows of
//! `TeamsPstnCall_CL` and `TeamsDirectRoutingCall_CL`, read leniently like callRecords: unknown
//! fields skipped, unknown values kept as text, wrong-typed scalars absent. Charges are Graph's
//! `Edm.Decimal` (a JSON number, or a string under `IEEE754Compatible`) and become `real`, which
//! Log Analytics' custom tables offer for decimals; durations are already seconds.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::record::{text, ts};
use crate::error::{Error, Result};
use crate::graph::pstn::PstnLog;
use crate::schema::{DirectRoutingCallRow, PstnCallRow};
use crate::values::{Flag, Num, Text};

/// One row of a log page, with the key it is deduplicated by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// `{log}:{id}@{startDateTime}`: the log's name and the row's id (a hash of the row when it
    /// has none), then its start so that a host can forget keys older than its window.
    pub key: String,
    /// The row, a JSON object of the log's table.
    pub row: String,
}

/// One page of a log answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// Its rows, in Graph's order.
    pub rows: Vec<LogRow>,
    /// The next page, if any.
    pub next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PstnEntry<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    call_id: Text<'a>,
    #[serde(borrow, default)]
    conference_id: Text<'a>,
    #[serde(borrow, default)]
    user_id: Text<'a>,
    #[serde(borrow, default)]
    user_principal_name: Text<'a>,
    #[serde(borrow, default)]
    user_display_name: Text<'a>,
    #[serde(borrow, default)]
    start_date_time: Text<'a>,
    #[serde(borrow, default)]
    end_date_time: Text<'a>,
    #[serde(default)]
    duration: Num,
    #[serde(borrow, default)]
    call_type: Text<'a>,
    #[serde(borrow, default)]
    caller_number: Text<'a>,
    #[serde(borrow, default)]
    callee_number: Text<'a>,
    #[serde(default)]
    charge: Num,
    #[serde(default)]
    connection_charge: Num,
    #[serde(borrow, default)]
    currency: Text<'a>,
    #[serde(borrow, default)]
    destination_context: Text<'a>,
    #[serde(borrow, default)]
    destination_name: Text<'a>,
    #[serde(borrow, default)]
    usage_country_code: Text<'a>,
    #[serde(borrow, default)]
    tenant_country_code: Text<'a>,
    #[serde(borrow, default)]
    license_capability: Text<'a>,
    #[serde(borrow, default)]
    inventory_type: Text<'a>,
    #[serde(borrow, default)]
    operator: Text<'a>,
    #[serde(borrow, default)]
    call_duration_source: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectRoutingEntry<'a> {
    #[serde(borrow, default)]
    id: Text<'a>,
    #[serde(borrow, default)]
    correlation_id: Text<'a>,
    #[serde(borrow, default)]
    user_id: Text<'a>,
    #[serde(borrow, default)]
    user_principal_name: Text<'a>,
    #[serde(borrow, default)]
    user_display_name: Text<'a>,
    #[serde(borrow, default)]
    start_date_time: Text<'a>,
    #[serde(borrow, default)]
    invite_date_time: Text<'a>,
    #[serde(borrow, default)]
    failure_date_time: Text<'a>,
    #[serde(borrow, default)]
    end_date_time: Text<'a>,
    #[serde(default)]
    duration: Num,
    #[serde(borrow, default)]
    call_type: Text<'a>,
    #[serde(default)]
    successful_call: Flag,
    #[serde(borrow, default)]
    caller_number: Text<'a>,
    #[serde(borrow, default)]
    callee_number: Text<'a>,
    #[serde(borrow, default)]
    media_path_location: Text<'a>,
    #[serde(borrow, default)]
    signaling_location: Text<'a>,
    #[serde(default)]
    final_sip_code: Num,
    #[serde(default)]
    call_end_sub_reason: Num,
    #[serde(borrow, default)]
    final_sip_code_phrase: Text<'a>,
    #[serde(borrow, default)]
    trunk_fully_qualified_domain_name: Text<'a>,
    #[serde(default)]
    media_bypass_enabled: Flag,
}

/// `inbound` / `outbound` from a PSTN call type: Graph ends them with `_in` or `_out`
/// (`user_in`, `conf_out`, `user_out_transfer`: the direction is the part after the kind).
fn pstn_direction(call_type: Option<&str>) -> Option<Cow<'static, str>> {
    let parts: Vec<String> = call_type?.split('_').map(str::to_ascii_lowercase).collect();
    match parts.get(1).map(String::as_str) {
        Some("in") => Some(Cow::Borrowed("inbound")),
        Some("out") => Some(Cow::Borrowed("outbound")),
        _ => None,
    }
}

/// `inbound` / `outbound` from a Direct Routing call type (`ByotIn`, `ByotOutUserForwarding`, ...).
fn direct_routing_direction(call_type: Option<&str>) -> Option<Cow<'static, str>> {
    let t = call_type?.to_ascii_lowercase();
    let rest = t.strip_prefix("byot")?;
    if rest.starts_with("out") {
        Some(Cow::Borrowed("outbound"))
    } else if rest.starts_with("in") {
        Some(Cow::Borrowed("inbound"))
    } else {
        None
    }
}

/// A timestamp, with .NET's `DateTime.MinValue` (`0001-01-01T00:00:00Z`, which Direct Routing
/// sends for "none") as absent.
fn real_ts<'a>(t: &Text<'a>) -> Option<Cow<'a, str>> {
    ts(t).filter(|s| !s.starts_with("0001-01-01"))
}

fn key(log: PstnLog, id: Option<&str>, start: Option<&str>, item: &Value) -> String {
    let id = match id {
        Some(id) => id.to_string(),
        None => {
            let digest = Sha256::digest(item.to_string().as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256-{hex}")
        }
    };
    format!("{}:{id}@{}", log.name(), start.unwrap_or_default())
}

fn row_json<T: serde::Serialize>(row: &T) -> Result<String> {
    serde_json::to_string(row).map_err(|e| Error::json("log row", e))
}

/// One log entry (a JSON object) as a row of the log's table, with its key.
pub fn log_row(log: PstnLog, item: &Value) -> Result<LogRow> {
    let what = log.function();
    if !item.is_object() {
        return Err(Error::InvalidJson(format!("{what}: an entry of value is not an object")));
    }
    match log {
        PstnLog::Pstn => {
            let e = PstnEntry::deserialize(item).map_err(|e| Error::json(what, e))?;
            let start = ts(&e.start_date_time);
            let call_type = text(&e.call_type);
            let row = PstnCallRow {
                time_generated: start.clone(),
                id: text(&e.id),
                call_id: text(&e.call_id),
                conference_id: text(&e.conference_id),
                user_id: text(&e.user_id),
                upn: text(&e.user_principal_name),
                user_display_name: text(&e.user_display_name),
                start_time: start.clone(),
                end_time: ts(&e.end_date_time),
                duration_seconds: e.duration.int(),
                direction: pstn_direction(call_type.as_deref()),
                call_type,
                caller_number: text(&e.caller_number),
                callee_number: text(&e.callee_number),
                charge: e.charge.0,
                connection_charge: e.connection_charge.0,
                currency: text(&e.currency),
                destination_context: text(&e.destination_context),
                destination_name: text(&e.destination_name),
                usage_country_code: text(&e.usage_country_code),
                tenant_country_code: text(&e.tenant_country_code),
                license_capability: text(&e.license_capability),
                inventory_type: text(&e.inventory_type),
                operator: text(&e.operator),
                call_duration_source: text(&e.call_duration_source),
            };
            Ok(LogRow { key: key(log, e.id.get().map(|s| &**s), start.as_deref(), item), row: row_json(&row)? })
        }
        PstnLog::DirectRouting => {
            let e = DirectRoutingEntry::deserialize(item).map_err(|e| Error::json(what, e))?;
            let start = real_ts(&e.start_date_time);
            let call_type = text(&e.call_type);
            let row = DirectRoutingCallRow {
                time_generated: start.clone(),
                id: text(&e.id),
                correlation_id: text(&e.correlation_id),
                user_id: text(&e.user_id),
                upn: text(&e.user_principal_name),
                user_display_name: text(&e.user_display_name),
                start_time: start.clone(),
                invite_time: real_ts(&e.invite_date_time),
                failure_time: real_ts(&e.failure_date_time),
                end_time: real_ts(&e.end_date_time),
                duration_seconds: e.duration.int(),
                direction: direct_routing_direction(call_type.as_deref()),
                call_type,
                successful_call: e.successful_call.0,
                caller_number: text(&e.caller_number),
                callee_number: text(&e.callee_number),
                media_path_location: text(&e.media_path_location),
                signaling_location: text(&e.signaling_location),
                final_sip_code: e.final_sip_code.int(),
                call_end_sub_reason: e.call_end_sub_reason.int(),
                final_sip_code_phrase: text(&e.final_sip_code_phrase),
                trunk_fqdn: text(&e.trunk_fully_qualified_domain_name),
                media_bypass_enabled: e.media_bypass_enabled.0,
            };
            Ok(LogRow { key: key(log, e.id.get().map(|s| &**s), start.as_deref(), item), row: row_json(&row)? })
        }
    }
}

/// A page of `getPstnCalls` or `getDirectRoutingCalls`: its rows and its next link. An answer
/// without a `value` list, or with an entry that is not an object, is refused whole.
pub fn log_page(log: PstnLog, body: &str) -> Result<LogPage> {
    #[derive(Deserialize)]
    struct Page {
        value: Vec<Value>,
        #[serde(rename = "@odata.nextLink", default)]
        next_link: Option<String>,
    }
    let what = log.function();
    let page: Page = crate::values::from_json(body.as_bytes()).map_err(|e| Error::json(what, e))?;
    let rows = page.value.iter().map(|item| log_row(log, item)).collect::<Result<Vec<_>>>()?;
    Ok(LogPage { rows, next_link: page.next_link.filter(|l| !l.is_empty()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_come_from_the_call_type() {
        assert_eq!(pstn_direction(Some("user_in")).as_deref(), Some("inbound"));
        assert_eq!(pstn_direction(Some("conf_out")).as_deref(), Some("outbound"));
        assert_eq!(pstn_direction(Some("user_out_transfer")).as_deref(), Some("outbound"));
        assert_eq!(pstn_direction(Some("emergency")), None);
        assert_eq!(direct_routing_direction(Some("ByotIn")).as_deref(), Some("inbound"));
        assert_eq!(direct_routing_direction(Some("ByotOutUserForwarding")).as_deref(), Some("outbound"));
        assert_eq!(direct_routing_direction(Some("Other")), None);
    }
}
