//! The plugin configuration and the mapping of the core's requests onto Envoy http calls; plain
//! Rust, no proxy-wasm calls.

use std::collections::BTreeMap;

use callrecords::config::{Config, SinkConfig};
use callrecords::http::OutgoingRequest;
use serde_json::Value;

/// What the filter needs from its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The pipeline's settings (from the `settings` object, read like the environment).
    pub config: Config,
    /// Origin (`scheme://host[:port]`, lower case) → Envoy cluster.
    pub clusters: BTreeMap<String, String>,
}

impl Settings {
    /// Parse the plugin configuration: a JSON object with `settings` (string → string, the
    /// `CALLRECORDS_*` names of the README) and `clusters` (origin → cluster name). Every
    /// origin the settings point at (login, Graph, the sink) must have a cluster.
    pub fn parse(json: &[u8]) -> Result<Settings, String> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Err("the plugin configuration is empty; expected {\"settings\": {...}, \"clusters\": {...}}".into());
        }
        let v: Value =
            serde_json::from_slice(json).map_err(|e| format!("the plugin configuration is not JSON: {e}"))?;
        let obj = v.as_object().ok_or("the plugin configuration is not a JSON object")?;
        if let Some(k) = obj.keys().find(|k| *k != "settings" && *k != "clusters") {
            return Err(format!("the plugin configuration has an unknown key `{k}` (expected `settings`, `clusters`)"));
        }
        let strings = |key: &str| -> Result<Vec<(String, String)>, String> {
            let map = obj
                .get(key)
                .ok_or_else(|| format!("the plugin configuration has no `{key}` object"))?
                .as_object()
                .ok_or_else(|| format!("`{key}` in the plugin configuration is not an object"))?;
            map.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    _ => Err(format!("`{key}.{k}` in the plugin configuration is not a string")),
                })
                .collect()
        };
        let env = strings("settings")?;
        let config = Config::from_env(&env).map_err(|e| format!("settings: {e}"))?;
        let mut clusters = BTreeMap::new();
        for (origin, cluster) in strings("clusters")? {
            let normalized =
                origin_of(&origin).ok_or_else(|| format!("`clusters`: `{origin}` is not an http(s) origin"))?;
            if cluster.trim().is_empty() {
                return Err(format!("`clusters`: the cluster for `{origin}` is empty"));
            }
            clusters.insert(normalized, cluster);
        }
        let settings = Settings { config, clusters };
        for url in settings.upstreams() {
            let origin = origin_of(&url).unwrap_or_default();
            if !settings.clusters.contains_key(&origin) {
                return Err(format!("`clusters` names no Envoy cluster for {origin} (from the settings)"));
            }
        }
        Ok(settings)
    }

    /// Base URLs the pipeline will call: login (or the managed identity endpoint), Graph and the
    /// sink (the Data Collector's default per-workspace host is left to the call-time check).
    fn upstreams(&self) -> Vec<String> {
        let mut urls = vec![self.config.credentials.token_service_url(), self.config.graph_url.clone()];
        match &self.config.sink {
            SinkConfig::LogsIngestion { endpoint, .. } => urls.push(endpoint.clone()),
            SinkConfig::Forward { url } => urls.push(url.clone()),
            SinkConfig::DataCollector { base_url, .. } => urls.extend(base_url.clone()),
        }
        urls
    }

    /// The Envoy http call for a request of the core: cluster and headers (`:method`, `:path`,
    /// `:authority`, then the request's own headers, names in lower case as Envoy keeps them).
    pub fn call(&self, request: &OutgoingRequest) -> Result<Call, String> {
        let (origin, authority, path) =
            split_url(&request.url).ok_or_else(|| format!("not an absolute http(s) URL: {}", request.url))?;
        let cluster =
            self.clusters.get(&origin).ok_or_else(|| format!("no Envoy cluster is configured for {origin}"))?;
        let mut headers = vec![
            (":method".to_string(), request.method.clone()),
            (":path".to_string(), path),
            (":authority".to_string(), authority),
        ];
        headers.extend(request.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
        Ok(Call { cluster: cluster.clone(), headers })
    }
}

/// One `dispatch_http_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Envoy cluster.
    pub cluster: String,
    /// Headers, pseudo-headers first.
    pub headers: Vec<(String, String)>,
}

/// `scheme://authority` of an http(s) URL, lower case; `None` for anything else.
pub fn origin_of(url: &str) -> Option<String> {
    split_url(url).map(|(origin, _, _)| origin)
}

/// (origin, authority, path-and-query) of an absolute http(s) URL.
fn split_url(url: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest[..end].to_ascii_lowercase();
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return None;
    }
    let mut path = rest[end..].split('#').next().unwrap_or_default().to_string();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Some((format!("{scheme}://{authority}"), authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_json(extra_cluster: bool) -> String {
        let mut clusters = serde_json::json!({
            "https://login.microsoftonline.com": "login",
            "https://graph.microsoft.com": "graph",
        });
        if extra_cluster {
            clusters["https://my-dce.westeurope-1.ingest.monitor.azure.com"] = "ingestion".into();
        }
        serde_json::json!({
            "settings": {
                "CALLRECORDS_TENANT_ID": "2a9f3c4e-1b2d-4c5e-8f70-123456789abc",
                "CALLRECORDS_CLIENT_ID": "7b1e2d3c-4a5b-4c6d-9e8f-0a1b2c3d4e5f",
                "CALLRECORDS_CLIENT_SECRET": "s3cret",
                "CALLRECORDS_CLIENT_STATE": "state",
                "CALLRECORDS_DCE_URL": "https://my-dce.westeurope-1.ingest.monitor.azure.com",
                "CALLRECORDS_DCR_ID": "dcr-0123456789abcdef0123456789abcdef",
            },
            "clusters": clusters,
        })
        .to_string()
    }

    #[test]
    fn a_full_configuration_maps_each_origin_to_its_cluster() {
        let s = Settings::parse(settings_json(true).as_bytes()).unwrap();
        let req = OutgoingRequest {
            method: "GET".into(),
            url: "https://Graph.Microsoft.com/v1.0/communications/callRecords/x?$expand=sessions".into(),
            headers: vec![("Authorization".into(), "Bearer t".into())],
            body: vec![],
        };
        let call = s.call(&req).unwrap();
        assert_eq!(call.cluster, "graph");
        assert_eq!(
            call.headers,
            vec![
                (":method".to_string(), "GET".to_string()),
                (":path".to_string(), "/v1.0/communications/callRecords/x?$expand=sessions".to_string()),
                (":authority".to_string(), "graph.microsoft.com".to_string()),
                ("authorization".to_string(), "Bearer t".to_string()),
            ]
        );
        let elsewhere = OutgoingRequest { url: "https://example.com/x".into(), ..req };
        assert!(s.call(&elsewhere).unwrap_err().contains("https://example.com"));
    }

    #[test]
    fn a_missing_cluster_for_the_sink_is_named() {
        let e = Settings::parse(settings_json(false).as_bytes()).unwrap_err();
        assert!(e.contains("https://my-dce.westeurope-1.ingest.monitor.azure.com"), "{e}");
    }

    #[test]
    fn malformed_configurations_are_explained() {
        for (json, needle) in [
            ("", "empty"),
            ("{", "not JSON"),
            ("[]", "not a JSON object"),
            ("{\"settings\": {}}", "CALLRECORDS_"),
            ("{\"settings\": 3, \"clusters\": {}}", "`settings`"),
            ("{\"settings\": {}, \"clusters\": {}, \"x\": 1}", "unknown key `x`"),
            ("{\"settings\": {\"A\": [1]}, \"clusters\": {}}", "`settings.A`"),
        ] {
            let e = Settings::parse(json.as_bytes()).unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }

    #[test]
    fn origins_are_normalized_and_non_http_refused() {
        assert_eq!(
            origin_of("HTTPS://Login.Microsoftonline.com/t/oauth2").as_deref(),
            Some("https://login.microsoftonline.com")
        );
        assert_eq!(origin_of("http://127.0.0.1:8081").as_deref(), Some("http://127.0.0.1:8081"));
        assert_eq!(origin_of("ftp://x/y"), None);
        assert_eq!(origin_of("https:///y"), None);
        assert_eq!(split_url("https://h?x=1").unwrap().2, "/?x=1");
    }
}
