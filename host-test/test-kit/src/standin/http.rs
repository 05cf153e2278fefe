//! The stand-ins over real HTTP/1.1 on a local address, for the CLI and for hosts that make real
//! requests (stock `wasmtime serve`, Fluent Bit), and over HTTPS for clients that speak only TLS.

use super::*;

/// Bind `addr` (port 0 = any free port) and serve the stand-ins built for that address over
/// HTTP/1.1 from a background thread, until the process ends.
pub fn start_http(
    addr: &str,
    build: impl FnOnce(&str) -> Result<StandIns, String>,
) -> Result<(SocketAddr, Arc<StandIns>), String> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let standins = Arc::new(build(&format!("http://{local}"))?);
    serve(listener, standins.clone(), None)?;
    Ok((local, standins))
}

/// Serve `standins` over HTTPS too, on `addr` (port 0 = any free port), with a self-signed
/// certificate for `127.0.0.1` and `localhost` made now: the endpoint for clients that speak
/// only TLS to Azure Monitor (Fluent Bit's `azure_logs_ingestion` always does), which must be
/// told not to verify it. Its Logs Ingestion path is a real DCE's, `/dataCollectionRules/…`.
pub fn start_https(addr: &str, standins: Arc<StandIns>) -> Result<SocketAddr, String> {
    use tokio_rustls::rustls;
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(|e| format!("test certificate: {e}"))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .map_err(|e| format!("test certificate: {e}"))?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    serve(listener, standins, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))?;
    Ok(local)
}

/// Answer every connection on `listener` from a background thread, over TLS when `tls` is given.
fn serve(
    listener: std::net::TcpListener,
    s: Arc<StandIns>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
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
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| answer_http(s.clone(), req));
                        let http = hyper::server::conn::http1::Builder::new();
                        match tls {
                            None => {
                                let _ =
                                    http.serve_connection(wasmtime_wasi_http::io::TokioIo::new(stream), service).await;
                            }
                            // A failed handshake (a client that refused the certificate) ends the connection.
                            Some(tls) => {
                                if let Ok(stream) = tls.accept(stream).await {
                                    let io = wasmtime_wasi_http::io::TokioIo::new(stream);
                                    let _ = http.serve_connection(io, service).await;
                                }
                            }
                        }
                    });
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(())
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
