//! The Azure Storage Queue service (REST API version [`STORAGE_VERSION`]): the requests queue
//! mode's scale-out makes, the answers it reads, and how each is authorized.
//!
//! - **The queue** is named by its URL: `https://{account}.queue.core.windows.net/{queue}`, or
//!   the emulator's path style `http://127.0.0.1:10001/{account}/{queue}` (a host that is an IP
//!   address or `localhost`). Its dead letters go to `{queue}-poison`, the name Azure Functions
//!   uses.
//! - **Put Message** (`POST …/messages?visibilitytimeout=0&messagettl=-1`: visible at once, never
//!   expiring), **Get Messages** (`GET …/messages?numofmessages=1..32&visibilitytimeout=…`: each
//!   is hidden from other readers for the lease and its `DequeueCount` goes up), **Update Message**
//!   (`PUT …/messages/{id}?popreceipt=…&visibilitytimeout=…`, optionally a new text: the lease
//!   renewed, or a retry's wait and progress; the answer's `x-ms-popreceipt` replaces the old
//!   one), **Delete Message** (`DELETE …/messages/{id}?popreceipt=…`) and **Create Queue**
//!   (`PUT {queue}`).
//! - **The message text** is base64 of a JSON [`QueuedCall`] (a dead letter: of a [`PoisonMessage`]),
//!   as the SDKs and Azure Functions encode it; the service limits it to [`MAX_MESSAGE_BYTES`].
//! - **Authorization:** with an account key, SharedKey (the emulator has only this): the
//!   HMAC-SHA256 of the string to sign (verb, the standard headers, the `x-ms-` headers, then
//!   `/{account}{path}` and the query parameters sorted) under the decoded key. Without one, an
//!   Entra token for [`STORAGE_SCOPE`] (the identity needs "Storage Queue Data Message Processor"
//!   and "… Sender", or "Storage Queue Data Contributor").
//! - **Errors** are XML (`<Error><Code>QueueNotFound</Code><Message>…</Message></Error>`);
//!   408, 429 (rare), 500 `OperationTimedOut` and 503 `ServerBusy` are worth retrying.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ServiceError};
use crate::http::{OutgoingRequest, bearer, header};
use crate::pipeline::queue::QueuedCall;

pub use super::STORAGE_VERSION;
/// Scope of an Azure Storage token.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Get Messages returns at most this many per request.
pub const MAX_MESSAGES_PER_GET: u32 = 32;
/// The longest visibility timeout the service takes (7 days).
pub const MAX_VISIBILITY_SECONDS: u64 = 7 * 24 * 3600;
/// The largest message text (64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A queue and how to reach it. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct QueueTarget {
    /// The queue's URL, without a trailing slash.
    pub url: String,
    /// The storage account (from the URL).
    pub account: String,
    /// The queue's name (from the URL).
    pub name: String,
    /// Account key (base64) for SharedKey; `None`: an Entra token for [`STORAGE_SCOPE`].
    pub key: Option<String>,
}

impl fmt::Debug for QueueTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueTarget")
            .field("url", &self.url)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A message Get Messages returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `MessageId`.
    pub id: String,
    /// `PopReceipt`: needed to update or delete it.
    pub pop_receipt: String,
    /// `DequeueCount`: reads so far, this one included.
    pub dequeue_count: u32,
    /// `MessageText`, as stored (base64).
    pub text: String,
}

/// A dead letter in the poison queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoisonMessage {
    /// The call, as it was queued (absent when the message could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<QueuedCall>,
    /// The message text as it was, when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Why it was given up.
    pub reason: String,
    /// When (Unix ms).
    pub dead_ms: u64,
}

fn valid_name(kind: &str, name: &str, max: usize) -> Result<()> {
    let b = name.as_bytes();
    let ok = (3..=max).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::arg(format!(
            "{kind} must be 3 to {max} lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
        )))
    }
}

impl QueueTarget {
    /// The queue at `url` (`name` is the setting, for errors), with an account key or none.
    pub fn parse(name: &str, url: &str, key: Option<&str>) -> Result<QueueTarget> {
        let (url, account, queue) = super::resource_url(name, url, "queue")?;
        // Leave room for the poison queue's "-poison".
        valid_name(&format!("{name}: the queue name"), &queue, 63 - "-poison".len())?;
        Ok(QueueTarget { url, account, name: queue, key: super::account_key(key)? })
    }

    /// The queue its dead letters go to.
    pub fn poison(&self) -> QueueTarget {
        QueueTarget { url: format!("{}-poison", self.url), name: format!("{}-poison", self.name), ..self.clone() }
    }

    /// Requests carry an Entra token (no account key).
    pub fn needs_token(&self) -> bool {
        self.key.is_none()
    }

    /// `PUT {queue}`: create it (201; 204 when it exists already).
    pub fn create_request(&self, date: &str, token: Option<&str>) -> Result<OutgoingRequest> {
        self.request("PUT", "", &[], vec![], date, token)
    }

    /// Put Message: `text` (already encoded), visible at once, never expiring.
    pub fn put_request(&self, text: &str, date: &str, token: Option<&str>) -> Result<OutgoingRequest> {
        let query = [("visibilitytimeout", "0".to_string()), ("messagettl", "-1".to_string())];
        self.request("POST", "/messages", &query, message_body(text)?, date, token)
    }

    /// Get Queue Metadata (`GET {queue}?comp=metadata`): the answer's
    /// `x-ms-approximate-messages-count` is its length.
    pub fn metadata_request(&self, date: &str, token: Option<&str>) -> Result<OutgoingRequest> {
        self.request("GET", "", &[("comp", "metadata".to_string())], vec![], date, token)
    }

    /// Peek Messages: up to `count` (1..=32) of the first messages, hidden from no one.
    pub fn peek_request(&self, count: u32, date: &str, token: Option<&str>) -> Result<OutgoingRequest> {
        let query =
            [("peekonly", "true".to_string()), ("numofmessages", count.clamp(1, MAX_MESSAGES_PER_GET).to_string())];
        self.request("GET", "/messages", &query, vec![], date, token)
    }

    /// Get Messages: up to `count` (1..=32), each hidden for `visibility_seconds`.
    pub fn get_request(
        &self,
        count: u32,
        visibility_seconds: u64,
        date: &str,
        token: Option<&str>,
    ) -> Result<OutgoingRequest> {
        let query = [
            ("numofmessages", count.clamp(1, MAX_MESSAGES_PER_GET).to_string()),
            ("visibilitytimeout", visibility_seconds.clamp(1, MAX_VISIBILITY_SECONDS).to_string()),
        ];
        self.request("GET", "/messages", &query, vec![], date, token)
    }

    /// Update Message: hidden for `visibility_seconds` more (0: visible now), with a new text or
    /// the old one.
    pub fn update_request(
        &self,
        message: &Message,
        visibility_seconds: u64,
        text: Option<&str>,
        date: &str,
        token: Option<&str>,
    ) -> Result<OutgoingRequest> {
        let query = [
            ("popreceipt", message.pop_receipt.clone()),
            ("visibilitytimeout", visibility_seconds.min(MAX_VISIBILITY_SECONDS).to_string()),
        ];
        let body = text.map(message_body).transpose()?.unwrap_or_default();
        self.request("PUT", &format!("/messages/{}", message_id(&message.id)?), &query, body, date, token)
    }

    /// Delete Message.
    pub fn delete_request(&self, message: &Message, date: &str, token: Option<&str>) -> Result<OutgoingRequest> {
        let query = [("popreceipt", message.pop_receipt.clone())];
        self.request("DELETE", &format!("/messages/{}", message_id(&message.id)?), &query, vec![], date, token)
    }

    fn request(
        &self,
        method: &str,
        suffix: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
        date: &str,
        token: Option<&str>,
    ) -> Result<OutgoingRequest> {
        let mut url = format!("{}{suffix}", self.url);
        for (i, (k, v)) in query.iter().enumerate() {
            let v: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            url += &format!("{}{k}={v}", if i == 0 { '?' } else { '&' });
        }
        let mut headers =
            vec![("x-ms-date".to_string(), date.to_string()), ("x-ms-version".into(), STORAGE_VERSION.into())];
        if !body.is_empty() {
            headers.push(("Content-Type".into(), "application/xml; charset=utf-8".into()));
        }
        let authorization = match (&self.key, token) {
            (Some(key), _) => {
                let path = format!("{}{suffix}", super::url_path(&self.url));
                let to_sign = string_to_sign(method, body.len(), &headers, &self.account, &path, query);
                super::shared_key(&self.account, key, &to_sign)?
            }
            (None, Some(token)) => bearer(token)?,
            (None, None) => return Err(Error::arg("a storage request needs the account key or an Entra token")),
        };
        headers.push(("Authorization".into(), authorization));
        Ok(OutgoingRequest { method: method.into(), url, headers, body })
    }
}

fn message_id(id: &str) -> Result<&str> {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(id)
    } else {
        Err(Error::InvalidJson("the queue returned a message id that is not a GUID".into()))
    }
}

fn message_body(text: &str) -> Result<Vec<u8>> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(Error::TooLarge(format!(
            "a queue message is {} bytes; the service takes at most {MAX_MESSAGE_BYTES}",
            text.len()
        )));
    }
    // Base64 text needs no XML escaping; anything else is escaped.
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Ok(format!("<QueueMessage><MessageText>{escaped}</MessageText></QueueMessage>").into_bytes())
}

/// The SharedKey string to sign for the Blob, Queue and File services (version 2009-09-19 and
/// later): the verb, Content-Encoding, -Language, -Length (empty for 0), -MD5, -Type, Date,
/// If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range, one line each; then the
/// `x-ms-` headers, lowercased and sorted, `name:value` a line; then `/{account}{path}` and a
/// line `name:value` for each query parameter, sorted by name.
pub fn string_to_sign(
    method: &str,
    content_length: usize,
    headers: &[(String, String)],
    account: &str,
    path: &str,
    query: &[(&str, String)],
) -> String {
    let h = |name: &str| header(headers, name).unwrap_or_default().to_string();
    let length = if content_length == 0 { String::new() } else { content_length.to_string() };
    let mut out = [
        method.to_string(),
        h("content-encoding"),
        h("content-language"),
        length,
        h("content-md5"),
        h("content-type"),
        String::new(), // Date: x-ms-date is sent instead
        h("if-modified-since"),
        h("if-match"),
        h("if-none-match"),
        h("if-unmodified-since"),
        h("range"),
    ]
    .join("\n");
    out.push('\n');
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    ms.sort();
    for (n, v) in ms {
        out += &format!("{n}:{v}\n");
    }
    out += &format!("/{account}{path}");
    let mut q: Vec<(String, &str)> = query.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str())).collect();
    q.sort();
    for (k, v) in q {
        out += &format!("\n{k}:{v}");
    }
    out
}

/// The messages of a Get Messages answer (`<QueueMessagesList><QueueMessage>…`).
pub fn parse_messages(body: &[u8]) -> Result<Vec<Message>> {
    use quick_xml::events::Event;
    let bad = |e: &dyn fmt::Display| Error::InvalidJson(format!("the queue's Get Messages answer is not its XML: {e}"));
    let mut reader = quick_xml::Reader::from_reader(body);
    let (mut out, mut current, mut field) = (vec![], None::<Message>, String::new());
    let mut buf = vec![];
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| bad(&e))? {
            Event::Start(e) => {
                let name = e.name().as_ref().to_string();
                if name == "QueueMessage" {
                    current = Some(Message::default());
                }
                field = name;
            }
            Event::Text(t) => {
                let text = t.xml10_content().into_owned();
                append(current.as_mut(), &field, &text).map_err(|e| bad(&e))?;
            }
            Event::GeneralRef(r) => {
                // An entity inside a text (`&amp;`, `&#38;`): the SDK-style base64 never has one.
                let resolved = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => match r.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => return Err(bad(&"an unknown XML entity")),
                    }
                    .to_string(),
                };
                append(current.as_mut(), &field, &resolved).map_err(|e| bad(&e))?;
            }
            Event::End(e) => {
                if e.name().as_ref() == "QueueMessage" {
                    let m = current.take().unwrap_or_default();
                    // (A peek's messages have no PopReceipt: they cannot be changed.)
                    if m.id.is_empty() {
                        return Err(bad(&"a QueueMessage without MessageId"));
                    }
                    out.push(m);
                }
                field.clear();
            }
            Event::Eof if current.is_some() => return Err(bad(&"the answer ends inside a QueueMessage")),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

/// Text inside element `field` of message `m` (outside a message: ignored).
fn append(m: Option<&mut Message>, field: &str, text: &str) -> std::result::Result<(), std::num::ParseIntError> {
    let Some(m) = m else { return Ok(()) };
    match field {
        "MessageId" => m.id += text,
        "PopReceipt" => m.pop_receipt += text,
        "DequeueCount" => m.dequeue_count = text.trim().parse()?,
        "MessageText" => m.text += text,
        _ => {}
    }
    Ok(())
}

/// The text of a queued call's message.
pub fn encode_call(call: &QueuedCall) -> String {
    BASE64.encode(serde_json::to_vec(call).unwrap_or_default())
}

/// The text of a dead letter's message.
pub fn encode_poison(poison: &PoisonMessage) -> String {
    BASE64.encode(serde_json::to_vec(poison).unwrap_or_default())
}

/// A queued call from a message's text (base64 of its JSON).
pub fn decode_call(text: &str) -> Result<QueuedCall> {
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|_| Error::InvalidJson("the queue message is not base64 (not one this service wrote)".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::json("the queue message", e))
}

/// A dead letter from a poison message's text.
pub fn decode_poison(text: &str) -> Result<PoisonMessage> {
    let bytes =
        BASE64.decode(text.trim()).map_err(|_| Error::InvalidJson("the poison message is not base64".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::json("the poison message", e))
}

/// Judge a Queue service answer: `Ok` for 2xx, else its XML error's code and message.
pub fn check(status: u16, headers: &[(String, String)], body: &[u8]) -> std::result::Result<(), ServiceError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(body);
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(text[start..end].trim().to_string())
    };
    let code = between("<Code>", "</Code>")
        .or_else(|| header(headers, "x-ms-error-code").map(str::to_string))
        .unwrap_or_default();
    let mut message = between("<Message>", "</Message>").unwrap_or_default();
    message = message.lines().next().unwrap_or_default().chars().take(300).collect();
    if message.is_empty() {
        message = format!("HTTP {status}");
    }
    let retry_after_seconds = header(headers, "retry-after").and_then(|v| v.trim().parse().ok());
    let retryable = matches!(status, 408 | 429 | 500..=599);
    Err(ServiceError { status, code, message, retry_after_seconds, retryable })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    const EMULATOR_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn account_and_queue_come_from_either_url_style() {
        let q = QueueTarget::parse("Q", "https://contoso.queue.core.windows.net/callrecords", None).unwrap();
        assert_eq!((q.account.as_str(), q.name.as_str(), q.needs_token()), ("contoso", "callrecords", true));
        let q = QueueTarget::parse("Q", "http://127.0.0.1:10001/devstoreaccount1/calls/", Some(EMULATOR_KEY)).unwrap();
        assert_eq!((q.account.as_str(), q.name.as_str()), ("devstoreaccount1", "calls"));
        assert_eq!(q.poison().url, "http://127.0.0.1:10001/devstoreaccount1/calls-poison");
        assert!(!format!("{q:?}").contains("Eby8"), "{q:?}");
        for bad in [
            "https://contoso.queue.core.windows.net/Calls",
            "https://a.queue.core.windows.net/a--b",
            "http://127.0.0.1:1/calls",
        ] {
            assert!(QueueTarget::parse("Q", bad, None).is_err(), "{bad}");
        }
        assert!(QueueTarget::parse("Q", "https://a.queue.core.windows.net/calls", Some("not base64!")).is_err());
    }

    /// The string to sign and the signature, re-derived here from the documented layout with the
    /// emulator's published key.
    #[test]
    fn shared_key_signs_the_documented_string() {
        let q = QueueTarget::parse("Q", "http://127.0.0.1:10001/devstoreaccount1/calls", Some(EMULATOR_KEY)).unwrap();
        let date = "Tue, 01 Dec 2026 09:00:00 GMT";
        let r = q.get_request(32, 60, date, None).unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:10001/devstoreaccount1/calls/messages?numofmessages=32&visibilitytimeout=60"
        );
        let expected_to_sign = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Tue, 01 Dec 2026 09:00:00 GMT\nx-ms-version:2021-12-02\n/devstoreaccount1/devstoreaccount1/calls/messages\nnumofmessages:32\nvisibilitytimeout:60";
        let key = BASE64.decode(EMULATOR_KEY).unwrap();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(expected_to_sign.as_bytes());
        let expected = format!("SharedKey devstoreaccount1:{}", BASE64.encode(mac.finalize().into_bytes()));
        assert_eq!(header(&r.headers, "authorization"), Some(expected.as_str()));

        // A body: its length and Content-Type are signed; a pop receipt is signed decoded and sent encoded.
        let m = Message { id: "b1c2".into(), pop_receipt: "AgAAAA+/=".into(), dequeue_count: 1, text: String::new() };
        let r = q.update_request(&m, 30, Some("eyJhIjoxfQ=="), date, None).unwrap();
        assert!(r.url.ends_with("/calls/messages/b1c2?popreceipt=AgAAAA%2B%2F%3D&visibilitytimeout=30"), "{}", r.url);
        let body = "<QueueMessage><MessageText>eyJhIjoxfQ==</MessageText></QueueMessage>";
        assert_eq!(r.body, body.as_bytes());
        let to_sign = format!(
            "PUT\n\n\n{}\n\napplication/xml; charset=utf-8\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:2021-12-02\n/devstoreaccount1/devstoreaccount1/calls/messages/b1c2\npopreceipt:AgAAAA+/=\nvisibilitytimeout:30",
            body.len()
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let expected = format!("SharedKey devstoreaccount1:{}", BASE64.encode(mac.finalize().into_bytes()));
        assert_eq!(header(&r.headers, "authorization"), Some(expected.as_str()));
    }

    #[test]
    fn without_a_key_a_bearer_token_goes() {
        let q = QueueTarget::parse("Q", "https://contoso.queue.core.windows.net/calls", None).unwrap();
        let r = q.put_request("abc", "Tue, 01 Dec 2026 09:00:00 GMT", Some("tok")).unwrap();
        assert_eq!(r.url, "https://contoso.queue.core.windows.net/calls/messages?visibilitytimeout=0&messagettl=-1");
        assert_eq!(header(&r.headers, "authorization"), Some("Bearer tok"));
        assert!(q.put_request("abc", "d", None).is_err());
        assert!(matches!(q.put_request(&"a".repeat(MAX_MESSAGE_BYTES + 1), "d", Some("t")), Err(Error::TooLarge(_))));
    }

    /// The answer's shape as the Get Messages reference shows it.
    #[test]
    fn get_messages_answer_is_read() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<QueueMessagesList>
  <QueueMessage>
    <MessageId>5974b586-0df3-4e2d-ad0c-18e3892bfca2</MessageId>
    <InsertionTime>Fri, 09 Oct 2009 21:04:30 GMT</InsertionTime>
    <ExpirationTime>Fri, 16 Oct 2009 21:04:30 GMT</ExpirationTime>
    <PopReceipt>YzQ4Yzg1MDItYTc0Ny00OWNjLTkxYTUtZGM0MDFiZDAwYzEw</PopReceipt>
    <TimeNextVisible>Fri, 09 Oct 2009 23:29:20 GMT</TimeNextVisible>
    <DequeueCount>1</DequeueCount>
    <MessageText>PHRlc3Q+dGhpcyBpcyBhIHRlc3QgbWVzc2FnZTwvdGVzdD4=</MessageText>
  </QueueMessage>
  <QueueMessage><MessageId>b</MessageId><PopReceipt>p&amp;q</PopReceipt><DequeueCount>17</DequeueCount><MessageText>a&lt;b</MessageText></QueueMessage>
</QueueMessagesList>"#;
        let m = parse_messages(body).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, "5974b586-0df3-4e2d-ad0c-18e3892bfca2");
        assert_eq!(m[0].pop_receipt, "YzQ4Yzg1MDItYTc0Ny00OWNjLTkxYTUtZGM0MDFiZDAwYzEw");
        assert_eq!((m[0].dequeue_count, m[0].text.as_str()), (1, "PHRlc3Q+dGhpcyBpcyBhIHRlc3QgbWVzc2FnZTwvdGVzdD4="));
        assert_eq!((m[1].pop_receipt.as_str(), m[1].dequeue_count, m[1].text.as_str()), ("p&q", 17, "a<b"));
        assert!(parse_messages(b"<QueueMessagesList/>").unwrap().is_empty());
        assert!(parse_messages(b"<QueueMessagesList><QueueMessage><MessageText>x").is_err());
        assert!(parse_messages(b"<QueueMessagesList><QueueMessage></QueueMessage></QueueMessagesList>").is_err());
        let peeked = parse_messages(b"<QueueMessagesList><QueueMessage><MessageId>m</MessageId><DequeueCount>0</DequeueCount><MessageText>t</MessageText></QueueMessage></QueueMessagesList>").unwrap();
        assert_eq!((peeked[0].id.as_str(), peeked[0].pop_receipt.as_str()), ("m", ""));
    }

    #[test]
    fn messages_round_trip_and_a_foreign_one_is_an_error() {
        let c = QueuedCall {
            call_id: "c".into(),
            tenant_id: "t".into(),
            received_ms: 5,
            attempts: 2,
            done_tables: vec!["T".into()],
        };
        assert_eq!(decode_call(&encode_call(&c)).unwrap(), c);
        assert!(decode_call("hello world").is_err());
        assert!(decode_call(&BASE64.encode(b"[1,2]")).is_err());
    }

    #[test]
    fn xml_errors_are_read_and_busy_is_retryable() {
        let body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>QueueNotFound</Code><Message>The specified queue does not exist.\nRequestId:1</Message></Error>";
        let e = check(404, &[], body).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.retryable),
            ("QueueNotFound", "The specified queue does not exist.", false)
        );
        assert!(check(503, &[], b"<Error><Code>ServerBusy</Code></Error>").unwrap_err().retryable);
        assert!(check(204, &[], b"").is_ok());
    }
}
