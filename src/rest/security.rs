//! Who may use the REST API, and over what, as Patroni's `restapi` keys say: TLS
//! (`certfile`, `keyfile`, `cafile`, `verify_client`), the `allowlist` (plus the members'
//! own addresses with `allowlist_include_members`), basic `authentication`, and
//! `http_extra_headers` / `https_extra_headers`.
//!
//! Built from the config at start and again on every reload (SIGHUP, `POST /reload`): the
//! whole [`RestSecurity`] is swapped at once, so new certificates serve the next connection.
//! A reload whose files are broken keeps the previous settings and reports why.

use std::io::BufReader;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::http::{HeaderName, HeaderValue};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::keyfile::{self, KeyNote, KeyfileError};
use crate::config::{BasicAuth, Config, ConfigError, RestApiConfig};

/// `restapi.verify_client`: whether clients must show a certificate of `cafile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    /// No client certificate is asked for.
    None,
    /// A certificate is asked for and checked when shown; the mutating endpoints require one.
    Optional,
    /// The TLS handshake fails without a valid client certificate.
    Required,
}

impl VerifyClient {
    fn parse(word: Option<&str>) -> Result<VerifyClient, RestSecurityError> {
        match word.map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => Ok(VerifyClient::None),
            Some("optional") => Ok(VerifyClient::Optional),
            Some("required") => Ok(VerifyClient::Required),
            Some(other) => Err(RestSecurityError::VerifyClient(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RestSecurityError {
    #[error("{key} {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} {path}: no PEM {what} in the file")]
    NoPem {
        key: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error(transparent)]
    Keyfile(#[from] KeyfileError),
    #[error("restapi.{0} needs restapi.certfile (TLS)")]
    NeedsCertfile(&'static str),
    #[error("restapi.verify_client {0:?}: needs restapi.cafile (the CA client certificates must come from)")]
    NeedsCafile(&'static str),
    #[error("restapi.verify_client {0:?}: give none, optional or required")]
    VerifyClient(String),
    #[error("restapi.certfile / keyfile: {0}")]
    Tls(#[from] rustls::Error),
    #[error("restapi.cafile: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("restapi.allowlist {entry:?}: not an IP address, a network (address/prefix) or a host name that resolves")]
    Allowlist { entry: String },
    #[error("restapi.{key} {name:?}: not a valid HTTP header name and value")]
    Header { key: &'static str, name: String },
    #[error("reload: {0}")]
    Config(#[from] ConfigError),
}

/// An allowlist entry: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`; `None` for anything else (a host name).
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.trim(), Some(p.trim().parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let addr = addr.parse::<IpAddr>().ok()?.to_canonical();
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - u32::from(self.prefix));
        bits(ip) & mask == bits(self.addr) & mask
    }
}

/// Everything the REST API checks, as one value swapped on reload.
pub struct RestSecurity {
    /// Set when `restapi.certfile` is: connections are TLS only.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub verify_client: VerifyClient,
    pub auth: Option<BasicAuth>,
    /// Empty and `include_members` false: every address may call the mutating endpoints.
    pub allowlist: Vec<Network>,
    pub include_members: bool,
    pub http_headers: Vec<(HeaderName, HeaderValue)>,
    /// Added (after the `http_headers`) to answers sent over TLS.
    pub https_headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for RestSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestSecurity")
            .field("tls", &self.tls.is_some())
            .field("verify_client", &self.verify_client)
            .field("auth", &self.auth.as_ref().map(|a| &a.username))
            .field("allowlist", &self.allowlist)
            .field("include_members", &self.include_members)
            .finish_non_exhaustive()
    }
}

impl RestSecurity {
    /// Plain HTTP, no allowlist, `auth` for the mutating endpoints.
    pub fn plain(auth: Option<BasicAuth>) -> RestSecurity {
        RestSecurity {
            tls: None,
            verify_client: VerifyClient::None,
            auth,
            allowlist: Vec::new(),
            include_members: false,
            http_headers: Vec::new(),
            https_headers: Vec::new(),
        }
    }

    /// Read the certificate files and resolve the allowlist's host names.
    pub async fn from_config(rest: &RestApiConfig) -> Result<RestSecurity, RestSecurityError> {
        let verify_client = VerifyClient::parse(rest.verify_client.as_deref())?;
        let tls = match &rest.certfile {
            Some(certfile) => Some(Arc::new(server_config(
                certfile,
                rest.keyfile.as_deref().unwrap_or(certfile),
                rest.keyfile_password.as_deref(),
                rest.cafile.as_deref(),
                verify_client,
            )?)),
            None => {
                let needs = [
                    ("keyfile", rest.keyfile.is_some()),
                    ("keyfile_password", rest.keyfile_password.is_some()),
                    ("cafile", rest.cafile.is_some()),
                    ("verify_client", verify_client != VerifyClient::None),
                ];
                if let Some((key, _)) = needs.into_iter().find(|(_, given)| *given) {
                    return Err(RestSecurityError::NeedsCertfile(key));
                }
                None
            }
        };
        let mut allowlist = Vec::new();
        for entry in &rest.allowlist {
            match Network::parse(entry) {
                Some(net) => allowlist.push(net),
                None => allowlist.extend(
                    resolve(entry)
                        .await
                        .ok_or_else(|| RestSecurityError::Allowlist { entry: entry.clone() })?,
                ),
            }
        }
        Ok(RestSecurity {
            tls,
            verify_client,
            auth: rest.authentication.clone(),
            allowlist,
            include_members: rest.allowlist_include_members,
            http_headers: headers("http_extra_headers", &rest.http_extra_headers)?,
            https_headers: headers("https_extra_headers", &rest.https_extra_headers)?,
        })
    }

    /// Whether an allowlist applies at all.
    pub fn restricts_addresses(&self) -> bool {
        !self.allowlist.is_empty() || self.include_members
    }
}

/// The addresses `host` resolves to, as single-address networks; `None` when it does not.
pub async fn resolve(host: &str) -> Option<Vec<Network>> {
    let addrs: Vec<Network> = tokio::net::lookup_host((host, 0))
        .await
        .ok()?
        .map(|a| Network {
            addr: a.ip().to_canonical(),
            prefix: if a.is_ipv4() { 32 } else { 128 },
        })
        .collect();
    (!addrs.is_empty()).then_some(addrs)
}

fn headers(
    key: &'static str,
    map: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, RestSecurityError> {
    map.iter()
        .map(|(name, value)| {
            let bad = || RestSecurityError::Header {
                key,
                name: name.clone(),
            };
            Ok((
                HeaderName::try_from(name.as_str()).map_err(|_| bad())?,
                HeaderValue::try_from(value.as_str()).map_err(|_| bad())?,
            ))
        })
        .collect()
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, RestSecurityError> {
    std::fs::read(path).map_err(|source| RestSecurityError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, RestSecurityError> {
    let bytes = read(key, path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut BufReader::new(&bytes[..]))
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(RestSecurityError::NoPem {
            key,
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The key of `restapi.keyfile`, decrypted with `keyfile_password` when it is encrypted.
fn private_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>, RestSecurityError> {
    let (key, note) = keyfile::read(path, password)?;
    if note == KeyNote::PasswordUnused {
        // Patroni ignores the password of a plain key; say so rather than fail a working setup.
        tracing::warn!(
            keyfile = %path.display(),
            "restapi.keyfile_password is set but the private key is not encrypted: the password is ignored"
        );
    }
    Ok(key)
}

fn server_config(
    certfile: &Path,
    keyfile: &Path,
    keyfile_password: Option<&str>,
    cafile: Option<&Path>,
    verify_client: VerifyClient,
) -> Result<rustls::ServerConfig, RestSecurityError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (verify_client, cafile) {
        (VerifyClient::None, _) => builder.with_no_client_auth(),
        (mode, None) => {
            return Err(RestSecurityError::NeedsCafile(
                if mode == VerifyClient::Required {
                    "required"
                } else {
                    "optional"
                },
            ))
        }
        (mode, Some(cafile)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates("restapi.cafile", cafile)? {
                roots.add(cert)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == VerifyClient::Optional {
                verifier.allow_unauthenticated().build()?
            } else {
                verifier.build()?
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(
        certificates("restapi.certfile", certfile)?,
        private_key(keyfile, keyfile_password)?,
    )?;
    Ok(config)
}

/// The settings in force, shared by the listener (TLS) and the handlers (allowlist, auth,
/// headers); replaced whole on reload.
#[derive(Clone)]
pub struct SharedSecurity {
    current: Arc<RwLock<Arc<RestSecurity>>>,
    /// Re-read on reload; `None` (tests, a config given otherwise) keeps the settings.
    config_path: Option<PathBuf>,
}

impl SharedSecurity {
    pub fn new(security: RestSecurity, config_path: Option<PathBuf>) -> SharedSecurity {
        SharedSecurity {
            current: Arc::new(RwLock::new(Arc::new(security))),
            config_path,
        }
    }

    pub fn current(&self) -> Arc<RestSecurity> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-read the config file's `restapi` section and its certificate files. On an error
    /// the settings in force stay.
    pub async fn reload(&self) -> Result<(), RestSecurityError> {
        let Some(path) = &self.config_path else {
            return Ok(());
        };
        let config = Config::load(path)?.config;
        let fresh = RestSecurity::from_config(&config.restapi).await?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let net = Network::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = Network::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Network::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(!Network::parse("fd00::/8")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
        assert_eq!(Network::parse("10.0.0.0/33"), None);
        assert_eq!(Network::parse("db.example"), None);
    }

    #[tokio::test]
    async fn tls_settings_need_their_companions() {
        let rest = RestApiConfig {
            cafile: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            RestSecurity::from_config(&rest).await,
            Err(RestSecurityError::NeedsCertfile("cafile"))
        ));
        let rest = RestApiConfig {
            keyfile_password: Some("x".into()),
            ..Default::default()
        };
        assert!(matches!(
            RestSecurity::from_config(&rest).await,
            Err(RestSecurityError::NeedsCertfile("keyfile_password"))
        ));
        let rest = RestApiConfig {
            allowlist: vec!["10.0.0.0/8".into(), "no-such-host.invalid".into()],
            ..Default::default()
        };
        assert!(matches!(
            RestSecurity::from_config(&rest).await,
            Err(RestSecurityError::Allowlist { .. })
        ));
    }

    #[tokio::test]
    async fn an_encrypted_keyfile_is_served_with_its_password() {
        let tmp = tempfile::tempdir().unwrap();
        let (der, pem) = super::keyfile::tests::encrypted_key("s3cret", false);
        let key = rcgen::KeyPair::try_from(der.as_slice()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let certfile = tmp.path().join("rest.pem");
        let keyfile = tmp.path().join("rest-key.pem");
        std::fs::write(&certfile, cert.pem()).unwrap();
        std::fs::write(&keyfile, pem).unwrap();
        let rest = |password: Option<&str>| RestApiConfig {
            certfile: Some(certfile.clone()),
            keyfile: Some(keyfile.clone()),
            keyfile_password: password.map(str::to_string),
            ..Default::default()
        };
        // rustls also checks that the decrypted key is the certificate's.
        let security = RestSecurity::from_config(&rest(Some("s3cret"))).await.unwrap();
        assert!(security.tls.is_some());
        assert!(matches!(
            RestSecurity::from_config(&rest(Some("wrong"))).await,
            Err(RestSecurityError::Keyfile(KeyfileError::WrongPassword(_)))
        ));
        assert!(matches!(
            RestSecurity::from_config(&rest(None)).await,
            Err(RestSecurityError::Keyfile(KeyfileError::NeedsPassword(_)))
        ));
    }
}
