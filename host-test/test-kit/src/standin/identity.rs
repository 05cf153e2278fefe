//! What Entra ID checks of a client assertion, and the two managed identity endpoints.
//!
//! - **Certificate assertions** (`x5t#S256` or `x5t` in the header): the thumbprint must name the
//!   certificate registered on the app, the signature must verify against its public key (checked
//!   here with `ring`, not with the RSA code under test), `aud` must be this token endpoint, `iss`
//!   and `sub` the client id, `nbf`/`exp` must hold now (five minutes of clock skew, as Entra
//!   allows), and a `jti` is taken once.
//! - **Federated assertions** (workload identity): signed by the registered issuer's key, with
//!   that issuer, subject, and the audience `api://AzureADTokenExchange`.
//! - **IMDS** (`/metadata/identity/oauth2/token`): `Metadata: true` or 400 "Required metadata
//!   header not specified"; an unknown `client_id` is 400 "Identity not found"; `expires_in` is a
//!   string.
//! - **App Service** (`/msi/token`): `X-IDENTITY-HEADER` must match or the answer is 401 in plain
//!   text (as seen from the real endpoint); `expires_on` only, Unix seconds as a string.
//!
//! Refusals use Entra's flat shape (`error`, `error_description` with the AADSTS code,
//! `error_codes`): AADSTS50027 malformed JWT, AADSTS700027 signature or key, AADSTS700024 outside
//! the valid time range, AADSTS50013 an invalid assertion (audience, subject, a replayed `jti`).

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use sha2::Digest;

use super::*;

/// Audience Entra requires of a federated token.
pub const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Clock skew Entra tolerates on `nbf` / `exp`.
const SKEW_SECONDS: u64 = 300;

/// What the stand-in's tenant has registered for the demo app.
#[derive(Clone, Default)]
pub struct Identities {
    /// The certificate uploaded to the app registration: its DER, and its RSA public key as
    /// PKCS#1 DER (what `openssl rsa -RSAPublicKey_out -outform DER` writes).
    pub certificate: Option<(Vec<u8>, Vec<u8>)>,
    /// A federated credential: issuer, subject, the issuer's RSA public key (PKCS#1 DER).
    pub federated: Option<(String, String, Vec<u8>)>,
    /// The App Service endpoint's `IDENTITY_HEADER`.
    pub identity_header: String,
    /// Client ids of the user-assigned identities attached to "this resource".
    pub user_assigned: Vec<String>,
    /// The origin callers reach the token endpoint at, when not the stand-ins' base (behind a
    /// proxy such as Envoy's clusters): a certificate assertion's `aud` names it.
    pub login_origin: Option<String>,
}

/// Identity state the stand-ins keep.
#[derive(Default)]
pub(super) struct IdentityState {
    pub(super) jtis: HashSet<String>,
    /// Assertions accepted, by kind (`certificate`, `federated`) and tokens given by the managed
    /// identity endpoints (`imds`, `app-service`).
    pub(super) accepted: BTreeMap<&'static str, u32>,
    /// The client assertions accepted, as sent.
    pub(super) assertions: Vec<String>,
}

fn decode_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

impl StandIns {
    /// Judge a client assertion for `client_id` at this `token_url`; `Ok` names its kind.
    pub(super) fn check_assertion(
        &self,
        st: &mut State,
        jwt: &str,
        client_id: &str,
        token_url: &str,
    ) -> Result<&'static str, Answer> {
        let malformed = || {
            Answer::json(
                401,
                json!({"error": "invalid_client", "error_description": "AADSTS50027: JWT token is invalid or malformed.", "error_codes": [50027]}),
            )
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        let [h, c, sig] = parts[..] else { return Err(malformed()) };
        let (Some(header), Some(claims), Ok(sig)) = (decode_json(h), decode_json(c), URL_SAFE_NO_PAD.decode(sig))
        else {
            return Err(malformed());
        };
        let signed = format!("{h}.{c}");
        let refuse = |code: u32, text: &str| {
            Answer::json(
                401,
                json!({"error": "invalid_client", "error_description": format!("AADSTS{code}: {text}"), "error_codes": [code]}),
            )
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claim = |k: &str| claims[k].as_str().unwrap_or_default().to_string();
        let (kind, key, algorithm): (&'static str, Vec<u8>, &dyn signature::VerificationAlgorithm) = if header
            .get("x5t#S256")
            .is_some()
            || header.get("x5t").is_some()
        {
            let Some((der, public)) = &self.identities.certificate else {
                return Err(refuse(
                    700027,
                    "Client assertion failed signature validation. No certificate is registered.",
                ));
            };
            let registered = match header.get("x5t#S256") {
                Some(t) => t.as_str() == Some(&URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))),
                None => header["x5t"].as_str() == Some(&URL_SAFE_NO_PAD.encode(sha1_digest(der))),
            };
            if !registered {
                return Err(refuse(
                    700027,
                    "Client assertion failed signature validation. The key used is not registered on the application.",
                ));
            }
            let algorithm: &dyn signature::VerificationAlgorithm = match header["alg"].as_str() {
                Some("PS256") => &signature::RSA_PSS_2048_8192_SHA256,
                Some("RS256") => &signature::RSA_PKCS1_2048_8192_SHA256,
                _ => return Err(malformed()),
            };
            if claim("iss") != client_id || claim("sub") != client_id {
                return Err(refuse(50013, "Assertion is invalid: iss and sub must be the client id."));
            }
            if claim("aud") != token_url {
                return Err(refuse(50013, "Assertion audience claim does not match the token endpoint."));
            }
            ("certificate", public.clone(), algorithm)
        } else {
            let Some((issuer, subject, public)) = &self.identities.federated else {
                return Err(refuse(700213, "No matching federated identity record found."));
            };
            if claim("iss") != *issuer || claim("sub") != *subject {
                return Err(refuse(700213, "No matching federated identity record found for presented assertion."));
            }
            let audience_ok = match &claims["aud"] {
                Value::String(a) => a == EXCHANGE_AUDIENCE,
                Value::Array(a) => a.iter().any(|x| x == EXCHANGE_AUDIENCE),
                _ => false,
            };
            if !audience_ok || header["alg"].as_str() != Some("RS256") {
                return Err(refuse(
                    700212,
                    "No matching federated identity record found for presented assertion audience.",
                ));
            }
            ("federated", public.clone(), &signature::RSA_PKCS1_2048_8192_SHA256)
        };
        if UnparsedPublicKey::new(algorithm, &key).verify(signed.as_bytes(), &sig).is_err() {
            return Err(refuse(700027, "Client assertion failed signature validation."));
        }
        let (nbf, exp) = (claims["nbf"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
        if exp + SKEW_SECONDS <= now || nbf > now + SKEW_SECONDS {
            return Err(refuse(700024, "Client assertion is not within its valid time range."));
        }
        if kind == "certificate" {
            let jti = claim("jti");
            if jti.is_empty() || !st.identity.jtis.insert(jti) {
                return Err(refuse(50013, "Assertion is invalid: the jti was used before (a replay)."));
            }
        }
        *st.identity.accepted.entry(kind).or_default() += 1;
        st.identity.assertions.push(jwt.to_string());
        Ok(kind)
    }

    /// IMDS's and App Service's token endpoints.
    pub(super) fn managed_identity(&self, st: &mut State, route: &str, path: &str, req: &Request) -> Answer {
        let query: HashMap<String, String> =
            form_urlencoded::parse(path.split_once('?').map_or("", |(_, q)| q).as_bytes()).into_owned().collect();
        let imds = route == "/metadata/identity/oauth2/token";
        if imds {
            if header(&req.headers, "metadata") != Some("true") {
                st.counters.refused += 1;
                return Answer::json(
                    400,
                    json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
                );
            }
        } else if header(&req.headers, "x-identity-header") != Some(self.identities.identity_header.as_str())
            || self.identities.identity_header.is_empty()
        {
            st.counters.refused += 1;
            let header = header(&req.headers, "x-identity-header").unwrap_or_default();
            return Answer::Response {
                status: 401,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: format!("Invalid secret token header: {}.", header.len()).into_bytes(),
            };
        }
        let version = query.get("api-version").map(String::as_str);
        if version != Some(if imds { "2018-02-01" } else { "2019-08-01" }) {
            return Answer::json(400, json!({"error": "invalid_request", "error_description": "Invalid api-version"}));
        }
        if let Some(id) = query.get("client_id")
            && !self.identities.user_assigned.contains(id)
        {
            st.counters.refused += 1;
            return Answer::json(400, json!({"error": "invalid_request", "error_description": "Identity not found"}));
        }
        let audience = match query.get("resource").map(String::as_str) {
            Some("https://graph.microsoft.com" | "https://graph.microsoft.com/") => "graph",
            Some("https://monitor.azure.com" | "https://monitor.azure.com/") => "monitor",
            _ => {
                return Answer::json(
                    400,
                    json!({"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found."}),
                );
            }
        };
        st.counters.tokens += 1;
        let token = format!("standin.{audience}.mi.{}", st.counters.tokens);
        st.tokens.insert(token.clone(), audience);
        *st.identity.accepted.entry(if imds { "imds" } else { "app-service" }).or_default() += 1;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let resource = query.get("resource").cloned().unwrap_or_default();
        if imds {
            Answer::json(
                200,
                json!({"access_token": token, "refresh_token": "", "expires_in": "86399", "expires_on": (now + 86399).to_string(),
                       "not_before": now.to_string(), "resource": resource, "token_type": "Bearer"}),
            )
        } else {
            Answer::json(
                200,
                json!({"access_token": token, "expires_on": (now + 86399).to_string(), "resource": resource,
                       "token_type": "Bearer", "client_id": query.get("client_id").cloned().unwrap_or_default()}),
            )
        }
    }
}

fn sha1_digest(der: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref().to_vec()
}
