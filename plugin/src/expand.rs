//! callRecord JSON -> typed rows.
//!
//! The input is read with borrowed, lenient structs: unknown fields are skipped, unknown enum
//! values are kept as text, scalars of the wrong type (a double sent as `"NaN"`) become `null`,
//! and `_v2` identities win over the deprecated ones, which stay as the fallback.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::schema::{self, CallRow, LegRow, ParticipantRow, SeedRow, StreamRow, Table};
use crate::values::{Flag, List, Num, Obj, Text, duration_between_ms, normalize_timestamp, parse_duration_ms};

/// The rows of one table, each a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRows {
    /// The table.
    pub table: &'static Table,
    /// Its rows.
    pub rows: Vec<String>,
}

// ---- input model ------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Record<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    version: Num,
    #[serde(rename = "type", borrow)]
    call_type: Text<'a>,
    #[serde(borrow)]
    modalities: List<Text<'a>>,
    #[serde(borrow)]
    start_date_time: Text<'a>,
    #[serde(borrow)]
    end_date_time: Text<'a>,
    #[serde(borrow)]
    last_modified_date_time: Text<'a>,
    #[serde(borrow)]
    join_web_url: Text<'a>,
    #[serde(rename = "organizer_v2", borrow)]
    organizer_v2: Obj<Participant<'a>>,
    #[serde(borrow)]
    organizer: Obj<IdentitySet<'a>>,
    #[serde(rename = "participants_v2", borrow)]
    participants_v2: List<Participant<'a>>,
    #[serde(borrow)]
    participants: List<IdentitySet<'a>>,
    #[serde(borrow)]
    sessions: List<Session<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Participant<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    identity: Obj<IdentitySet<'a>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default, rename_all = "camelCase")]
struct Identity<'a> {
    #[serde(rename = "@odata.type", borrow)]
    odata_type: Text<'a>,
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    display_name: Text<'a>,
    #[serde(borrow)]
    tenant_id: Text<'a>,
    #[serde(borrow)]
    user_principal_name: Text<'a>,
}

/// An identitySet: keys name the kind (`user`, `phone`, `guest`, undocumented ones such as
/// `acsUser` or `spoolUser`), values are identities or null; `endpointType` is a string.
#[derive(Default)]
struct IdentitySet<'a> {
    entries: Vec<(Cow<'a, str>, Identity<'a>)>,
    endpoint_type: Text<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for IdentitySet<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdentitySet<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an identitySet object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Self::Value, A::Error> {
                let mut set = IdentitySet::default();
                while let Some(Text(key)) = m.next_key::<Text<'de>>()? {
                    let key = key.unwrap_or_default();
                    if key == "endpointType" {
                        set.endpoint_type = m.next_value()?;
                    } else if key.starts_with('@') {
                        m.next_value::<IgnoredAny>()?;
                    } else if let Obj(Some(identity)) = m.next_value::<Obj<Identity<'de>>>()? {
                        set.entries.push((key, identity));
                    }
                }
                Ok(set)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Endpoint<'a> {
    #[serde(rename = "@odata.type", borrow)]
    odata_type: Text<'a>,
    #[serde(borrow)]
    associated_identity: Obj<Identity<'a>>,
    #[serde(borrow)]
    identity: Obj<IdentitySet<'a>>,
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(borrow)]
    user_agent: Obj<UserAgent<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct UserAgent<'a> {
    #[serde(borrow)]
    header_value: Text<'a>,
    #[serde(borrow)]
    platform: Text<'a>,
    #[serde(borrow)]
    product_family: Text<'a>,
    #[serde(borrow)]
    application_version: Text<'a>,
    #[serde(borrow)]
    role: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FailureInfo<'a> {
    #[serde(borrow)]
    stage: Text<'a>,
    #[serde(borrow)]
    reason: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Session<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    modalities: List<Text<'a>>,
    #[serde(borrow)]
    start_date_time: Text<'a>,
    #[serde(borrow)]
    end_date_time: Text<'a>,
    is_test: Flag,
    #[serde(borrow)]
    caller: Obj<Endpoint<'a>>,
    #[serde(borrow)]
    callee: Obj<Endpoint<'a>>,
    #[serde(borrow)]
    failure_info: Obj<FailureInfo<'a>>,
    #[serde(borrow)]
    segments: List<Segment<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Segment<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    start_date_time: Text<'a>,
    #[serde(borrow)]
    end_date_time: Text<'a>,
    #[serde(borrow)]
    caller: Obj<Endpoint<'a>>,
    #[serde(borrow)]
    callee: Obj<Endpoint<'a>>,
    #[serde(borrow)]
    failure_info: Obj<FailureInfo<'a>>,
    #[serde(borrow)]
    media: List<Media<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Media<'a> {
    #[serde(borrow)]
    label: Text<'a>,
    #[serde(borrow)]
    caller_network: Obj<Network<'a>>,
    #[serde(borrow)]
    callee_network: Obj<Network<'a>>,
    #[serde(borrow)]
    streams: List<Stream<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Network<'a> {
    #[serde(borrow)]
    ip_address: Text<'a>,
    #[serde(rename = "reflexiveIPAddress", borrow)]
    reflexive_ip_address: Text<'a>,
    #[serde(rename = "relayIPAddress", borrow)]
    relay_ip_address: Text<'a>,
    #[serde(borrow)]
    subnet: Text<'a>,
    port: Num,
    #[serde(borrow)]
    connection_type: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Stream<'a> {
    #[serde(borrow)]
    stream_id: Text<'a>,
    #[serde(borrow)]
    stream_direction: Text<'a>,
    #[serde(borrow)]
    audio_codec: Text<'a>,
    #[serde(borrow)]
    video_codec: Text<'a>,
    #[serde(borrow)]
    start_date_time: Text<'a>,
    #[serde(borrow)]
    end_date_time: Text<'a>,
    #[serde(borrow)]
    average_jitter: Text<'a>,
    #[serde(borrow)]
    max_jitter: Text<'a>,
    #[serde(borrow)]
    average_audio_network_jitter: Text<'a>,
    #[serde(borrow)]
    max_audio_network_jitter: Text<'a>,
    #[serde(borrow)]
    average_round_trip_time: Text<'a>,
    #[serde(borrow)]
    max_round_trip_time: Text<'a>,
    average_packet_loss_rate: Num,
    max_packet_loss_rate: Num,
    average_audio_degradation: Num,
    average_bandwidth_estimate: Num,
    packet_utilization: Num,
    average_ratio_of_concealed_samples: Num,
    max_ratio_of_concealed_samples: Num,
    average_video_frame_rate: Num,
    average_received_frame_rate: Num,
    average_video_frame_loss_percentage: Num,
    average_video_packet_loss_rate: Num,
    #[serde(borrow)]
    average_freeze_duration: Text<'a>,
    #[serde(borrow)]
    rms_freeze_duration: Text<'a>,
    low_frame_rate_ratio: Num,
    low_video_processing_capability_ratio: Num,
    post_forward_error_correction_packet_loss_rate: Num,
    is_audio_forward_error_correction_used: Flag,
    was_media_bypassed: Flag,
}

// ---- resolved values --------------------------------------------------------------------------

/// Identity-set keys in the order a primary identity is chosen.
const IDENTITY_PRIORITY: &[&str] = &[
    "user",
    "guest",
    "acsUser",
    "azureCommunicationServicesUser",
    "spoolUser",
    "phone",
    "applicationInstance",
    "application",
    "onPremises",
    "encrypted",
    "device",
];

/// An identity resolved for a row.
#[derive(Default, Clone)]
struct Who<'a> {
    kind: Option<Cow<'a, str>>,
    id: Option<Cow<'a, str>>,
    display_name: Option<Cow<'a, str>>,
    upn: Option<Cow<'a, str>>,
    tenant_id: Option<Cow<'a, str>>,
}

impl<'a> Who<'a> {
    fn from_identity(kind: Option<Cow<'a, str>>, i: &Identity<'a>) -> Self {
        Who {
            kind,
            id: i.id.get().cloned(),
            display_name: i.display_name.get().cloned(),
            upn: i.user_principal_name.get().cloned(),
            tenant_id: i.tenant_id.get().cloned(),
        }
    }

    /// `associatedIdentity` (v2): the kind comes from `@odata.type`.
    fn from_typed(i: &Identity<'a>) -> Self {
        Self::from_identity(i.odata_type.get().and_then(|t| identity_kind(t)).map(Cow::Owned), i)
    }

    /// The primary identity of an identitySet.
    fn from_set(set: &IdentitySet<'a>) -> Option<Self> {
        let usable = |i: &Identity| i.id.get().is_some() || i.display_name.get().is_some();
        IDENTITY_PRIORITY
            .iter()
            .find_map(|k| set.entries.iter().find(|(key, i)| key == k && usable(i)))
            .or_else(|| set.entries.iter().find(|(_, i)| usable(i)))
            .map(|(k, i)| Self::from_identity(Some(k.clone()), i))
    }

    fn is_empty(&self) -> bool {
        self.id.is_none() && self.display_name.is_none()
    }
}

/// `#microsoft.graph.communicationsUserIdentity` -> `user`; `...azureCommunicationServicesUserIdentity`
/// -> `azureCommunicationServicesUser`; a plain `identity` says nothing.
fn identity_kind(odata_type: &str) -> Option<String> {
    let t = odata_type.trim_start_matches('#');
    let t = match t.get(..16) {
        Some(p) if p.eq_ignore_ascii_case("microsoft.graph.") => &t[16..],
        _ => t,
    };
    let t = t.strip_prefix("communications").unwrap_or(t);
    let t = t.strip_suffix("Identity").unwrap_or(t);
    let mut chars = t.chars();
    let first = chars.next()?;
    let kind: String = std::iter::once(first.to_ascii_lowercase()).chain(chars).collect();
    (kind != "identity" && !kind.is_empty()).then_some(kind)
}

/// The identity of an endpoint: `associatedIdentity` first, the deprecated `identity` after.
fn endpoint_who<'a>(e: &Endpoint<'a>) -> Who<'a> {
    if let Obj(Some(i)) = &e.associated_identity {
        let who = Who::from_typed(i);
        if !who.is_empty() {
            return who;
        }
    }
    e.identity.0.as_ref().and_then(Who::from_set).unwrap_or_default()
}

fn endpoint_type<'a>(e: &Endpoint<'a>) -> Option<Cow<'a, str>> {
    match e.odata_type.get() {
        Some(t) if ends_with_ci(t, "participantEndpoint") => Some(Cow::Borrowed("participant")),
        Some(t) if ends_with_ci(t, "serviceEndpoint") => Some(Cow::Borrowed("service")),
        Some(t) => Some(t.clone()),
        None if e.associated_identity.0.is_some() || e.identity.0.is_some() => Some(Cow::Borrowed("participant")),
        None => None,
    }
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.is_char_boundary(s.len() - suffix.len())
        && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

fn text<'a>(t: &Text<'a>) -> Option<Cow<'a, str>> {
    t.get().cloned()
}

fn ts<'a>(t: &Text<'a>) -> Option<Cow<'a, str>> {
    t.get().and_then(normalize_timestamp)
}

fn ms(t: &Text) -> Option<f64> {
    t.get().and_then(|s| parse_duration_ms(s))
}

fn string_list(items: &[Text]) -> Option<Value> {
    Some(Value::Array(items.iter().filter_map(|t| t.get()).map(|s| Value::String(s.to_string())).collect()))
}

/// Parse a callRecord, mapping serde's message to an actionable one.
fn parse_record(call_record: &str) -> Result<Record<'_>> {
    if !call_record.trim_start().starts_with('{') {
        return Err(Error::InvalidJson("a callRecord must be a JSON object".into()));
    }
    let record: Record = serde_json::from_str(call_record).map_err(|e| Error::json("callRecord", e))?;
    if record.id.get().is_none() {
        return Err(Error::InvalidJson("callRecord has no id: is this a callRecord answer from Graph?".into()));
    }
    Ok(record)
}

// ---- expansion --------------------------------------------------------------------------------

/// Expand one callRecord (merged with all its pages) into rows of the call, leg, stream and
/// participant tables, in that order.
pub fn expand(call_record: &str) -> Result<Vec<TableRows>> {
    let record = parse_record(call_record)?;
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
        rows(&schema::CALL, std::slice::from_ref(&call))?,
        rows(&schema::LEG, &legs)?,
        rows(&schema::STREAM, &streams)?,
        rows(&schema::PARTICIPANT, &participants)?,
    ])
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

/// One leg row: a segment, or a session that has no segments.
fn leg_row<'a>(ctx: &Ctx<'a>, session: &Session<'a>, segment: Option<&Segment<'a>>) -> LegRow<'a> {
    let mut leg = LegRow {
        call_id: ctx.call_id.clone(),
        call_version: ctx.version,
        session_id: text(&session.id),
        modalities: string_list(&session.modalities.0),
        is_test: session.is_test.0,
        ..Default::default()
    };
    let (start, end, failure, caller, callee) = match segment {
        Some(s) => (
            &s.start_date_time,
            &s.end_date_time,
            s.failure_info.0.as_ref().or(session.failure_info.0.as_ref()),
            s.caller.0.as_ref().or(session.caller.0.as_ref()),
            s.callee.0.as_ref().or(session.callee.0.as_ref()),
        ),
        None => (
            &session.start_date_time,
            &session.end_date_time,
            session.failure_info.0.as_ref(),
            session.caller.0.as_ref(),
            session.callee.0.as_ref(),
        ),
    };
    leg.segment_id = segment.and_then(|s| text(&s.id));
    leg.start_time = ts(start);
    leg.end_time = ts(end);
    leg.time_generated =
        leg.start_time.clone().or_else(|| ts(&session.start_date_time)).or_else(|| ctx.call_start.clone());
    leg.duration_ms = duration_between_ms(start.get().map(|s| &**s), end.get().map(|s| &**s));
    if let Some(f) = failure {
        leg.failure_stage = text(&f.stage);
        leg.failure_reason = text(&f.reason);
    }
    if let Some(e) = caller {
        let who = endpoint_who(e);
        let ua = e.user_agent.0.as_ref();
        leg.caller_endpoint_type = endpoint_type(e);
        leg.caller_identity_type = who.kind;
        leg.caller_id = who.id;
        leg.caller_display_name = who.display_name;
        leg.caller_upn = who.upn;
        leg.caller_tenant_id = who.tenant_id;
        leg.caller_device_name = text(&e.name);
        leg.caller_platform = ua.and_then(|u| text(&u.platform));
        leg.caller_product_family = ua.and_then(|u| text(&u.product_family));
        leg.caller_user_agent = ua.and_then(|u| text(&u.header_value));
        leg.caller_app_version = ua.and_then(|u| text(&u.application_version));
        leg.caller_service_role = ua.and_then(|u| text(&u.role));
    }
    if let Some(e) = callee {
        let who = endpoint_who(e);
        let ua = e.user_agent.0.as_ref();
        leg.callee_endpoint_type = endpoint_type(e);
        leg.callee_identity_type = who.kind;
        leg.callee_id = who.id;
        leg.callee_display_name = who.display_name;
        leg.callee_upn = who.upn;
        leg.callee_tenant_id = who.tenant_id;
        leg.callee_device_name = text(&e.name);
        leg.callee_platform = ua.and_then(|u| text(&u.platform));
        leg.callee_product_family = ua.and_then(|u| text(&u.product_family));
        leg.callee_user_agent = ua.and_then(|u| text(&u.header_value));
        leg.callee_app_version = ua.and_then(|u| text(&u.application_version));
        leg.callee_service_role = ua.and_then(|u| text(&u.role));
    }
    if let Some(s) = segment {
        if let Some(n) = first_network(&s.media.0, |m| m.caller_network.0.as_ref()) {
            leg.caller_ip = text(&n.ip_address);
            leg.caller_reflexive_ip = text(&n.reflexive_ip_address);
            leg.caller_relay_ip = text(&n.relay_ip_address);
            leg.caller_subnet = text(&n.subnet);
            leg.caller_port = n.port.int();
            leg.caller_connection_type = text(&n.connection_type);
        }
        if let Some(n) = first_network(&s.media.0, |m| m.callee_network.0.as_ref()) {
            leg.callee_ip = text(&n.ip_address);
            leg.callee_reflexive_ip = text(&n.reflexive_ip_address);
            leg.callee_relay_ip = text(&n.relay_ip_address);
            leg.callee_subnet = text(&n.subnet);
            leg.callee_port = n.port.int();
            leg.callee_connection_type = text(&n.connection_type);
        }
    }
    leg
}

/// One stream row: a media stream of a segment, with the segment's ids and that media's networks.
fn stream_row<'a>(ctx: &Ctx<'a>, leg: &LegRow<'a>, media: &Media<'a>, s: &Stream<'a>) -> StreamRow<'a> {
    let caller_net = media.caller_network.0.as_ref();
    let callee_net = media.callee_network.0.as_ref();
    StreamRow {
        time_generated: ts(&s.start_date_time).or_else(|| leg.start_time.clone()),
        call_id: ctx.call_id.clone(),
        call_version: ctx.version,
        session_id: leg.session_id.clone(),
        segment_id: leg.segment_id.clone(),
        media_label: text(&media.label),
        stream_id: text(&s.stream_id),
        stream_direction: text(&s.stream_direction),
        audio_codec: text(&s.audio_codec),
        video_codec: text(&s.video_codec),
        start_time: ts(&s.start_date_time),
        end_time: ts(&s.end_date_time),
        avg_jitter: ms(&s.average_jitter),
        max_jitter: ms(&s.max_jitter),
        avg_audio_jitter: ms(&s.average_audio_network_jitter),
        max_audio_jitter: ms(&s.max_audio_network_jitter),
        avg_rtt: ms(&s.average_round_trip_time),
        max_rtt: ms(&s.max_round_trip_time),
        avg_loss: s.average_packet_loss_rate.0,
        max_loss: s.max_packet_loss_rate.0,
        avg_degradation: s.average_audio_degradation.0,
        avg_bandwidth: s.average_bandwidth_estimate.int(),
        packets: s.packet_utilization.int(),
        avg_concealed: s.average_ratio_of_concealed_samples.0,
        max_concealed: s.max_ratio_of_concealed_samples.0,
        avg_frame_rate: s.average_video_frame_rate.0,
        avg_received_frame_rate: s.average_received_frame_rate.0,
        avg_frame_loss: s.average_video_frame_loss_percentage.0,
        avg_video_loss: s.average_video_packet_loss_rate.0,
        avg_freeze: ms(&s.average_freeze_duration),
        rms_freeze: ms(&s.rms_freeze_duration),
        low_frame_rate: s.low_frame_rate_ratio.0,
        low_processing: s.low_video_processing_capability_ratio.0,
        post_fec_loss: s.post_forward_error_correction_packet_loss_rate.0,
        fec_used: s.is_audio_forward_error_correction_used.0,
        media_bypassed: s.was_media_bypassed.0,
        caller_ip: caller_net.and_then(|n| text(&n.ip_address)),
        caller_reflexive_ip: caller_net.and_then(|n| text(&n.reflexive_ip_address)),
        caller_connection_type: caller_net.and_then(|n| text(&n.connection_type)),
        callee_ip: callee_net.and_then(|n| text(&n.ip_address)),
        callee_reflexive_ip: callee_net.and_then(|n| text(&n.reflexive_ip_address)),
        callee_connection_type: callee_net.and_then(|n| text(&n.connection_type)),
    }
}

/// One participant row from an identitySet.
fn participant_row<'a>(
    ctx: &Ctx<'a>,
    role: &'static str,
    id: Option<Cow<'a, str>>,
    set: Option<&IdentitySet<'a>>,
    source: &'static str,
) -> ParticipantRow<'a> {
    let who = set.and_then(Who::from_set).unwrap_or_default();
    ParticipantRow {
        time_generated: ctx.call_start.clone(),
        call_id: ctx.call_id.clone(),
        call_version: ctx.version,
        role: Some(role.into()),
        participant_id: id.or_else(|| who.id.clone()),
        identity_type: who.kind,
        user_id: who.id,
        display_name: who.display_name,
        upn: who.upn,
        participant_tenant_id: who.tenant_id,
        endpoint_type: set.and_then(|s| text(&s.endpoint_type)),
        source: Some(source.into()),
    }
}

/// The first network of a side that has an address: media entries often repeat it.
fn first_network<'m, 'a>(
    media: &'m [Media<'a>],
    side: impl Fn(&'m Media<'a>) -> Option<&'m Network<'a>>,
) -> Option<&'m Network<'a>> {
    media.iter().filter_map(side).find(|n| n.ip_address.get().is_some() || n.reflexive_ip_address.get().is_some())
}

fn rows<T: serde::Serialize>(table: &'static Table, items: &[T]) -> Result<TableRows> {
    let rows = items
        .iter()
        .map(|r| serde_json::to_string(r).map_err(|e| Error::json(table.name, e)))
        .collect::<Result<_>>()?;
    Ok(TableRows { table, rows })
}

// ---- seed-compatible row ----------------------------------------------------------------------

/// The one `TEAMSGraphCallRecords_CL` row of the 2020 setup: scalars as they are, the organizer
/// flattened with `_` (organizer_v2 fills it when the deprecated organizer is empty), participants
/// and sessions as JSON strings.
pub fn seed_row(call_record: &str) -> Result<String> {
    let record = parse_record(call_record)?;
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
