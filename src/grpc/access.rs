//! Who is calling, and what they may do: the permission levels of the gRPC services.
//!
//! Every call is classified once, by the transport's [`Gate`](super::transport::Gate), into
//! an [`Access`] level stored in the request's extensions; each admin RPC then requires its
//! level ([`require`]). The classification itself ([`classify`]) is pure and tested by table.
//!
//! - **Agent**: a peer of the cluster — with TLS, a certificate of the cluster CA whose names
//!   are not listed in `raft.admin_names`/`raft.read_names` (and, when `raft.agent_names` is
//!   set, match one of its patterns); with `raft.password`, the proof of it (both when both are
//!   set). Everything, including the Raft RPCs and the agent-owned keys.
//! - **Admin**: a certificate named in `raft.admin_names` (default `pgquorumctl`, the client
//!   certificate `pgquorum generate-certs` writes), or the `restapi.authentication`
//!   credentials. Reads, operator requests, writes of `config` (validated) and `failover`.
//! - **Read**: a certificate named in `raft.read_names`, or anyone when `raft.read_open`.
//!   Reads and status only.
//!
//! With `raft.agent_names` set, a certificate matching none of the three lists has no level of
//! its own: it is refused ([`Unrecognised::UnlistedCertificate`]) unless admin credentials or
//! `raft.read_open` give its caller one.
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
    /// `raft.agent_names`: the certificate names (patterns, [`name_matches`]) that may act as
    /// agents; `None` accepts every other certificate of the cluster CA.
    pub agent_names: Option<Vec<String>>,
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

/// Why a call has no permission level at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrecognised {
    /// No proof of `raft.password` and no admin credentials (and reads are not open).
    Unauthenticated,
    /// A certificate of the cluster CA whose names match none of `raft.admin_names`,
    /// `raft.read_names` and `raft.agent_names` (the names it carries, for the refusal).
    UnlistedCertificate(Vec<String>),
}

/// Whether certificate name `name` matches `pattern`: equal, or with `*` in the pattern
/// standing for any run of characters (`node*`, `*.db.example.com`). Case-insensitive, as DNS
/// names are.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The level a certificate's names give, before any password or credentials.
enum CertLevel {
    /// No TLS: there is no certificate.
    None,
    Named(Access, String),
    Unlisted,
}

/// The caller's level, or why it has none (refused by the gate).
pub fn classify(policy: &Policy, presented: &Presented) -> Result<Caller, Unrecognised> {
    if !policy.tls && !policy.password {
        return Ok(Caller {
            access: Access::Agent,
            how: "an open port".into(),
        });
    }
    let named = |names: &[String]| presented.cert_names.iter().find(|n| names.contains(n)).cloned();
    let cert_level = if !policy.tls {
        CertLevel::None
    } else if let Some(name) = named(&policy.admin_names) {
        CertLevel::Named(Access::Admin, name)
    } else if let Some(name) = named(&policy.read_names) {
        CertLevel::Named(Access::Read, name)
    } else {
        match &policy.agent_names {
            None => CertLevel::Named(
                Access::Agent,
                presented.cert_names.first().cloned().unwrap_or_default(),
            ),
            Some(patterns) => match presented
                .cert_names
                .iter()
                .find(|n| patterns.iter().any(|p| name_matches(p, n)))
            {
                Some(name) => CertLevel::Named(Access::Agent, name.clone()),
                None => CertLevel::Unlisted,
            },
        }
    };
    let cert = |name: &str| format!("certificate {name:?}");
    // An agent needs every configured proof: the CA's certificate and the password.
    match &cert_level {
        CertLevel::Named(Access::Agent, name) if !policy.password || presented.proof => {
            return Ok(Caller {
                access: Access::Agent,
                how: cert(name),
            })
        }
        CertLevel::None if presented.proof => {
            return Ok(Caller {
                access: Access::Agent,
                how: "raft.password".into(),
            })
        }
        _ => {}
    }
    if policy.credentials && presented.credentials {
        return Ok(Caller {
            access: Access::Admin,
            how: "admin credentials".into(),
        });
    }
    match cert_level {
        CertLevel::Named(level @ (Access::Admin | Access::Read), name) => {
            return Ok(Caller {
                access: level,
                how: cert(&name),
            })
        }
        // An agent's certificate without the password: not an agent, maybe a reader.
        CertLevel::Named(Access::Agent, name) if policy.read_open => {
            return Ok(Caller {
                access: Access::Read,
                how: format!("{} without the raft.password proof", cert(&name)),
            })
        }
        CertLevel::Unlisted if policy.read_open => {
            return Ok(Caller {
                access: Access::Read,
                how: format!(
                    "certificate {:?} (in none of raft.admin_names, read_names, agent_names; raft.read_open)",
                    presented.cert_names
                ),
            })
        }
        CertLevel::Unlisted => return Err(Unrecognised::UnlistedCertificate(presented.cert_names.clone())),
        _ => {}
    }
    match policy.read_open {
        true => Ok(Caller {
            access: Access::Read,
            how: "an unauthenticated caller (raft.read_open)".into(),
        }),
        false => Err(Unrecognised::Unauthenticated),
    }
}

/// Whether a certificate named `names` is an agent's under `policy` (TLS on): what an agent
/// checks of its own certificate at start, since its peers would refuse it otherwise.
pub fn is_agent_certificate(policy: &Policy, names: &[String]) -> bool {
    let presented = Presented {
        cert_names: names.to_vec(),
        proof: true,
        credentials: false,
    };
    let policy = Policy {
        tls: true,
        read_open: false,
        ..policy.clone()
    };
    classify(&policy, &presented).is_ok_and(|c| c.access == Access::Agent)
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
        classify(policy, &presented).ok().map(|c| c.access)
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
    fn name_patterns() {
        for (pattern, name, matches) in [
            ("node1", "node1", true),
            ("node1", "NODE1", true),
            ("node1", "node10", false),
            ("node*", "node1", true),
            ("node*", "node", true),
            ("node*", "nod", false),
            ("*.db.example.com", "pg1.db.example.com", true),
            ("*.db.example.com", "db.example.com", false),
            ("*.db.example.com", "pg1.db.example.com.evil", false),
            ("pg-*-east", "pg-1-east", true),
            ("pg-*-east", "pg-1-west", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*", "anything", true),
            ("*x*y*", "axbyc", true),
            ("*x*y*", "aybxc", false),
        ] {
            assert_eq!(name_matches(pattern, name), matches, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn agent_names_restrict_who_is_an_agent() {
        use Access::*;
        let tls = Policy {
            tls: true,
            admin_names: vec!["pgquorumctl".into()],
            read_names: vec!["monitor".into()],
            agent_names: Some(vec!["node*".into(), "*.db.example.com".into()]),
            credentials: true,
            ..Policy::default()
        };
        let unlisted = |names: &[&str]| {
            Err(Unrecognised::UnlistedCertificate(
                names.iter().map(|s| s.to_string()).collect(),
            ))
        };
        let classify_names = |policy: &Policy, names: &[&str], proof: bool, credentials: bool| {
            classify(
                policy,
                &Presented {
                    cert_names: names.iter().map(|s| s.to_string()).collect(),
                    proof,
                    credentials,
                },
            )
            .map(|c| c.access)
        };
        // (certificate names, password proof, admin credentials) -> level or refusal
        type Case<'a> = (&'a [&'a str], bool, bool, Result<Access, Unrecognised>);
        let cases: Vec<Case> = vec![
            (&["node1"], false, false, Ok(Agent)),
            (&["pg1.db.example.com"], false, false, Ok(Agent)),
            (&["other", "node2"], false, false, Ok(Agent)),
            (&["pgquorumctl"], false, false, Ok(Admin)),
            (&["monitor"], false, false, Ok(Read)),
            (&["intruder"], false, false, unlisted(&["intruder"])),
            (&[], false, false, unlisted(&[])),
            // Admin credentials still make an operator of whoever holds them; never an agent.
            (&["intruder"], false, true, Ok(Admin)),
        ];
        for (names, proof, credentials, want) in cases {
            assert_eq!(
                classify_names(&tls, names, proof, credentials),
                want,
                "{names:?} proof={proof} credentials={credentials}"
            );
        }
        // raft.read_open gives an unlisted certificate what it gives anyone: reading.
        let open = Policy {
            read_open: true,
            ..tls.clone()
        };
        assert_eq!(classify_names(&open, &["intruder"], false, false), Ok(Read));
        // With the password too, a listed agent needs the proof; an unlisted one with the
        // proof is still no agent.
        let both = Policy {
            password: true,
            ..tls.clone()
        };
        assert_eq!(classify_names(&both, &["node1"], true, false), Ok(Agent));
        assert_eq!(
            classify_names(&both, &["node1"], false, false),
            Err(Unrecognised::Unauthenticated)
        );
        assert_eq!(
            classify_names(&both, &["intruder"], true, false),
            unlisted(&["intruder"])
        );
        // Unset (the default): every other certificate of the CA is an agent, as before.
        let default = Policy {
            agent_names: None,
            ..tls.clone()
        };
        assert_eq!(classify_names(&default, &["intruder"], false, false), Ok(Agent));
        // Without TLS there are no certificates to name: the password alone decides.
        let pw = Policy {
            tls: false,
            password: true,
            ..tls.clone()
        };
        assert_eq!(classify_names(&pw, &[], true, false), Ok(Agent));
    }

    #[test]
    fn own_certificate_must_be_an_agents() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let policy = Policy {
            tls: true,
            admin_names: vec!["pgquorumctl".into()],
            read_names: vec!["monitor".into()],
            agent_names: Some(vec!["node*".into()]),
            ..Policy::default()
        };
        assert!(is_agent_certificate(&policy, &names(&["node1"])));
        assert!(!is_agent_certificate(&policy, &names(&["db1"])));
        assert!(!is_agent_certificate(&policy, &names(&["pgquorumctl"])));
        assert!(!is_agent_certificate(&policy, &names(&["monitor"])));
        let any = Policy {
            agent_names: None,
            ..policy.clone()
        };
        assert!(is_agent_certificate(&any, &names(&["db1"])));
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
