//! Who is calling, and what they may do: the permission levels of the gRPC services.
//!
//! Every call is classified once, by the transport's [`Gate`](super::transport::Gate), into
//! an [`Access`] level stored in the request's extensions; each admin RPC then requires its
//! level ([`require`]). The classification itself ([`classify`]) is pure and tested by table.
//!
//! - **Agent**: a peer of the cluster — with TLS, a certificate of the cluster CA whose names
//!   are not listed in `raft.admin_names`/`raft.read_names`; with `raft.password`, the proof of
//!   it (both when both are set). Everything, including the Raft RPCs and the agent-owned keys.
//! - **Admin**: a certificate named in `raft.admin_names` (default `pgquorumctl`, the client
//!   certificate `pgquorum generate-certs` writes), or the `restapi.authentication`
//!   credentials. Reads, operator requests, writes of `config` (validated) and `failover`.
//! - **Read**: a certificate named in `raft.read_names`, or anyone when `raft.read_open`.
//!   Reads and status only.
//!
//! Without TLS and without `raft.password` the port is open: every caller is an agent (the
//! demo's and the tests' default; docs/security.md).

use tonic::{Request, Status};

use super::transport::Refusal;

/// Permission levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Admin,
    Agent,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Admin => "admin",
            Access::Agent => "agent",
        }
    }
}

/// The classification of one call, stored in its extensions by the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access: Access,
    /// How the caller was recognised, for refusals and logs (`certificate "pgquorumctl"`).
    pub how: String,
}

/// What the server accepts, from the agent's config.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Mutual TLS is on: every caller presented a certificate of the cluster CA.
    pub tls: bool,
    /// `raft.password` is set: agents prove it on every call.
    pub password: bool,
    pub admin_names: Vec<String>,
    pub read_names: Vec<String>,
    pub read_open: bool,
    /// `restapi.authentication` is set: its credentials give admin permission.
    pub credentials: bool,
}

/// What one call presented.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The DNS names of the client certificate (with TLS).
    pub cert_names: Vec<String>,
    /// A valid proof of `raft.password` (a wrong one is refused before this).
    pub proof: bool,
    /// Credentials matching `restapi.authentication`.
    pub credentials: bool,
}

/// The caller's level, or `None` when it has none (refused as unauthenticated).
pub fn classify(policy: &Policy, presented: &Presented) -> Option<Caller> {
    if !policy.tls && !policy.password {
        return Some(Caller {
            access: Access::Agent,
            how: "an open port".into(),
        });
    }
    let named = |names: &[String]| presented.cert_names.iter().find(|n| names.contains(n)).cloned();
    let cert_level = if !policy.tls {
        None
    } else if let Some(name) = named(&policy.admin_names) {
        Some((Access::Admin, name))
    } else if let Some(name) = named(&policy.read_names) {
        Some((Access::Read, name))
    } else {
        let name = presented.cert_names.first().cloned().unwrap_or_default();
        Some((Access::Agent, name))
    };
    let cert = |name: &str| format!("certificate {name:?}");
    // An agent needs every configured proof: the CA's certificate and the password.
    match &cert_level {
        Some((Access::Agent, name)) if !policy.password || presented.proof => {
            return Some(Caller {
                access: Access::Agent,
                how: cert(name),
            })
        }
        None if presented.proof => {
            return Some(Caller {
                access: Access::Agent,
                how: "raft.password".into(),
            })
        }
        _ => {}
    }
    if policy.credentials && presented.credentials {
        return Some(Caller {
            access: Access::Admin,
            how: "admin credentials".into(),
        });
    }
    match cert_level {
        Some((level @ (Access::Admin | Access::Read), name)) => {
            return Some(Caller {
                access: level,
                how: cert(&name),
            })
        }
        // An agent's certificate without the password: not an agent, maybe a reader.
        Some((Access::Agent, name)) if policy.read_open => {
            return Some(Caller {
                access: Access::Read,
                how: format!("{} without the raft.password proof", cert(&name)),
            })
        }
        _ => {}
    }
    policy.read_open.then(|| Caller {
        access: Access::Read,
        how: "an unauthenticated caller (raft.read_open)".into(),
    })
}

/// `Ok` when the call's caller has at least `need`; else `PermissionDenied` naming what was
/// asked. A request that never went through the gate is refused (fail closed).
pub fn require<T>(request: &Request<T>, need: Access, what: &str) -> Result<Access, Status> {
    let Some(caller) = request.extensions().get::<Caller>() else {
        return Err(Refusal::Unidentified.status(
            tonic::Code::Unauthenticated,
            format!("refused: {what}: the caller was not identified"),
            "",
        ));
    };
    if caller.access >= need {
        return Ok(caller.access);
    }
    Err(denied(caller, need, what))
}

/// The refusal of `what` to `caller`, which needs `need`.
pub fn denied(caller: &Caller, need: Access, what: &str) -> Status {
    Refusal::NotAllowed.status(
        tonic::Code::PermissionDenied,
        format!(
            "refused: {what} needs {} permission; this caller ({}) has {} permission",
            need.name(),
            caller.how,
            caller.access.name()
        ),
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(policy: &Policy, names: &[&str], proof: bool, credentials: bool) -> Option<Access> {
        let presented = Presented {
            cert_names: names.iter().map(|s| s.to_string()).collect(),
            proof,
            credentials,
        };
        classify(policy, &presented).map(|c| c.access)
    }

    #[test]
    fn levels_by_certificate_password_and_credentials() {
        use Access::*;
        let open = Policy::default();
        assert_eq!(level(&open, &[], false, false), Some(Agent));

        let tls = Policy {
            tls: true,
            admin_names: vec!["pgquorumctl".into()],
            read_names: vec!["monitor".into()],
            credentials: true,
            ..Policy::default()
        };
        assert_eq!(level(&tls, &["node1"], false, false), Some(Agent));
        assert_eq!(level(&tls, &["pgquorumctl"], false, false), Some(Admin));
        assert_eq!(level(&tls, &["monitor"], false, false), Some(Read));
        // Credentials raise a reader to admin; they never make an agent.
        assert_eq!(level(&tls, &["monitor"], false, true), Some(Admin));
        assert_eq!(level(&tls, &["pgquorumctl"], true, true), Some(Admin));

        let pw = Policy {
            password: true,
            credentials: true,
            ..Policy::default()
        };
        assert_eq!(level(&pw, &[], true, false), Some(Agent));
        assert_eq!(level(&pw, &[], false, true), Some(Admin));
        assert_eq!(level(&pw, &[], false, false), None);
        let pw_open = Policy {
            read_open: true,
            ..pw.clone()
        };
        assert_eq!(level(&pw_open, &[], false, false), Some(Read));
        // Credentials count only when the server has some configured.
        let pw_no_credentials = Policy {
            credentials: false,
            ..pw.clone()
        };
        assert_eq!(level(&pw_no_credentials, &[], false, true), None);

        let both = Policy {
            tls: true,
            password: true,
            ..tls.clone()
        };
        assert_eq!(level(&both, &["node1"], true, false), Some(Agent));
        assert_eq!(level(&both, &["node1"], false, false), None);
        assert_eq!(level(&both, &["node1"], false, true), Some(Admin));
    }

    #[test]
    fn require_compares_levels_and_fails_closed() {
        let mut req = Request::new(());
        let status = require(&req, Access::Read, "read").unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        req.extensions_mut().insert(Caller {
            access: Access::Read,
            how: "x".into(),
        });
        assert_eq!(require(&req, Access::Read, "read").unwrap(), Access::Read);
        let status = require(&req, Access::Admin, "switchover").unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(Refusal::of(&status), Some(Refusal::NotAllowed));
    }
}
