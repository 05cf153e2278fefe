//! The sample payloads of `examples/graph/`, compiled in (so `check` and the tests run anywhere).

macro_rules! fixture {
    ($($name:ident = $path:literal;)*) => {
        $( #[doc = concat!("`examples/graph/", $path, "`")]
           pub const $name: &str = include_str!(concat!("../../../examples/graph/", $path)); )*
    };
}
fixture! {
    VALIDATION = "notifications/validation.http";
    CREATED = "notifications/created.http";
    UPDATED = "notifications/updated.http";
    TWO_TENANTS = "notifications/two-tenants.http";
    FORGED = "notifications/forged-client-state.http";
    MIXED_LIFECYCLE = "notifications/mixed-lifecycle.http";
    LIFECYCLE_REAUTH = "notifications/lifecycle-reauthorization-required.http";
    LIFECYCLE_REMOVED = "notifications/lifecycle-subscription-removed.http";
    LIFECYCLE_MISSED = "notifications/lifecycle-missed.http";
    PEER_TO_PEER = "callrecords/peer-to-peer.json";
    GROUP_CALL = "callrecords/group-call.json";
    GROUP_SESSIONS_2 = "callrecords/group-call.sessions-2.json";
    GROUP_SESSIONS_3 = "callrecords/group-call.sessions-3.json";
    GROUP_PARTICIPANTS_1 = "callrecords/group-call.participants-1.json";
    GROUP_PARTICIPANTS_2 = "callrecords/group-call.participants-2.json";
    PSTN = "callrecords/pstn.json";
    GUEST_ANONYMOUS = "callrecords/guest-anonymous.json";
    ODDITIES = "callrecords/service-endpoint-oddities.json";
    METADATA_NONE = "callrecords/metadata-none.json";
}
/// Every callRecord fixture that is a whole record.
pub const RECORDS: &[&str] = &[PEER_TO_PEER, GROUP_CALL, PSTN, GUEST_ANONYMOUS, ODDITIES, METADATA_NONE];
