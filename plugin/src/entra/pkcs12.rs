//! A PKCS#12 (.pfx / .p12) file as RFC 7292 lays it out, read for the certificate credential: its
//! MAC checked with the password (the one way to tell a wrong password from a damaged file), then
//! each SafeContents (plain or PBES2-encrypted) searched for the certificates and the private key.
//!
//! PBES2 (PBKDF2 with AES-CBC) is what OpenSSL 3 and Windows' "AES256-SHA256" export write. The
//! legacy PKCS#12 schemes (3DES or RC2 with SHA-1) are refused with the command
//! that rewrites the file. The structures and the MAC key's KDF come from the `pkcs12` and `cms`
//! crates; PBES2 (RFC 8018 §6.2) is `pbkdf2` then `aes` in `cbc` mode with PKCS#7 padding.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use pkcs12::kdf::{Pkcs12KeyType, derive_key_utf8};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pbes2Params, Pbkdf2Params};
use pkcs12::{AuthenticatedSafe, CertBag, Pfx, SafeBag};
use sha2::Sha256;
use x509_cert::der::asn1::{AnyRef, OctetString};
use x509_cert::der::{Decode, Encode};
use x509_cert::spki::AlgorithmIdentifierOwned;

/// `id-data`.
const DATA: &str = "1.2.840.113549.1.7.1";
/// `id-encryptedData`.
const ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
/// Bag types (RFC 7292 §4.2).
const KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
const SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
/// PBES2, its PBKDF2, the PRFs and ciphers it names (RFC 8018, NIST).
const PBES2: &str = "1.2.840.113549.1.5.13";
const PBKDF2: &str = "1.2.840.113549.1.5.12";
const HMAC_SHA1: &str = "1.2.840.113549.2.7";
const HMAC_SHA256: &str = "1.2.840.113549.2.9";
const AES128_CBC: &str = "2.16.840.1.101.3.4.1.2";
const AES192_CBC: &str = "2.16.840.1.101.3.4.1.22";
const AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";
/// `x509Certificate`, the certificate type of a CertBag.
const X509_CERTIFICATE: &str = "1.2.840.113549.1.9.22.1";
/// `sha256`, the MAC digest OpenSSL 3 and Windows' AES export use.
const SHA256: &str = "2.16.840.1.101.3.4.2.1";

/// What the file holds: the private key (PKCS#8 DER) and every certificate (DER).
pub struct Contents {
    /// The private key, PKCS#8 DER.
    pub key: Option<Vec<u8>>,
    /// The certificates, DER.
    pub certificates: Vec<Vec<u8>>,
}

const LEGACY: &str = "this PKCS#12 file uses a legacy encryption (3DES or RC2 with SHA-1); rewrite it with AES: `openssl pkcs12 -in old.pfx -nodes -legacy | openssl pkcs12 -export -out new.pfx` (or export it from Windows with AES256-SHA256)";

/// Read a PKCS#12 file with `password` (empty when it has none). The reasons never quote it.
pub fn read(bytes: &[u8], password: &str) -> Result<Contents, String> {
    let pfx = Pfx::from_der(bytes).map_err(|_| "not a PKCS#12 file (nor PEM)".to_string())?;
    if pfx.auth_safe.content_type.to_string() != DATA {
        return Err("this PKCS#12 file is signed with a public key, not a password: it is not supported".into());
    }
    let safe = OctetString::from_der(&pfx.auth_safe.content.to_der().map_err(|_| "damaged PKCS#12 file")?)
        .map_err(|_| "damaged PKCS#12 file".to_string())?;
    let safe = safe.as_bytes();
    match &pfx.mac_data {
        Some(mac) => {
            if mac.mac.algorithm.oid.to_string() != SHA256 {
                return Err(LEGACY.into());
            }
            let iterations = u32::try_from(mac.iterations).map_err(|_| "damaged PKCS#12 file")?;
            let key =
                derive_key_utf8::<Sha256>(password, mac.mac_salt.as_bytes(), Pkcs12KeyType::Mac, iterations as i32, 32)
                    .map_err(|_| "the PKCS#12 password cannot be used (is it UTF-8?)".to_string())?;
            let mut hmac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| "damaged PKCS#12 file")?;
            hmac.update(safe);
            hmac.verify_slice(mac.mac.digest.as_bytes()).map_err(|_| {
                "the PKCS#12 password is wrong (its MAC does not verify): check CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD"
                    .to_string()
            })?;
        }
        None => {
            return Err(
                "this PKCS#12 file has no MAC, so a wrong password cannot be told from damage: not supported".into()
            );
        }
    }
    let contents = AuthenticatedSafe::from_der(safe).map_err(|_| "damaged PKCS#12 file".to_string())?;
    let mut out = Contents { key: None, certificates: vec![] };
    for info in contents {
        let bags = match info.content_type.to_string().as_str() {
            DATA => OctetString::from_der(&info.content.to_der().map_err(|_| "damaged PKCS#12 file")?)
                .map_err(|_| "damaged PKCS#12 file".to_string())?
                .as_bytes()
                .to_vec(),
            ENCRYPTED_DATA => {
                let (algorithm, text) = cms_encrypted(&info.content.to_der().map_err(|_| "damaged PKCS#12 file")?)?;
                decrypt(&algorithm, &text, password)?
            }
            _ => continue,
        };
        let bags: Vec<SafeBag> = Vec::<SafeBag>::from_der(&bags).map_err(|_| "damaged PKCS#12 file".to_string())?;
        for bag in bags {
            // `bag_value` is the `[0] EXPLICIT` element whole: its content is the bag.
            let value =
                AnyRef::from_der(&bag.bag_value).map_err(|_| "damaged PKCS#12 bag".to_string())?.value().to_vec();
            match bag.bag_id.to_string().as_str() {
                KEY_BAG => out.key = Some(value),
                SHROUDED_KEY_BAG => {
                    let info =
                        EncryptedPrivateKeyInfo::from_der(&value).map_err(|_| "damaged PKCS#12 key".to_string())?;
                    out.key = Some(decrypt(&info.encryption_algorithm, info.encrypted_data.as_bytes(), password)?);
                }
                CERT_BAG => {
                    let cert = CertBag::from_der(&value).map_err(|_| "damaged PKCS#12 certificate".to_string())?;
                    // x509Certificate (RFC 7292 §4.2.3): an OCTET STRING of the DER.
                    if cert.cert_id.to_string() == X509_CERTIFICATE {
                        out.certificates.push(cert.cert_value.as_bytes().to_vec());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The algorithm and ciphertext of a CMS EncryptedData.
fn cms_encrypted(der: &[u8]) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), String> {
    let data =
        pkcs12::cms::encrypted_data::EncryptedData::from_der(der).map_err(|_| "damaged PKCS#12 file".to_string())?;
    let info = data.enc_content_info;
    let text = info.encrypted_content.ok_or("damaged PKCS#12 file")?.as_bytes().to_vec();
    Ok((info.content_enc_alg, text))
}

/// Decrypt with PBES2: PBKDF2 (HMAC-SHA-256 or -SHA-1) for the key, AES-CBC with the IV of the
/// parameters. Anything else is a legacy scheme.
fn decrypt(algorithm: &AlgorithmIdentifierOwned, ciphertext: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let params = |alg: &AlgorithmIdentifierOwned| -> Result<Vec<u8>, String> {
        alg.parameters.as_ref().ok_or(LEGACY)?.to_der().map_err(|_| "damaged PKCS#12 file".to_string())
    };
    if algorithm.oid.to_string() != PBES2 {
        return Err(LEGACY.into());
    }
    let pbes2 = Pbes2Params::from_der(&params(algorithm)?).map_err(|_| "damaged PKCS#12 file".to_string())?;
    if pbes2.kdf.oid.to_string() != PBKDF2 {
        return Err("this PKCS#12 file derives its key with something other than PBKDF2: not supported".into());
    }
    let kdf = Pbkdf2Params::from_der(&params(&pbes2.kdf)?).map_err(|_| "damaged PKCS#12 file".to_string())?;
    let iv = OctetString::from_der(&params(&pbes2.encryption)?).map_err(|_| "damaged PKCS#12 file".to_string())?;
    let key_len = match pbes2.encryption.oid.to_string().as_str() {
        AES128_CBC => 16,
        AES192_CBC => 24,
        AES256_CBC => 32,
        _ => return Err("this PKCS#12 file is encrypted with a cipher other than AES-CBC: not supported".into()),
    };
    let mut key = vec![0u8; key_len];
    let (salt, rounds) = (kdf.salt.as_bytes(), kdf.iteration_count);
    match kdf.prf.oid.to_string().as_str() {
        HMAC_SHA256 => pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, rounds, &mut key),
        HMAC_SHA1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), salt, rounds, &mut key),
        _ => return Err("this PKCS#12 file uses a PBKDF2 hash other than SHA-256 or SHA-1: not supported".into()),
    }
    let wrong =
        || "the PKCS#12 contents cannot be decrypted: check CALLRECORDS_CLIENT_CERTIFICATE_PASSWORD".to_string();
    let iv = iv.as_bytes();
    match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, iv)
            .map_err(|_| wrong())?
            .decrypt_padded_vec::<Pkcs7>(ciphertext),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, iv)
            .map_err(|_| wrong())?
            .decrypt_padded_vec::<Pkcs7>(ciphertext),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv)
            .map_err(|_| wrong())?
            .decrypt_padded_vec::<Pkcs7>(ciphertext),
    }
    .map_err(|_| wrong())
}
