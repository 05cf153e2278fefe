//! Credentials without shared secrets, end to end: the built `callrecords` CLI (the plugin
//! component, reading credential files through WASI preopens) and the service component, each
//! against stand-ins at cloud latency that check what Entra checks (`standin::identity`):
//! a certificate's client assertion, a federated (workload identity) token, and the IMDS and App
//! Service managed identity endpoints. Signatures are checked here again with `ring`; assertions
//! this file signs itself are made with `ring` too, never with the code under test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use callrecords_test_kit::demo::{CONTOSO, DEMO_CLIENT_ID, DEMO_CLIENT_STATE};
use callrecords_test_kit::standin::{self, EXCHANGE_AUDIENCE, Faults, Identities, Latency, StandIns};
use ring::signature::{RSA_PSS_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

use crate::cli::OutputText;
use crate::service::{P2P, callrecords_dir, delivery, item, rig_with};
use crate::temp_dir;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugin/tests/fixtures/credentials");
const ISSUER: &str = "https://oidc.prod-aks.azure.com/0f1e2d3c-test/";
const SUBJECT: &str = "system:serviceaccount:teams:callrecords";
const IDENTITY_HEADER: &str = "identity-header-secret-2f9c";
const USER_ASSIGNED: &str = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
/// The calls of the sample window (2026-11-20 .. 11-28), as the backfill test counts them.
const WINDOW: (&str, &str) = ("2026-11-20T00:00:00Z", "2026-11-28T00:00:00Z");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// The body of a PEM block, decoded here (not by the code under test).
fn pem_der(name: &str) -> Vec<u8> {
    let text = String::from_utf8(read(name)).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

/// What the stand-in tenant registered: the app's certificate, the cluster's federated
/// credential (its issuer signs with `other-key.pem`), the App Service header, a user-assigned
/// identity.
fn identities() -> Identities {
    Identities {
        certificate: Some((pem_der("app-cert.pem"), read("app-rsa-public.der"))),
        federated: Some((ISSUER.into(), SUBJECT.into(), read("other-rsa-public.der"))),
        identity_header: IDENTITY_HEADER.into(),
        user_assigned: vec![USER_ASSIGNED.into()],
        login_origin: None,
    }
}

fn standins(workspace: &Path) -> Arc<StandIns> {
    let ws = workspace.to_path_buf();
    let (_, s) = standin::start_http("127.0.0.1:0", move |base| {
        let mut s = StandIns::new(base, &callrecords_dir(), Some(ws), Faults::default())?;
        s.set_latency(Latency { graph_per_tenant_20s: 0, ..Latency::CLOUD });
        s.set_identities(identities());
        Ok(s)
    })
    .expect("stand-ins start");
    s
}

/// The demo settings with `credential` in place of the client secret.
fn env_with(base: &str, credential: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = callrecords_test_kit::demo::demo_env(base, "logs-ingestion");
    env.retain(|(k, _)| k != "CALLRECORDS_CLIENT_SECRET");
    for (k, v) in credential {
        env.retain(|(n, _)| n != k);
        env.push((k.to_string(), v.to_string()));
    }
    env.retain(|(_, v)| !v.is_empty());
    env
}

/// The built `callrecords` with `args` and exactly `env` as its settings: no `CALLRECORDS_*` or
/// Azure-set variable of this process is inherited.
fn callrecords_with(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrecords"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("CALLRECORDS_") || callrecords::config::AZURE_VARIABLES.contains(&k.as_str()) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// `callrecords backfill` over the sample window with exactly `env` (nothing inherited), with a
/// checkpoint of its own.
fn backfill(env: &[(String, String)]) -> Output {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let checkpoint = temp_dir(&format!("credentials-checkpoint-{n}")).join("cp.json");
    let mut cmd =
        callrecords_with(&["backfill", "--since", WINDOW.0, "--until", WINDOW.1, "--window-hours", "24"], env);
    cmd.arg("--checkpoint").arg(&checkpoint).stdin(Stdio::null());
    cmd.output().expect("run callrecords")
}

fn assert_shipped(out: &Output, s: &StandIns) {
    assert!(out.status.success(), "stdout: {}\nstderr: {}", out.stdout_text(), out.stderr_text());
    assert_eq!(
        s.accepted().get("TeamsCall_CL").map_or(0, Vec::len),
        6,
        "the six calls of the window\nstdout: {}\nstderr: {}",
        out.stdout_text(),
        out.stderr_text()
    );
    for text in [out.stdout_text(), out.stderr_text()] {
        for secret in ["PRIVATE KEY", IDENTITY_HEADER, "eyJ"] {
            assert!(!text.contains(secret), "{secret} was printed:\n{text}");
        }
    }
}

/// A JWT signed RS256 with `key_pem` (PKCS#8) by `ring`.
fn sign_rs256(key_pem: &str, header: &Value, claims: &Value) -> String {
    let key = RsaKeyPair::from_pkcs8(&pem_der(key_pem)).unwrap();
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The token Kubernetes projects for the service account, as the cluster's issuer signs it.
fn federated_token(expires: u64) -> String {
    let claims = json!({"aud": [EXCHANGE_AUDIENCE], "iss": ISSUER, "sub": SUBJECT, "nbf": now() - 60, "iat": now() - 60, "exp": expires});
    sign_rs256("other-key.pem", &json!({"alg": "RS256", "kid": "cluster-key-1", "typ": "JWT"}), &claims)
}

fn post_token(s: &StandIns, form: &[(&str, String)]) -> (u16, Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let req = callrecords_test_kit::standin::Request {
        method: "POST".into(),
        path: format!("/login/{CONTOSO}/oauth2/v2.0/token"),
        headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
        body: body.into_bytes(),
    };
    match s.answer(&req) {
        callrecords_test_kit::standin::Answer::Response { status, body, .. } => {
            (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_certificate_file_ships_the_window_and_entra_refuses_tampering_replay_and_expiry() {
    let dir = temp_dir("credentials-certificate");
    let s = standins(&dir.join("ws"));
    let path = fixture("app.pem");
    let env = env_with(
        s.base(),
        &[("CALLRECORDS_CREDENTIAL", "certificate"), ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", path.to_str().unwrap())],
    );
    let out = backfill(&env);
    assert_shipped(&out, &s);
    assert_eq!(s.identity_counts().get("certificate"), Some(&2), "one assertion per token: Graph and Azure Monitor");

    // The test's own check of what the component sent: PS256 over the app key, by `ring`.
    let jwt = s.assertions().pop().unwrap();
    let (signed, sig) = jwt.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, read("app-rsa-public.der"))
        .verify(signed.as_bytes(), &sig)
        .expect("the assertion verifies with the registered certificate's key");
    let form = |assertion: &str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
            ("scope", "https://graph.microsoft.com/.default"),
        ]
        .map(|(k, v)| (k, v.to_string()))
    };
    // Sent again: a replayed jti.
    let (status, answer) = post_token(&s, &form(&jwt));
    assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_client")), "{answer}");
    assert!(answer["error_description"].as_str().unwrap().contains("jti"), "{answer}");
    // One signature byte changed.
    let mut tampered = jwt.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let (status, answer) = post_token(&s, &form(&String::from_utf8(tampered).unwrap()));
    assert_eq!(status, 401);
    assert_eq!(answer["error_codes"][0], 700027, "{answer}");
    // Signed right, but expired an hour ago.
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t": URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &pem_der("app-cert.pem")))});
    let audience = format!("{}/login/{CONTOSO}/oauth2/v2.0/token", s.base());
    let claims = json!({"aud": audience, "iss": DEMO_CLIENT_ID, "sub": DEMO_CLIENT_ID, "jti": "a1b2c3d4-0000-4000-8000-000000000001",
                        "nbf": now() - 4000, "iat": now() - 4000, "exp": now() - 3400});
    let (status, answer) = post_token(&s, &form(&sign_rs256("app-key.pem", &header, &claims)));
    assert_eq!((status, answer["error_codes"][0].as_u64()), (401, Some(700024)), "{answer}");
    // The same, current: accepted (so the refusals above were for what they say).
    let claims = json!({"aud": audience, "iss": DEMO_CLIENT_ID, "sub": DEMO_CLIENT_ID, "jti": "a1b2c3d4-0000-4000-8000-000000000002",
                        "nbf": now() - 10, "iat": now() - 10, "exp": now() + 300});
    let (status, answer) = post_token(&s, &form(&sign_rs256("app-key.pem", &header, &claims)));
    assert_eq!(status, 200, "{answer}");
}

/// A .pfx as OpenSSL 3 (and Windows' AES export) writes it, with its password from the settings;
/// the password never shows, and a wrong one is one error naming its setting.
#[test]
fn a_pkcs12_file_and_its_password_ship_the_window() {
    let dir = temp_dir("credentials-pkcs12");
    let s = standins(&dir.join("ws"));
    let path = fixture("app.p12");
    let settings = |password: &'static str| {
        env_with(
            s.base(),
            &[
                ("CALLRECORDS_CREDENTIAL", "certificate"),
                ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", path.to_str().unwrap()),
                ("CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD", password),
            ],
        )
    };
    let out = backfill(&settings("correct-horse"));
    assert_shipped(&out, &s);
    assert!(!out.stdout_text().contains("correct-horse") && !out.stderr_text().contains("correct-horse"));
    assert_eq!(s.identity_counts().get("certificate"), Some(&2));
    let out = backfill(&settings("battery-staple"));
    assert_eq!(out.status.code(), Some(1));
    let err = out.stderr_text();
    assert!(err.contains("password is wrong") && err.contains("CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD"), "{err}");
    assert!(!err.contains("battery-staple"), "{err}");
}

#[test]
fn an_unregistered_or_expired_certificate_is_one_error_naming_the_setting() {
    let dir = temp_dir("credentials-certificate-wrong");
    let s = standins(&dir.join("ws"));
    // A key and certificate Entra has never seen: Entra refuses, and the error says what to fix.
    let other = dir.join("other.pem");
    std::fs::write(&other, [read("other-cert.pem"), read("other-key.pem")].concat()).unwrap();
    let env = env_with(
        s.base(),
        &[("CALLRECORDS_CREDENTIAL", "certificate"), ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", other.to_str().unwrap())],
    );
    let out = backfill(&env);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr_text());
    let err = out.stderr_text();
    assert!(err.contains("AADSTS700027") && err.contains("CALLRECORDS_CLIENT_CERTIFICATE_PATH"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    // An expired one never leaves the machine.
    let expired = dir.join("expired.pem");
    std::fs::write(&expired, [read("expired-cert.pem"), read("app-key.pem")].concat()).unwrap();
    let tokens = s.counters().tokens;
    let env = env_with(
        s.base(),
        &[
            ("CALLRECORDS_CREDENTIAL", "certificate"),
            ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", expired.to_str().unwrap()),
        ],
    );
    let out = backfill(&env);
    let err = out.stderr_text();
    assert!(err.contains("CALLRECORDS_CLIENT_CERTIFICATE_PATH") && err.contains("expired 2021-01-01"), "{err}");
    assert_eq!(s.counters().tokens, tokens);
    assert_eq!(s.accepted().get("TeamsCall_CL").map_or(0, Vec::len), 0);
}

#[test]
fn workload_identity_sends_the_projected_token_and_an_expired_one_is_refused() {
    let dir = temp_dir("credentials-workload");
    let s = standins(&dir.join("ws"));
    let file = dir.join("tokens/azure-identity-token");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, federated_token(now() + 3600)).unwrap();
    // As the AKS webhook sets them: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE.
    let env = env_with(
        s.base(),
        &[
            ("CALLRECORDS_CREDENTIAL", "workload-identity"),
            ("CALLRECORDS_CLIENT_ID", ""),
            ("AZURE_CLIENT_ID", DEMO_CLIENT_ID),
            ("AZURE_TENANT_ID", CONTOSO),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
        ],
    );
    let out = backfill(&env);
    assert_shipped(&out, &s);
    assert_eq!(s.identity_counts().get("federated"), Some(&2));
    // The token in the file expired: the one error names the file and the federated credential.
    std::fs::write(&file, federated_token(now() - 900)).unwrap();
    let out = backfill(&env);
    assert_eq!(out.status.code(), Some(1));
    let err = out.stderr_text();
    assert!(err.contains("AADSTS700024") && err.contains("AZURE_FEDERATED_TOKEN_FILE"), "{err}");
}

#[test]
fn managed_identity_through_imds_and_the_app_service_endpoint() {
    let dir = temp_dir("credentials-managed");
    let s = standins(&dir.join("ws"));
    // IMDS, system-assigned (no client id).
    let env = env_with(
        s.base(),
        &[
            ("CALLRECORDS_CREDENTIAL", "managed-identity"),
            ("CALLRECORDS_CLIENT_ID", ""),
            ("CALLRECORDS_IMDS_URL", s.base()),
        ],
    );
    assert_shipped(&backfill(&env), &s);
    assert_eq!(s.identity_counts().get("imds"), Some(&2));
    // App Service / Container Apps, a user-assigned identity.
    let s = standins(&dir.join("ws2"));
    let endpoint = format!("{}/msi/token", s.base());
    let app_service = [
        ("CALLRECORDS_CREDENTIAL", "managed-identity"),
        ("CALLRECORDS_CLIENT_ID", USER_ASSIGNED),
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", IDENTITY_HEADER),
    ];
    assert_shipped(&backfill(&env_with(s.base(), &app_service)), &s);
    assert_eq!(s.identity_counts().get("app-service"), Some(&2));
    // A wrong IDENTITY_HEADER: refused as the endpoint refuses, one error naming it.
    let mut wrong = app_service;
    wrong[3] = ("IDENTITY_HEADER", "not-the-header");
    let out = backfill(&env_with(s.base(), &wrong));
    assert_eq!(out.status.code(), Some(1));
    let err = out.stderr_text();
    assert!(err.contains("401") && err.contains("IDENTITY_HEADER"), "{err}");
    assert!(!err.contains("not-the-header"), "{err}");
    // IMDS without its Metadata header, as IMDS answers it.
    let req = callrecords_test_kit::standin::Request {
        method: "GET".into(),
        path: "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://graph.microsoft.com".into(),
        headers: vec![],
        body: vec![],
    };
    let callrecords_test_kit::standin::Answer::Response { status, body, .. } = s.answer(&req) else { panic!() };
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})
    );
}

/// The service component (`wasmtime serve`'s artifact) reads the certificate through its own
/// preopen, and the webhook's rows land.
#[test]
fn the_service_component_signs_with_a_certificate_file() {
    let path = fixture("app.pem");
    let r = rig_with(
        Faults::default(),
        &[
            ("CALLRECORDS_CLIENT_SECRET", ""),
            ("CALLRECORDS_CREDENTIAL", "certificate"),
            ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", path.to_str().unwrap()),
        ],
        |s| s.set_identities(identities()),
    );
    let served = r.post("/notify", &delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]));
    assert_eq!(served.status, 202, "{}", served.log);
    assert_eq!(r.standins.identity_counts().get("certificate"), Some(&2));
    assert_eq!(r.calls_landed().into_iter().collect::<Vec<_>>(), [P2P]);
}

/// `callrecords serve` (queue mode: the edge and the workers) with workload identity: its banner
/// names the credential, never the token, and a delivery's rows land.
#[test]
fn serve_names_its_credential_and_ships_with_workload_identity() {
    use crate::stock::{ChildGuard, free_port, post, read_lossy, wait_for_port};
    let dir = temp_dir("credentials-serve");
    let s = standins(&dir.join("ws-standins"));
    let file = dir.join("tokens/azure-identity-token");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let token = federated_token(now() + 3600);
    std::fs::write(&file, &token).unwrap();
    let env = env_with(
        s.base(),
        &[("CALLRECORDS_CREDENTIAL", "workload-identity"), ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap())],
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("serve.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = callrecords_with(
        &["serve", "--listen", &addr.to_string(), "--workspace", dir.join("ws").to_str().unwrap()],
        &env,
    );
    cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
    let mut child = ChildGuard(cmd.spawn().expect("spawn callrecords serve"));
    wait_for_port(addr, &mut child, std::time::Duration::from_secs(120), &log);
    let body = delivery(vec![item(P2P, CONTOSO, DEMO_CLIENT_STATE)]).to_string();
    let r = post(addr, "/notify", Some("application/json"), body.as_bytes());
    assert_eq!(r.status, 202, "{}\n{}", r.text(), read_lossy(&log));
    let started = std::time::Instant::now();
    while !s.accepted().contains_key("TeamsCall_CL") {
        assert!(started.elapsed().as_secs() < 60, "nothing landed in 60 s:\n{}", read_lossy(&log));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(s.identity_counts().get("federated").is_some_and(|n| *n >= 1));
    drop(child);
    let text = read_lossy(&log);
    assert!(text.contains("credential: workload identity federation for app registration"), "{text}");
    assert!(text.contains(file.to_str().unwrap()), "{text}");
    assert!(!text.contains(&token[..40]), "the federated token was printed:\n{text}");
}

/// A certificate that cannot be used stops `serve` at once, with one line naming the setting.
#[test]
fn serve_refuses_to_start_with_an_unusable_certificate() {
    let dir = temp_dir("credentials-serve-refused");
    let missing = dir.join("nowhere.pem");
    let env = env_with(
        "http://127.0.0.1:9",
        &[
            ("CALLRECORDS_CREDENTIAL", "certificate"),
            ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", missing.to_str().unwrap()),
        ],
    );
    let mut cmd =
        callrecords_with(&["serve", "--listen", "127.0.0.1:0", "--workspace", dir.join("ws").to_str().unwrap()], &env);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout_text());
    let err = out.stderr_text();
    assert!(err.contains("CALLRECORDS_CLIENT_CERTIFICATE_PATH") && err.contains("not found"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
