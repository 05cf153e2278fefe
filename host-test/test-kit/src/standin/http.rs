//! The stand-ins over real HTTP/1.1 on a local address, for the CLI and for hosts that make real
//! requests (stock `wasmtime serve`, Fluent Bit).

use super::*;

/// Bind `addr` (port 0 = any free port) and serve the stand-ins built for that address over
/// HTTP/1.1 from a background thread, until the process ends.
pub fn start_http(
    addr: &str,
    build: impl FnOnce(&str) -> Result<StandIns, String>,
) -> Result<(SocketAddr, Arc<StandIns>), String> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let standins = Arc::new(build(&format!("http://{local}"))?);
    let s = standins.clone();
    std::thread::Builder::new()
        .name("stand-ins".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
            let Ok(rt) = rt else { return };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                while let Ok((stream, _)) = listener.accept().await {
                    s.connection_accepted();
                    let s = s.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| answer_http(s.clone(), req));
                        let io = wasmtime_wasi_http::io::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                    });
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok((local, standins))
}

async fn answer_http(
    s: Arc<StandIns>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::io::Error> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes().to_vec();
    let request = Request::from_parts(&parts, body);
    let answer = tokio::task::spawn_blocking(move || s.answer(&request)).await.map_err(std::io::Error::other)?;
    match answer {
        Answer::Drop => Err(std::io::Error::other("connection dropped by the fault plan")),
        Answer::Response { status, headers, body } => {
            let mut r = hyper::Response::builder().status(status);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.body(http_body_util::Full::new(bytes::Bytes::from(body))).map_err(std::io::Error::other)
        }
    }
}
