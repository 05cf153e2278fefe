//! The Sentinel sample data: synthetic calls and PSTN / Direct Routing call log entries with planted
//! attacks, turned into rows per table by the real expansion (`callrecords::expand::expand`,
//! `seed_row`, `expand::pstn::log_row`; `callrecords sentinel-sample-data` writes them under
//! `examples/sentinel/sample-data/`, and a test keeps the committed copies equal to what this module
//! generates). The deployment templates are Azure rules and are generated in the core
//! (`callrecords::monitor::templates`).

use callrecords::graph::pstn::PstnLog;
use callrecords::monitor::templates::Generated;
use callrecords::schema;
use serde_json::{Value, json};

/// The home tenant of the sample data (Contoso, as in `examples/graph`).
pub const HOME_TENANT: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
/// A partner tenant seen every day (Fabrikam, as in `examples/graph`).
pub const PARTNER_TENANT: &str = "7f3e9c4d-0b6a-4e51-8d2c-5a1b9e8f6c22";
/// The tenant of the fake helpdesk (never seen before the attack day).
pub const VISHING_TENANT: &str = "d4c3b2a1-0e9f-4a8b-9c7d-6e5f4a3b2c1d";
/// The tenant of the failing dialer (never seen before the attack day).
pub const DIALER_TENANT: &str = "e8d7c6b5-a493-4b82-8c71-605f4e3d2c1b";
/// The public IP listed in the sample threat intelligence.
pub const TI_IP: &str = "203.0.113.66";
/// The attack day: Monday 2026-11-16 (UTC); the baseline is the seven days before.
pub const ATTACK_DAY: &str = "2026-11-16";
const ATTACK_DAY_EPOCH: i64 = 1_794_787_200; // 2026-11-16T00:00:00Z
const DAY: i64 = 86_400;

/// One planted call or PSTN log row: what it is and which hunting queries and analytic rules
/// should find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    /// The callRecord id, or the log row's `Id`.
    pub id: String,
    /// `None` for a callRecord; the table of a PSTN or Direct Routing log row.
    pub table: Option<&'static str>,
    /// Scenario name.
    pub scenario: &'static str,
    /// What happens.
    pub what: String,
    /// Content files (`Hunting Queries/...`, `Analytic Rules/...`) that should return it.
    pub found_by: Vec<&'static str>,
}

// The content files the planted attacks are listed under.
const H_MANY_USERS: &str = "Hunting Queries/external-tenant-reaching-many-users.yaml";
const H_NEW_TENANT: &str = "Hunting Queries/new-external-tenant-first-contact.yaml";
const H_SHORT_CALLS: &str = "Hunting Queries/short-external-calls-to-several-users.yaml";
const H_FREQUENT: &str = "Hunting Queries/frequent-external-callers.yaml";
const H_ANONYMOUS: &str = "Hunting Queries/anonymous-or-guest-joins-internal-meetings.yaml";
const H_LONG_AFTER_HOURS: &str = "Hunting Queries/long-after-hours-external-calls.yaml";
const H_COUNTRY_CODE: &str = "Hunting Queries/suspicious-country-code-callers.yaml";
const H_CALLER_TI: &str = "Hunting Queries/caller-ip-in-threat-intelligence.yaml";
const H_ANY_TI: &str = "Hunting Queries/call-ip-threat-intelligence-match.yaml";
const H_DISTANT_IPS: &str = "Hunting Queries/same-user-distant-ips.yaml";
const H_FAILED_SETUP: &str = "Hunting Queries/failed-call-setup-burst.yaml";
const H_PREMIUM: &str = "Hunting Queries/pstn-premium-or-high-risk-destinations.yaml";
const H_OFF_HOURS: &str = "Hunting Queries/pstn-international-calls-outside-working-hours.yaml";
const H_CHARGE: &str = "Hunting Queries/pstn-charge-above-user-baseline.yaml";
const H_BURST: &str = "Hunting Queries/pstn-short-outbound-call-burst.yaml";
const H_DR_STORM: &str = "Hunting Queries/direct-routing-failure-storm.yaml";
const H_THEN_PSTN: &str = "Hunting Queries/external-tenant-contact-then-pstn-call.yaml";
const R_PREMIUM: &str = "Analytic Rules/pstn-toll-fraud-high-risk-destination.yaml";
const R_CHARGE: &str = "Analytic Rules/pstn-toll-fraud-charge-spike.yaml";
const R_EMERGENCY: &str = "Analytic Rules/pstn-emergency-call.yaml";
const R_VISHING: &str = "Analytic Rules/external-tenant-helpdesk-vishing.yaml";
/// The analytic rule that watches arrival times, which sample data cannot plant.
const R_HEALTH: &str = "Analytic Rules/connector-health-callrecords-silent.yaml";

#[derive(Clone)]
enum Party {
    User { id: String, name: String, upn: Option<String>, tenant: &'static str },
    Guest { id: String, name: &'static str },
    Phone(&'static str),
}

impl Party {
    fn id(&self) -> String {
        match self {
            Party::User { id, .. } | Party::Guest { id, .. } => id.clone(),
            Party::Phone(n) => n.to_string(),
        }
    }

    fn associated(&self) -> Value {
        match self {
            Party::User { id, name, upn, tenant } => json!({
                "@odata.type": "#microsoft.graph.communicationsUserIdentity",
                "id": id, "displayName": name, "tenantId": tenant, "userPrincipalName": upn,
            }),
            Party::Guest { id, name } => {
                json!({"@odata.type": "#microsoft.graph.communicationsGuestIdentity", "id": id, "displayName": name})
            }
            Party::Phone(n) => {
                json!({"@odata.type": "#microsoft.graph.communicationsPhoneIdentity", "id": n, "displayName": n})
            }
        }
    }

    fn identity_set(&self) -> Value {
        let (key, mut v) = match self {
            Party::User { .. } => ("user", self.associated()),
            Party::Guest { .. } => ("guest", self.associated()),
            Party::Phone(_) => ("phone", self.associated()),
        };
        v.as_object_mut().expect("object").remove("@odata.type");
        json!({key: v, "endpointType": "default"})
    }

    fn endpoint(&self) -> Value {
        let ua = match self {
            Party::Phone(_) => json!({
                "@odata.type": "#microsoft.graph.callRecords.serviceUserAgent",
                "headerValue": "Contoso-SBC/9.0.4", "role": "gateway", "applicationVersion": "9.0.4",
            }),
            _ => json!({
                "@odata.type": "#microsoft.graph.callRecords.clientUserAgent",
                "headerValue": "Teams/25306.805.4102.7211 (Windows 10.0.26100)", "platform": "windows",
                "productFamily": "teams", "applicationVersion": "25306.805.4102.7211",
            }),
        };
        json!({
            "@odata.type": "#microsoft.graph.callRecords.participantEndpoint",
            "associatedIdentity": self.associated(), "identity": null, "userAgent": ua,
        })
    }
}

fn mcu() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.callRecords.serviceEndpoint",
        "userAgent": {
            "@odata.type": "#microsoft.graph.callRecords.serviceUserAgent",
            "headerValue": "av-mcu/2026.11.3.7 (Microsoft Teams Conferencing; euno)",
            "role": "skypeForBusinessAudioVideoMcu", "applicationVersion": "2026.11.3.7",
        },
    })
}

/// UTC timestamp of `epoch` seconds, ISO 8601 with a `Z` (the core's formatter).
pub fn iso(epoch: i64) -> String {
    callrecords::values::format_timestamp(callrecords::values::Instant { secs: epoch, ticks: 0 })
}

/// A network side of a media entry; `None` public IP means no media path was set up.
fn network(public_ip: &str, n: u64) -> Value {
    json!({
        "ipAddress": format!("10.{}.{}.{}", 20 + n % 50, n % 200, 10 + n % 240),
        "reflexiveIPAddress": public_ip,
        "relayIPAddress": "52.112.0.10",
        "subnet": format!("10.{}.{}.0", 20 + n % 50, n % 200),
        "port": 50_000 + n % 10_000,
        "connectionType": if n.is_multiple_of(3) { "wifi" } else { "wired" },
    })
}

fn streams(n: u64, start: &str, end: &str) -> Value {
    let jitter = 8 + n % 25;
    let rtt = 30 + (n * 7) % 120;
    let loss = (n % 9) as f64 / 200.0;
    let stream = |dir: &str, k: u64| {
        json!({
            "streamId": format!("{}", 1000 + n * 2 + k), "streamDirection": dir, "audioCodec": "satin",
            "startDateTime": start, "endDateTime": end,
            "averageJitter": format!("PT0.0{jitter:02}S"), "maxJitter": format!("PT0.{:03}S", jitter * 3),
            "averageRoundTripTime": format!("PT0.{rtt:03}S"), "maxRoundTripTime": format!("PT0.{:03}S", rtt * 2),
            "averagePacketLossRate": loss, "maxPacketLossRate": loss * 3.0,
            "averageAudioDegradation": 0.1 + loss * 10.0, "averageBandwidthEstimate": 48_000 + n * 100,
            "packetUtilization": 1500 + n * 10, "wasMediaBypassed": false, "isAudioForwardErrorCorrectionUsed": loss > 0.02,
        })
    };
    json!([stream("callerToCallee", 0), stream("calleeToCaller", 1)])
}

/// One leg (a session with one segment). `ips` = (caller public IP, callee public IP); `failure`
/// = (stage, reason) of a call that never set up media.
struct Leg<'a> {
    caller: Value,
    callee: Value,
    start: i64,
    secs: i64,
    ips: (&'a str, &'a str),
    failure: Option<(&'a str, &'a str)>,
}

fn session(call_no: u64, k: u64, leg: &Leg) -> Value {
    let (start, end) = (iso(leg.start), iso(leg.start + leg.secs));
    let n = call_no * 16 + k;
    let (media, failure) = match leg.failure {
        Some((stage, reason)) => (json!([]), json!({"stage": stage, "reason": reason})),
        None => (
            json!([{
                "label": "main-audio", "callerNetwork": network(leg.ips.0, n), "calleeNetwork": network(leg.ips.1, n + 7),
                "streams": streams(n, &start, &end),
            }]),
            Value::Null,
        ),
    };
    json!({
        "id": format!("5e551011-{call_no:04x}-4000-8000-{k:012x}"),
        "modalities": ["audio"], "startDateTime": start, "endDateTime": end, "isTest": false,
        "caller": leg.caller, "callee": leg.callee, "failureInfo": failure,
        "segments": [{
            "id": format!("5e9e0011-{call_no:04x}-4000-8000-{k:012x}"),
            "startDateTime": start, "endDateTime": end, "caller": leg.caller, "callee": leg.callee,
            "failureInfo": failure, "media": media,
        }],
    })
}

fn call_record(
    call_no: u64,
    version: i64,
    kind: &str,
    organizer: &Party,
    participants: &[&Party],
    legs: &[Leg],
) -> (String, Value) {
    let id = format!("ca11{call_no:04x}-5ce0-4a11-8000-{call_no:012x}");
    let start = legs.iter().map(|l| l.start).min().unwrap_or(0);
    let end = legs.iter().map(|l| l.start + l.secs).max().unwrap_or(start);
    let record = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#communications/callRecords(sessions(segments()))/$entity",
        "id": id, "version": version, "type": kind, "modalities": ["audio"],
        "startDateTime": iso(start), "endDateTime": iso(end), "lastModifiedDateTime": iso(end + 1200),
        "joinWebUrl": if kind == "groupCall" { Value::from(format!("https://teams.microsoft.com/l/meetup-join/19%3ameeting_{call_no:08x}%40thread.v2/0")) } else { Value::Null },
        "organizer": null, "participants": [],
        "organizer_v2": {"id": organizer.id(), "identity": organizer.identity_set()},
        "participants_v2": participants.iter().map(|p| json!({"id": p.id(), "identity": p.identity_set()})).collect::<Vec<_>>(),
        "sessions": legs.iter().enumerate().map(|(k, l)| session(call_no, k as u64, l)).collect::<Vec<_>>(),
    });
    (id, record)
}

const FIRST_NAMES: &[&str] = &[
    "Aiko Tanaka",
    "Ben Okafor",
    "Clara Jensen",
    "Dmitri Volkov",
    "Elena Rossi",
    "Farah Haddad",
    "Goran Petrovic",
    "Hana Kim",
    "Ivan Horvat",
    "Julia Santos",
];

fn internal(n: usize) -> Party {
    let name = FIRST_NAMES[n % FIRST_NAMES.len()];
    Party::User {
        id: format!("0c0a{n:04x}-1111-4a11-8000-{n:012x}"),
        name: name.to_string(),
        upn: Some(format!("{}@contoso.com", name.to_ascii_lowercase().replace(' ', "."))),
        tenant: HOME_TENANT,
    }
}

fn external(tenant: &'static str, n: usize, name: &str) -> Party {
    Party::User { id: format!("0e0e{n:04x}-2222-4a22-8000-{n:012x}"), name: name.to_string(), upn: None, tenant }
}

fn office_ip(n: usize) -> String {
    format!("192.0.2.{}", 10 + n)
}

/// The synthetic callRecords (Graph's JSON, one per version) and the planted calls among them.
pub fn synthetic_call_records() -> (Vec<String>, Vec<Planted>) {
    let mut records = vec![];
    let mut planted = vec![];
    let mut no = 0u64;
    let mut next = || {
        no += 1;
        no
    };
    let t = |day: i64, h: i64, m: i64, s: i64| ATTACK_DAY_EPOCH + day * DAY + h * 3600 + m * 60 + s;
    let p2p = |no: u64, version: i64, a: &Party, b: &Party, start: i64, secs: i64, ips: (&str, &str), failure| {
        let leg = Leg { caller: a.endpoint(), callee: b.endpoint(), start, secs, ips, failure };
        call_record(no, version, "peerToPeer", a, &[a, b], &[leg])
    };
    let partner = external(PARTNER_TENANT, 1, "Lena Fischer");

    // Baseline: seven ordinary days plus the attack day, internal calls during office hours and a
    // daily call with the partner tenant.
    for day in -7..=0 {
        for k in 0..4i64 {
            let (a, b) = (((day + 7 + k) % 10) as usize, ((day + 10 + k) % 10) as usize);
            let start = t(day, 9 + 2 * k, 30, 0);
            let ips = (office_ip(a), office_ip(b));
            records.push(p2p(next(), 1, &internal(a), &internal(b), start, 300 + k * 180, (&ips.0, &ips.1), None).1);
        }
        let ips = ("198.51.100.200", office_ip(5));
        records.push(p2p(next(), 1, &partner, &internal(5), t(day, 10, 15, 0), 1200, (ips.0, &ips.1), None).1);
    }
    // An ordinary PSTN call and a partner meeting, for contrast.
    let ips = (office_ip(3), "198.51.100.250".to_string());
    records.push(
        p2p(next(), 1, &internal(3), &Party::Phone("+14255550100"), t(-2, 10, 0, 0), 600, (&ips.0, &ips.1), None).1,
    );
    {
        let no = next();
        let people = [internal(0), internal(1), internal(2), partner.clone()];
        let legs: Vec<Leg> = people
            .iter()
            .map(|p| Leg {
                caller: p.endpoint(),
                callee: mcu(),
                start: t(-3, 14, 0, 0),
                secs: 1800,
                ips: ("192.0.2.60", "52.112.1.1"),
                failure: None,
            })
            .collect();
        let refs: Vec<&Party> = people.iter().collect();
        records.push(call_record(no, 1, "groupCall", &people[0], &refs, &legs).1);
    }

    // 1. Helpdesk vishing: a never-seen external tenant calls six staff in 25 minutes.
    let helpdesk = external(VISHING_TENANT, 2, "IT Helpdesk");
    let mut vishing = vec![];
    for (k, user) in [0usize, 1, 2, 6, 7, 8].into_iter().enumerate() {
        let no = next();
        let start = t(0, 9, 2 + 4 * k as i64, 0);
        let callee_ip = office_ip(user);
        if k == 0 {
            // Graph first delivers an early version without media; the newer one must win.
            let early = Leg {
                caller: helpdesk.endpoint(),
                callee: internal(user).endpoint(),
                start,
                secs: 200,
                ips: ("198.51.100.77", &callee_ip),
                failure: None,
            };
            let mut rec = call_record(no, 1, "peerToPeer", &helpdesk, &[&helpdesk, &internal(user)], &[early]).1;
            rec["sessions"][0]["segments"][0]["media"] = json!([]);
            records.push(rec);
        }
        let (id, rec) =
            p2p(no, 2, &helpdesk, &internal(user), start, 180 + 20 * k as i64, ("198.51.100.77", &callee_ip), None);
        records.push(rec);
        vishing.push((id, user));
    }
    for (id, user) in vishing {
        planted.push(Planted {
            id,
            table: None,
            scenario: "helpdesk-vishing",
            what: "IT Helpdesk of a never-seen tenant (d4c3b2a1-...) calls six staff between 09:02 and 09:26".into(),
            found_by: if user == 7 {
                vec![H_MANY_USERS, H_NEW_TENANT, R_VISHING, H_THEN_PSTN]
            } else {
                vec![H_MANY_USERS, H_NEW_TENANT, R_VISHING]
            },
        });
    }

    // 2. Short calls from one external number to several staff within three minutes.
    for (k, user) in [3usize, 4, 5, 9].into_iter().enumerate() {
        let no = next();
        let ip = office_ip(user);
        let (id, rec) = p2p(
            no,
            1,
            &Party::Phone("+447700900555"),
            &internal(user),
            t(0, 10, 0, 40 * k as i64),
            5 + k as i64,
            ("198.51.100.251", &ip),
            None,
        );
        records.push(rec);
        planted.push(Planted {
            id,
            table: None,
            scenario: "short-external-calls",
            what: "+447700900555 rings four staff for under 10 s each between 10:00:00 and 10:02:00".into(),
            found_by: vec![H_SHORT_CALLS, H_FREQUENT],
        });
    }

    // 3. Anonymous and guest joins to an internal meeting.
    {
        let no = next();
        let anon = Party::Guest { id: "a0a0a0a0-3333-4a33-8000-000000000001".into(), name: "Anonymous" };
        let guest = Party::Guest { id: "a0a0a0a0-3333-4a33-8000-000000000002".into(), name: "Vendor Rep (Guest)" };
        let people = [internal(2), internal(3), anon, guest];
        let legs: Vec<Leg> = people
            .iter()
            .enumerate()
            .map(|(k, p)| Leg {
                caller: p.endpoint(),
                callee: mcu(),
                start: t(0, 14, k as i64, 0),
                secs: 1500,
                ips: (["192.0.2.12", "192.0.2.13", "198.51.100.140", "198.51.100.141"][k], "52.112.1.1"),
                failure: None,
            })
            .collect();
        let refs: Vec<&Party> = people.iter().collect();
        let (id, rec) = call_record(no, 1, "groupCall", &people[0], &refs, &legs);
        records.push(rec);
        planted.push(Planted {
            id,
            table: None,
            scenario: "anonymous-guest-join",
            what: "Clara Jensen's meeting at 14:00 is joined by an Anonymous guest and 'Vendor Rep (Guest)'".into(),
            found_by: vec![H_ANONYMOUS],
        });
    }

    // 4. Toll fraud: a late, long call to a premium-rate number; a call in from a wangiri prefix.
    {
        let ip = office_ip(5);
        let (id, rec) = p2p(
            next(),
            1,
            &internal(5),
            &Party::Phone("+19005550199"),
            t(0, 22, 40, 0),
            2400,
            (&ip, "198.51.100.252"),
            None,
        );
        records.push(rec);
        planted.push(Planted {
            id,
            table: None,
            scenario: "premium-rate-pstn",
            what: "Farah Haddad calls +1 900 555 0199 (premium rate) at 22:40 for 40 minutes".into(),
            found_by: vec![H_LONG_AFTER_HOURS],
        });
        let ip = office_ip(6);
        let (id, rec) = p2p(
            next(),
            1,
            &Party::Phone("+2325550100"),
            &internal(6),
            t(0, 11, 15, 0),
            45,
            ("198.51.100.253", &ip),
            None,
        );
        records.push(rec);
        planted.push(Planted {
            id,
            table: None,
            scenario: "suspicious-country-code",
            what: "+232 (Sierra Leone, a wangiri prefix) calls Goran Petrovic at 11:15".into(),
            found_by: vec![H_COUNTRY_CODE],
        });
    }

    // 5. A partner user calls from an address listed in threat intelligence.
    {
        let ip = office_ip(1);
        let (id, rec) = p2p(next(), 1, &partner, &internal(1), t(0, 13, 5, 0), 600, (TI_IP, &ip), None);
        records.push(rec);
        planted.push(Planted {
            id,
            table: None,
            scenario: "threat-intel-ip",
            what: format!("Lena Fischer (partner) calls Ben Okafor at 13:05 from {TI_IP}, an active TI indicator"),
            found_by: vec![H_CALLER_TI, H_ANY_TI],
        });
    }

    // 6. The same user from two distant networks six minutes apart.
    for (k, (callee, ip)) in [(7usize, "198.51.100.20"), (8, "203.0.113.150")].into_iter().enumerate() {
        let cip = office_ip(callee);
        let (id, rec) =
            p2p(next(), 1, &internal(4), &internal(callee), t(0, 15, 6 * k as i64, 0), 240, (ip, &cip), None);
        records.push(rec);
        planted.push(Planted {
            id,
            table: None,
            scenario: "distant-ips",
            what: "Elena Rossi calls from 198.51.100.20 at 15:00 and from 203.0.113.150 at 15:06".into(),
            found_by: vec![H_DISTANT_IPS],
        });
    }

    // 7. A burst of failed call setups from a never-seen tenant's dialer.
    let dialer = external(DIALER_TENANT, 3, "Sales Outreach");
    for (k, user) in [1usize, 1, 1, 2, 2].into_iter().enumerate() {
        let (id, rec) = p2p(
            next(),
            1,
            &dialer,
            &internal(user),
            t(0, 16, 2 * k as i64, 0),
            1,
            ("", ""),
            Some(("callSetup", "callRejected")),
        );
        records.push(rec);
        planted.push(Planted {
            id,
            table: None,
            scenario: "failed-setup-burst",
            what: "Sales Outreach (never-seen tenant e8d7c6b5-...) fails to set up five calls to two staff between 16:00 and 16:08".into(),
            found_by: vec![H_FAILED_SETUP, H_NEW_TENANT],
        });
    }

    // 8. A long call to an external party after hours.
    {
        let ip = office_ip(9);
        let (id, rec) = p2p(next(), 1, &internal(9), &partner, t(0, 23, 10, 0), 8100, (&ip, "198.51.100.200"), None);
        records.push(rec);
        planted.push(Planted {
            id,
            table: None,
            scenario: "long-after-hours",
            what: "Julia Santos talks to Lena Fischer (partner tenant) from 23:10 to 01:25".into(),
            found_by: vec![H_LONG_AFTER_HOURS],
        });
    }

    (records.into_iter().map(|r| serde_json::to_string(&r).expect("serializes")).collect(), planted)
}

/// Rows of Microsoft's `ThreatIntelligenceIndicator` table for the sample: one active indicator
/// (the planted caller's IP) and one expired one (the vishing IP, which must not match).
fn threat_intelligence_rows() -> Vec<Value> {
    vec![
        json!({
            "TimeGenerated": iso(ATTACK_DAY_EPOCH - 3 * DAY), "IndicatorId": "ti-sample-0001", "NetworkIP": TI_IP,
            "ThreatType": "C2", "ConfidenceScore": 85, "Active": true, "ExpirationDateTime": "2027-11-16T00:00:00Z",
            "Description": "Sample indicator: command-and-control host", "TrafficLightProtocolLevel": "Green",
        }),
        json!({
            "TimeGenerated": iso(ATTACK_DAY_EPOCH - 400 * DAY), "IndicatorId": "ti-sample-0002", "NetworkIP": "198.51.100.77",
            "ThreatType": "Botnet", "ConfidenceScore": 40, "Active": false, "ExpirationDateTime": iso(ATTACK_DAY_EPOCH - 300 * DAY),
            "Description": "Sample indicator: expired long ago", "TrafficLightProtocolLevel": "Green",
        }),
    ]
}

// ---- PSTN and Direct Routing call logs -----------------------------------------------------------

/// The two Direct Routing trunks (session border controllers) of the sample tenant.
pub const TRUNK_1: &str = "sbc1.contoso.com";
/// The trunk the failure storm hits.
pub const TRUNK_2: &str = "sbc2.contoso.com";

/// A user's own number (their DID).
fn did(user: usize) -> String {
    format!("+1425555{:04}", 200 + user)
}

/// The identity fields of a log entry: internal user `n`.
fn log_user(user: usize) -> (Value, Value, Value) {
    match internal(user) {
        Party::User { id, name, upn, .. } => (json!(id), json!(upn), json!(name)),
        _ => (Value::Null, Value::Null, Value::Null),
    }
}

/// A Calling Plan call: a `getPstnCalls` entry (pstnCallLogRow) as Graph sends it.
struct PstnCall<'a> {
    user: usize,
    start: i64,
    secs: i64,
    /// `user_out`, `user_in`, ...
    call_type: &'a str,
    /// The other party's number (callee of an outbound call, caller of an inbound one).
    other: String,
    charge: f64,
    /// `Domestic` / `International`.
    context: &'a str,
    destination: &'a str,
}

/// A Direct Routing call or attempt: a `getDirectRoutingCalls` entry (directRoutingLogRow).
struct DrCall<'a> {
    user: usize,
    start: i64,
    secs: i64,
    /// `ByotOut`, `ByotIn`, ...
    call_type: &'a str,
    other: String,
    /// `None`: established; `Some((sip code, phrase))`: failed.
    failure: Option<(i64, &'a str)>,
    trunk: &'a str,
}

/// The log entries written so far, numbered.
#[derive(Default)]
struct Logs {
    entries: Vec<(PstnLog, Value)>,
    planted: Vec<Planted>,
    no: u64,
}

impl Logs {
    fn pstn(&mut self, c: PstnCall) -> String {
        self.no += 1;
        let no = self.no;
        let (user_id, upn, name) = log_user(c.user);
        let (caller, callee) =
            if c.call_type.ends_with("_in") { (c.other.clone(), did(c.user)) } else { (did(c.user), c.other.clone()) };
        let id = format!("9c0e{no:04x}-7057-4e11-8000-{no:012x}");
        self.entries.push((
            PstnLog::Pstn,
            json!({
                "id": id,
                "callId": format!("{}_{}@52.114.{}.{}", 1_800_000_000 + no * 7919, 100_000_000 + no * 104_729, no % 200, 10 + no % 240),
                "userId": user_id, "userPrincipalName": upn, "userDisplayName": name,
                "startDateTime": iso(c.start), "endDateTime": iso(c.start + c.secs), "duration": c.secs,
                "charge": c.charge, "callType": c.call_type, "currency": "USD",
                "calleeNumber": callee, "usageCountryCode": "US", "tenantCountryCode": "US", "connectionCharge": 0.0,
                "callerNumber": caller, "destinationContext": c.context, "destinationName": c.destination,
                "conferenceId": null, "licenseCapability": "MCOPSTN2", "inventoryType": "Subscriber",
                "operator": "Microsoft", "callDurationSource": "microsoft",
            }),
        ));
        id
    }

    fn direct_routing(&mut self, c: DrCall) -> String {
        self.no += 1;
        let no = self.no;
        let (user_id, upn, name) = log_user(c.user);
        let (caller, callee) = if c.call_type.starts_with("ByotIn") {
            (c.other.clone(), did(c.user))
        } else {
            (did(c.user), c.other.clone())
        };
        // Graph writes .NET's DateTime.MinValue for the time an entry does not have.
        let none = "0001-01-01T00:00:00Z".to_string();
        let (end, failed_at, secs, sip, sub, phrase) = match c.failure {
            None => (iso(c.start + c.secs), none, c.secs, 0, 540_000, "BYE"),
            Some((code, phrase)) => (none, iso(c.start + 1), 0, code, 0, phrase),
        };
        let id = format!("d1e0{no:04x}-7057-4d22-8000-{no:012x}");
        self.entries.push((
            PstnLog::DirectRouting,
            json!({
                "id": id, "correlationId": format!("c0dd{no:04x}-7057-4c33-8000-{no:012x}"),
                "userId": user_id, "userPrincipalName": upn, "userDisplayName": name,
                "startDateTime": iso(c.start), "inviteDateTime": iso(c.start - 2), "failureDateTime": failed_at,
                "endDateTime": end, "duration": secs, "callType": c.call_type, "successfulCall": c.failure.is_none(),
                "callerNumber": caller, "calleeNumber": callee, "mediaPathLocation": "USWE", "signalingLocation": "USEA",
                "finalSipCode": sip, "callEndSubReason": sub, "finalSipCodePhrase": phrase,
                "trunkFullyQualifiedDomainName": c.trunk, "mediaBypassEnabled": false,
            }),
        ));
        id
    }

    fn plant(&mut self, id: String, log: PstnLog, scenario: &'static str, what: &str, found_by: &[&'static str]) {
        let table = Some(log.table().name);
        self.planted.push(Planted { id, table, scenario, what: what.into(), found_by: found_by.to_vec() });
    }
}

/// The synthetic PSTN and Direct Routing log entries (Graph's JSON, in the order a poll returns
/// them, one written twice as overlapping polls do) and the planted rows among them.
pub fn synthetic_pstn_logs() -> (Vec<(PstnLog, Value)>, Vec<Planted>) {
    let mut logs = Logs::default();
    let t = |day: i64, h: i64, m: i64, s: i64| ATTACK_DAY_EPOCH + day * DAY + h * 3600 + m * 60 + s;
    let (cp, dr) = (PstnLog::Pstn, PstnLog::DirectRouting);
    let out = |user, start, secs, other: &str, charge, context, destination| PstnCall {
        user,
        start,
        secs,
        call_type: "user_out",
        other: other.to_string(),
        charge,
        context,
        destination,
    };
    let sbc = |user, start, secs, call_type, other: &str, failure, trunk| DrCall {
        user,
        start,
        secs,
        call_type,
        other: other.to_string(),
        failure,
        trunk,
    };
    const SPIKE: &str = "Elena Rossi (1.80 USD a weekday until then) makes four 45-minute international calls from 13:00: 159.30 USD in the day";

    // Baseline: the seven days before the attack day, and on the attack day the users the
    // attacks leave alone. Users 3, 4, 6, 8 and 9 have Calling Plans, users 0, 1, 2, 5 and 7 call
    // through the company's SBCs (Direct Routing). Office hours, domestic numbers; Elena Rossi calls
    // a customer in Milan every weekday (0.18 USD a minute).
    let mut baseline_dr = vec![];
    for day in -7..=0i64 {
        let quiet = day == 0; // on the attack day only the users no attack involves
        let n = (day + 7) as usize;
        let us = |area: &str, k: usize| format!("+1{area}555{:04}", 1000 + 37 * k + n);
        logs.pstn(out(3, t(day, 10, 5, 0), 240, &us("206", 1), 0.0, "Domestic", "United States"));
        let weekend = day == -2 || day == -1; // 2026-11-14 and 15
        if !weekend {
            let milan = logs.pstn(out(4, t(day, 11, 0, 0), 600, "+390212345067", 1.8, "International", "Italy"));
            if quiet {
                logs.plant(milan, cp, "charge-spike", SPIKE, &[H_CHARGE, R_CHARGE]);
            }
        }
        logs.pstn(out(9, t(day, 15, 30, 0), 420, &us("415", 2), 0.0, "Domestic", "United States"));
        if !quiet {
            let inbound = PstnCall {
                call_type: "user_in",
                ..out(6, t(day, 14, 0, 0), 300, &us("312", 3), 0.0, "Domestic", "United States")
            };
            logs.pstn(inbound);
            if day % 2 == 0 {
                logs.pstn(out(8, t(day, 16, 0, 0), 360, &us("617", 4), 0.0, "Domestic", "United States"));
            }
        }
        baseline_dr.push(sbc(5, t(day, 10, 40, 0), 900, "ByotOut", &us("212", 5), None, TRUNK_1));
        if !quiet {
            baseline_dr.push(sbc(0, t(day, 9, 30, 0), 300, "ByotOut", &us("503", 6), None, TRUNK_1));
            baseline_dr.push(sbc(1, t(day, 13, 0, 0), 200, "ByotIn", &us("617", 7), None, TRUNK_2));
            baseline_dr.push(sbc(2, t(day, 16, 45, 0), 180, "ByotOut", &us("702", 8), None, TRUNK_2));
            // Every other day Hana Kim's call finds the line busy: an ordinary failure.
            let busy = if day % 2 != 0 { Some((486, "Busy Here")) } else { None };
            baseline_dr.push(sbc(7, t(day, 11, 20, 0), 240, "ByotOut", &us("646", 9), busy, TRUNK_1));
        }
    }

    // A. IRSF at night: Ivan Horvat's Calling Plan dials International Networks, Iridium and the
    //    Cook Islands between 02:10 and 03:40 (2.50 USD a minute). The first row arrives twice.
    let irsf = [
        (t(0, 2, 10, 0), 1500, "+88234567001", "International Networks"),
        (t(0, 2, 40, 0), 1800, "+881612345678", "Global Mobile Satellite System"),
        (t(0, 3, 20, 0), 1200, "+68250123", "Cook Islands"),
    ];
    for (k, (start, secs, number, destination)) in irsf.into_iter().enumerate() {
        let id = logs.pstn(out(8, start, secs, number, secs as f64 / 60.0 * 2.5, "International", destination));
        if k == 0 {
            let again = logs.entries.last().cloned();
            logs.entries.extend(again);
        }
        logs.plant(
            id,
            cp,
            "irsf-night-calls",
            "Ivan Horvat's Calling Plan dials +882, +881 (Iridium) and +682 (Cook Islands) numbers between 02:10 and 03:40, 187.50 USD (the first row arrives twice)",
            &[H_PREMIUM, R_PREMIUM, H_OFF_HOURS, H_CHARGE, R_CHARGE],
        );
    }

    // B. Wangiri: +232 rings Goran Petrovic at 11:15 (the callRecord of scenario
    //    suspicious-country-code), and at 11:25 he calls the number back.
    let ring = out(6, t(0, 11, 15, 0), 45, "+2325550100", 0.0, "International", "Sierra Leone");
    logs.pstn(PstnCall { call_type: "user_in", ..ring });
    let id = logs.pstn(out(6, t(0, 11, 25, 0), 95, "+2325550100", 2.4, "International", "Sierra Leone"));
    logs.plant(
        id,
        cp,
        "wangiri-callback",
        "Goran Petrovic calls back +232 555 0100 (Sierra Leone) at 11:25, ten minutes after its one-ring call",
        &[H_PREMIUM, R_PREMIUM],
    );

    // C. An international call late at night, nothing else unusual.
    let id = logs.pstn(out(9, t(0, 23, 55, 0), 1200, "+34912345678", 4.8, "International", "Spain"));
    logs.plant(
        id,
        cp,
        "off-hours-international",
        "Julia Santos calls +34 91 234 5678 (Spain) at 23:55 for 20 minutes",
        &[H_OFF_HOURS],
    );

    // D. A charge spike in office hours: Elena Rossi makes four 45-minute calls to destinations
    //    not on the watchlist (0.65 and 1.10 USD a minute; with her daily call to Milan, planted
    //    above: 159.30 USD).
    let spike = [
        ("+442079460123", "United Kingdom", 29.25),
        ("+4930901820", "Germany", 29.25),
        ("+97143123456", "United Arab Emirates", 49.5),
        ("+2348031234567", "Nigeria", 49.5),
    ];
    for (k, (number, destination, charge)) in spike.into_iter().enumerate() {
        let id = logs.pstn(out(4, t(0, 13, 50 * k as i64, 0), 2700, number, charge, "International", destination));
        logs.plant(id, cp, "charge-spike", SPIKE, &[H_CHARGE, R_CHARGE]);
    }

    // E. A burst of short outbound calls: Dmitri Volkov's account dials six UK numbers for 4 to
    //    22 seconds each between 12:00 and 12:07.
    for k in 0..6i64 {
        let number = format!("+447700900{:03}", 101 + k);
        let call =
            out(3, t(0, 12, 0, 30 + 70 * k), 4 + 3 * k + (k % 2) * 2, &number, 0.05, "International", "United Kingdom");
        let id = logs.pstn(call);
        logs.plant(
            id,
            cp,
            "short-call-burst",
            "Dmitri Volkov's account dials six UK numbers for 4 to 22 s each between 12:00 and 12:07",
            &[H_BURST],
        );
    }

    // Direct Routing: the baseline, then the attacks on the SBCs.
    for call in baseline_dr {
        logs.direct_routing(call);
    }

    // F. Toll fraud through an SBC: Farah Haddad's 40-minute call to +1 900 at 22:40 (the
    //    callRecord of scenario premium-rate-pstn).
    let id = logs.direct_routing(sbc(5, t(0, 22, 40, 0), 2400, "ByotOut", "+19005550199", None, TRUNK_1));
    logs.plant(
        id,
        dr,
        "premium-rate-sbc",
        "Farah Haddad calls +1 900 555 0199 (premium rate) through sbc1 at 22:40 for 40 minutes",
        &[H_PREMIUM, R_PREMIUM],
    );

    // G. A telephony denial-of-service flood on sbc2: 30 inbound attempts from spoofed numbers to
    //    four users' numbers between 03:00 and 03:10, all failing.
    for k in 0..30i64 {
        let user = [0usize, 1, 2, 7][k as usize % 4];
        let caller = format!("+1{}555{:04}", 201 + 37 * (k % 19), (7000 + 131 * k) % 10_000);
        let failure = if k % 3 == 0 { (480, "Temporarily Unavailable") } else { (487, "Request Terminated") };
        let id = logs.direct_routing(sbc(user, t(0, 3, 0, 20 * k), 0, "ByotIn", &caller, Some(failure), TRUNK_2));
        logs.plant(
            id,
            dr,
            "direct-routing-storm",
            "30 inbound calls from spoofed numbers to four users fail on sbc2 between 03:00 and 03:10 (480, 487)",
            &[H_DR_STORM],
        );
    }

    // H. Vishing continued on the phone: Hana Kim, called by the fake helpdesk at 09:18, dials a
    //    London number at 09:41 for 14 minutes.
    let id = logs.direct_routing(sbc(7, t(0, 9, 41, 0), 840, "ByotOut", "+442079460958", None, TRUNK_1));
    logs.plant(
        id,
        dr,
        "vishing-then-pstn",
        "Hana Kim, called by the fake IT Helpdesk at 09:18, dials +44 20 7946 0958 through sbc1 at 09:41",
        &[H_THEN_PSTN],
    );

    // I. An emergency call: Ben Okafor dials 911 through sbc1 at 19:20.
    let id = logs.direct_routing(sbc(1, t(0, 19, 20, 0), 300, "ByotOut", "911", None, TRUNK_1));
    logs.plant(id, dr, "emergency-call", "Ben Okafor dials 911 through sbc1 at 19:20", &[R_EMERGENCY]);

    (logs.entries, logs.planted)
}

fn sample_readme(planted: &[Planted], counts: &[(String, usize)]) -> String {
    let mut s = String::from(
        "# Sample data with planted attacks\n\n\
         Generated by `callrecords sentinel-sample-data` (do not edit): synthetic callRecords and PSTN /\n\
         Direct Routing call log entries (Graph's JSON) turned into rows by the plugin's real expansion\n\
         (`callrecords::expand::expand`, `seed_row`, `expand::pstn::log_row`), one NDJSON file per\n\
         stream, as the plugin posts them. The home tenant is Contoso\n",
    );
    s.push_str(&format!(
        "(`{HOME_TENANT}`); the partner tenant Fabrikam (`{PARTNER_TENANT}`) calls every day. The\n\
         baseline is the seven days before the attack day {ATTACK_DAY} (UTC): internal calls in office\n\
         hours from 192.0.2.0/24, an ordinary US PSTN call and a partner meeting. The first vishing call\n\
         arrives in two versions (1 without media, 2 complete): the parser keeps version 2.\n\n\
         The PSTN logs: users 3, 4, 6, 8 and 9 (Dmitri Volkov, Elena Rossi, Goran Petrovic, Ivan Horvat,\n\
         Julia Santos) have Calling Plans (`TeamsPstnCall_CL`, charges in USD), users 0, 1, 2, 5 and 7\n\
         call through the SBCs `{TRUNK_1}` and `{TRUNK_2}` (`TeamsDirectRoutingCall_CL`). Their\n\
         baseline is domestic calls in office hours, Elena Rossi's 1.80 USD call to Milan every weekday\n\
         and, every other day, one busy signal on `{TRUNK_1}`. The first IRSF row is written twice, as overlapping\n\
         polls do: `TeamsPstnCalls` keeps one.\n\n\
         `ThreatIntelligenceIndicator.ndjson` stands in for Microsoft's table: an active indicator for\n\
         `{TI_IP}` and an expired one for the vishing IP, which must not match.\n\n\
         To load them, ingest each file into its table (Logs Ingestion to the stream of the same name,\n\
         or any Kusto engine), save the parsers, upload the watchlist `TeamsHighRiskPrefixes`, and in\n\
         each hunting query and analytic rule replace `let query_now = now();` with\n\
         `let query_now = datetime({ATTACK_DAY}) + 1d;`; in each analytic rule also set\n\
         `let replay = true;` (rules judge rows by when they arrived, which sample data cannot plant).\n\n\
         | file | rows |\n|---|---|\n"
    ));
    for (file, n) in counts {
        s.push_str(&format!("| `{file}` | {n} |\n"));
    }
    s.push_str(
        "\n## What each hunting query and analytic rule should return\n\n\
         Calls are callRecord ids (`CallId`); rows are the `Id` of PSTN and Direct Routing log rows (for\n\
         a query that summarizes per user or trunk: the rows behind its result, its `Ids` or `FailedIds`).\n\n",
    );
    let mut queries: Vec<&str> = planted.iter().flat_map(|p| p.found_by.iter().copied()).collect();
    queries.sort_by_key(|q| (q.starts_with("Analytic Rules/"), *q));
    queries.dedup();
    for q in queries {
        s.push_str(&format!("### `{q}`\n\n"));
        let found: Vec<&Planted> = planted.iter().filter(|p| p.found_by.contains(&q)).collect();
        let mut groups: Vec<(&str, Option<&str>)> = vec![];
        for p in &found {
            if !groups.contains(&(p.scenario, p.table)) {
                groups.push((p.scenario, p.table));
            }
        }
        for (scenario, table) in groups {
            let members: Vec<&&Planted> = found.iter().filter(|p| (p.scenario, p.table) == (scenario, table)).collect();
            let of = match table {
                None => "Calls:".to_string(),
                Some(table) => format!("Rows of `{table}`:"),
            };
            s.push_str(&format!("- **{scenario}**: {}. {of}\n", members[0].what));
            for p in members {
                s.push_str(&format!("  - `{}`\n", p.id));
            }
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "### `{R_HEALTH}`\n\n\
         Nothing: it measures when rows arrived (`ingestion_time()`), which sample data cannot plant. To\n\
         see it fire, stop the service for longer than the longest quiet spell of the last two weeks.\n\n\
         Nothing else: the baseline calls and rows must not appear in any query's or rule's results.\n"
    ));
    s
}

/// Every file `sentinel-sample-data` writes (under `sample-data/`).
pub fn sample_data() -> Result<Vec<Generated>, String> {
    let (records, planted) = synthetic_call_records();
    let mut per_table: Vec<(String, Vec<String>)> =
        schema::TABLES.iter().map(|t| (t.name.to_string(), vec![])).collect();
    for record in &records {
        for t in callrecords::expand::expand(record).map_err(|e| e.to_string())? {
            let slot = per_table.iter_mut().find(|(n, _)| n.as_str() == t.table.name).ok_or("unknown table")?;
            slot.1.extend(t.rows);
        }
        let seed = callrecords::expand::seed_row(record).map_err(|e| e.to_string())?;
        per_table.iter_mut().find(|(n, _)| n.as_str() == schema::SEED.name).ok_or("no seed table")?.1.push(seed);
    }
    let (entries, planted_rows) = synthetic_pstn_logs();
    for (log, entry) in &entries {
        let row = callrecords::expand::pstn::log_row(*log, entry).map_err(|e| e.to_string())?;
        let slot = per_table.iter_mut().find(|(n, _)| n.as_str() == log.table().name).ok_or("unknown log table")?;
        slot.1.push(row.row);
    }
    let planted: Vec<Planted> = planted.into_iter().chain(planted_rows).collect();
    let ti: Vec<String> = threat_intelligence_rows().iter().map(Value::to_string).collect();
    per_table.push(("ThreatIntelligenceIndicator".to_string(), ti));
    let mut files = vec![];
    let mut counts = vec![];
    for (name, rows) in per_table {
        let file = format!("{name}.ndjson");
        counts.push((file.clone(), rows.len()));
        let mut contents = rows.join("\n");
        contents.push('\n');
        files.push(Generated { path: format!("sample-data/{file}"), contents });
    }
    files.push(Generated { path: "sample-data/README.md".into(), contents: sample_readme(&planted, &counts) });
    Ok(files)
}
