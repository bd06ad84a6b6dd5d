//! Reads `restapi.keyfile`: a PEM private key, decrypted with `restapi.keyfile_password`
//! when it is an encrypted PKCS#8 key (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 with
//! PBKDF2 or scrypt and AES: what `openssl genpkey -aes256` and `openssl pkcs8 -topk8 -v2
//! aes-256-cbc` write), as Patroni reads it. The legacy OpenSSL encryption (`Proc-Type:
//! 4,ENCRYPTED` with `DEK-Info`) is refused with the command that converts it.
//!
//! The password is only handed to the decryption; no error or log line carries it.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use pkcs8::der::Decode;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
/// The header of a PEM key encrypted the pre-PKCS#8 OpenSSL way (`openssl rsa -aes256`).
const LEGACY_HEADER: &str = "Proc-Type: 4,ENCRYPTED";

#[derive(Debug, thiserror::Error)]
pub enum KeyfileError {
    #[error("restapi.keyfile {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("restapi.keyfile {0}: no PEM private key in the file")]
    NoKey(PathBuf),
    #[error("restapi.keyfile {0}: the private key is encrypted; give restapi.keyfile_password")]
    NeedsPassword(PathBuf),
    #[error("restapi.keyfile {0}: cannot decrypt the private key: wrong keyfile_password")]
    WrongPassword(PathBuf),
    #[error(
        "restapi.keyfile {0}: the private key uses the legacy OpenSSL encryption (Proc-Type/DEK-Info), which is not supported; convert it: openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out NEWKEY"
    )]
    LegacyEncryption(PathBuf),
    #[error(
        "restapi.keyfile {path}: the encrypted private key cannot be read ({detail}); re-encrypt it: openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out NEWKEY"
    )]
    Unsupported { path: PathBuf, detail: String },
}

/// What [`read`] found besides the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyNote {
    /// The key was encrypted and `keyfile_password` decrypted it, or no password was given.
    None,
    /// A `keyfile_password` was given but the key is not encrypted: ignored, as Patroni does.
    PasswordUnused,
}

/// The private key in `path`, decrypted with `password` when it is encrypted.
pub fn read(path: &Path, password: Option<&str>) -> Result<(PrivateKeyDer<'static>, KeyNote), KeyfileError> {
    let bytes = std::fs::read(path).map_err(|source| KeyfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if let Some(block) = encrypted_block(&text) {
        let password = password.ok_or_else(|| KeyfileError::NeedsPassword(path.to_path_buf()))?;
        return Ok((decrypt(path, block, password)?, KeyNote::None));
    }
    if text.contains(LEGACY_HEADER) {
        return Err(KeyfileError::LegacyEncryption(path.to_path_buf()));
    }
    match rustls_pemfile::private_key(&mut BufReader::new(&bytes[..])) {
        Ok(Some(key)) => {
            let note = if password.is_some() {
                KeyNote::PasswordUnused
            } else {
                KeyNote::None
            };
            Ok((key, note))
        }
        _ => Err(KeyfileError::NoKey(path.to_path_buf())),
    }
}

/// The `ENCRYPTED PRIVATE KEY` PEM block of a file that may also hold certificates.
fn encrypted_block(text: &str) -> Option<&str> {
    let start = text.find(ENCRYPTED_BEGIN)?;
    let end = text[start..].find(ENCRYPTED_END)? + start + ENCRYPTED_END.len();
    Some(&text[start..end])
}

fn decrypt(path: &Path, pem: &str, password: &str) -> Result<PrivateKeyDer<'static>, KeyfileError> {
    let unsupported = |detail: String| KeyfileError::Unsupported {
        path: path.to_path_buf(),
        detail,
    };
    let (_, der) = pkcs8::der::pem::decode_vec(pem.as_bytes()).map_err(|e| unsupported(e.to_string()))?;
    let info = EncryptedPrivateKeyInfoRef::from_der(&der).map_err(|e| unsupported(e.to_string()))?;
    let plain = match info.decrypt(password) {
        Ok(plain) => plain,
        // The algorithm itself cannot be used (PBES1, DES, an unknown PRF...): not a password matter.
        Err(pkcs8::Error::EncryptedPrivateKey(
            e @ (pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. }
            | pkcs8::pkcs5::Error::AlgorithmParametersInvalid { .. }
            | pkcs8::pkcs5::Error::NoPbes1CryptSupport),
        )) => return Err(unsupported(e.to_string())),
        // A bad padding, or (one time in a few hundred) a padding that happens to fit
        // and a plaintext that is not DER: both mean the key derived from the password is wrong.
        Err(_) => return Err(KeyfileError::WrongPassword(path.to_path_buf())),
    };
    // The decrypted bytes must be a private key, not merely a DER sequence.
    PrivateKeyInfoRef::from_der(plain.as_bytes())
        .map_err(|_| KeyfileError::WrongPassword(path.to_path_buf()))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.as_bytes().to_vec(),
    )))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use pkcs8::pkcs5::pbes2;
    use pkcs8::LineEnding;

    /// A fresh PKCS#8 key (plain DER) and the same key encrypted with `password`.
    pub(in crate::rest) fn encrypted_key(password: &str, scrypt: bool) -> (Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = key.serialize_der();
        // Few iterations: the tests run unoptimised; the format is what matters.
        let params = if scrypt {
            pbes2::Parameters::generate_scrypt_aes256cbc(
                pkcs8::pkcs5::scrypt::Params::new(10, 8, 1).unwrap(),
                b"0123456789abcdef",
                [7; 16],
            )
        } else {
            pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(1000, b"0123456789abcdef", [7; 16])
        }
        .unwrap();
        let encrypted = PrivateKeyInfoRef::from_der(&der)
            .unwrap()
            .encrypt_with_params(params, password)
            .unwrap();
        let pem = encrypted.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF).unwrap();
        (der, pem.to_string())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn encrypted_pkcs8_keys_are_decrypted_with_the_password() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for scrypt in [false, true] {
            let (der, pem) = encrypted_key("s3cret", scrypt);
            let path = write(dir, "enc.pem", &pem);
            let (key, note) = read(&path, Some("s3cret")).unwrap();
            assert_eq!(key.secret_der(), &der[..]);
            assert_eq!(note, KeyNote::None);

            let err = read(&path, Some("wrong")).unwrap_err();
            assert!(
                matches!(&err, KeyfileError::WrongPassword(p) if p == &path),
                "{err}"
            );
            assert!(err.to_string().contains("wrong keyfile_password"));
            assert!(!err.to_string().contains("s3cret"));
            assert!(matches!(read(&path, None), Err(KeyfileError::NeedsPassword(_))));

            // The key after a certificate, in one file (keyfile defaults to certfile).
            let both = write(
                dir,
                "both.pem",
                &format!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{pem}"),
            );
            assert_eq!(read(&both, Some("s3cret")).unwrap().0.secret_der(), &der[..]);
        }
    }

    #[test]
    fn legacy_encryption_is_refused_and_a_plain_key_ignores_the_password() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let legacy = write(
            dir,
            "legacy.pem",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        );
        let err = read(&legacy, Some("pw")).unwrap_err();
        assert!(matches!(err, KeyfileError::LegacyEncryption(_)), "{err}");
        assert!(err.to_string().contains("openssl pkcs8 -topk8"));

        let key = rcgen::KeyPair::generate().unwrap();
        let plain = write(dir, "plain.pem", &key.serialize_pem());
        assert_eq!(read(&plain, None).unwrap().1, KeyNote::None);
        let (der, note) = read(&plain, Some("pw")).unwrap();
        assert_eq!(der.secret_der(), &key.serialize_der()[..]);
        assert_eq!(note, KeyNote::PasswordUnused);

        let empty = write(dir, "empty.pem", "nothing\n");
        assert!(matches!(read(&empty, None), Err(KeyfileError::NoKey(_))));
    }
}
