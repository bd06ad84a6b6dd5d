//! An HTTPS client for the REST API tests (rustls, the agents' own TLS library).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

pub fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let bytes = std::fs::read(path).unwrap();
    rustls_pemfile::certs(&mut &bytes[..])
        .map(Result::unwrap)
        .collect()
}

pub fn pem_key(path: &Path) -> PrivateKeyDer<'static> {
    let bytes = std::fs::read(path).unwrap();
    rustls_pemfile::private_key(&mut &bytes[..]).unwrap().unwrap()
}

/// The PKCS#8 key in `path` encrypted with `password` as `openssl pkcs8 -topk8 -v2 aes-256-cbc`
/// writes it (PBES2, PBKDF2-SHA256, AES-256-CBC; few iterations: the tests run unoptimised).
pub fn encrypted_key_pem(path: &Path, password: &str) -> String {
    use pkcs8::der::Decode;
    let PrivateKeyDer::Pkcs8(key) = pem_key(path) else {
        panic!("{}: not a PKCS#8 key", path.display());
    };
    let params =
        pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(1000, b"pgquorum-tests!!", [9; 16])
            .unwrap();
    pkcs8::PrivateKeyInfoRef::from_der(key.secret_pkcs8_der())
        .unwrap()
        .encrypt_with_params(params, password)
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

/// A client trusting `cas`, showing the certificate `identity` (cert, key) if given.
pub fn client(cas: &[&Path], identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for cert in pem_certs(ca) {
            roots.add(cert).unwrap();
        }
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(pem_certs(cert), pem_key(key))
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// What one HTTPS exchange gave: status, the response head, the server's certificate.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub server_cert: CertificateDer<'static>,
}

/// `METHOD path` over TLS from `source` to 127.0.0.1:`port` (HTTP/1.0, basic `auth` if given).
/// An error when the handshake or the exchange fails (the server refused the client).
pub async fn https_to(
    config: &Arc<rustls::ClientConfig>,
    source: IpAddr,
    port: u16,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<Answer> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let tcp = socket.connect((LOOPBACK, port).into()).await?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let name = ServerName::IpAddress(LOOPBACK.into());
    let mut tls = connector.connect(name, tcp).await?;
    let server_cert = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let auth = auth
        .map(|(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    let request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    Ok(Answer {
        status,
        head,
        server_cert,
    })
}
