//! TLS for the agent's own connection to its local PostgreSQL over TCP, from the superuser
//! role's libpq options (`postgresql.authentication.superuser.sslmode`, `sslcert`, `sslkey`,
//! `sslrootcert`), with libpq's meaning of each `sslmode`:
//!
//! | sslmode | TLS | server certificate checked |
//! |---|---|---|
//! | unset, `disable`, `allow` | no (unset: as before this existed, the loopback link is plain) | — |
//! | `prefer` | if the server offers it | no |
//! | `require` | yes | against `sslrootcert` when given (libpq: then as `verify-ca`), else no |
//! | `verify-ca` | yes | signed by `sslrootcert` |
//! | `verify-full` | yes | signed by `sslrootcert` and valid for the host |
//!
//! `sslcert`/`sslkey` give a client certificate (PostgreSQL's `cert` authentication). Over a
//! Unix socket TLS does not apply (libpq does not use it there either). `sslcrl`, `sslcrldir`
//! and channel binding are not applied to this connection (docs/security.md).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::settings::Credentials;

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encryption only (`prefer`, `require` without `sslrootcert`).
    Nothing,
    /// Signed by the root certificate (`verify-ca`, `require` with `sslrootcert`).
    Ca,
    /// Signed by the root certificate and valid for the host name (`verify-full`).
    Full,
}

/// What the role's options ask of the local TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTlsPlan {
    Plain,
    Tls {
        mode: SslMode,
        verify: Verify,
        rootcert: Option<PathBuf>,
        /// (sslcert, sslkey)
        client: Option<(PathBuf, PathBuf)>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LocalTlsError {
    #[error("postgresql.authentication.superuser.sslmode {0:?}: give disable, allow, prefer, require, verify-ca or verify-full")]
    BadMode(String),
    #[error("postgresql.authentication.superuser.sslmode {0}: needs sslrootcert (the CA the server's certificate comes from)")]
    NeedsRootCert(String),
    #[error("postgresql.authentication.superuser: sslcert and sslkey go together")]
    HalfClientCert,
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The plan for `user`'s options (pure).
pub fn plan(user: &Credentials) -> Result<LocalTlsPlan, LocalTlsError> {
    let get = |k: &str| {
        user.libpq
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.as_str())
    };
    let rootcert = get("sslrootcert").map(PathBuf::from);
    let (mode, verify) = match get("sslmode") {
        None | Some("disable") | Some("allow") => return Ok(LocalTlsPlan::Plain),
        Some("prefer") => (SslMode::Prefer, Verify::Nothing),
        Some("require") if rootcert.is_some() => (SslMode::Require, Verify::Ca),
        Some("require") => (SslMode::Require, Verify::Nothing),
        Some("verify-ca") => (SslMode::Require, Verify::Ca),
        Some("verify-full") => (SslMode::Require, Verify::Full),
        Some(other) => return Err(LocalTlsError::BadMode(other.to_string())),
    };
    if verify != Verify::Nothing && rootcert.is_none() {
        return Err(LocalTlsError::NeedsRootCert(
            get("sslmode").unwrap_or_default().to_string(),
        ));
    }
    let client = match (get("sslcert"), get("sslkey")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => return Err(LocalTlsError::HalfClientCert),
    };
    Ok(LocalTlsPlan::Tls {
        mode,
        verify,
        rootcert: if verify == Verify::Nothing { None } else { rootcert },
        client,
    })
}

/// A tokio-postgres TLS connector (rustls) for one plan; the files are read when it is made.
#[derive(Clone)]
pub struct LocalTls {
    config: Arc<rustls::ClientConfig>,
}

impl LocalTls {
    pub fn new(
        verify: Verify,
        rootcert: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<LocalTls, LocalTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match (verify, rootcert) {
            (Verify::Nothing, _) | (_, None) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
            (verify, Some(rootcert)) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(rootcert)? {
                    roots.add(cert)?;
                }
                let webpki =
                    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| LocalTlsError::File {
                            path: rootcert.to_path_buf(),
                            message: e.to_string(),
                        })?;
                match verify {
                    Verify::Full => builder.with_webpki_verifier(webpki),
                    _ => builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(CaOnly(webpki))),
                }
            }
        };
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(LocalTlsError::Rustls)?,
            None => builder.with_no_client_auth(),
        };
        Ok(LocalTls {
            config: Arc::new(config),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LocalTlsError> {
    std::fs::read(path).map_err(|e| LocalTlsError::File {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, LocalTlsError> {
    let bytes = read(path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut BufReader::new(&bytes[..]))
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(LocalTlsError::File {
            path: path.to_path_buf(),
            message: "no PEM certificate in the file".into(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, LocalTlsError> {
    match rustls_pemfile::private_key(&mut BufReader::new(&read(path)?[..])) {
        Ok(Some(key)) => Ok(key),
        _ => Err(LocalTlsError::File {
            path: path.to_path_buf(),
            message: "no unencrypted PEM private key in the file".into(),
        }),
    }
}

/// `verify-ca`: the chain must lead to the root; the name in it does not matter (libpq's
/// meaning), so only a name mismatch is forgiven.
#[derive(Debug)]
struct CaOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for CaOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` / `require` without a root certificate: encryption against a passive listener,
/// any server certificate (libpq's meaning); the handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for LocalTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = LocalTlsStream<S>;
    type TlsConnect = LocalTlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<LocalTlsConnect, Self::Error> {
        Ok(LocalTlsConnect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

pub struct LocalTlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for LocalTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = LocalTlsStream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = std::io::Result<LocalTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(LocalTlsStream(stream))
        })
    }
}

pub struct LocalTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for LocalTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LocalTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for LocalTlsStream<S> {
    /// No channel binding: SCRAM over this link is plain SCRAM-SHA-256 (the server offers
    /// -PLUS too; tokio-postgres then picks the plain one).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(options: &[(&'static str, &str)]) -> Credentials {
        let mut user = Credentials::new("postgres", Some("pw"));
        user.libpq = options.iter().map(|(k, v)| (*k, v.to_string())).collect();
        user
    }

    /// A CA and a server certificate for `db.example` (not for 127.0.0.1) signed by it.
    fn ca_and_server() -> (CertificateDer<'static>, CertificateDer<'static>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["db.example".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (ca.der().clone(), server.der().clone())
    }

    #[test]
    fn verify_ca_forgives_the_name_never_the_issuer() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = |ca: &CertificateDer<'static>| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).unwrap();
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap()
        };
        let (ca, server) = ca_and_server();
        let (other_ca, _) = ca_and_server();
        let loopback = ServerName::try_from("127.0.0.1").unwrap();
        let now = UnixTime::now();
        let check = |verifier: &dyn ServerCertVerifier| {
            verifier
                .verify_server_cert(&server, &[], &loopback, &[], now)
                .is_ok()
        };
        assert!(check(&CaOnly(webpki(&ca))), "verify-ca: any name");
        assert!(!check(webpki(&ca).as_ref()), "verify-full: the name must match");
        assert!(
            !check(&CaOnly(webpki(&other_ca))),
            "verify-ca: another CA's server is refused"
        );
        assert!(
            check(&AnyCertificate(provider.clone())),
            "prefer/require: anything"
        );
    }

    #[test]
    fn sslmode_plans_as_libpq() {
        let tls = |mode, verify, rootcert: Option<&str>, client: Option<(&str, &str)>| {
            Ok(LocalTlsPlan::Tls {
                mode,
                verify,
                rootcert: rootcert.map(PathBuf::from),
                client: client.map(|(c, k)| (PathBuf::from(c), PathBuf::from(k))),
            })
        };
        type Case<'a> = (&'a [(&'static str, &'a str)], Result<LocalTlsPlan, String>);
        let cases: Vec<Case> = vec![
            (&[], Ok(LocalTlsPlan::Plain)),
            (&[("sslmode", "disable")], Ok(LocalTlsPlan::Plain)),
            (&[("sslmode", "allow")], Ok(LocalTlsPlan::Plain)),
            (
                &[("sslmode", "prefer")],
                tls(SslMode::Prefer, Verify::Nothing, None, None),
            ),
            (
                &[("sslmode", "require")],
                tls(SslMode::Require, Verify::Nothing, None, None),
            ),
            (
                &[("sslmode", "require"), ("sslrootcert", "/ca")],
                tls(SslMode::Require, Verify::Ca, Some("/ca"), None),
            ),
            (
                &[("sslmode", "verify-ca"), ("sslrootcert", "/ca")],
                tls(SslMode::Require, Verify::Ca, Some("/ca"), None),
            ),
            (
                &[
                    ("sslmode", "verify-full"),
                    ("sslrootcert", "/ca"),
                    ("sslcert", "/c"),
                    ("sslkey", "/k"),
                ],
                tls(SslMode::Require, Verify::Full, Some("/ca"), Some(("/c", "/k"))),
            ),
            // prefer never checks the certificate: the root is not even read.
            (
                &[("sslmode", "prefer"), ("sslrootcert", "/ca")],
                tls(SslMode::Prefer, Verify::Nothing, None, None),
            ),
            (&[("sslmode", "verify-ca")], Err("NeedsRootCert".into())),
            (&[("sslmode", "verify-full")], Err("NeedsRootCert".into())),
            (&[("sslmode", "required")], Err("BadMode".into())),
            (
                &[("sslmode", "require"), ("sslcert", "/c")],
                Err("HalfClientCert".into()),
            ),
        ];
        for (options, want) in cases {
            let got = plan(&user(options)).map_err(|e| match e {
                LocalTlsError::BadMode(_) => "BadMode".to_string(),
                LocalTlsError::NeedsRootCert(_) => "NeedsRootCert".to_string(),
                LocalTlsError::HalfClientCert => "HalfClientCert".to_string(),
                other => format!("{other:?}"),
            });
            assert_eq!(got, want, "{options:?}");
        }
    }
}
