//! Credentials without shared secrets, natively: the settings that choose them, the certificate
//! credential's PEM and client assertion, the managed identity requests and workload identity's
//! re-read token file.
//!
//! The keys and certificates in `tests/fixtures/credentials/` are test-only, made with OpenSSL
//! (see its README). Expectations come from OpenSSL's own output (thumbprints) and from `ring`
//! (signatures), never from the code under test.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use callrecords::config::Config;
use callrecords::entra::certificate::{Algorithm, SigningCertificate};
use callrecords::pipeline::{Action, Job, Run};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::Value;

const TENANT: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
const CLIENT: &str = "5e3ce6c0-2b1f-4285-8d4b-75ee78787346";
/// 2026-12-05T00:00:00Z, inside the test certificate's validity (2026-12-04 .. 2046-11-29).
const NOW: u64 = 1_796_428_800_000;
/// `openssl x509 -in app-cert.pem -noout -fingerprint -sha256`, as base64url (the README).
const X5T_S256: &str = "xs_b0xPZCw0kOHWzSTXKvKfdUtJtbMmVy0_jOoaLfS4";
/// `openssl x509 -in app-cert.pem -noout -fingerprint -sha1`, as base64url.
const X5T: &str = "KimKVwgTR7SUCLPcZjkivzaXLlc";

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/credentials/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn pem(names: &[&str]) -> String {
    names.iter().map(|n| String::from_utf8(read(n)).unwrap()).collect::<Vec<_>>().join("\n")
}

fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("CALLRECORDS_TENANT_ID", TENANT),
        ("CALLRECORDS_CLIENT_ID", CLIENT),
        ("CALLRECORDS_CLIENT_STATE", "state"),
        ("CALLRECORDS_DCE_URL", "https://dce.westeurope-1.ingest.monitor.azure.com"),
        ("CALLRECORDS_DCR_ID", "dcr-00000000000000000000000000000000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, val) in extra {
        v.retain(|(n, _)| n != k);
        v.push((k.to_string(), val.to_string()));
    }
    v
}

fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

/// `ring`'s verdict on a JWT's signature with the app certificate's public key (the PKCS#1 DER
/// OpenSSL wrote).
fn verifies(jwt: &str, algorithm: &'static dyn ring::signature::VerificationAlgorithm) -> bool {
    let (signed, sig) = jwt.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    UnparsedPublicKey::new(algorithm, read("app-rsa-public.der")).verify(signed.as_bytes(), &sig).is_ok()
}

/// The first request a run sends.
fn first_send(run: &mut Run) -> (u64, callrecords::http::OutgoingRequest) {
    match run.next(NOW) {
        Action::Send { id, request, .. } => (id, request),
        other => panic!("expected a request, got {other:?}"),
    }
}

fn run_with(extra: &[(&str, &str)], files: bool) -> Run {
    let mut run = Run::start(Config::from_env(&env(extra)).unwrap(), Job::Subscriptions, NOW).unwrap();
    run.seed_entropy([7; 32]);
    if files {
        run.allow_files(Box::new(|p| std::fs::read(p).map_err(|e| e.to_string())));
    }
    run
}

#[test]
fn nothing_set_keeps_the_client_secret() {
    let c = Config::from_env(&env(&[("CALLRECORDS_CLIENT_SECRET", "s3cret-value")])).unwrap();
    assert_eq!(c.credentials.credential.kind(), "secret");
    let mut run = run_with(&[("CALLRECORDS_CLIENT_SECRET", "s3cret-value")], false);
    let (_, req) = first_send(&mut run);
    let f = form(&req.body);
    assert_eq!(f["client_secret"], "s3cret-value");
    assert!(!f.contains_key("client_assertion"));
}

#[test]
fn a_certificate_signs_a_ps256_assertion_entra_can_verify() {
    let mut run = run_with(
        &[("CALLRECORDS_CREDENTIAL", "certificate"), ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", &fixture("app.pem"))],
        true,
    );
    let (_, req) = first_send(&mut run);
    assert_eq!(req.url, format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"));
    let f = form(&req.body);
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["client_id"], CLIENT);
    assert_eq!(f["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    assert_eq!(f["scope"], "https://graph.microsoft.com/.default");
    assert!(!f.contains_key("client_secret"));
    let jwt = &f["client_assertion"];
    let header = part(jwt, 0);
    assert_eq!(header["alg"], "PS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["x5t#S256"], X5T_S256);
    let claims = part(jwt, 1);
    assert_eq!(claims["aud"], req.url.as_str());
    assert_eq!(claims["iss"], CLIENT);
    assert_eq!(claims["sub"], CLIENT);
    assert_eq!(claims["nbf"], NOW / 1000);
    assert_eq!(claims["exp"], NOW / 1000 + 600);
    let jti = claims["jti"].as_str().unwrap();
    assert!(callrecords::values::is_guid(jti) && &jti[14..15] == "4", "{jti}");
    assert!(verifies(jwt, &RSA_PSS_2048_8192_SHA256), "ring refuses the signature");
    // One changed byte of the claims, and the signature no longer holds.
    let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string().replace(CLIENT, "00000000-0000-0000-0000-000000000000"));
    assert!(!verifies(&parts.join("."), &RSA_PSS_2048_8192_SHA256));
}

#[test]
fn rs256_carries_the_sha1_thumbprint_and_every_assertion_its_own_jti() {
    let cert = SigningCertificate::from_pem(pem(&["app-cert.pem", "app-key.pem"]).as_bytes(), NOW / 1000).unwrap();
    assert_eq!(cert.thumbprint_sha1(), X5T);
    assert_eq!(cert.thumbprint_sha256(), X5T_S256);
    let mut rng = rand_chacha_rng();
    let audience = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
    let a = cert.assertion(Algorithm::Rs256, CLIENT, &audience, NOW / 1000, &mut rng);
    let b = cert.assertion(Algorithm::Rs256, CLIENT, &audience, NOW / 1000, &mut rng);
    assert_eq!(part(&a, 0)["alg"], "RS256");
    assert_eq!(part(&a, 0)["x5t"], X5T);
    assert!(verifies(&a, &RSA_PKCS1_2048_8192_SHA256));
    assert_ne!(part(&a, 1)["jti"], part(&b, 1)["jti"]);
}

fn rand_chacha_rng() -> impl rsa_rng::CryptoRng {
    use rsa_rng::SeedableRng;
    rsa_rng::ChaCha20Rng::from_seed([9; 32])
}

mod rsa_rng {
    pub use rand_chacha::ChaCha20Rng;
    pub use rand_chacha::rand_core::{CryptoRng, SeedableRng};
}

#[test]
fn every_pem_key_form_is_read_and_each_fault_names_what_to_fix() {
    let now = NOW / 1000;
    let load = |names: &[&str]| SigningCertificate::from_pem(pem(names).as_bytes(), now).map(|c| c.thumbprint_sha256());
    assert_eq!(load(&["app-key-pkcs1.pem", "app-cert.pem"]).unwrap(), X5T_S256);
    // The right certificate is picked from a chain that holds another one first.
    assert_eq!(load(&["other-cert.pem", "app-cert.pem", "app-key.pem"]).unwrap(), X5T_S256);
    let err = load(&["app-cert.pem", "app-key-encrypted.pem"]).unwrap_err();
    assert!(err.contains("openssl pkcs8") && err.contains("PKCS#12"), "{err}");
    let err = load(&["other-cert.pem", "app-key.pem"]).unwrap_err();
    assert!(err.contains("does not belong"), "{err}");
    let err = load(&["app-cert.pem"]).unwrap_err();
    assert!(err.contains("PRIVATE KEY"), "{err}");
    let err = load(&["app-key.pem"]).unwrap_err();
    assert!(err.contains("no certificate"), "{err}");
    let err = load(&["expired-cert.pem", "app-key.pem"]).unwrap_err();
    assert!(err.contains("expired 2021-01-01T00:00:00Z"), "{err}");
    assert!(!err.contains("BEGIN"), "{err}");
}

/// PKCS#12 as OpenSSL 3 writes it (PBES2, AES-256-CBC, HMAC-SHA256 MAC): the same key and
/// thumbprint as the PEM; a wrong password is told apart by the MAC; the legacy 3DES form is
/// refused with the command that rewrites it.
#[test]
fn a_pkcs12_file_is_read_with_its_password() {
    let now = NOW / 1000;
    let cert = SigningCertificate::from_bytes(&read("app.p12"), "correct-horse", now).unwrap();
    assert_eq!(cert.thumbprint_sha256(), X5T_S256);
    let mut rng = rand_chacha_rng();
    let jwt = cert.assertion(
        Algorithm::Ps256,
        CLIENT,
        "https://login.microsoftonline.com/t/oauth2/v2.0/token",
        now,
        &mut rng,
    );
    assert!(verifies(&jwt, &RSA_PSS_2048_8192_SHA256));
    assert_eq!(SigningCertificate::from_bytes(&read("app-nopass.p12"), "", now).unwrap().thumbprint_sha256(), X5T_S256);
    let err = SigningCertificate::from_bytes(&read("app.p12"), "wrong", now).unwrap_err();
    assert!(err.contains("password is wrong") && err.contains("CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD"), "{err}");
    assert!(!err.contains("wrong\"") && !err.contains("correct-horse"), "{err}");
    let err = SigningCertificate::from_bytes(&read("app-3des.p12"), "correct-horse", now).unwrap_err();
    assert!(err.contains("legacy") && err.contains("openssl pkcs12"), "{err}");
    // Through the settings: the password is a secret of the banner.
    let extra = [
        ("CALLRECORDS_CREDENTIAL", "certificate"),
        ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", &fixture("app.p12")),
        ("CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD", "correct-horse"),
    ];
    let c = Config::from_env(&env(&extra)).unwrap();
    let shown = format!("{:?} {:?}", c.summary(), c);
    assert!(!shown.contains("correct-horse"), "{shown}");
    let mut run = run_with(&extra, true);
    let (_, req) = first_send(&mut run);
    assert!(verifies(&form(&req.body)["client_assertion"], &RSA_PSS_2048_8192_SHA256));
}

#[test]
fn an_unusable_certificate_fails_the_run_naming_the_setting() {
    let dir = std::env::temp_dir().join(format!("callrecords-cred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let expired = dir.join("expired.pem");
    std::fs::write(&expired, pem(&["expired-cert.pem", "app-key.pem"])).unwrap();
    let mut run = run_with(
        &[
            ("CALLRECORDS_CREDENTIAL", "certificate"),
            ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", expired.to_str().unwrap()),
        ],
        true,
    );
    let Action::Done(report) = run.next(NOW) else { panic!("expected the run to end") };
    let error = report.error.unwrap();
    assert!(error.contains("CALLRECORDS_CLIENT_CERTIFICATE_PATH") && error.contains("expired"), "{error}");
    assert!(!error.contains("PRIVATE"), "{error}");
    // A host that reads no files is told to give the PEM inline instead.
    let mut run = run_with(
        &[("CALLRECORDS_CREDENTIAL", "certificate"), ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", &fixture("app.pem"))],
        false,
    );
    let Action::Done(report) = run.next(NOW) else { panic!("expected the run to end") };
    assert!(report.error.unwrap().contains("CALLRECORDS_CLIENT_CERTIFICATE"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_inline_pem_works_without_files_and_never_shows() {
    let text = pem(&["app-cert.pem", "app-key.pem"]);
    let extra = [("CALLRECORDS_CREDENTIAL", "certificate"), ("CALLRECORDS_CLIENT_CERTIFICATE", text.as_str())];
    let c = Config::from_env(&env(&extra)).unwrap();
    let shown = format!("{:?} {:?}", c.summary(), c);
    assert!(!shown.contains("PRIVATE KEY") && !shown.contains("MII"), "{shown}");
    let mut run = run_with(&extra, false);
    let (_, req) = first_send(&mut run);
    assert!(verifies(&form(&req.body)["client_assertion"], &RSA_PSS_2048_8192_SHA256));
}

#[test]
fn selection_errors_name_the_setting() {
    let err = |extra: &[(&str, &str)]| Config::from_env(&env(extra)).unwrap_err().to_string();
    assert!(err(&[("CALLRECORDS_CREDENTIAL", "password")]).contains("CALLRECORDS_CREDENTIAL must be"));
    assert!(err(&[]).contains("CALLRECORDS_CLIENT_SECRET is not set"));
    assert!(err(&[("CALLRECORDS_CREDENTIAL", "certificate")]).contains("CALLRECORDS_CLIENT_CERTIFICATE_PATH"));
    let e = err(&[
        ("CALLRECORDS_CREDENTIAL", "certificate"),
        ("CALLRECORDS_CLIENT_CERTIFICATE_PATH", "/x.pem"),
        ("CALLRECORDS_CLIENT_CERTIFICATE_ALGORITHM", "ES256"),
    ]);
    assert!(e.contains("CALLRECORDS_CLIENT_CERTIFICATE_ALGORITHM"), "{e}");
    assert!(err(&[("CALLRECORDS_CREDENTIAL", "workload-identity")]).contains("AZURE_FEDERATED_TOKEN_FILE"));
    let e = err(&[
        ("CALLRECORDS_CREDENTIAL", "managed-identity"),
        ("IDENTITY_ENDPOINT", "http://localhost:4141/msi/token"),
    ]);
    assert!(e.contains("IDENTITY_HEADER"), "{e}");
    let e = err(&[("CALLRECORDS_CREDENTIAL", "managed-identity"), ("CALLRECORDS_IMDS_URL", "http://imds.example.com")]);
    assert!(e.contains("CALLRECORDS_IMDS_URL"), "{e}");
}

#[test]
fn managed_identity_asks_imds_or_the_app_service_endpoint() {
    // IMDS, system-assigned: Microsoft's documented request.
    let mut run = run_with(&[("CALLRECORDS_CREDENTIAL", "managed-identity"), ("CALLRECORDS_CLIENT_ID", "")], false);
    let (_, req) = first_send(&mut run);
    assert_eq!(req.method, "GET");
    assert_eq!(
        req.url,
        "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fgraph.microsoft.com"
    );
    assert!(req.headers.contains(&("Metadata".into(), "true".into())));
    assert!(req.body.is_empty());
    // App Service / Container Apps, user-assigned by client id.
    let extra = [
        ("CALLRECORDS_CREDENTIAL", "managed-identity"),
        ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token"),
        ("IDENTITY_HEADER", "header-secret-value"),
    ];
    let shown = format!("{:?}", Config::from_env(&env(&extra)).unwrap().summary());
    assert!(!shown.contains("header-secret-value") && shown.contains("user-assigned identity"), "{shown}");
    let mut run = run_with(&extra, false);
    let (_, req) = first_send(&mut run);
    assert_eq!(
        req.url,
        format!(
            "http://localhost:42356/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fgraph.microsoft.com&client_id={CLIENT}"
        )
    );
    assert!(req.headers.contains(&("X-IDENTITY-HEADER".into(), "header-secret-value".into())));
    // Its answer has only expires_on (Unix seconds): the token is kept until a minute before then.
    let expires_on = NOW / 1000 + 3600;
    let answer = format!(
        r#"{{"access_token":"tok","expires_on":"{expires_on}","resource":"https://graph.microsoft.com","token_type":"Bearer"}}"#
    );
    let t = callrecords::entra::parse_token_answer(answer.as_bytes(), Some(NOW / 1000)).unwrap();
    assert_eq!(t.expires_in_seconds, 3600);
    // The resource of Azure Monitor is the scope without `/.default`.
    assert_eq!(callrecords::entra::Scope::Monitor.resource(), "https://monitor.azure.com/");
}

#[test]
fn workload_identity_reads_the_token_file_again_for_each_request() {
    let token = Arc::new(Mutex::new("federated-token-one".to_string()));
    let extra = [
        ("CALLRECORDS_CREDENTIAL", "workload-identity"),
        ("CALLRECORDS_CLIENT_ID", ""),
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
    ];
    let mut run = Run::start(Config::from_env(&env(&extra)).unwrap(), Job::Subscriptions, NOW).unwrap();
    let file = token.clone();
    run.allow_files(Box::new(move |p| {
        assert_eq!(p, "/var/run/secrets/azure/tokens/azure-identity-token");
        Ok(file.lock().unwrap().clone().into_bytes())
    }));
    let (id, req) = first_send(&mut run);
    let f = form(&req.body);
    assert_eq!(f["client_id"], CLIENT);
    assert_eq!(f["client_assertion"], "federated-token-one");
    assert_eq!(f["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    run.respond(id, 200, &[], br#"{"access_token":"graph-1","expires_in":3599}"#, NOW).unwrap();
    // Kubernetes rotates the token; Graph refuses the first access token: the next request reads anew.
    *token.lock().unwrap() = "federated-token-two".into();
    let (id, list) = first_send(&mut run);
    assert!(list.url.contains("/subscriptions"), "{}", list.url);
    run.respond(id, 401, &[], br#"{"error":{"code":"InvalidAuthenticationToken","message":"expired"}}"#, NOW).unwrap();
    let (_, again) = first_send(&mut run);
    assert_eq!(form(&again.body)["client_assertion"], "federated-token-two");
}

#[test]
fn a_managed_identity_has_no_tokens_for_other_tenants() {
    let other = "9b0e2f8c-1d3a-4c5b-8e7f-6a5b4c3d2e1f";
    let call = callrecords::pipeline::queue::QueuedCall {
        call_id: "0a6f3c2e-0000-4000-8000-000000000001".into(),
        tenant_id: other.into(),
        received_ms: NOW,
        attempts: 0,
        done_tables: vec![],
    };
    let config = Config::from_env(&env(&[("CALLRECORDS_CREDENTIAL", "managed-identity")])).unwrap();
    let mut run = Run::start(config, Job::Drain(vec![call]), NOW).unwrap();
    let error = loop {
        match run.next(NOW) {
            // The sink's token (own tenant) may go first: the endpoint does not answer here.
            Action::Send { id, .. } => run.transport_error(id, "no IMDS here", NOW).unwrap(),
            Action::Done(report) => break report.error.unwrap_or_default(),
            Action::Wait(_) | Action::Progress(_) => {}
        }
    };
    assert!(error.contains(other) && error.contains("own tenant"), "{error}");
}

/// IMDS answers 404 and then 410 while it is updating: the token request is repeated after a
/// backoff, and the run goes on once IMDS answers.
#[test]
fn imds_updating_is_waited_out() {
    let mut run =
        run_with(&[("CALLRECORDS_CREDENTIAL", "managed-identity"), ("CALLRECORDS_RETRY_BASE_MS", "100")], false);
    let mut now = NOW;
    let next_send = |run: &mut Run, now: &mut u64| loop {
        match run.next(*now) {
            Action::Send { id, request, .. } => return (id, request),
            Action::Wait(ms) => *now += u64::from(ms),
            other => panic!("{other:?}"),
        }
    };
    for status in [404, 410] {
        let (id, req) = next_send(&mut run, &mut now);
        assert!(req.url.contains("/metadata/identity/oauth2/token"), "{}", req.url);
        run.respond(id, status, &[], b"{}", now).unwrap();
    }
    let (id, req) = next_send(&mut run, &mut now);
    assert!(req.url.contains("/metadata/identity/oauth2/token"), "{}", req.url);
    run.respond(id, 200, &[], br#"{"access_token":"tok","expires_in":"86399","token_type":"Bearer"}"#, now).unwrap();
    let (_, list) = next_send(&mut run, &mut now);
    assert!(list.url.contains("/subscriptions"), "{}", list.url);
    assert!(now - NOW >= 300, "backoff of 100 then 200 ms, waited {} ms", now - NOW);
}
