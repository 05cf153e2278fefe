//! Azure Storage: the Queue service's REST API, which queue mode's scale-out shares among any
//! number of `callrecords serve` / `work` processes and the service component, and the Table
//! service that keeps their shared ledger of shipped calls.
//!
//! | file | rules |
//! |---|---|
//! | `storage/queue.rs` | Put, Get (with a visibility timeout), Update and Delete Message, Create Queue; their XML; the message text; SharedKey (the emulator, account keys) or an Entra token for `https://storage.azure.com/.default`; the service's XML errors |
//! | `storage/table.rs` | the shipped ledger: Insert Or Replace and Query Entity, Create Table; the Table service's own SharedKey string; its JSON errors |
//!
//! Both name a resource by URL, `https://{account}.{service}.core.windows.net/{name}`, or in the
//! emulator's path style `http://127.0.0.1:{port}/{account}/{name}` (a host that is an IP address
//! or `localhost`), and sign with the account key or carry a token.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::http::base_url;

pub mod queue;
pub mod table;

/// The Storage services' REST version every request names (Entra tokens need 2017-11-09 or later).
pub const STORAGE_VERSION: &str = "2021-12-02";

fn is_ip_or_localhost(host: &str) -> bool {
    let host =
        host.rsplit_once(':').map_or(host, |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    host == "localhost"
        || host.starts_with('[')
        || (!host.is_empty() && host.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// `(url, account, resource name)` of a `{service}` resource URL (`name` is the setting, for
/// errors).
fn resource_url(name: &str, url: &str, service: &str) -> Result<(String, String, String)> {
    let url = base_url(name, url)?;
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (account, resource) = if is_ip_or_localhost(host) {
        match segments.as_slice() {
            [account, resource] => (account.to_string(), resource.to_string()),
            _ => {
                return Err(Error::arg(format!("{name} must be http://{host}/<account>/<{service}> for the emulator")));
            }
        }
    } else {
        match segments.as_slice() {
            [resource] => (host.split('.').next().unwrap_or_default().to_string(), resource.to_string()),
            _ => {
                return Err(Error::arg(format!(
                    "{name} must be https://<account>.{service}.core.windows.net/<{service}>"
                )));
            }
        }
    };
    if account.is_empty() || !account.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::arg(format!("{name}: the storage account name must be letters and digits")));
    }
    Ok((url.to_string(), account, resource))
}

/// The account key, checked to be base64 (`None`: requests carry an Entra token instead).
fn account_key(key: Option<&str>) -> Result<Option<String>> {
    match key.map(str::trim).filter(|k| !k.is_empty()) {
        Some(k) => match BASE64.decode(k) {
            Ok(bytes) if !bytes.is_empty() => Ok(Some(k.to_string())),
            _ => Err(Error::arg("the storage account key is not base64: copy key1 or key2 of the account")),
        },
        None => Ok(None),
    }
}

/// The path of a URL (`/account/name` for the emulator, `/name` otherwise).
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// `SharedKey {account}:{base64(HMAC-SHA256(base64-decode(key), to_sign))}`.
fn shared_key(account: &str, key: &str, to_sign: &str) -> Result<String> {
    let key = BASE64.decode(key).map_err(|_| Error::arg("the storage account key is not base64"))?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| Error::arg("the storage account key cannot key HMAC-SHA256"))?;
    mac.update(to_sign.as_bytes());
    Ok(format!("SharedKey {account}:{}", BASE64.encode(mac.finalize().into_bytes())))
}
