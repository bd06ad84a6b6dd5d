//! `pgquorum generate-certs`: a cluster CA, one certificate per node (server and client: agents
//! dial each other) and a client certificate for pgquorumctl, so a cluster with mutual TLS on
//! its gRPC port is one command away. Keys are written 0600.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// How long the CA is valid.
const CA_YEARS: i32 = 10;
/// How long node and client certificates are valid (rotate before; docs/security.md).
const LEAF_YEARS: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("node {0:?}: give NAME or NAME=IP (NAME a DNS name, IP an IPv4/IPv6 address)")]
    BadNode(String),
    #[error("no nodes given")]
    NoNodes,
    #[error("client {0:?}: give a name of letters, digits, '-', '_' and '.' (it becomes the file name and the certificate's common name)")]
    BadClient(String),
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot create a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// One node: its name (a DNS name in the certificate) and optionally its IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub ip: Option<IpAddr>,
}

impl NodeSpec {
    /// `name` or `name=ip`; a bare IP address is taken as both.
    pub fn parse(text: &str) -> Result<NodeSpec, CertError> {
        let bad = || CertError::BadNode(text.to_string());
        let (name, ip) = match text.split_once('=') {
            Some((n, ip)) => (n.trim(), Some(ip.trim().parse::<IpAddr>().map_err(|_| bad())?)),
            None => (text.trim(), text.trim().parse::<IpAddr>().ok()),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(NodeSpec {
            name: name.to_string(),
            ip,
        })
    }
}

/// What was written.
#[derive(Debug)]
pub struct Generated {
    pub files: Vec<PathBuf>,
}

/// Write `ca.pem`/`ca-key.pem`, `NODE.pem`/`NODE-key.pem` for each node and
/// `client.pem`/`client-key.pem` into `out` (created if missing).
pub fn generate(out: &Path, nodes: &[NodeSpec]) -> Result<Generated, CertError> {
    generate_with_clients(out, nodes, &[])
}

/// [`generate`], plus `NAME.pem`/`NAME-key.pem` for each of `clients`: client certificates
/// whose common name (and DNS name) is NAME — for PostgreSQL's `cert` authentication, where
/// the common name is the role (the TLS demo's `replicator`). They are of the cluster CA too:
/// restrict the gRPC agents with `raft.agent_names` when such certificates exist.
pub fn generate_with_clients(
    out: &Path,
    nodes: &[NodeSpec],
    clients: &[&str],
) -> Result<Generated, CertError> {
    if nodes.is_empty() {
        return Err(CertError::NoNodes);
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if let Some(bad) = clients
        .iter()
        .find(|n| n.is_empty() || n.starts_with('.') || !n.chars().all(name_char))
    {
        return Err(CertError::BadClient(bad.to_string()));
    }
    std::fs::create_dir_all(out).map_err(|source| CertError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let (year, month, day) = today();
    let mut files = Vec::new();

    let ca_key = KeyPair::generate()?;
    // A name of its own per CA: peers shown another cluster's certificate then fail with
    // "unknown CA" rather than a signature mismatch under a shared name; a rotated CA is told apart.
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("pgquorum cluster CA {}", key_id(&ca_key)),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = date_time_ymd(year, month, day.min(28));
    ca_params.not_after = date_time_ymd(year + CA_YEARS, month, day.min(28));
    let ca = ca_params.self_signed(&ca_key)?;
    files.push(write(out, "ca.pem", &ca.pem(), false)?);
    files.push(write(out, "ca-key.pem", &ca_key.serialize_pem(), true)?);

    let leaf = |cn: &str, sans: Vec<SanType>| -> Result<(String, String), CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // Agents are servers and, when they dial each other, clients.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = date_time_ymd(year, month, day.min(28));
        params.not_after = date_time_ymd(year + LEAF_YEARS, month, day.min(28));
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };

    for node in nodes {
        let mut sans = vec![SanType::DnsName(node.name.clone().try_into()?)];
        if let Some(ip) = node.ip {
            sans = vec![SanType::IpAddress(ip)];
            if node.name.parse::<IpAddr>().is_err() {
                sans.insert(0, SanType::DnsName(node.name.clone().try_into()?));
            }
        }
        let (cert, key) = leaf(&node.name, sans)?;
        files.push(write(out, &format!("{}.pem", node.name), &cert, false)?);
        files.push(write(out, &format!("{}-key.pem", node.name), &key, true)?);
    }
    let (cert, key) = leaf("pgquorumctl", vec![SanType::DnsName("pgquorumctl".try_into()?)])?;
    files.push(write(out, "client.pem", &cert, false)?);
    files.push(write(out, "client-key.pem", &key, true)?);
    for name in clients {
        let (cert, key) = leaf(name, vec![SanType::DnsName((*name).try_into()?)])?;
        files.push(write(out, &format!("{name}.pem"), &cert, false)?);
        files.push(write(out, &format!("{name}-key.pem"), &key, true)?);
    }
    Ok(Generated { files })
}

/// A short fingerprint of a public key (hex of the first bytes of its SHA-256).
fn key_id(key: &KeyPair) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.public_key_raw())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str, secret: bool) -> Result<PathBuf, CertError> {
    let path = dir.join(name);
    let fail = |source| CertError::Write {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&path)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    Ok(path)
}

/// Today's UTC date (civil-from-days, H. Hinnant's algorithm), so validity starts now rather
/// than at rcgen's fixed default.
fn today() -> (i32, u8, u8) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_from_days((secs / 86_400) as i64)
}

fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_clients_get_their_own_certificate_and_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nodes = [NodeSpec::parse("n1=127.0.0.1").unwrap()];
        let generated = generate_with_clients(dir.path(), &nodes, &["replicator"]).unwrap();
        assert!(generated.files.contains(&dir.path().join("replicator.pem")));
        let key = dir.path().join("replicator-key.pem");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pem = std::fs::read(dir.path().join("replicator.pem")).unwrap();
        let der = rustls_pemfile::certs(&mut &pem[..]).next().unwrap().unwrap();
        let cert = webpki::EndEntityCert::try_from(&der).unwrap();
        assert_eq!(cert.valid_dns_names().collect::<Vec<_>>(), ["replicator"]);
        assert!(generate_with_clients(dir.path(), &nodes, &["not a name"]).is_err());
    }

    #[test]
    fn dates_and_node_specs() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(
            NodeSpec::parse("n1=10.0.0.1").unwrap(),
            NodeSpec {
                name: "n1".into(),
                ip: Some("10.0.0.1".parse().unwrap())
            }
        );
        assert_eq!(NodeSpec::parse("db1.example").unwrap().ip, None);
        assert!(NodeSpec::parse("n1=notanip").is_err());
    }

    #[test]
    fn writes_ca_nodes_and_client_with_private_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nodes = [NodeSpec::parse("n1=127.0.0.1").unwrap()];
        let out = generate(dir.path(), &nodes).unwrap();
        assert_eq!(out.files.len(), 6);
        let mode = std::fs::metadata(dir.path().join("n1-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::read_to_string(dir.path().join("ca.pem"))
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
    }
}
