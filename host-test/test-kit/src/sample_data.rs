//! The Sentinel sample data: synthetic calls with planted attacks, expanded into rows per table by
//! the real expansion (`callrecords sentinel-sample-data` writes them under
//! `examples/sentinel/sample-data/`; a test keeps the committed copies equal to what this module
//! generates). The deployment templates are Azure rules and are generated in the core
//! (`callrecords::monitor::templates`).

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

/// One planted call: what it is and which hunting queries should find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlantedCall {
    /// callRecord id.
    pub call_id: String,
    /// Scenario name.
    pub scenario: &'static str,
    /// What happens.
    pub what: String,
    /// Hunting query files (under `hunting/`) that should return it.
    pub found_by: &'static [&'static str],
}

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
pub fn synthetic_call_records() -> (Vec<String>, Vec<PlantedCall>) {
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
        vishing.push(id);
    }
    for id in vishing {
        planted.push(PlantedCall {
            call_id: id,
            scenario: "helpdesk-vishing",
            what: "IT Helpdesk of a never-seen tenant (d4c3b2a1-...) calls six staff between 09:02 and 09:26".into(),
            found_by: &["external-tenant-reaching-many-users.yaml", "new-external-tenant-first-contact.yaml"],
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
        planted.push(PlantedCall {
            call_id: id,
            scenario: "short-external-calls",
            what: "+447700900555 rings four staff for under 10 s each between 10:00:00 and 10:02:00".into(),
            found_by: &["short-external-calls-to-several-users.yaml", "frequent-external-callers.yaml"],
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
        planted.push(PlantedCall {
            call_id: id,
            scenario: "anonymous-guest-join",
            what: "Clara Jensen's meeting at 14:00 is joined by an Anonymous guest and 'Vendor Rep (Guest)'".into(),
            found_by: &["anonymous-or-guest-joins-internal-meetings.yaml"],
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
        planted.push(PlantedCall {
            call_id: id,
            scenario: "premium-rate-pstn",
            what: "Farah Haddad calls +1 900 555 0199 (premium rate) at 22:40 for 40 minutes".into(),
            found_by: &["pstn-premium-or-unusual-destinations.yaml", "long-after-hours-external-calls.yaml"],
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
        planted.push(PlantedCall {
            call_id: id,
            scenario: "suspicious-country-code",
            what: "+232 (Sierra Leone, a wangiri prefix) calls Goran Petrovic at 11:15".into(),
            found_by: &["suspicious-country-code-callers.yaml"],
        });
    }

    // 5. A partner user calls from an address listed in threat intelligence.
    {
        let ip = office_ip(1);
        let (id, rec) = p2p(next(), 1, &partner, &internal(1), t(0, 13, 5, 0), 600, (TI_IP, &ip), None);
        records.push(rec);
        planted.push(PlantedCall {
            call_id: id,
            scenario: "threat-intel-ip",
            what: format!("Lena Fischer (partner) calls Ben Okafor at 13:05 from {TI_IP}, an active TI indicator"),
            found_by: &["caller-ip-in-threat-intelligence.yaml", "call-ip-threat-intelligence-match.yaml"],
        });
    }

    // 6. The same user from two distant networks six minutes apart.
    for (k, (callee, ip)) in [(7usize, "198.51.100.20"), (8, "203.0.113.150")].into_iter().enumerate() {
        let cip = office_ip(callee);
        let (id, rec) =
            p2p(next(), 1, &internal(4), &internal(callee), t(0, 15, 6 * k as i64, 0), 240, (ip, &cip), None);
        records.push(rec);
        planted.push(PlantedCall {
            call_id: id,
            scenario: "distant-ips",
            what: "Elena Rossi calls from 198.51.100.20 at 15:00 and from 203.0.113.150 at 15:06".into(),
            found_by: &["same-user-distant-ips.yaml"],
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
        planted.push(PlantedCall {
            call_id: id,
            scenario: "failed-setup-burst",
            what: "Sales Outreach (never-seen tenant e8d7c6b5-...) fails to set up five calls to two staff between 16:00 and 16:08".into(),
            found_by: &["failed-call-setup-burst.yaml", "new-external-tenant-first-contact.yaml"],
        });
    }

    // 8. A long call to an external party after hours.
    {
        let ip = office_ip(9);
        let (id, rec) = p2p(next(), 1, &internal(9), &partner, t(0, 23, 10, 0), 8100, (&ip, "198.51.100.200"), None);
        records.push(rec);
        planted.push(PlantedCall {
            call_id: id,
            scenario: "long-after-hours",
            what: "Julia Santos talks to Lena Fischer (partner tenant) from 23:10 to 01:25".into(),
            found_by: &["long-after-hours-external-calls.yaml"],
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

fn sample_readme(planted: &[PlantedCall], counts: &[(String, usize)]) -> String {
    let mut s = String::from(
        "# Sample data with planted attacks\n\n\
         Generated by `callrecords sentinel-sample-data` (do not edit): synthetic callRecords (Graph's JSON)\n\
         expanded by the plugin's real expansion (`callrecords::expand::expand`, `seed_row`) into one NDJSON\n\
         file per stream, as the plugin posts them. The home tenant is Contoso\n",
    );
    s.push_str(&format!(
        "(`{HOME_TENANT}`); the partner tenant Fabrikam (`{PARTNER_TENANT}`) calls every day. The\n\
         baseline is the seven days before the attack day {ATTACK_DAY} (UTC): internal calls in office\n\
         hours from 192.0.2.0/24, an ordinary US PSTN call and a partner meeting. The first vishing call\n\
         arrives in two versions (1 without media, 2 complete): the parser keeps version 2.\n\n\
         `ThreatIntelligenceIndicator.ndjson` stands in for Microsoft's table: an active indicator for\n\
         `{TI_IP}` and an expired one for the vishing IP, which must not match.\n\n\
         To load them, ingest each file into its table (Logs Ingestion to the stream of the same name,\n\
         or any Kusto engine), save the parsers, and in each hunting query replace\n\
         `let query_now = now();` with `let query_now = datetime({ATTACK_DAY}) + 1d;`.\n\n\
         | file | rows |\n|---|---|\n"
    ));
    for (file, n) in counts {
        s.push_str(&format!("| `{file}` | {n} |\n"));
    }
    s.push_str("\n## What each hunting query should return\n\n");
    let mut queries: Vec<&str> = planted.iter().flat_map(|p| p.found_by.iter().copied()).collect();
    queries.sort();
    queries.dedup();
    for q in queries {
        s.push_str(&format!("### `hunting/{q}`\n\n"));
        let mut last = "";
        for p in planted.iter().filter(|p| p.found_by.contains(&q)) {
            if p.scenario != last {
                s.push_str(&format!("- **{}**: {}. Calls:\n", p.scenario, p.what));
                last = p.scenario;
            }
            s.push_str(&format!("  - `{}`\n", p.call_id));
        }
        s.push('\n');
    }
    s.push_str("Nothing else: the baseline calls must not appear in any hunting query's results.\n");
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
