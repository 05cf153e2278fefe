//! The shipped ledger on the Azure Table service: one entity per `(call, version)` shipped, so
//! that a reconciliation sweep run by any replica queues only what no replica shipped.
//!
//! - **The table** is named by its URL (`https://{account}.table.core.windows.net/{table}`, or the
//!   emulator's `http://127.0.0.1:10002/{account}/{table}`); it must be in the queue's account,
//!   since the same key (or token) signs both. It is created on first use.
//! - **An entity:** PartitionKey = the callRecord id, RowKey = its version (20 digits, so they
//!   sort), with the tenant and when it was shipped. Insert Or Replace Entity
//!   (`PUT {table}(PartitionKey='…',RowKey='…')`) writes it, Query Entity reads it back, and a
//!   query on the partition answers "any version shipped" for a listed call without a version.
//! - **SharedKey for the Table service** signs a shorter string than the Queue service's:
//!   `VERB\nContent-MD5\nContent-Type\nDate\n/{account}{path}` (the `x-ms-date` value as Date;
//!   no query parameters but `comp`). With no key, an Entra token for the storage scope
//!   ("Storage Table Data Contributor").
//! - **Errors** are JSON: `{"odata.error":{"code":"ResourceNotFound","message":{"value":"…"}}}`.

use std::fmt;

use serde_json::{Value, json};

use super::STORAGE_VERSION;
use crate::error::{Error, Result, ServiceError};
use crate::http::{OutgoingRequest, bearer, header};

/// The ledger's table and how to reach it. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct LedgerTarget {
    /// The table's URL.
    pub url: String,
    /// The storage account.
    pub account: String,
    /// The table's name.
    pub name: String,
    /// Account key for SharedKey; `None`: an Entra token for the storage scope.
    pub key: Option<String>,
}

impl fmt::Debug for LedgerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerTarget")
            .field("url", &self.url)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn key_value(s: &str) -> Result<&str> {
    // Call ids are letters, digits, '-' and '_' (see graph::is_valid_call_id): nothing to escape.
    if !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(s)
    } else {
        Err(Error::arg("a ledger key must be a callRecord id or a version"))
    }
}

impl LedgerTarget {
    /// The table at `url` (`name` is the setting, for errors), with an account key or none.
    pub fn parse(name: &str, url: &str, key: Option<&str>) -> Result<LedgerTarget> {
        let (url, account, table) = super::resource_url(name, url, "table")?;
        let b = table.as_bytes();
        if !(3..=63).contains(&b.len()) || !b[0].is_ascii_alphabetic() || !b.iter().all(u8::is_ascii_alphanumeric) {
            return Err(Error::arg(format!(
                "{name}: the table name must be 3 to 63 letters and digits, starting with a letter"
            )));
        }
        Ok(LedgerTarget { url, account, name: table, key: super::account_key(key)? })
    }

    fn entity_path(&self, call_id: &str, version: i64) -> Result<String> {
        Ok(format!("{}(PartitionKey='{}',RowKey='{}')", self.url, key_value(call_id)?, row_key(version)))
    }

    /// Insert Or Replace the entity of `(call_id, version)`, shipped at `shipped_ms`.
    pub fn insert_request(
        &self,
        call_id: &str,
        version: i64,
        tenant_id: &str,
        shipped_ms: u64,
        date: &str,
        token: Option<&str>,
    ) -> Result<OutgoingRequest> {
        let body = json!({"TenantId": tenant_id, "ShippedMs": shipped_ms.to_string()});
        let url = self.entity_path(call_id, version)?;
        self.request("PUT", url, serde_json::to_vec(&body).unwrap_or_default(), date, token)
    }

    /// Query Entity for `(call_id, version)` (200 when shipped, 404 when not); without a version,
    /// the first entity of the call's partition (any version shipped).
    pub fn query_request(
        &self,
        call_id: &str,
        version: Option<i64>,
        date: &str,
        token: Option<&str>,
    ) -> Result<OutgoingRequest> {
        let url = match version {
            Some(v) => self.entity_path(call_id, v)?,
            None => {
                format!("{}()?$filter=PartitionKey%20eq%20'{}'&$top=1&$select=RowKey", self.url, key_value(call_id)?)
            }
        };
        self.request("GET", url, vec![], date, token)
    }

    /// Create Table (`POST …/Tables`): 201, or 409 `TableAlreadyExists`.
    pub fn create_request(&self, date: &str, token: Option<&str>) -> Result<OutgoingRequest> {
        let base = &self.url[..self.url.len() - self.name.len() - 1];
        let body = serde_json::to_vec(&json!({"TableName": self.name})).unwrap_or_default();
        self.request("POST", format!("{base}/Tables"), body, date, token)
    }

    fn request(
        &self,
        method: &str,
        url: String,
        body: Vec<u8>,
        date: &str,
        token: Option<&str>,
    ) -> Result<OutgoingRequest> {
        let content_type = if body.is_empty() { "" } else { "application/json" };
        let mut headers = vec![
            ("x-ms-date".to_string(), date.to_string()),
            ("x-ms-version".to_string(), STORAGE_VERSION.to_string()),
            ("Accept".to_string(), "application/json;odata=nometadata".to_string()),
            ("DataServiceVersion".to_string(), "3.0;NetFx".to_string()),
        ];
        if !body.is_empty() {
            headers.push(("Content-Type".into(), content_type.into()));
        }
        let authorization = match (&self.key, token) {
            (Some(key), _) => {
                let path = super::url_path(&url).split('?').next().unwrap_or_default();
                let to_sign = format!("{method}\n\n{content_type}\n{date}\n/{}{path}", self.account);
                super::shared_key(&self.account, key, &to_sign)?
            }
            (None, Some(token)) => bearer(token)?,
            (None, None) => return Err(Error::arg("a ledger request needs the account key or an Entra token")),
        };
        headers.push(("Authorization".into(), authorization));
        Ok(OutgoingRequest { method: method.into(), url, headers, body })
    }
}

/// A version as a RowKey: 20 digits, so that the versions of a call sort.
pub fn row_key(version: i64) -> String {
    format!("{:020}", version.max(0))
}

/// Whether a Query Entity answer (2xx) holds an entity: a single one, or a query's `value` list.
pub fn found(body: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => match o.get("value") {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
            None => o.contains_key("RowKey") || o.contains_key("TenantId"),
        },
        _ => false,
    }
}

/// Judge a Table service answer: `Ok` for 2xx, else its JSON error's code and message.
pub fn check(status: u16, headers: &[(String, String)], body: &[u8]) -> std::result::Result<(), ServiceError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["odata.error"];
    let code = e["code"]
        .as_str()
        .map(str::to_string)
        .or_else(|| header(headers, "x-ms-error-code").map(str::to_string))
        .unwrap_or_default();
    let message = e["message"]["value"].as_str().or(e["message"].as_str()).unwrap_or_default();
    let mut message: String = message.lines().next().unwrap_or_default().chars().take(300).collect();
    if message.is_empty() {
        message = format!("HTTP {status}");
    }
    let retry_after_seconds = header(headers, "retry-after").and_then(|v| v.trim().parse().ok());
    Err(ServiceError { status, code, message, retry_after_seconds, retryable: matches!(status, 408 | 429 | 500..=599) })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    use super::*;

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// The Table service's string to sign, re-derived from the documented layout.
    #[test]
    fn insert_is_signed_with_the_table_string() {
        let t = LedgerTarget::parse("L", "http://127.0.0.1:10002/devstoreaccount1/shipped", Some(KEY)).unwrap();
        let date = "Tue, 01 Dec 2026 09:00:00 GMT";
        let r = t.insert_request("c-1", 3, "t", 5, date, None).unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:10002/devstoreaccount1/shipped(PartitionKey='c-1',RowKey='00000000000000000003')"
        );
        let to_sign = format!(
            "PUT\n\napplication/json\n{date}\n/devstoreaccount1/devstoreaccount1/shipped(PartitionKey='c-1',RowKey='00000000000000000003')"
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&BASE64.decode(KEY).unwrap()).unwrap();
        mac.update(to_sign.as_bytes());
        let expected = format!("SharedKey devstoreaccount1:{}", BASE64.encode(mac.finalize().into_bytes()));
        assert_eq!(header(&r.headers, "authorization"), Some(expected.as_str()));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, json!({"TenantId": "t", "ShippedMs": "5"}));

        // A query's parameters are not signed.
        let q = t.query_request("c-1", None, date, None).unwrap();
        assert!(q.url.ends_with("/shipped()?$filter=PartitionKey%20eq%20'c-1'&$top=1&$select=RowKey"), "{}", q.url);
        let to_sign = format!("GET\n\n\n{date}\n/devstoreaccount1/devstoreaccount1/shipped()");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&BASE64.decode(KEY).unwrap()).unwrap();
        mac.update(to_sign.as_bytes());
        let expected = format!("SharedKey devstoreaccount1:{}", BASE64.encode(mac.finalize().into_bytes()));
        assert_eq!(header(&q.headers, "authorization"), Some(expected.as_str()));
        let c = t.create_request(date, None).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:10002/devstoreaccount1/Tables");
    }

    #[test]
    fn names_keys_answers_and_errors() {
        assert!(LedgerTarget::parse("L", "https://contoso.table.core.windows.net/CallRecordsShipped", None).is_ok());
        assert!(LedgerTarget::parse("L", "https://contoso.table.core.windows.net/1shipped", None).is_err());
        assert!(LedgerTarget::parse("L", "https://contoso.table.core.windows.net/ship-ped", None).is_err());
        let t = LedgerTarget::parse("L", "https://contoso.table.core.windows.net/shipped", None).unwrap();
        assert!(t.query_request("a'b", Some(1), "d", Some("tok")).is_err());
        assert_eq!(
            header(&t.query_request("a", Some(1), "d", Some("tok")).unwrap().headers, "authorization"),
            Some("Bearer tok")
        );
        assert!(found(br#"{"value":[{"RowKey":"00000000000000000001"}]}"#));
        assert!(!found(br#"{"value":[]}"#));
        assert!(found(br#"{"PartitionKey":"a","RowKey":"1","TenantId":"t"}"#));
        let e = check(404, &[], br#"{"odata.error":{"code":"TableNotFound","message":{"lang":"en-US","value":"The table specified does not exist.\nRequestId:1"}}}"#).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.retryable),
            ("TableNotFound", "The table specified does not exist.", false)
        );
    }
}
