#!/usr/bin/env python3
"""Generate the group-call sample (a Contoso meeting with 90 sessions, 12 participants).

Deterministic: a fixed seed, uuid5 ids, no clock. Re-run from anywhere:

    python3 examples/graph/callrecords/make_group_call.py

Outputs (next to this script):
    group-call.json                  GET /communications/callRecords/{id}?$expand=sessions($expand=segments)
                                     first page: 60 sessions + sessions@odata.nextLink
    group-call.sessions-2.json       next page of sessions: 25 sessions + @odata.nextLink
    group-call.sessions-3.json       last page of sessions: 5 sessions, no nextLink
    group-call.participants-1.json   GET .../participants_v2 first page (8) + @odata.nextLink
    group-call.participants-2.json   last page (4), no nextLink

The skiptokens are readable names of the next file so a fake Graph can serve them;
real skiptokens are opaque.
"""
import json
import os
import random
import uuid
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))

GRAPH = "https://graph.microsoft.com/v1.0"
CONTOSO = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11"
FABRIKAM = "7f3e9c4d-0b6a-4e51-8d2c-5a1b9e8f6c22"
CALL_ID = "8d2b6e4a-1c7f-4a3e-b5d9-6e0f1a2b3c02"
VERSION = 5
SEED = 20261123
ID_NS = uuid.UUID("5b0c2a9e-7e41-4f0d-9a52-3c1d8e6f7a10")

SESSIONS_PER_PAGE = (60, 25, 5)        # Graph pages sessions at 60
PARTICIPANTS_PER_PAGE = (8, 4)         # as if sent with Prefer: odata.maxpagesize=8

# The conferencing server (AV MCU). The brief asked for role "Conferencing", which is
# not a documented serviceRole value; the documented one for the AV MCU is used.
CONFERENCING_ROLE = "skypeForBusinessAudioVideoMcu"

MEETING_START = datetime(2026, 11, 23, 14, 0, 0, tzinfo=timezone.utc)

TEAMS_DESKTOP_APP = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
TEAMS_WEB_APP = "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"

rng = random.Random(SEED)


def gid(*parts):
    return str(uuid.uuid5(ID_NS, "/".join(str(p) for p in parts)))


def at(seconds):
    """A datetime `seconds` (float) after the meeting start, rounded to 100 ns ticks."""
    ticks = int(round(seconds * 10_000_000))
    dt = MEETING_START + timedelta(microseconds=ticks // 10)
    extra = ticks % 10
    return _Tick(dt, extra)


class _Tick:
    def __init__(self, dt, extra):
        self.dt = dt
        self.extra = extra

    def __str__(self):
        ticks = self.dt.microsecond * 10 + self.extra
        base = self.dt.strftime("%Y-%m-%dT%H:%M:%S")
        if ticks == 0:
            return base + "Z"
        return base + "." + ("%07d" % ticks).rstrip("0") + "Z"


def dur(seconds):
    """ISO 8601 duration in seconds, e.g. PT0.016S, PT1S, PT0S."""
    ticks = int(round(seconds * 10_000_000))
    whole, frac = divmod(ticks, 10_000_000)
    if frac == 0:
        return "PT%dS" % whole
    return "PT%d.%sS" % (whole, ("%07d" % frac).rstrip("0"))


# ---------------------------------------------------------------- participants

def user(name, upn, tenant, key):
    return {"kind": "user", "id": gid("user", key), "displayName": name,
            "tenantId": tenant, "userPrincipalName": upn}


PEOPLE = [
    # (identity, client profile, number of sessions)
    (user("Clara Jensen", "clara.jensen@contoso.com", CONTOSO, "clara"), "win-wired-office", 6),
    (user("Aiko Tanaka", "aiko.tanaka@contoso.com", CONTOSO, "aiko"), "mac-wifi-home", 9),
    (user("Ben Okafor", "ben.okafor@contoso.com", CONTOSO, "ben"), "win-wifi-office", 7),
    (user("Diego Ramos", "diego.ramos@contoso.com", CONTOSO, "diego"), "android-mobile", 12),
    (user("Elif Demir", "elif.demir@contoso.com", CONTOSO, "elif"), "ios-wifi", 8),
    (user("Farid Haddad", "farid.haddad@contoso.com", CONTOSO, "farid"), "win-vpn", 10),
    (user("Grace Liu", "grace.liu@contoso.com", CONTOSO, "grace"), "web-edge", 7),
    (user("Oslo 4F Board Room", "room.oslo4f@contoso.com", CONTOSO, "room-oslo-4f"), "room-system", 4),
    (user("Ines Costa", "ines.costa@contoso.com", CONTOSO, "ines"), "win-wired-office", 9),
    # Fabrikam users join across tenants: their UPN is not shared with Contoso.
    (user("Jonas Weber", None, FABRIKAM, "jonas"), "win-wifi-external", 8),
    (user("Kira Novak", None, FABRIKAM, "kira"), "mac-wifi-external", 5),
    ({"kind": "guest", "id": gid("guest", "sam"), "displayName": "Sam Rivera (Guest)"}, "web-chrome-guest", 5),
]
assert len(PEOPLE) == 12
assert sum(p[2] for p in PEOPLE) == sum(SESSIONS_PER_PAGE) == 90

ORGANIZER = PEOPLE[0][0]

PROFILES = {
    "win-wired-office": dict(
        platform="windows", ua="Teams/25306.804.4102.7193 (Windows 10.0.26100; x64) MSTeams/2.0 RTCC/2025.46.1.12",
        app=TEAMS_DESKTOP_APP, ver="25306.804.4102.7193", cpu=("Intel(R) Core(TM) Ultra 7 165U", 12, 2100),
        conn="wired", wifi=None, lan="10.20.", reflexive="203.0.113.", link=1_000_000_000, codec="satin",
        mic="Echo Cancelling Speakerphone (Jabra Speak2 75)", spk="Echo Cancelling Speakerphone (Jabra Speak2 75)",
        jitter=(0.004, 0.012), loss=(0.0, 0.002), rtt=(0.018, 0.035), bw=(4_000_000, 12_000_000)),
    "win-wifi-office": dict(
        platform="windows", ua="Teams/25306.804.4102.7193 (Windows 10.0.22631; x64) MSTeams/2.0 RTCC/2025.46.1.12",
        app=TEAMS_DESKTOP_APP, ver="25306.804.4102.7193", cpu=("AMD Ryzen 7 PRO 7840U w/ Radeon 780M Graphics", 16, 3300),
        conn="wifi", wifi=("frequency50GHz", "wifi80211ax", 44), lan="10.20.", reflexive="203.0.113.",
        link=866_700_000, codec="satin",
        mic="Microphone Array (Realtek(R) Audio)", spk="Speakers (Realtek(R) Audio)",
        jitter=(0.008, 0.02), loss=(0.0, 0.01), rtt=(0.02, 0.05), bw=(2_000_000, 8_000_000)),
    "mac-wifi-home": dict(
        platform="macOS", ua="Teams/25306.805.4102.7211 (macOS 15.6; arm64) MSTeams/2.0 RTCC/2025.46.1.12",
        app=TEAMS_DESKTOP_APP, ver="25306.805.4102.7211", cpu=("Apple M3", 8, 4050),
        conn="wifi", wifi=("frequency50GHz", "wifi80211ac", 149), lan="192.168.1.", reflexive="198.51.100.",
        link=585_000_000, codec="opus",
        mic="MacBook Air Microphone", spk="MacBook Air Speakers",
        jitter=(0.01, 0.03), loss=(0.0, 0.02), rtt=(0.03, 0.07), bw=(1_500_000, 6_000_000)),
    "android-mobile": dict(
        platform="android", ua="Teams/1416/1.0.0.2025154301 (Android 15; Pixel 8) RTCC/2025.46.1.12",
        app=TEAMS_DESKTOP_APP, ver="1416/1.0.0.2025154301", cpu=("Google Tensor G3", 9, 2910),
        conn="mobile", wifi=None, lan="100.72.", reflexive="198.51.100.", link=None, codec="opus",
        mic="Default input device", spk="Default output device",
        jitter=(0.02, 0.09), loss=(0.01, 0.08), rtt=(0.06, 0.2), bw=(300_000, 1_800_000)),
    "ios-wifi": dict(
        platform="iOS", ua="Teams/7.12.1 (iOS 19.1; iPhone16,2) RTCC/2025.46.1.12",
        app=TEAMS_DESKTOP_APP, ver="7.12.1", cpu=(None, 6, None),
        conn="wifi", wifi=("frequency24GHz", "wifi80211n", 6), lan="192.168.0.", reflexive="198.51.100.",
        link=144_000_000, codec="opus",
        mic="iPhone Microphone", spk="iPhone Receiver",
        jitter=(0.012, 0.04), loss=(0.0, 0.03), rtt=(0.035, 0.09), bw=(900_000, 3_500_000)),
    "win-vpn": dict(
        platform="windows", ua="Teams/25306.804.4102.7193 (Windows 10.0.26100; x64) MSTeams/2.0 RTCC/2025.46.1.12",
        app=TEAMS_DESKTOP_APP, ver="25306.804.4102.7193", cpu=("Intel(R) Core(TM) i5-1345U", 10, 1600),
        conn="tunnel", wifi=None, lan="172.16.40.", reflexive="203.0.113.", link=None, codec="satin",
        mic="Headset Microphone (Poly BT700)", spk="Headphones (Poly BT700)",
        jitter=(0.015, 0.06), loss=(0.005, 0.05), rtt=(0.09, 0.25), bw=(800_000, 2_500_000)),
    "web-edge": dict(
        platform="web", ua="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0 TeamsWeb/25306.804", app=TEAMS_WEB_APP,
        ver="25306.804.4102.7193", cpu=(None, None, None),
        conn="wired", wifi=None, lan="10.20.", reflexive="203.0.113.", link=None, codec="opus",
        mic="Default - Microphone (USB Audio Device)", spk="Default - Speakers (USB Audio Device)",
        jitter=(0.006, 0.018), loss=(0.0, 0.006), rtt=(0.02, 0.045), bw=(2_000_000, 9_000_000)),
    "room-system": dict(
        platform="roomSystem", ua="Teams/1449/1.0.96.2025111903 (Windows 11; Teams Rooms) RTCC/2025.46.1.12",
        app=TEAMS_DESKTOP_APP, ver="1449/1.0.96.2025111903", cpu=("Intel(R) Core(TM) i7-1365U", 10, 1800),
        conn="wired", wifi=None, lan="10.40.", reflexive="203.0.113.", link=1_000_000_000, codec="satin",
        mic="Room Microphone (Yealink MSpeech)", spk="Room Speaker (Yealink MSpeech)",
        jitter=(0.003, 0.01), loss=(0.0, 0.001), rtt=(0.015, 0.03), bw=(6_000_000, 20_000_000)),
    "win-wifi-external": dict(
        platform="windows", ua="Teams/25290.205.4069.4894 (Windows 10.0.22631; x64) MSTeams/2.0 RTCC/2025.43.1.7",
        app=TEAMS_DESKTOP_APP, ver="25290.205.4069.4894", cpu=("Intel(R) Core(TM) i7-1265U", 12, 1800),
        conn="wifi", wifi=("frequency24GHz", "wifi80211n", 11), lan="10.77.", reflexive="198.51.100.",
        link=300_000_000, codec="satin",
        mic="Microphone (Logitech Zone Vibe 125)", spk="Headphones (Logitech Zone Vibe 125)",
        jitter=(0.015, 0.05), loss=(0.002, 0.04), rtt=(0.04, 0.11), bw=(1_000_000, 4_000_000)),
    "mac-wifi-external": dict(
        platform="macOS", ua="Teams/25290.205.4069.4894 (macOS 15.5; arm64) MSTeams/2.0 RTCC/2025.43.1.7",
        app=TEAMS_DESKTOP_APP, ver="25290.205.4069.4894", cpu=("Apple M2 Pro", 12, 3490),
        conn="wifi", wifi=("frequency60GHz", "wifi80211ax", 37), lan="10.77.", reflexive="198.51.100.",
        link=1_201_000_000, codec="opus",
        mic="External Microphone", spk="External Headphones",
        jitter=(0.006, 0.02), loss=(0.0, 0.008), rtt=(0.03, 0.06), bw=(3_000_000, 10_000_000)),
    "web-chrome-guest": dict(
        platform="web", ua="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/142.0.0.0 Safari/537.36 TeamsWeb/25306.804", app=TEAMS_WEB_APP,
        ver="25306.804.4102.7193", cpu=(None, None, None),
        conn="unknown", wifi=None, lan="192.168.178.", reflexive="192.0.2.", link=None, codec="opus",
        mic="Default - MacBook Pro Microphone", spk="Default - MacBook Pro Speakers",
        jitter=(0.01, 0.035), loss=(0.0, 0.015), rtt=(0.04, 0.08), bw=(1_200_000, 5_000_000)),
}


def associated_identity(p):
    if p["kind"] == "guest":
        return {"@odata.type": "#microsoft.graph.communicationsGuestIdentity",
                "id": p["id"], "displayName": p["displayName"]}
    return {"@odata.type": "#microsoft.graph.communicationsUserIdentity", "id": p["id"],
            "displayName": p["displayName"], "tenantId": p["tenantId"],
            "userPrincipalName": p["userPrincipalName"]}


def identity_set(p):
    """communicationsIdentitySet as participants_v2 returns it (undocumented keys included, null)."""
    s = {
        "acsUser": None, "spoolUser": None, "phone": None, "guest": None, "encrypted": None,
        "onPremises": None, "acsApplicationInstance": None, "spoolApplicationInstance": None,
        "applicationInstance": None, "application": None, "device": None, "user": None,
        "endpointType": "default",
    }
    if p["kind"] == "guest":
        s["guest"] = {"@odata.type": "#microsoft.graph.communicationsGuestIdentity",
                      "id": p["id"], "displayName": p["displayName"]}
    else:
        s["user"] = {"@odata.type": "#microsoft.graph.userIdentity", "id": p["id"],
                     "displayName": p["displayName"], "tenantId": p["tenantId"],
                     "userPrincipalName": p["userPrincipalName"]}
    return s


def participant_endpoint(p, prof, machine):
    cpu_name, cores, mhz = prof["cpu"]
    return {
        "@odata.type": "#microsoft.graph.callRecords.participantEndpoint",
        "name": machine,
        "cpuCoresCount": cores,
        "cpuName": cpu_name,
        "cpuProcessorSpeedInMhz": mhz,
        "feedback": None,
        "identity": None,
        "associatedIdentity": associated_identity(p),
        "userAgent": {
            "@odata.type": "#microsoft.graph.callRecords.clientUserAgent",
            "headerValue": prof["ua"],
            "platform": prof["platform"],
            "productFamily": "teams",
            "azureADAppId": prof["app"],
            "applicationVersion": prof["ver"],
            "communicationServiceId": None,
        },
    }


CONFERENCING_ENDPOINT = {
    "@odata.type": "#microsoft.graph.callRecords.serviceEndpoint",
    "userAgent": {
        "@odata.type": "#microsoft.graph.callRecords.serviceUserAgent",
        "headerValue": "av-mcu/2026.11.3.7 (Microsoft Teams Conferencing; euno)",
        "role": CONFERENCING_ROLE,
        "applicationVersion": "2026.11.3.7",
    },
}


def network(prof, host, port, relay_host, relay_port, rq):
    wifi = prof["wifi"]
    return {
        "ipAddress": prof["lan"] + host,
        "subnet": prof["lan"] + ("0" if prof["lan"].count(".") == 3 else "0.0"),
        "port": port,
        "reflexiveIPAddress": prof["reflexive"] + str(10 + (hash_small(host) % 200)),
        "relayIPAddress": "192.0.2." + str(relay_host),
        "relayPort": relay_port,
        "connectionType": prof["conn"],
        "networkTransportProtocol": "udp" if prof["conn"] != "tunnel" else "tcp",
        "linkSpeed": prof["link"],
        "macAddress": "02-00-00-00-00-00" if prof["platform"] in ("iOS", "android") else None,
        "dnsSuffix": "corp.contoso.com" if prof["lan"].startswith(("10.20.", "10.40.")) else None,
        "basicServiceSetIdentifier": ("f0-9f-c2-%02x-%02x-%02x" % (rq.randrange(256), rq.randrange(256),
                                                                 rq.randrange(256))) if wifi else None,
        "wifiBand": wifi[0] if wifi else None,
        "wifiRadioType": wifi[1] if wifi else None,
        "wifiChannel": wifi[2] if wifi else None,
        "wifiSignalStrength": rq.randrange(45, 99) if wifi else None,
        "wifiBatteryCharge": rq.randrange(20, 100) if prof["platform"] in ("iOS", "android", "macOS") else None,
        "wifiMicrosoftDriver": None,
        "wifiMicrosoftDriverVersion": None,
        "wifiVendorDriver": "Intel(R) Wi-Fi 6E AX211 160MHz" if wifi and prof["platform"] == "windows" else None,
        "wifiVendorDriverVersion": "23.110.0.5" if wifi and prof["platform"] == "windows" else None,
        "sentQualityEventRatio": round(rq.uniform(0, 0.05), 2),
        "receivedQualityEventRatio": round(rq.uniform(0, 0.08), 2),
        "delayEventRatio": round(rq.uniform(0, 0.03), 2),
        "bandwidthLowEventRatio": round(rq.uniform(0, 0.02), 2),
        "traceRouteHops": [],
    }


def hash_small(s):
    return sum((i + 1) * ord(c) for i, c in enumerate(s))


def server_network(idx):
    return {
        "ipAddress": "192.0.2.%d" % (200 + idx % 40),
        "subnet": None,
        "port": 3478 + (idx % 3),
        "reflexiveIPAddress": None,
        "relayIPAddress": None,
        "relayPort": None,
        "connectionType": "wired",
        "networkTransportProtocol": "udp",
        "linkSpeed": None,
        "macAddress": None,
        "dnsSuffix": None,
        "basicServiceSetIdentifier": None,
        "wifiBand": None,
        "wifiRadioType": None,
        "wifiChannel": None,
        "wifiSignalStrength": None,
        "wifiBatteryCharge": None,
        "wifiMicrosoftDriver": None,
        "wifiMicrosoftDriverVersion": None,
        "wifiVendorDriver": None,
        "wifiVendorDriverVersion": None,
        "sentQualityEventRatio": None,
        "receivedQualityEventRatio": None,
        "delayEventRatio": None,
        "bandwidthLowEventRatio": None,
        "traceRouteHops": [],
    }


DEVICE_KEYS = [
    "captureDeviceName", "captureDeviceDriver", "renderDeviceName", "renderDeviceDriver",
    "sentSignalLevel", "receivedSignalLevel", "sentNoiseLevel", "receivedNoiseLevel",
    "initialSignalLevelRootMeanSquare", "micGlitchRate", "speakerGlitchRate",
    "captureNotFunctioningEventRatio", "renderNotFunctioningEventRatio", "renderMuteEventRatio",
    "renderZeroVolumeEventRatio", "cpuInsufficentEventRatio", "deviceClippingEventRatio",
    "deviceGlitchEventRatio", "lowSpeechLevelEventRatio", "lowSpeechToNoiseEventRatio",
    "howlingEventCount",
]


def device(prof, rq):
    return {
        "captureDeviceName": prof["mic"],
        "captureDeviceDriver": None,
        "renderDeviceName": prof["spk"],
        "renderDeviceDriver": None,
        "sentSignalLevel": rq.randrange(-30, -12),
        "receivedSignalLevel": rq.randrange(-28, -10),
        "sentNoiseLevel": rq.randrange(-80, -55),
        "receivedNoiseLevel": rq.randrange(-85, -60),
        "initialSignalLevelRootMeanSquare": round(rq.uniform(40, 180), 4),
        "micGlitchRate": rq.randrange(0, 40),
        "speakerGlitchRate": rq.randrange(0, 60),
        "captureNotFunctioningEventRatio": 0,
        "renderNotFunctioningEventRatio": 0,
        "renderMuteEventRatio": 0,
        "renderZeroVolumeEventRatio": 0,
        "cpuInsufficentEventRatio": round(rq.uniform(0, 0.02), 2),
        "deviceClippingEventRatio": 0,
        "deviceGlitchEventRatio": round(rq.uniform(0, 0.03), 2),
        "lowSpeechLevelEventRatio": 0,
        "lowSpeechToNoiseEventRatio": round(rq.uniform(0, 0.05), 2),
        "howlingEventCount": 0,
    }


def empty_device():
    return {k: None for k in DEVICE_KEYS}


def audio_stream(prof, direction, start, end, seconds, rq):
    j_lo, j_hi = prof["jitter"]
    l_lo, l_hi = prof["loss"]
    r_lo, r_hi = prof["rtt"]
    b_lo, b_hi = prof["bw"]
    avg_jitter = round(rq.uniform(j_lo, j_hi), 4)
    avg_loss = round(rq.uniform(l_lo, l_hi), 4)
    avg_rtt = round(rq.uniform(r_lo, r_hi), 3)
    return {
        "streamId": str(rq.randrange(10_000_000, 4_294_967_295)),
        "streamDirection": direction,
        "startDateTime": str(start),
        "endDateTime": str(end),
        "audioCodec": prof["codec"],
        "videoCodec": None,
        "averageAudioDegradation": round(rq.uniform(0, 0.6), 3) if avg_loss > 0.005 else None,
        "averageJitter": dur(avg_jitter),
        "maxJitter": dur(round(avg_jitter * rq.uniform(1.5, 4), 4)),
        "averageAudioNetworkJitter": dur(round(avg_jitter * 0.9, 4)),
        "maxAudioNetworkJitter": dur(round(avg_jitter * rq.uniform(2, 5), 4)),
        "averagePacketLossRate": avg_loss,
        "maxPacketLossRate": round(min(1.0, avg_loss * rq.uniform(2, 6)), 4),
        "averageRatioOfConcealedSamples": round(avg_loss * rq.uniform(0.5, 1.2), 4),
        "maxRatioOfConcealedSamples": round(min(1.0, avg_loss * rq.uniform(2, 5)), 4),
        "averageRoundTripTime": dur(avg_rtt),
        "maxRoundTripTime": dur(round(avg_rtt * rq.uniform(1.3, 3), 3)),
        "averageBandwidthEstimate": rq.randrange(b_lo, b_hi),
        "packetUtilization": int(seconds * 50 * rq.uniform(0.97, 1.0)),
        "isAudioForwardErrorCorrectionUsed": avg_loss > 0.01,
        "postForwardErrorCorrectionPacketLossRate": round(avg_loss * 0.4, 4) if avg_loss > 0.01 else None,
        "wasMediaBypassed": False,
        "averageVideoFrameLossPercentage": None,
        "averageVideoFrameRate": None,
        "averageReceivedFrameRate": None,
        "averageVideoPacketLossRate": None,
        "averageFreezeDuration": None,
        "rmsFreezeDuration": None,
        "lowFrameRateRatio": None,
        "lowVideoProcessingCapabilityRatio": None,
    }


# ---------------------------------------------------------------- sessions

def plan_sessions():
    """[(person, profile, start, end, failed)] sorted by start."""
    out = []
    for i, (p, prof_name, k) in enumerate(PEOPLE):
        join = 0.0 if i == 0 else rng.uniform(5, 420)
        leave = 3540.0 + rng.uniform(0, 180) if i != 7 else 3600.0 + 35.25
        # k consecutive sessions, reconnect gaps of a few seconds
        cuts = sorted(rng.uniform(join + 30, leave - 30) for _ in range(k - 1))
        bounds = [join] + cuts + [leave]
        for n in range(k):
            s = bounds[n] + (rng.uniform(2, 25) if n else 0.0)
            e = bounds[n + 1]
            failed = n < k - 1 and prof_name in ("android-mobile", "win-vpn") and rng.random() < 0.6
            out.append((p, prof_name, s, e, failed))
    out.sort(key=lambda t: t[2])
    return out


def build_session(seq, p, prof_name, s, e, failed):
    prof = PROFILES[prof_name]
    rq = random.Random("%d-%d" % (SEED, seq))
    sid = gid(CALL_ID, "session", seq)
    segid = gid(CALL_ID, "segment", seq)
    start, end = at(s), at(e)
    machine = {"web": None, "iOS": "iPhone", "android": "Pixel 8"}.get(
        prof["platform"], p["displayName"].split()[0].upper()[:6] + "-" + p["id"][:4].upper())
    caller = participant_endpoint(p, prof, machine)
    failure = {"stage": "midcall", "reason": "networkConnectivityLost"} if failed else None
    media = {
        "label": "main-audio",
        "callerNetwork": network(prof, "%d.%d" % (rq.randrange(1, 250), rq.randrange(2, 250))
                                 if prof["lan"].count(".") == 2 else str(rq.randrange(2, 250)),
                                 rq.randrange(50000, 50060), rq.randrange(10, 60),
                                 rq.randrange(3478, 3482), rq),
        "calleeNetwork": server_network(seq),
        "callerDevice": device(prof, rq),
        "calleeDevice": empty_device(),
        "streams": [],
    }
    secs = e - s
    media["streams"].append(audio_stream(prof, "callerToCallee", start, end, secs, rq))
    media["streams"].append(audio_stream(prof, "calleeToCaller", start, end, secs, rq))
    segment = {
        "startDateTime": str(start),
        "endDateTime": str(end),
        "id": segid,
        "caller": caller,
        "callee": CONFERENCING_ENDPOINT,
        "failureInfo": failure,
        "media": [media],
    }
    return {
        "modalities": ["audio"],
        "startDateTime": str(start),
        "endDateTime": str(end),
        "id": sid,
        "isTest": False,
        "caller": caller,
        "callee": CONFERENCING_ENDPOINT,
        "failureInfo": failure,
        "segments@odata.context": "%s/$metadata#communications/callRecords('%s')/sessions('%s')/segments"
                                  % (GRAPH, CALL_ID, sid),
        "segments": [segment],
    }


def dump(name, obj):
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print("wrote", path)


def main():
    plan = plan_sessions()
    sessions = [build_session(i, *t) for i, t in enumerate(plan)]
    assert len(sessions) == 90

    first_start = min(t[2] for t in plan)
    last_end = max(t[3] for t in plan)
    last_modified = at(last_end + 47 * 60 + 12.3456789)

    joinurl = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_OTJkNmE4YzEtNGQ1Ni00ZDNhLWIzZTQtZjA1YjE2"
               "YTc4ZmQx%40thread.v2/0?context=%7b%22Tid%22%3a%22" + CONTOSO + "%22%2c%22Oid%22%3a%22"
               + ORGANIZER["id"] + "%22%7d")

    sess_ctx = "%s/$metadata#communications/callRecords('%s')/sessions(segments())" % (GRAPH, CALL_ID)

    def next_sessions(n):
        return "%s/communications/callRecords/%s/sessions?$expand=segments&$skiptoken=group-call.sessions-%d" % (
            GRAPH, CALL_ID, n)

    a, b, c = SESSIONS_PER_PAGE
    record = {
        "@odata.context": "%s/$metadata#communications/callRecords(sessions(segments()))/$entity" % GRAPH,
        "id": CALL_ID,
        "version": VERSION,
        "type": "groupCall",
        "modalities": ["audio"],
        "lastModifiedDateTime": str(last_modified),
        "startDateTime": str(at(first_start)),
        "endDateTime": str(at(last_end)),
        "joinWebUrl": joinurl,
        "organizer": None,
        "participants": [],
        "organizer_v2@odata.context": "%s/$metadata#communications/callRecords('%s')/organizer_v2/$entity"
                                      % (GRAPH, CALL_ID),
        "organizer_v2": {"id": ORGANIZER["id"], "identity": identity_set(ORGANIZER)},
        "participants_v2@odata.context": "%s/$metadata#communications/callRecords('%s')/participants_v2"
                                         % (GRAPH, CALL_ID),
        "sessions@odata.context": sess_ctx,
        "sessions": sessions[:a],
        "sessions@odata.nextLink": next_sessions(2),
    }
    dump("group-call.json", record)
    dump("group-call.sessions-2.json", {
        "@odata.context": sess_ctx,
        "value": sessions[a:a + b],
        "@odata.nextLink": next_sessions(3),
    })
    dump("group-call.sessions-3.json", {
        "@odata.context": sess_ctx,
        "value": sessions[a + b:a + b + c],
    })

    part_ctx = "%s/$metadata#communications/callRecords('%s')/participants_v2" % (GRAPH, CALL_ID)
    parts = [{"id": p["id"], "identity": identity_set(p)} for p, _, _ in PEOPLE]
    p1, p2 = PARTICIPANTS_PER_PAGE
    dump("group-call.participants-1.json", {
        "@odata.context": part_ctx,
        "value": parts[:p1],
        "@odata.nextLink": "%s/communications/callRecords/%s/participants_v2?$skiptoken=group-call.participants-2"
                           % (GRAPH, CALL_ID),
    })
    dump("group-call.participants-2.json", {
        "@odata.context": part_ctx,
        "value": parts[p1:p1 + p2],
    })


if __name__ == "__main__":
    main()
