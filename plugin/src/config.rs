//! The service's settings, read from `CALLRECORDS_*` variables (the environment of `wasmtime serve`,
//! of `callrecords serve`, or any host's configuration), with documented defaults.
//!
//! Secrets (client secret, shared key, clientState) never appear in `Debug`, in [`Config::summary`]
//! or in an error message.

use std::fmt;

use crate::entra::certificate::{self, Algorithm, CertificateSettings};
use crate::entra::managed::{self, ManagedIdentity};
use crate::entra::{Credential, Credentials};
use crate::error::{Error, Result};
use crate::graph::webhook;
use crate::http;
use crate::storage::queue::QueueTarget;
use crate::storage::table::LedgerTarget;

/// Microsoft Graph, unless a stand-in is configured.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";
/// Microsoft Entra ID token endpoint host, unless a stand-in is configured.
pub const DEFAULT_LOGIN_URL: &str = "https://login.microsoftonline.com";
/// Work budget per webhook request: below Graph's 2900 ms "slow" line, with room for the answer.
pub const DEFAULT_DEADLINE_MS: u32 = 2500;
/// First retry delay when a service gives no `Retry-After`; doubles per attempt.
pub const DEFAULT_RETRY_BASE_MS: u32 = 200;
/// Default of `CALLRECORDS_MAX_IN_FLIGHT`: enough requests at once for Graph's 1,500 requests per
/// 20 s per tenant at cloud round-trip times (75 requests/s × ~0.6 s).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 64;
/// How far back a resync (after `missed` or a recreated subscription) lists calls.
pub const DEFAULT_RESYNC_HOURS: u32 = 24;
/// Subscription change types. Graph: `updated` includes a record's first notification and one per
/// new version; adding `created` only delivers version 1 twice.
pub const DEFAULT_CHANGE_TYPES: &str = "updated";

/// Every variable the service reads, with what it is for (the README's settings table).
pub const VARIABLES: &[(&str, &str)] = &[
    (TENANT_ID, "Directory (tenant) id of the app registration (required)"),
    (
        CLIENT_ID,
        "Application (client) id (required; with managed-identity: a user-assigned identity's client id, else the system-assigned one; with workload-identity: default AZURE_CLIENT_ID)",
    ),
    (
        CREDENTIAL,
        "How the app proves itself to Entra ID: `secret` (default), `certificate`, `managed-identity` or `workload-identity`",
    ),
    (CLIENT_SECRET, "Client secret (required with CREDENTIAL=secret; secret)"),
    (
        CLIENT_CERTIFICATE_PATH,
        "CREDENTIAL=certificate: PKCS#12 (.pfx) or PEM file with the certificate and its RSA private key (read, never printed)",
    ),
    (CLIENT_CERTIFICATE, "CREDENTIAL=certificate: the PEM text itself, instead of a file (secret)"),
    (CLIENT_CERTIFICATE_PASSWORD, "CREDENTIAL=certificate: the password of a PKCS#12 file (secret; default: none)"),
    (
        CLIENT_CERTIFICATE_ALGORITHM,
        "CREDENTIAL=certificate: the client assertion's signature, PS256 (default, with x5t#S256) or RS256 (with x5t)",
    ),
    (
        IMDS_URL,
        "CREDENTIAL=managed-identity without IDENTITY_ENDPOINT: the Instance Metadata Service (default http://169.254.169.254)",
    ),
    (CLIENT_STATE, "clientState of the subscription, checked on every notification (required; secret)"),
    (
        ALLOWED_TENANTS,
        "Comma-separated tenant GUIDs whose notifications are accepted; `*` for any (default: TENANT_ID, which must then be a GUID, not a domain name)",
    ),
    (SINK, "`logs-ingestion` (default), `data-collector` (SharedKey, retired API) or `forward`"),
    (DCE_URL, "Logs Ingestion: data collection endpoint, https://<dce>.ingest.monitor.azure.com"),
    (DCR_ID, "Logs Ingestion: the DCR's immutable id, dcr-<32 hex>"),
    (GZIP, "Logs Ingestion: gzip bodies (default true)"),
    (WORKSPACE_ID, "Data Collector: Log Analytics workspace id"),
    (SHARED_KEY, "Data Collector: workspace primary or secondary key (secret)"),
    (DATA_COLLECTOR_URL, "Data Collector: base URL override (default https://<workspace>.ods.opinsights.azure.com)"),
    (FORWARD_URL, "Forward: base URL; rows are POSTed as a JSON array to <url>/<Table>"),
    (
        SEED_TABLE,
        "Also send the 2020-compatible TEAMSGraphCallRecords_CL rows (default false; always with SINK=data-collector, which takes only that table)",
    ),
    (GRAPH_URL, "Graph base URL (default https://graph.microsoft.com)"),
    (LOGIN_URL, "Entra ID base URL (default https://login.microsoftonline.com)"),
    (NOTIFICATION_URL, "Public https URL of this webhook (for subscribe and for recreating a removed subscription)"),
    (LIFECYCLE_URL, "Public https URL for lifecycle notifications (default: NOTIFICATION_URL)"),
    (CHANGE_TYPES, "Subscription change types (default updated, which includes each record's first notification)"),
    (
        DEADLINE_MS,
        "Work budget per webhook request in ms; past it the answer is 503 so Graph redelivers (default 2500)",
    ),
    (RETRY_BASE_MS, "First retry delay without Retry-After, doubling per attempt (default 200)"),
    (MAX_IN_FLIGHT, "Requests one job keeps in flight at once, Graph and ingestion together (default 64, 1-1000)"),
    (RESYNC_HOURS, "Window a resync covers after `missed` or a recreated subscription (default 24)"),
    (MAX_BODY_BYTES, "Largest notification body accepted (default 1048576)"),
    (
        QUEUE_URL,
        "Queue mode on an Azure Storage queue shared by every replica: https://<account>.queue.core.windows.net/<queue> (default: the local SQLite file)",
    ),
    (QUEUE_KEY, "Storage account key for SharedKey (secret; default: an Entra token for the storage scope)"),
    (
        LEDGER_URL,
        "With QUEUE_URL: the shipped ledger's table in the same account, https://<account>.table.core.windows.net/<table>, so that sweeps work across replicas",
    ),
];

const TENANT_ID: &str = "CALLRECORDS_TENANT_ID";
const CLIENT_ID: &str = "CALLRECORDS_CLIENT_ID";
const CLIENT_SECRET: &str = "CALLRECORDS_CLIENT_SECRET";
const CREDENTIAL: &str = "CALLRECORDS_CREDENTIAL";
const CLIENT_CERTIFICATE_PATH: &str = certificate::PATH_SETTING;
const CLIENT_CERTIFICATE: &str = certificate::INLINE_SETTING;
const CLIENT_CERTIFICATE_PASSWORD: &str = certificate::PASSWORD_SETTING;
const CLIENT_CERTIFICATE_ALGORITHM: &str = "CALLRECORDS_CLIENT_CERTIFICATE_ALGORITHM";
const IMDS_URL: &str = "CALLRECORDS_IMDS_URL";

/// Variables that Azure itself sets where the service runs, read besides the `CALLRECORDS_*` ones:
/// App Service / Container Apps (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`) and AKS workload identity
/// (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_AUTHORITY_HOST`).
/// A host that passes only chosen variables to the core passes these too.
pub const AZURE_VARIABLES: &[&str] =
    &[IDENTITY_ENDPOINT, IDENTITY_HEADER, FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_AUTHORITY_HOST];
const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
const FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
const CLIENT_STATE: &str = "CALLRECORDS_CLIENT_STATE";
const ALLOWED_TENANTS: &str = "CALLRECORDS_ALLOWED_TENANTS";
const SINK: &str = "CALLRECORDS_SINK";
const DCE_URL: &str = "CALLRECORDS_DCE_URL";
const DCR_ID: &str = "CALLRECORDS_DCR_ID";
const GZIP: &str = "CALLRECORDS_GZIP";
const WORKSPACE_ID: &str = "CALLRECORDS_WORKSPACE_ID";
const SHARED_KEY: &str = "CALLRECORDS_SHARED_KEY";
const DATA_COLLECTOR_URL: &str = "CALLRECORDS_DATA_COLLECTOR_URL";
const FORWARD_URL: &str = "CALLRECORDS_FORWARD_URL";
const SEED_TABLE: &str = "CALLRECORDS_SEED_TABLE";
const GRAPH_URL: &str = "CALLRECORDS_GRAPH_URL";
const LOGIN_URL: &str = "CALLRECORDS_LOGIN_URL";
const NOTIFICATION_URL: &str = "CALLRECORDS_NOTIFICATION_URL";
const LIFECYCLE_URL: &str = "CALLRECORDS_LIFECYCLE_URL";
const CHANGE_TYPES: &str = "CALLRECORDS_CHANGE_TYPES";
const DEADLINE_MS: &str = "CALLRECORDS_DEADLINE_MS";
const RETRY_BASE_MS: &str = "CALLRECORDS_RETRY_BASE_MS";
const MAX_IN_FLIGHT: &str = "CALLRECORDS_MAX_IN_FLIGHT";
const RESYNC_HOURS: &str = "CALLRECORDS_RESYNC_HOURS";
const MAX_BODY_BYTES: &str = "CALLRECORDS_MAX_BODY_BYTES";
const QUEUE_URL: &str = "CALLRECORDS_QUEUE_URL";
const QUEUE_KEY: &str = "CALLRECORDS_QUEUE_KEY";
const LEDGER_URL: &str = "CALLRECORDS_LEDGER_URL";

/// The app's identity and how it proves it (`CALLRECORDS_CREDENTIAL` and what each kind needs).
fn credentials<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<Credentials> {
    let kind = get(CREDENTIAL).unwrap_or("secret");
    let workload = kind == "workload-identity";
    // Workload identity's webhook sets the AZURE_* names; ours win when both are set.
    let either = |ours: &str, azure: &str| get(ours).or_else(|| workload.then(|| get(azure)).flatten());
    let tenant_id =
        either(TENANT_ID, AZURE_TENANT_ID).ok_or_else(|| Error::arg(format!("{TENANT_ID} is not set")))?.to_string();
    let login = either(LOGIN_URL, AZURE_AUTHORITY_HOST).unwrap_or(DEFAULT_LOGIN_URL);
    let login_base_url = http::base_url(LOGIN_URL, login)?.to_string();
    let client_id = |what: &str| -> Result<String> {
        either(CLIENT_ID, AZURE_CLIENT_ID)
            .map(str::to_string)
            .ok_or_else(|| Error::arg(format!("{CLIENT_ID} is not set ({what})")))
    };
    let (client_id, credential) = match kind {
        "secret" => (
            client_id("the app registration's application id")?,
            Credential::Secret(
                get(CLIENT_SECRET)
                    .ok_or_else(|| {
                        Error::arg(format!(
                            "{CLIENT_SECRET} is not set (or choose another {CREDENTIAL}: certificate, managed-identity, workload-identity)"
                        ))
                    })?
                    .to_string(),
            ),
        ),
        "certificate" => {
            let source = match (get(CLIENT_CERTIFICATE_PATH), get(CLIENT_CERTIFICATE)) {
                (Some(path), None) => certificate::Source::File(path.to_string()),
                (None, Some(pem)) => certificate::Source::Inline(pem.to_string()),
                (Some(_), Some(_)) => {
                    return Err(Error::arg(format!("set {CLIENT_CERTIFICATE_PATH} or {CLIENT_CERTIFICATE}, not both")));
                }
                (None, None) => {
                    return Err(Error::arg(format!(
                        "{CREDENTIAL}=certificate needs {CLIENT_CERTIFICATE_PATH} (a PEM file) or {CLIENT_CERTIFICATE} (the PEM text)"
                    )));
                }
            };
            let algorithm = match get(CLIENT_CERTIFICATE_ALGORITHM).map(str::to_ascii_uppercase).as_deref() {
                None | Some("PS256") => Algorithm::Ps256,
                Some("RS256") => Algorithm::Rs256,
                Some(_) => return Err(Error::arg(format!("{CLIENT_CERTIFICATE_ALGORITHM} must be PS256 or RS256"))),
            };
            let settings =
                CertificateSettings { source, password: get(CLIENT_CERTIFICATE_PASSWORD).map(str::to_string), algorithm };
            (client_id("the app registration's application id")?, Credential::Certificate(settings))
        }
        "managed-identity" => {
            let endpoint = match (get(IDENTITY_ENDPOINT), get(IDENTITY_HEADER)) {
                (Some(url), Some(header)) => managed::Endpoint::AppService {
                    url: managed::endpoint_url(IDENTITY_ENDPOINT, url)?,
                    header: header.to_string(),
                },
                (Some(_), None) => {
                    return Err(Error::arg(format!("{IDENTITY_ENDPOINT} is set but {IDENTITY_HEADER} is not")));
                }
                _ => managed::Endpoint::Imds(managed::endpoint_url(IMDS_URL, get(IMDS_URL).unwrap_or(managed::DEFAULT_IMDS_URL))?),
            };
            let client_id = get(CLIENT_ID).map(str::to_string);
            (client_id.clone().unwrap_or_default(), Credential::ManagedIdentity(ManagedIdentity { endpoint, client_id }))
        }
        "workload-identity" => {
            let token_file = get(FEDERATED_TOKEN_FILE)
                .ok_or_else(|| {
                    Error::arg(format!(
                        "{FEDERATED_TOKEN_FILE} is not set: label the pod azure.workload.identity/use: \"true\" (the webhook sets it)"
                    ))
                })?
                .to_string();
            (client_id("or AZURE_CLIENT_ID: the app registration's application id")?, Credential::WorkloadIdentity { token_file })
        }
        _ => {
            return Err(Error::arg(format!(
                "{CREDENTIAL} must be secret, certificate, managed-identity or workload-identity"
            )));
        }
    };
    Ok(Credentials { login_base_url, tenant_id, client_id, credential })
}

/// Where rows go.
#[derive(Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// Azure Monitor Logs Ingestion API: one DCR stream (`Custom-<Table>`) per table.
    LogsIngestion {
        /// Data collection endpoint.
        endpoint: String,
        /// DCR immutable id.
        dcr_immutable_id: String,
        /// Gzip the bodies.
        gzip: bool,
    },
    /// HTTP Data Collector API (SharedKey): `Log-Type` = table without `_CL`.
    DataCollector {
        /// Workspace id.
        workspace_id: String,
        /// Shared key (secret).
        shared_key: String,
        /// Base URL override.
        base_url: Option<String>,
    },
    /// A log shipper's HTTP input: `POST <url>/<Table>` with a JSON array of rows.
    Forward {
        /// Base URL.
        url: String,
    },
}

impl SinkConfig {
    /// Whether rows of `table` go to this sink. The Data Collector API takes only the 2020 table
    /// (`TEAMSGraphCallRecords_CL`): it refuses a record with a `TimeGenerated` field (a reserved
    /// name), which every typed row carries, and it files fields under suffixed columns
    /// (`CallId_g`, `Port_d`) that the typed tables' parsers do not read.
    pub fn takes(&self, table: &str) -> bool {
        !matches!(self, SinkConfig::DataCollector { .. }) || table == crate::schema::SEED.name
    }

    /// The setting's value: `logs-ingestion`, `data-collector` or `forward`.
    pub fn name(&self) -> &'static str {
        match self {
            SinkConfig::LogsIngestion { .. } => "logs-ingestion",
            SinkConfig::DataCollector { .. } => "data-collector",
            SinkConfig::Forward { .. } => "forward",
        }
    }
}

/// The whole configuration of the pipeline.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// App registration (Graph and, for Logs Ingestion, Azure Monitor tokens).
    pub credentials: Credentials,
    /// Graph base URL.
    pub graph_url: String,
    /// Where rows go.
    pub sink: SinkConfig,
    /// Also send the seed-compatible rows.
    pub seed_table: bool,
    /// Webhook checks (clientState, tenants, body size).
    pub webhook: webhook::Settings,
    /// This webhook's public URL.
    pub notification_url: Option<String>,
    /// The lifecycle notification URL.
    pub lifecycle_url: Option<String>,
    /// Subscription change types.
    pub change_types: String,
    /// Budget per webhook request.
    pub deadline_ms: u32,
    /// First retry delay.
    pub retry_base_ms: u32,
    /// Requests in flight at once.
    pub max_in_flight: u32,
    /// Resync window length.
    pub resync_hours: u32,
    /// The Azure Storage queue queue mode shares, when set.
    pub queue: Option<QueueTarget>,
    /// The shipped ledger's table, beside the queue.
    pub ledger: Option<LedgerTarget>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.summary()).finish()
    }
}

impl Config {
    /// Read the settings from `NAME=value` pairs (other names are ignored). Errors name the variable
    /// and say what it needs, never its value.
    pub fn from_env(vars: &[(String, String)]) -> Result<Config> {
        let get = |name: &str| -> Option<&str> {
            vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
        };
        let required = |name: &str| get(name).ok_or_else(|| Error::arg(format!("{name} is not set")));
        let url = |name: &str, default: &str| -> Result<String> {
            let v = get(name).unwrap_or(default);
            http::base_url(name, v).map(str::to_string)
        };
        let number = |name: &str, default: u32| -> Result<u32> {
            get(name)
                .map_or(Ok(default), |v| v.parse().map_err(|_| Error::arg(format!("{name} must be a whole number"))))
        };
        let flag = |name: &str, default: bool| -> Result<bool> {
            match get(name).map(str::to_ascii_lowercase).as_deref() {
                None => Ok(default),
                Some("true" | "1" | "yes") => Ok(true),
                Some("false" | "0" | "no") => Ok(false),
                Some(_) => Err(Error::arg(format!("{name} must be true or false"))),
            }
        };
        let credentials = credentials(&get)?;
        let tenant_id = credentials.tenant_id.clone();
        let client_state = required(CLIENT_STATE)?.to_string();
        if client_state.chars().count() > 128 {
            return Err(Error::arg(format!("{CLIENT_STATE} is longer than Graph's 128 characters")));
        }
        // Notifications name their tenant by GUID: a domain here would refuse every one of them.
        let allowed_tenants: Vec<String> = match get(ALLOWED_TENANTS) {
            Some("*") => vec![],
            Some(list) => list.split(',').map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()).collect(),
            None if !crate::values::is_guid(&tenant_id) => {
                return Err(Error::arg(format!(
                    "{TENANT_ID} is not a tenant GUID (a domain name?), but Graph's notifications name their tenant by its GUID: set {ALLOWED_TENANTS} to the directory (tenant) id, a GUID"
                )));
            }
            None => vec![tenant_id.to_ascii_lowercase()],
        };
        if let Some(bad) = allowed_tenants.iter().find(|t| !crate::values::is_guid(t)) {
            return Err(Error::arg(format!(
                "{ALLOWED_TENANTS} lists {bad:?}, which is not a tenant GUID; Graph's notifications name their tenant by GUID (or use *)"
            )));
        }
        let sink = match get(SINK).unwrap_or("logs-ingestion") {
            "logs-ingestion" => SinkConfig::LogsIngestion {
                endpoint: url(DCE_URL, required(DCE_URL)?)?,
                dcr_immutable_id: required(DCR_ID)?.to_string(),
                gzip: flag(GZIP, true)?,
            },
            "data-collector" => SinkConfig::DataCollector {
                workspace_id: required(WORKSPACE_ID)?.to_string(),
                shared_key: required(SHARED_KEY)?.to_string(),
                base_url: get(DATA_COLLECTOR_URL)
                    .map(|v| http::base_url(DATA_COLLECTOR_URL, v))
                    .transpose()?
                    .map(Into::into),
            },
            "forward" => SinkConfig::Forward { url: url(FORWARD_URL, required(FORWARD_URL)?)? },
            _ => return Err(Error::arg(format!("{SINK} must be logs-ingestion, data-collector or forward"))),
        };
        let notification_url = get(NOTIFICATION_URL).map(|v| http::base_url(NOTIFICATION_URL, v)).transpose()?;
        let lifecycle_url = get(LIFECYCLE_URL).map(|v| http::base_url(LIFECYCLE_URL, v)).transpose()?;
        let max_in_flight = number(MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT)?;
        if !(1..=1000).contains(&max_in_flight) {
            return Err(Error::arg(format!("{MAX_IN_FLIGHT} must be between 1 and 1000")));
        }
        let deadline_ms = number(DEADLINE_MS, DEFAULT_DEADLINE_MS)?;
        if !(100..=60_000).contains(&deadline_ms) {
            return Err(Error::arg(format!("{DEADLINE_MS} must be between 100 and 60000")));
        }
        // The Data Collector API takes the 2020 table only (see `SinkConfig::takes`).
        let seed_table = flag(SEED_TABLE, false)? || !sink.takes(crate::schema::CALL.name);
        Ok(Config {
            credentials,
            graph_url: url(GRAPH_URL, DEFAULT_GRAPH_URL)?,
            sink,
            seed_table,
            webhook: webhook::Settings {
                client_states: vec![client_state],
                allowed_tenants,
                max_body_bytes: number(MAX_BODY_BYTES, webhook::DEFAULT_MAX_BODY_BYTES)?,
            },
            notification_url: notification_url.map(Into::into),
            lifecycle_url: lifecycle_url.map(Into::into),
            change_types: get(CHANGE_TYPES).unwrap_or(DEFAULT_CHANGE_TYPES).to_string(),
            deadline_ms,
            retry_base_ms: number(RETRY_BASE_MS, DEFAULT_RETRY_BASE_MS)?,
            max_in_flight,
            resync_hours: number(RESYNC_HOURS, DEFAULT_RESYNC_HOURS)?.clamp(1, 24 * 30),
            queue: get(QUEUE_URL).map(|u| QueueTarget::parse(QUEUE_URL, u, get(QUEUE_KEY))).transpose()?,
            ledger: match (get(LEDGER_URL), get(QUEUE_URL)) {
                (Some(_), None) => return Err(Error::arg(format!("{LEDGER_URL} needs {QUEUE_URL}"))),
                (Some(u), Some(_)) => Some(LedgerTarget::parse(LEDGER_URL, u, get(QUEUE_KEY))?),
                (None, _) => None,
            },
        })
    }

    /// The settings in effect, for a startup banner: secrets masked (`set, N chars` is all a
    /// secret's entry says).
    pub fn summary(&self) -> Vec<(String, String)> {
        let secret = |s: &str| format!("<secret, {} chars>", s.chars().count());
        let mut out = vec![
            (TENANT_ID, self.credentials.tenant_id.clone()),
            (CLIENT_ID, self.credentials.client_id.clone()),
            (CREDENTIAL, self.credentials.credential.kind().into()),
        ];
        match &self.credentials.credential {
            Credential::Secret(s) => out.push((CLIENT_SECRET, secret(s))),
            Credential::Certificate(c) => {
                match &c.source {
                    certificate::Source::File(path) => out.push((CLIENT_CERTIFICATE_PATH, path.clone())),
                    certificate::Source::Inline(pem) => out.push((CLIENT_CERTIFICATE, secret(pem))),
                }
                out.push((CLIENT_CERTIFICATE_ALGORITHM, c.algorithm.name().into()));
                if let Some(p) = &c.password {
                    out.push((CLIENT_CERTIFICATE_PASSWORD, secret(p)));
                }
            }
            Credential::ManagedIdentity(m) => {
                match &m.endpoint {
                    managed::Endpoint::Imds(url) => out.push((IMDS_URL, url.clone())),
                    managed::Endpoint::AppService { url, header } => {
                        out.push((IDENTITY_ENDPOINT, url.clone()));
                        out.push((IDENTITY_HEADER, secret(header)));
                    }
                }
                out.push(("identity", m.identity_name()));
            }
            Credential::WorkloadIdentity { token_file } => out.push((FEDERATED_TOKEN_FILE, token_file.clone())),
        }
        out.extend([
            (CLIENT_STATE, self.webhook.client_states.first().map(|s| secret(s)).unwrap_or_default()),
            (
                ALLOWED_TENANTS,
                if self.webhook.allowed_tenants.is_empty() {
                    "*".into()
                } else {
                    self.webhook.allowed_tenants.join(",")
                },
            ),
            (SINK, self.sink.name().into()),
        ]);
        match &self.sink {
            SinkConfig::LogsIngestion { endpoint, dcr_immutable_id, gzip } => {
                out.push((DCE_URL, endpoint.clone()));
                out.push((DCR_ID, dcr_immutable_id.clone()));
                out.push((GZIP, gzip.to_string()));
            }
            SinkConfig::DataCollector { workspace_id, shared_key, base_url } => {
                out.push((WORKSPACE_ID, workspace_id.clone()));
                out.push((SHARED_KEY, secret(shared_key)));
                if let Some(b) = base_url {
                    out.push((DATA_COLLECTOR_URL, b.clone()));
                }
            }
            SinkConfig::Forward { url } => out.push((FORWARD_URL, url.clone())),
        }
        out.extend([
            (SEED_TABLE, self.seed_table.to_string()),
            (GRAPH_URL, self.graph_url.clone()),
            (LOGIN_URL, self.credentials.login_base_url.clone()),
            (NOTIFICATION_URL, self.notification_url.clone().unwrap_or_else(|| "(not set)".into())),
            (LIFECYCLE_URL, self.lifecycle_url.clone().unwrap_or_else(|| "(NOTIFICATION_URL)".into())),
            (CHANGE_TYPES, self.change_types.clone()),
            (DEADLINE_MS, self.deadline_ms.to_string()),
            (RETRY_BASE_MS, self.retry_base_ms.to_string()),
            (MAX_IN_FLIGHT, self.max_in_flight.to_string()),
            (RESYNC_HOURS, self.resync_hours.to_string()),
            (MAX_BODY_BYTES, self.webhook.max_body_bytes.to_string()),
        ]);
        if let Some(q) = &self.queue {
            out.push((QUEUE_URL, q.url.clone()));
            let auth = q.key.as_ref().map_or_else(|| "(an Entra token for the storage scope)".into(), |k| secret(k));
            out.push((QUEUE_KEY, auth));
        }
        if let Some(l) = &self.ledger {
            out.push((LEDGER_URL, l.url.clone()));
        }
        out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}
