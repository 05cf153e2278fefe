//! The certificate credential's file (`entra::certificate::SigningCertificate::from_bytes`): any
//! bytes, read as PKCS#12 or PEM. Seeds: `plugin/tests/fixtures/credentials/` (test-only keys).
//!
//! Invariants: no panic whatever the bytes (the PKCS#12 structures, the PBES2 parameters, the
//! PEM blocks and the X.509 certificate all come from the file); a refusal never quotes the
//! password or a PEM block; a certificate that is read has the thumbprints of its DER.

#![no_main]

use callrecords::entra::certificate::SigningCertificate;
use libfuzzer_sys::fuzz_target;

const PASSWORD: &str = "correct-horse";
/// 2026-12-05T00:00:00Z, inside the fixtures' validity.
const NOW: u64 = 1_796_428_800;

fuzz_target!(|data: &[u8]| {
    match SigningCertificate::from_bytes(data, PASSWORD, NOW) {
        Ok(cert) => {
            assert_eq!(cert.thumbprint_sha256().len(), 43);
            assert_eq!(cert.thumbprint_sha1().len(), 27);
            assert!(cert.not_after() > NOW);
        }
        Err(why) => {
            assert!(!why.contains(PASSWORD), "{why}");
            assert!(!why.contains("-----BEGIN"), "{why}");
        }
    }
});
