//! The callRecord as Graph sends it, read with borrowed, lenient structs: unknown fields are
//! skipped, unknown enum values are kept as text, scalars of the wrong type become `null`; and the
//! readers that turn its values into column values.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::values::{Flag, List, Num, Obj, Objects, Text, normalize_timestamp, parse_duration_ms};

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Record<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    pub(super) version: Num,
    #[serde(rename = "type", borrow)]
    pub(super) call_type: Text<'a>,
    #[serde(borrow)]
    pub(super) modalities: List<Text<'a>>,
    #[serde(borrow)]
    pub(super) start_date_time: Text<'a>,
    #[serde(borrow)]
    pub(super) end_date_time: Text<'a>,
    #[serde(borrow)]
    pub(super) last_modified_date_time: Text<'a>,
    #[serde(borrow)]
    pub(super) join_web_url: Text<'a>,
    #[serde(rename = "organizer_v2", borrow)]
    pub(super) organizer_v2: Obj<Participant<'a>>,
    #[serde(borrow)]
    pub(super) organizer: Obj<IdentitySet<'a>>,
    #[serde(rename = "participants_v2", borrow)]
    pub(super) participants_v2: Objects<Participant<'a>>,
    #[serde(borrow)]
    pub(super) participants: Objects<IdentitySet<'a>>,
    #[serde(borrow)]
    pub(super) sessions: Objects<Session<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Participant<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) identity: Obj<IdentitySet<'a>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Identity<'a> {
    #[serde(rename = "@odata.type", borrow)]
    pub(super) odata_type: Text<'a>,
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) display_name: Text<'a>,
    #[serde(borrow)]
    pub(super) tenant_id: Text<'a>,
    #[serde(borrow)]
    pub(super) user_principal_name: Text<'a>,
}

/// An identitySet: keys name the kind (`user`, `phone`, `guest`, undocumented ones such as
/// `acsUser` or `spoolUser`), values are identities or null; `endpointType` is a string.
#[derive(Default)]
pub(super) struct IdentitySet<'a> {
    pub(super) entries: Vec<(Cow<'a, str>, Identity<'a>)>,
    pub(super) endpoint_type: Text<'a>,
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
pub(super) struct Endpoint<'a> {
    #[serde(rename = "@odata.type", borrow)]
    pub(super) odata_type: Text<'a>,
    #[serde(borrow)]
    pub(super) associated_identity: Obj<Identity<'a>>,
    #[serde(borrow)]
    pub(super) identity: Obj<IdentitySet<'a>>,
    #[serde(borrow)]
    pub(super) name: Text<'a>,
    #[serde(borrow)]
    pub(super) user_agent: Obj<UserAgent<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct UserAgent<'a> {
    #[serde(borrow)]
    pub(super) header_value: Text<'a>,
    #[serde(borrow)]
    pub(super) platform: Text<'a>,
    #[serde(borrow)]
    pub(super) product_family: Text<'a>,
    #[serde(borrow)]
    pub(super) application_version: Text<'a>,
    #[serde(borrow)]
    pub(super) role: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct FailureInfo<'a> {
    #[serde(borrow)]
    pub(super) stage: Text<'a>,
    #[serde(borrow)]
    pub(super) reason: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Session<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) modalities: List<Text<'a>>,
    #[serde(borrow)]
    pub(super) start_date_time: Text<'a>,
    #[serde(borrow)]
    pub(super) end_date_time: Text<'a>,
    pub(super) is_test: Flag,
    #[serde(borrow)]
    pub(super) caller: Obj<Endpoint<'a>>,
    #[serde(borrow)]
    pub(super) callee: Obj<Endpoint<'a>>,
    #[serde(borrow)]
    pub(super) failure_info: Obj<FailureInfo<'a>>,
    #[serde(borrow)]
    pub(super) segments: Objects<Segment<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Segment<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) start_date_time: Text<'a>,
    #[serde(borrow)]
    pub(super) end_date_time: Text<'a>,
    #[serde(borrow)]
    pub(super) caller: Obj<Endpoint<'a>>,
    #[serde(borrow)]
    pub(super) callee: Obj<Endpoint<'a>>,
    #[serde(borrow)]
    pub(super) failure_info: Obj<FailureInfo<'a>>,
    #[serde(borrow)]
    pub(super) media: Objects<Media<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Media<'a> {
    #[serde(borrow)]
    pub(super) label: Text<'a>,
    #[serde(borrow)]
    pub(super) caller_network: Obj<Network<'a>>,
    #[serde(borrow)]
    pub(super) callee_network: Obj<Network<'a>>,
    #[serde(borrow)]
    pub(super) streams: Objects<Stream<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Network<'a> {
    #[serde(borrow)]
    pub(super) ip_address: Text<'a>,
    #[serde(rename = "reflexiveIPAddress", borrow)]
    pub(super) reflexive_ip_address: Text<'a>,
    #[serde(rename = "relayIPAddress", borrow)]
    pub(super) relay_ip_address: Text<'a>,
    #[serde(borrow)]
    pub(super) subnet: Text<'a>,
    pub(super) port: Num,
    #[serde(borrow)]
    pub(super) connection_type: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Stream<'a> {
    #[serde(borrow)]
    pub(super) stream_id: Text<'a>,
    #[serde(borrow)]
    pub(super) stream_direction: Text<'a>,
    #[serde(borrow)]
    pub(super) audio_codec: Text<'a>,
    #[serde(borrow)]
    pub(super) video_codec: Text<'a>,
    #[serde(borrow)]
    pub(super) start_date_time: Text<'a>,
    #[serde(borrow)]
    pub(super) end_date_time: Text<'a>,
    #[serde(borrow)]
    pub(super) average_jitter: Text<'a>,
    #[serde(borrow)]
    pub(super) max_jitter: Text<'a>,
    #[serde(borrow)]
    pub(super) average_audio_network_jitter: Text<'a>,
    #[serde(borrow)]
    pub(super) max_audio_network_jitter: Text<'a>,
    #[serde(borrow)]
    pub(super) average_round_trip_time: Text<'a>,
    #[serde(borrow)]
    pub(super) max_round_trip_time: Text<'a>,
    pub(super) average_packet_loss_rate: Num,
    pub(super) max_packet_loss_rate: Num,
    pub(super) average_audio_degradation: Num,
    pub(super) average_bandwidth_estimate: Num,
    pub(super) packet_utilization: Num,
    pub(super) average_ratio_of_concealed_samples: Num,
    pub(super) max_ratio_of_concealed_samples: Num,
    pub(super) average_video_frame_rate: Num,
    pub(super) average_received_frame_rate: Num,
    pub(super) average_video_frame_loss_percentage: Num,
    pub(super) average_video_packet_loss_rate: Num,
    #[serde(borrow)]
    pub(super) average_freeze_duration: Text<'a>,
    #[serde(borrow)]
    pub(super) rms_freeze_duration: Text<'a>,
    pub(super) low_frame_rate_ratio: Num,
    pub(super) low_video_processing_capability_ratio: Num,
    pub(super) post_forward_error_correction_packet_loss_rate: Num,
    pub(super) is_audio_forward_error_correction_used: Flag,
    pub(super) was_media_bypassed: Flag,
}

pub(super) fn text<'a>(t: &Text<'a>) -> Option<Cow<'a, str>> {
    t.get().cloned()
}

pub(super) fn ts<'a>(t: &Text<'a>) -> Option<Cow<'a, str>> {
    t.get().and_then(normalize_timestamp)
}

pub(super) fn ms(t: &Text) -> Option<f64> {
    t.get().and_then(|s| parse_duration_ms(s))
}

pub(super) fn string_list(items: &[Text]) -> Option<Value> {
    Some(Value::Array(items.iter().filter_map(|t| t.get()).map(|s| Value::String(s.to_string())).collect()))
}

/// Parse a callRecord, mapping serde's message to an actionable one. A record with repeated keys
/// is read from its folded text ([`crate::values::fold_repeated_keys`]), kept in `folded`.
pub(super) fn parse_record<'a>(call_record: &'a str, folded: &'a mut Option<String>) -> Result<Record<'a>> {
    if !call_record.trim_start().starts_with('{') {
        return Err(Error::InvalidJson("a callRecord must be a JSON object".into()));
    }
    let record: Record = match serde_json::from_str(call_record) {
        Ok(r) => r,
        Err(e) => match crate::values::fold_repeated_keys(call_record.as_bytes(), &e) {
            Some(text) => serde_json::from_str(folded.insert(text)).map_err(|e| Error::json("callRecord", e))?,
            None => return Err(Error::json("callRecord", e)),
        },
    };
    if record.id.get().is_none() {
        return Err(Error::InvalidJson("callRecord has no id: is this a callRecord answer from Graph?".into()));
    }
    Ok(record)
}
