//! A certificate credential: the app registration holds the certificate, the service holds its
//! private key and signs a short-lived JWT (the client assertion) for every token request.
//!
//! The assertion, as Microsoft's "certificate credentials" page specifies it:
//! - header: `alg` PS256 (PSS padding; RS256 is still accepted and is the older documented form),
//!   `typ` JWT, and the certificate's thumbprint: `x5t#S256` (base64url SHA-256 of the DER) with
//!   PS256, `x5t` (base64url SHA-1) with RS256;
//! - claims: `aud` = the token endpoint, `iss` = `sub` = the client id, a fresh `jti`, `nbf` and
//!   `iat` = now, `exp` at most 10 minutes later.
//!
//! The key and certificate come from a file (`CALLRECORDS_CLIENT_CERTIFICATE_PATH`): PKCS#12
//! (.pfx / .p12, with `CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD`, see [`super::pkcs12`]) or PEM
//! holding `CERTIFICATE` and `PRIVATE KEY` or `RSA PRIVATE KEY` blocks; or from the PEM text itself
//! (`CALLRECORDS_CLIENT_CERTIFICATE`). The certificate used is the one whose public key is the
//! private key's; it must be valid now. An encrypted PEM key is refused with the command that
//! decrypts it (a PKCS#12 file is the way to keep a key encrypted at rest).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_chacha::rand_core::{CryptoRng, TryCryptoRng};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::{PrivateKey, PublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem, Encode};

use crate::error::{Error, Result};

/// The setting naming a PEM file.
pub const PATH_SETTING: &str = "CALLRECORDS_CLIENT_CERTIFICATE_PATH";
/// The setting holding the PEM text itself.
pub const INLINE_SETTING: &str = "CALLRECORDS_CLIENT_CERTIFICATE";
/// The password of a PKCS#12 file.
pub const PASSWORD_SETTING: &str = "CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD";
/// How long an assertion is good for: Microsoft asks for "5-10 minutes after nbf at most".
pub const ASSERTION_LIFETIME_SECONDS: u64 = 600;

/// The JWS algorithm of the assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PSS with SHA-256 (Microsoft's current guidance), thumbprint in `x5t#S256`.
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, thumbprint in `x5t` (SHA-1).
    Rs256,
}

impl Algorithm {
    /// `PS256` or `RS256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ps256 => "PS256",
            Algorithm::Rs256 => "RS256",
        }
    }
}

/// Where the PEM comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// A file path, read by the host for the core.
    File(String),
    /// The PEM text (a secret: it holds the private key).
    Inline(String),
}

/// The certificate credential's settings. `Debug` shows the path, never a key or password.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateSettings {
    /// PEM or PKCS#12 file, or PEM text.
    pub source: Source,
    /// Password of a PKCS#12 file (a secret); none means the empty password.
    pub password: Option<String>,
    /// PS256 (default) or RS256.
    pub algorithm: Algorithm,
}

impl CertificateSettings {
    /// The file to read, if it is one.
    pub fn file(&self) -> Option<&str> {
        match &self.source {
            Source::File(p) => Some(p),
            Source::Inline(_) => None,
        }
    }

    /// The setting that holds the certificate, for messages.
    pub fn setting(&self) -> &'static str {
        match self.source {
            Source::File(_) => PATH_SETTING,
            Source::Inline(_) => INLINE_SETTING,
        }
    }

    /// Parse the PEM (the file's bytes, or the inline text when `file_bytes` is `None`) into
    /// the signing key and its certificate, checked to be valid at `now_seconds`.
    pub fn load(&self, file_bytes: Option<&[u8]>, now_seconds: u64) -> Result<SigningCertificate> {
        let bytes = match (&self.source, file_bytes) {
            (Source::Inline(text), _) => text.as_bytes(),
            (Source::File(_), Some(b)) => b,
            (Source::File(p), None) => return Err(Error::arg(format!("{PATH_SETTING}: {p} was not read"))),
        };
        SigningCertificate::from_bytes(bytes, self.password.as_deref().unwrap_or_default(), now_seconds)
            .map_err(|why| Error::arg(format!("{}: {why}", self.setting())))
    }
}

impl fmt::Debug for CertificateSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::File(p) => format!("file {p}"),
            Source::Inline(_) => "inline PEM <redacted>".into(),
        };
        let password = if self.password.is_some() { ", password <redacted>" } else { "" };
        write!(f, "{source}, {}{password}", self.algorithm.name())
    }
}

/// A private key with the certificate it belongs to. `Debug` shows the thumbprint only.
#[derive(Clone)]
pub struct SigningCertificate {
    key: PrivateKey,
    der: Vec<u8>,
    not_after: u64,
}

impl fmt::Debug for SigningCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCertificate")
            .field("x5t#S256", &self.thumbprint_sha256())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl SigningCertificate {
    /// Read a PKCS#12 file (with `password`) or PEM text. The reasons it gives never quote the
    /// material.
    pub fn from_bytes(bytes: &[u8], password: &str, now_seconds: u64) -> std::result::Result<Self, String> {
        if bytes.first() != Some(&0x30) {
            return Self::from_pem(bytes, now_seconds);
        }
        let contents = super::pkcs12::read(bytes, password)?;
        let der = contents.key.ok_or("the PKCS#12 file holds no private key")?;
        let key = PrivateKey::from_pkcs8_der(&der).map_err(|_| not_rsa())?;
        let certificates = contents
            .certificates
            .iter()
            .map(|c| {
                Certificate::from_der(c).map_err(|_| "a certificate in the PKCS#12 file cannot be read".to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Self::pick(key, certificates, now_seconds)
    }

    /// Read PEM text: its key, and its certificates.
    pub fn from_pem(bytes: &[u8], now_seconds: u64) -> std::result::Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "neither PEM text nor a PKCS#12 file".to_string())?;
        let mut key = None;
        let mut certificates = vec![];
        for (label, block) in pem_blocks(text) {
            match label {
                "CERTIFICATE" => certificates
                    .push(Certificate::from_pem(block).map_err(|_| "a CERTIFICATE block cannot be read".to_string())?),
                "PRIVATE KEY" => key = Some(PrivateKey::from_pkcs8_pem(block).map_err(|_| not_rsa())?),
                "RSA PRIVATE KEY" => {
                    key = Some(
                        PrivateKey::from_pkcs1_pem(block)
                            .map_err(|_| "the RSA PRIVATE KEY block cannot be read".to_string())?,
                    )
                }
                "ENCRYPTED PRIVATE KEY" => {
                    return Err("the PEM private key is encrypted: decrypt it (`openssl pkcs8 -in key.pem -out plain.pem`) and protect the file, or give a PKCS#12 file and its password".into());
                }
                "EC PRIVATE KEY" => return Err(not_rsa()),
                _ => {}
            }
        }
        let key = key.ok_or("no PRIVATE KEY block: the PEM needs the certificate's private key as well")?;
        Self::pick(key, certificates, now_seconds)
    }

    /// The first certificate whose public key is `key`'s, checked to be valid at `now_seconds`.
    fn pick(key: PrivateKey, certificates: Vec<Certificate>, now_seconds: u64) -> std::result::Result<Self, String> {
        if certificates.is_empty() {
            return Err("no certificate: the file needs the certificate uploaded to the app registration".into());
        }
        let public = PublicKey::from(&key);
        for cert in certificates {
            let spki = &cert.tbs_certificate().subject_public_key_info();
            let matches = spki
                .to_der()
                .ok()
                .and_then(|der| PublicKey::from_public_key_der(&der).ok())
                .is_some_and(|p| p == public);
            if !matches {
                continue;
            }
            let validity = cert.tbs_certificate().validity();
            let not_before = validity.not_before.to_unix_duration().as_secs();
            let not_after = validity.not_after.to_unix_duration().as_secs();
            if now_seconds >= not_after {
                return Err(format!(
                    "the certificate expired {} (Entra refuses an expired certificate): upload a new one to the app registration and put it here",
                    iso(not_after)
                ));
            }
            if now_seconds < not_before {
                return Err(format!("the certificate is not valid before {}", iso(not_before)));
            }
            let der = cert.to_der().map_err(|_| "the certificate cannot be encoded".to_string())?;
            return Ok(SigningCertificate { key, der, not_after });
        }
        Err("the private key does not belong to any certificate in the file".into())
    }

    /// Base64url SHA-256 of the certificate's DER (`x5t#S256`).
    pub fn thumbprint_sha256(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }

    /// Base64url SHA-1 of the certificate's DER (`x5t`).
    pub fn thumbprint_sha1(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha1::digest(&self.der))
    }

    /// When the certificate expires (Unix seconds).
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The signed client assertion for `audience` (the token endpoint), valid from `now_seconds`
    /// for [`ASSERTION_LIFETIME_SECONDS`]. `rng` gives the `jti` and, for PS256, the salt.
    pub fn assertion<R: CryptoRng>(
        &self,
        algorithm: Algorithm,
        client_id: &str,
        audience: &str,
        now_seconds: u64,
        rng: &mut R,
    ) -> String {
        let header = match algorithm {
            Algorithm::Ps256 => serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_sha256()}),
            Algorithm::Rs256 => serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint_sha1()}),
        };
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid_v4(rng),
            "nbf": now_seconds,
            "iat": now_seconds,
            "exp": now_seconds + ASSERTION_LIFETIME_SECONDS,
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = match algorithm {
            Algorithm::Ps256 => rsa::pss::SigningKey::<Sha256>::new(self.key.clone())
                .sign_with_rng(rng, signing_input.as_bytes())
                .to_vec(),
            Algorithm::Rs256 => {
                rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone()).sign(signing_input.as_bytes()).to_vec()
            }
        };
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn not_rsa() -> String {
    "the private key is not an RSA key (Entra's certificate credentials are RSA)".into()
}

/// A random (version 4) UUID, as Microsoft's examples give `jti`.
fn uuid_v4<R: TryCryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut b = [0u8; 16];
    let _ = rng.try_fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The `-----BEGIN <label>-----` … `-----END <label>-----` blocks of `text`, each whole (for the
/// decoders), with its label; text between blocks (OpenSSL's "Bag Attributes") is skipped.
fn pem_blocks(text: &str) -> Vec<(&str, &str)> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else { break };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else { break };
        let stop = start + end + end_marker.len();
        out.push((label, &rest[start..stop]));
        rest = &rest[stop..];
    }
    out
}

fn iso(unix_seconds: u64) -> String {
    crate::values::format_timestamp(crate::values::Instant { secs: unix_seconds as i64, ticks: 0 })
}
