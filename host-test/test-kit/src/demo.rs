//! The embedded default's made-up identities: the demo tenant, app registration, DCR, workspace
//! and clientState that the stand-ins accept, and the settings that point the pipeline at them.
//! Nothing here is a real credential.

use callrecords_host::bindings::webhook;
use serde_json::{Value, json};

/// The demo subscription's clientState (a public, made-up value).
pub const DEMO_CLIENT_STATE: &str = "teams-sentinel-demo";
/// Contoso, the sample data's home tenant.
pub const CONTOSO: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
/// Fabrikam, the sample data's external tenant.
pub const FABRIKAM: &str = "7f3e9c4d-0b6a-4e51-8d2c-5a1b9e8f6c22";
/// The demo app registration's client id.
pub const DEMO_CLIENT_ID: &str = "5e3ce6c0-2b1f-4285-8d4b-75ee78787346";
/// The demo app registration's secret (made up; never a real one).
pub const DEMO_CLIENT_SECRET: &str = "demo-client-secret";
/// Demo Logs Ingestion endpoint and DCR.
pub const DEMO_DCE: &str = "https://teams-sentinel-demo.westeurope-1.ingest.monitor.azure.com";
/// Demo DCR immutable id.
pub const DEMO_DCR: &str = "dcr-7d5b9c1e2f3a4b5c6d7e8f9a0b1c2d3e";
/// Demo workspace for the seed-compatible Data Collector requests.
pub const DEMO_WORKSPACE: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
/// Demo shared key (base64 of a made-up phrase).
pub const DEMO_SHARED_KEY: &str = "dGVhbXMtc2VudGluZWwgZGVtbyBzaGFyZWQga2V5LCBub3QgYSByZWFsIG9uZQ==";

/// Settings of the demo subscription.
pub fn demo_settings(allowed: &[&str]) -> webhook::Settings {
    webhook::Settings {
        client_states: vec![DEMO_CLIENT_STATE.into()],
        allowed_tenants: allowed.iter().map(|s| s.to_string()).collect(),
        max_body_bytes: 0,
    }
}

/// The settings that point the pipeline at stand-ins reachable at `base` (demo tenant, app, DCR,
/// workspace and clientState; nothing real).
pub fn demo_env(base: &str, sink: &str) -> Vec<(String, String)> {
    let v = |k: &str, v: &str| (k.to_string(), v.to_string());
    vec![
        v("CALLRECORDS_TENANT_ID", CONTOSO),
        v("CALLRECORDS_CLIENT_ID", DEMO_CLIENT_ID),
        v("CALLRECORDS_CLIENT_SECRET", DEMO_CLIENT_SECRET),
        v("CALLRECORDS_CLIENT_STATE", DEMO_CLIENT_STATE),
        v("CALLRECORDS_ALLOWED_TENANTS", &format!("{CONTOSO},{FABRIKAM}")),
        v("CALLRECORDS_SINK", sink),
        v("CALLRECORDS_DCE_URL", &format!("{base}/ingest")),
        v("CALLRECORDS_DCR_ID", DEMO_DCR),
        v("CALLRECORDS_WORKSPACE_ID", DEMO_WORKSPACE),
        v("CALLRECORDS_SHARED_KEY", DEMO_SHARED_KEY),
        v("CALLRECORDS_DATA_COLLECTOR_URL", &format!("{base}/ods")),
        v("CALLRECORDS_FORWARD_URL", &format!("{base}/forward")),
        v("CALLRECORDS_GRAPH_URL", &format!("{base}/graph")),
        v("CALLRECORDS_LOGIN_URL", &format!("{base}/login")),
        v("CALLRECORDS_NOTIFICATION_URL", "https://teams-sentinel.example.com/notify"),
        v("CALLRECORDS_LIFECYCLE_URL", "https://teams-sentinel.example.com/lifecycle"),
    ]
}

/// One change notification for `call`, shaped as Graph's docs show it (`created`, with the
/// `@odata` annotations in `resourceData`).
pub fn item(call: &str, tenant: &str, client_state: &str) -> Value {
    json!({
        "subscriptionId": "9c4e1f22-5b3d-4a8e-b7c6-0d1e2f3a4b5c",
        "subscriptionExpirationDateTime": "2026-11-29T18:23:45.9356913+00:00",
        "changeType": "created",
        "resource": format!("communications/callRecords/{call}"),
        "resourceData": {"@odata.type": "#Microsoft.Graph.callRecord", "@odata.id": format!("communications/callRecords/{call}"), "id": call},
        "clientState": client_state,
        "tenantId": tenant,
    })
}

/// A delivery: Graph POSTs its notifications as `{"value": [...]}`.
pub fn delivery(items: Vec<Value>) -> Value {
    json!({ "value": items })
}

/// The body of one delivery of the demo subscription's notifications for `calls` (Contoso).
pub fn delivery_body(calls: &[&str]) -> Vec<u8> {
    delivery(calls.iter().map(|id| item(id, CONTOSO, DEMO_CLIENT_STATE)).collect()).to_string().into_bytes()
}
