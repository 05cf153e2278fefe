//! Raw HTTP/1.1 request files (as captured on the wire) -> the WIT `incoming-request`.

use crate::bindings::types::IncomingRequest;

/// Largest header section read.
const MAX_HEADERS: usize = 100;

/// Parse a complete HTTP/1.1 request. The body is what `Content-Length` says (or everything after
/// the headers when it is absent); chunked bodies are decoded.
pub fn parse_request(raw: &[u8]) -> Result<IncomingRequest, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err("incomplete HTTP request: the header section must end with an empty line".into());
        }
        Err(e) => return Err(format!("not an HTTP/1.1 request: {e}")),
    };
    let method = req.method.unwrap_or_default().to_string();
    let path = req.path.unwrap_or_default().to_string();
    let headers: Vec<(String, String)> =
        req.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect();
    let rest = &raw[head_len..];
    let find = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| format!("Content-Length {len:?} is not a number"))?;
        if rest.len() < len {
            return Err(format!("body is {} bytes but Content-Length says {len}", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(IncomingRequest { method, path_and_query: path, headers, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = vec![];
    loop {
        let (size, used) = match httparse::parse_chunk_size(data) {
            Ok(httparse::Status::Complete(v)) => (v.1 as usize, v.0),
            _ => return Err("malformed chunked body".into()),
        };
        data = &data[used..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("chunked body ends early".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
