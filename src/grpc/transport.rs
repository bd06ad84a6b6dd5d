//! How this process's gRPC traffic is protected: the one place that builds client channels
//! (http or https with a client certificate, every request stamped with the cluster identity
//! and, with `raft.password`, a proof of the shared secret) and the server-side check of both.
//!
//! See docs/security.md for the threat model and what each setting protects.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use super::access::{self, Access, Policy, Presented, Unrecognised};

/// Metadata key carrying the caller's cluster name (`scope`).
pub const SCOPE_HEADER: &str = "pgquorum-scope";
/// Metadata key carrying the proof of `raft.password` (hex HMAC-SHA256, never the password).
pub const AUTH_HEADER: &str = "pgquorum-auth";
/// Metadata key on a refusal, naming its kind so clients classify it without reading the text.
pub const REFUSAL_HEADER: &str = "pgquorum-refusal";
/// Metadata key carrying admin credentials (`Basic base64(user:password)`, as HTTP).
pub const CREDENTIALS_HEADER: &str = "authorization";

/// What the proof is computed over: a fixed context, so the proof says nothing about the
/// password to anyone who lacks it and cannot be reused for another purpose.
const PROOF_CONTEXT: &[u8] = b"pgquorum raft.password v1";

/// Why a server refused a call before looking at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller belongs to another cluster (`scope`).
    ClusterMismatch,
    /// The caller did not prove it knows `raft.password`.
    BadPassword,
    /// The caller is known but its permission level does not allow the call.
    NotAllowed,
    /// The call reached a service without being classified by the gate.
    Unidentified,
    /// A `config` write failed validation on the server.
    InvalidConfig,
    /// A certificate of the cluster CA that matches none of `raft.admin_names`,
    /// `raft.read_names` and `raft.agent_names`.
    UnlistedCertificate,
}

impl Refusal {
    fn tag(self) -> &'static str {
        match self {
            Refusal::ClusterMismatch => "cluster-mismatch",
            Refusal::BadPassword => "bad-password",
            Refusal::NotAllowed => "permission-denied",
            Refusal::Unidentified => "unidentified",
            Refusal::InvalidConfig => "invalid-config",
            Refusal::UnlistedCertificate => "unlisted-certificate",
        }
    }

    /// The refusal a status carries, if any (by its metadata, never by its message).
    pub fn of(status: &Status) -> Option<Refusal> {
        match status.metadata().get(REFUSAL_HEADER)?.to_str().ok()? {
            "cluster-mismatch" => Some(Refusal::ClusterMismatch),
            "bad-password" => Some(Refusal::BadPassword),
            "permission-denied" => Some(Refusal::NotAllowed),
            "unidentified" => Some(Refusal::Unidentified),
            "invalid-config" => Some(Refusal::InvalidConfig),
            "unlisted-certificate" => Some(Refusal::UnlistedCertificate),
            _ => None,
        }
    }

    /// The refusing agent's cluster name, sent along with a refusal.
    pub fn their_scope(status: &Status) -> Option<String> {
        Some(status.metadata().get(SCOPE_HEADER)?.to_str().ok()?.to_string())
    }

    pub(crate) fn status(self, code: tonic::Code, message: String, our_scope: &str) -> Status {
        let mut status = Status::new(code, message);
        status
            .metadata_mut()
            .insert(REFUSAL_HEADER, MetadataValue::from_static(self.tag()));
        if let (false, Ok(scope)) = (our_scope.is_empty(), MetadataValue::try_from(our_scope)) {
            status.metadata_mut().insert(SCOPE_HEADER, scope);
        }
        status
    }
}

/// PEM files for mutual TLS: this process's certificate and key, and the cluster CA that every
/// peer's certificate must be signed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    pub cafile: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{key} {path}: cannot read: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} {path}: no PEM {what} in the file")]
    NotPem {
        key: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{key} {path}: this agent's certificate (names {names:?}) is not an agent's under raft.agent_names / admin_names / read_names: its peers would refuse it")]
    NotAnAgentCertificate {
        key: &'static str,
        path: PathBuf,
        names: Vec<String>,
    },
    #[error("invalid endpoint {addr:?}: {source}")]
    Endpoint {
        addr: String,
        source: tonic::transport::Error,
    },
}

/// Loaded PEM material (read once at start: a missing file is an error then, not at the first call).
#[derive(Debug, Clone)]
struct TlsMaterial {
    identity: Identity,
    ca: Certificate,
}

fn read_pem(key: &'static str, path: &Path, what: &'static str) -> Result<Vec<u8>, TransportError> {
    let bytes = std::fs::read(path).map_err(|source| TransportError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN") {
        return Err(TransportError::NotPem {
            key,
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(bytes)
}

impl TlsMaterial {
    fn load(files: &TlsFiles, keys: [&'static str; 3]) -> Result<TlsMaterial, TransportError> {
        let cert = read_pem(keys[0], &files.certfile, "certificate")?;
        let key = read_pem(keys[1], &files.keyfile, "private key")?;
        let ca = read_pem(keys[2], &files.cafile, "certificate")?;
        Ok(TlsMaterial {
            identity: Identity::from_pem(cert, key),
            ca: Certificate::from_pem(ca),
        })
    }
}

/// The protection settings of this process's gRPC traffic, client and server side.
#[derive(Debug, Clone)]
pub struct Transport {
    /// Our cluster name; `None` only for a pgquorumctl that was given neither `-c` nor `--scope`.
    scope: Option<String>,
    tls: Option<TlsMaterial>,
    /// Hex HMAC of the shared secret, `None` without `raft.password`.
    proof: Option<String>,
    /// Client side: the admin credentials header sent on every call (pgquorumctl `--auth`).
    credentials: Option<String>,
    /// Server side: who gets which permission (src/grpc/access.rs).
    policy: AccessSettings,
}

/// The server's permission settings besides TLS and the password.
#[derive(Debug, Clone, Default)]
struct AccessSettings {
    admin_names: Vec<String>,
    read_names: Vec<String>,
    agent_names: Option<Vec<String>>,
    read_open: bool,
    /// The credentials header that gives admin permission (`restapi.authentication`).
    accepted_credentials: Option<String>,
}

/// The `authorization` header value for `username:password`.
pub fn basic_header(username: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// Which service a [`Gate`] guards, and so the least a caller must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The Raft RPCs: agents only.
    Raft,
    /// The admin service: every identified caller; each RPC then checks its own level.
    Admin,
    /// The admin service on the peer port when `raft.admin_listen` serves operators
    /// elsewhere: agents only.
    AdminForAgents,
}

impl Transport {
    /// Plain HTTP/2 without a secret: the demo's and the tests' default.
    pub fn open(scope: Option<&str>) -> Transport {
        Transport {
            scope: scope.map(str::to_string),
            tls: None,
            proof: None,
            credentials: None,
            policy: AccessSettings::default(),
        }
    }

    /// Settings from the agent's `raft` section.
    pub fn new(
        scope: Option<&str>,
        tls: Option<&TlsFiles>,
        password: Option<&str>,
        keys: [&'static str; 3],
    ) -> Result<Transport, TransportError> {
        Ok(Transport {
            scope: scope.map(str::to_string),
            tls: tls.map(|f| TlsMaterial::load(f, keys)).transpose()?,
            proof: password.map(proof_of),
            credentials: None,
            policy: AccessSettings::default(),
        })
    }

    /// Client side: send admin credentials (`username`, `password`) on every call.
    pub fn with_credentials(mut self, username: &str, password: &str) -> Transport {
        self.credentials = Some(basic_header(username, password));
        self
    }

    pub fn from_config(config: &crate::config::Config) -> Result<Transport, TransportError> {
        let raft = &config.raft;
        let tls = match (&raft.certfile, &raft.keyfile, &raft.cafile) {
            (Some(c), Some(k), Some(a)) => Some(TlsFiles {
                certfile: c.clone(),
                keyfile: k.clone(),
                cafile: a.clone(),
            }),
            // All or none is checked when the file is validated.
            _ => None,
        };
        let mut transport = Transport::new(
            Some(&config.scope),
            tls.as_ref(),
            raft.password.as_deref(),
            ["raft.certfile", "raft.keyfile", "raft.cafile"],
        )?;
        transport.policy = AccessSettings {
            admin_names: raft.admin_names.clone(),
            read_names: raft.read_names.clone(),
            agent_names: raft.agent_names.clone(),
            read_open: raft.read_open,
            accepted_credentials: config
                .restapi
                .authentication
                .as_ref()
                .map(|a| basic_header(&a.username, &a.password)),
        };
        if let Some(files) = &tls {
            transport.check_own_certificate(&files.certfile)?;
        }
        Ok(transport)
    }

    /// An agent whose own certificate its peers would not take for an agent's (a name outside
    /// `raft.agent_names`, or listed as admin/reader) could never vote or be heard: refuse to
    /// start rather than run cut off.
    fn check_own_certificate(&self, certfile: &Path) -> Result<(), TransportError> {
        let pem = read_pem("raft.certfile", certfile, "certificate")?;
        let names: Vec<String> = rustls_pemfile::certs(&mut &pem[..])
            .filter_map(Result::ok)
            .next()
            .and_then(|der| {
                webpki::EndEntityCert::try_from(&der)
                    .ok()
                    .map(|cert| cert.valid_dns_names().map(str::to_string).collect())
            })
            .unwrap_or_default();
        match access::is_agent_certificate(&self.gate(Service::Raft).policy, &names) {
            true => Ok(()),
            false => Err(TransportError::NotAnAgentCertificate {
                key: "raft.certfile",
                path: certfile.to_path_buf(),
                names,
            }),
        }
    }

    /// The same protection without a cluster name: a caller that does not say its cluster
    /// passes any agent's scope check (the witness asking its partners which cluster they are).
    pub fn without_scope(mut self) -> Transport {
        self.scope = None;
        self
    }

    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn uses_password(&self) -> bool {
        self.proof.is_some()
    }

    /// A lazily connecting channel to `addr` (`host:port`). Nothing is dialled until the first
    /// call, so a partner that is down does not hold up start-up.
    pub fn channel(&self, addr: &str, connect_timeout: Duration) -> Result<GrpcChannel, TransportError> {
        let bad = |source| TransportError::Endpoint {
            addr: addr.to_string(),
            source,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(bad)?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            let config = ClientTlsConfig::new()
                .ca_certificate(tls.ca.clone())
                .identity(tls.identity.clone());
            endpoint = endpoint.tls_config(config).map_err(bad)?;
        }
        Ok(InterceptedService::new(endpoint.connect_lazy(), self.stamp()))
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            scope: self
                .scope
                .as_deref()
                .and_then(|s| MetadataValue::try_from(s).ok()),
            proof: self
                .proof
                .as_deref()
                .and_then(|p| MetadataValue::try_from(p).ok()),
            credentials: self
                .credentials
                .as_deref()
                .and_then(|c| MetadataValue::try_from(c).ok()),
        }
    }

    /// The server's TLS settings: our certificate, and client certificates required from the
    /// cluster CA (mutual TLS).
    pub fn server_tls(&self) -> Option<ServerTlsConfig> {
        self.tls.as_ref().map(|tls| {
            ServerTlsConfig::new()
                .identity(tls.identity.clone())
                .client_ca_root(tls.ca.clone())
        })
    }

    /// The server-side check run before every RPC of `service`.
    pub fn gate(&self, service: Service) -> Gate {
        Gate {
            scope: self.scope.clone().unwrap_or_default(),
            proof: self.proof.clone(),
            service,
            policy: Policy {
                tls: self.tls.is_some(),
                password: self.proof.is_some(),
                admin_names: self.policy.admin_names.clone(),
                read_names: self.policy.read_names.clone(),
                agent_names: self.policy.agent_names.clone(),
                read_open: self.policy.read_open,
                credentials: self.policy.accepted_credentials.is_some(),
            },
            accepted_credentials: self.policy.accepted_credentials.clone(),
        }
    }
}

/// The proof of `password` sent on every call: hex HMAC-SHA256 keyed with the password.
fn proof_of(password: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(password.as_bytes()).expect("HMAC takes any key");
    mac.update(PROOF_CONTEXT);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Constant-time comparison, so the time to refuse says nothing about the proof.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A channel whose every request carries our identity.
pub type GrpcChannel = InterceptedService<Channel, Stamp>;

/// Client side: adds the cluster name and the password proof to every request.
#[derive(Debug, Clone)]
pub struct Stamp {
    scope: Option<MetadataValue<tonic::metadata::Ascii>>,
    proof: Option<MetadataValue<tonic::metadata::Ascii>>,
    credentials: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Interceptor for Stamp {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(scope) = &self.scope {
            request.metadata_mut().insert(SCOPE_HEADER, scope.clone());
        }
        if let Some(proof) = &self.proof {
            request.metadata_mut().insert(AUTH_HEADER, proof.clone());
        }
        if let Some(credentials) = &self.credentials {
            request
                .metadata_mut()
                .insert(CREDENTIALS_HEADER, credentials.clone());
        }
        Ok(request)
    }
}

/// Server side: refuses a caller of another cluster or with a wrong password proof, then
/// classifies the caller ([`access::classify`]), refuses it when it has no level (or not the
/// agent level the service needs) and stores its [`Caller`] in the request for the service.
/// (A TLS client certificate has already been checked by then.)
#[derive(Debug, Clone)]
pub struct Gate {
    scope: String,
    proof: Option<String>,
    service: Service,
    policy: Policy,
    accepted_credentials: Option<String>,
}

/// The DNS names of the client certificate of a call (TLS only).
fn cert_names<T>(request: &Request<T>) -> Vec<String> {
    let Some(certs) = request.peer_certs() else {
        return Vec::new();
    };
    let Some(first) = certs.first() else {
        return Vec::new();
    };
    match webpki::EndEntityCert::try_from(first) {
        Ok(cert) => cert.valid_dns_names().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

impl Interceptor for Gate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
        let mut presented = Presented {
            cert_names: cert_names(&request),
            credentials: match (
                &self.accepted_credentials,
                request.metadata().get(CREDENTIALS_HEADER),
            ) {
                (Some(expected), Some(given)) => same(given.as_bytes(), expected.as_bytes()),
                _ => false,
            },
            proof: false,
        };
        if let Some(expected) = &self.proof {
            let given = request.metadata().get(AUTH_HEADER).map(|v| v.as_bytes());
            presented.proof = given.is_some_and(|g| same(g, expected.as_bytes()));
            // No proof may still be an operator with credentials or a reader: classified below.
            let admissible = given.is_none() && self.service != Service::Raft;
            if !presented.proof && !admissible {
                let why = if given.is_some() { "a wrong" } else { "no" };
                tracing::warn!(%peer, "gRPC call refused: it carries {why} proof of raft.password");
                return Err(Refusal::BadPassword.status(
                    tonic::Code::Unauthenticated,
                    format!("refused: {why} proof of this cluster's raft.password"),
                    &self.scope,
                ));
            }
        }
        // A caller that does not say its cluster (pgquorumctl given only an endpoint) is let
        // through: the scope guards against mistakes, TLS and the password against intruders.
        if let Some(theirs) = request.metadata().get(SCOPE_HEADER) {
            let theirs = theirs.to_str().unwrap_or("<not ASCII>");
            if theirs != self.scope {
                tracing::error!(
                    %peer,
                    "gRPC call refused: the caller belongs to cluster {theirs:?}, this agent to cluster {:?}",
                    self.scope
                );
                return Err(Refusal::ClusterMismatch.status(
                    tonic::Code::FailedPrecondition,
                    format!(
                        "refused: this agent belongs to cluster (scope) {:?}, the caller to {theirs:?}",
                        self.scope
                    ),
                    &self.scope,
                ));
            }
        }
        let caller = match access::classify(&self.policy, &presented) {
            Ok(caller) => caller,
            Err(Unrecognised::Unauthenticated) => {
                tracing::warn!(%peer, "gRPC call refused: no proof of raft.password and no admin credentials");
                return Err(Refusal::BadPassword.status(
                    tonic::Code::Unauthenticated,
                    "refused: no proof of this cluster's raft.password, and no admin credentials".into(),
                    &self.scope,
                ));
            }
            Err(Unrecognised::UnlistedCertificate(names)) => {
                tracing::warn!(%peer, ?names, "gRPC call refused: the client certificate's names are in none of raft.admin_names, raft.read_names, raft.agent_names");
                return Err(Refusal::UnlistedCertificate.status(
                    tonic::Code::PermissionDenied,
                    format!(
                        "refused: client certificate {names:?} is of this cluster's CA but matches none of raft.admin_names, raft.read_names, raft.agent_names"
                    ),
                    &self.scope,
                ));
            }
        };
        if self.service != Service::Admin && caller.access < Access::Agent {
            let what = match self.service {
                Service::Raft => "a Raft RPC",
                _ => "this port (agents only: raft.admin_listen serves operators)",
            };
            tracing::warn!(%peer, who = %caller.how, "gRPC call refused: {what} needs an agent");
            return Err(access::denied(&caller, Access::Agent, what));
        }
        let mut request = request;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// A status with its error sources ("transport error: ...: invalid peer certificate: ..."),
/// since tonic's own display stops at the first line.
pub fn describe(status: &Status) -> String {
    let mut text = format!("{}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

/// The transport pgquorumctl's helpers (and the HA loop's WAL position probe, which uses them)
/// connect with; set once by the binary at start. Tests that never set it talk plain gRPC.
static PROCESS_TRANSPORT: RwLock<Option<Transport>> = RwLock::new(None);

/// Set the transport for [`process_channel`].
pub fn install(transport: Transport) {
    *PROCESS_TRANSPORT.write().expect("transport lock poisoned") = Some(transport);
}

/// Whether the process's transport uses TLS (for error hints).
pub fn process_uses_tls() -> bool {
    PROCESS_TRANSPORT
        .read()
        .expect("transport lock poisoned")
        .as_ref()
        .is_some_and(Transport::uses_tls)
}

/// A channel to `addr` with the process's transport (open when none was installed).
pub fn process_channel(addr: &str, connect_timeout: Duration) -> Result<GrpcChannel, TransportError> {
    let guard = PROCESS_TRANSPORT.read().expect("transport lock poisoned");
    match guard.as_ref() {
        Some(t) => t.channel(addr, connect_timeout),
        None => Transport::open(None).channel(addr, connect_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(gate: &mut Gate, scope: Option<&str>, proof: Option<&str>) -> Result<(), Refusal> {
        let mut req = Request::new(());
        if let Some(s) = scope {
            req.metadata_mut().insert(SCOPE_HEADER, s.parse().unwrap());
        }
        if let Some(p) = proof {
            req.metadata_mut().insert(AUTH_HEADER, p.parse().unwrap());
        }
        gate.call(req)
            .map(|_| ())
            .map_err(|s| Refusal::of(&s).expect("typed refusal"))
    }

    #[test]
    fn gate_checks_scope_and_password_proof() {
        let mut open = Transport::open(Some("main")).gate(Service::Raft);
        assert_eq!(call(&mut open, Some("main"), None), Ok(()));
        assert_eq!(call(&mut open, None, None), Ok(()));
        assert_eq!(
            call(&mut open, Some("other"), None),
            Err(Refusal::ClusterMismatch)
        );
        let refused = open.call(Request::new(())).map(|_| ());
        assert!(refused.is_ok());
        let mut req = Request::new(());
        req.metadata_mut().insert(SCOPE_HEADER, "other".parse().unwrap());
        let status = open.call(req).unwrap_err();
        assert_eq!(Refusal::their_scope(&status).as_deref(), Some("main"));

        let t = Transport::new(Some("main"), None, Some("s3cret"), ["a", "b", "c"]).unwrap();
        let mut gate = t.gate(Service::Raft);
        let good = proof_of("s3cret");
        assert_ne!(good, "s3cret");
        assert_eq!(call(&mut gate, Some("main"), Some(&good)), Ok(()));
        assert_eq!(call(&mut gate, Some("main"), None), Err(Refusal::BadPassword));
        assert_eq!(
            call(&mut gate, Some("main"), Some(&proof_of("wrong"))),
            Err(Refusal::BadPassword)
        );
    }

    #[test]
    fn stamp_carries_scope_and_proof() {
        let t = Transport::new(Some("main"), None, Some("pw"), ["a", "b", "c"]).unwrap();
        let req = t.stamp().call(Request::new(())).unwrap();
        assert_eq!(req.metadata().get(SCOPE_HEADER).unwrap(), "main");
        assert_eq!(
            req.metadata().get(AUTH_HEADER).unwrap().to_str().unwrap(),
            proof_of("pw")
        );
    }

    #[test]
    fn missing_tls_file_is_named() {
        let files = TlsFiles {
            certfile: "/nonexistent/cert.pem".into(),
            keyfile: "/nonexistent/key.pem".into(),
            cafile: "/nonexistent/ca.pem".into(),
        };
        let err = Transport::new(
            Some("s"),
            Some(&files),
            None,
            ["raft.certfile", "raft.keyfile", "raft.cafile"],
        )
        .unwrap_err();
        assert!(matches!(
            err,
            TransportError::Read {
                key: "raft.certfile",
                ..
            }
        ));
    }
}
