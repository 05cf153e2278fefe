//! One row of the leg, stream and participant tables from its part of the record.

use std::borrow::Cow;

use super::Ctx;
use super::identity::{Who, endpoint_type, endpoint_who};
use super::record::{IdentitySet, Media, Network, Segment, Session, Stream, ms, string_list, text, ts};
use crate::schema::{LegRow, ParticipantRow, StreamRow};
use crate::values::duration_between_ms;

/// One leg row: a segment, or a session that has no segments.
pub(super) fn leg_row<'a>(ctx: &Ctx<'a>, session: &Session<'a>, segment: Option<&Segment<'a>>) -> LegRow<'a> {
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
pub(super) fn stream_row<'a>(ctx: &Ctx<'a>, leg: &LegRow<'a>, media: &Media<'a>, s: &Stream<'a>) -> StreamRow<'a> {
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
pub(super) fn participant_row<'a>(
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

/// The first network of a side that has an address (media entries often repeat it), else the
/// first that says anything at all: real exports send `""` for every address and still give the
/// port and connection type.
fn first_network<'m, 'a>(
    media: &'m [Media<'a>],
    side: impl Fn(&'m Media<'a>) -> Option<&'m Network<'a>>,
) -> Option<&'m Network<'a>> {
    let has_address = |n: &&Network| n.ip_address.get().is_some() || n.reflexive_ip_address.get().is_some();
    let says_anything = |n: &&Network| {
        has_address(n)
            || n.relay_ip_address.get().is_some()
            || n.subnet.get().is_some()
            || n.port.int().is_some()
            || n.connection_type.get().is_some()
    };
    media.iter().filter_map(&side).find(has_address).or_else(|| media.iter().filter_map(&side).find(says_anything))
}
