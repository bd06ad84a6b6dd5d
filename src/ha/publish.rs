//! What this member publishes under `members/<name>` each cycle.

use super::decide::{DataDir, Job};
use super::pg_ops::PgObservation;
use crate::cluster::{MemberStatus, PgRole, PgRunState};
use crate::config::Config;

/// Split `host:port` (the last colon separates the port, so IPv6 in brackets works).
pub fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// The address other hosts reach `raft.admin_listen` at: the listen address itself, unless it
/// binds every interface (`0.0.0.0`, `[::]`), then the host of `raft.self_addr` (the address
/// the other agents already reach) with the admin port.
pub fn admin_connect_address(admin_listen: &str, self_addr: &str) -> String {
    match (split_host_port(admin_listen), split_host_port(self_addr)) {
        (Some((host, port)), Some((peer_host, _))) if host == "0.0.0.0" || host == "::" => {
            if peer_host.contains(':') {
                format!("[{peer_host}]:{port}")
            } else {
                format!("{peer_host}:{port}")
            }
        }
        _ => admin_listen.to_string(),
    }
}

pub struct Observed<'a> {
    pub data: &'a DataDir,
    pub running: bool,
    pub observation: Option<&'a PgObservation>,
    pub job: Option<Job>,
    /// The member this replica was configured to stream from.
    pub following: Option<&'a str>,
    /// A state the executor set that observation cannot see (start failed, stopping...).
    pub state_override: Option<PgRunState>,
}

pub fn member_status(config: &Config, seen: &Observed<'_>) -> MemberStatus {
    let pg_addr = config
        .postgresql
        .connect_address
        .as_deref()
        .or(config.postgresql.listen.as_deref());
    let (host, port) = pg_addr
        .and_then(split_host_port)
        .map_or((None, None), |(h, p)| (Some(h), Some(p)));
    let api = config
        .restapi
        .connect_address
        .as_deref()
        .or(config.restapi.listen.as_deref());
    let obs = seen.observation;
    let role = match (seen.data, obs.and_then(|o| o.role)) {
        (_, Some(role)) => role,
        (DataDir::Initialized { .. }, None) => PgRole::Replica,
        _ => PgRole::Uninitialized,
    };
    let state = match (seen.job, seen.state_override) {
        (Some(Job::Bootstrap), _) => PgRunState::InitializingNewCluster,
        (Some(Job::Clone), _) => PgRunState::CreatingReplica,
        (Some(Job::Rejoin), _) => PgRunState::Rewinding,
        (None, Some(s)) => s,
        (None, None) if !seen.running => PgRunState::Stopped,
        (None, None) => match obs {
            Some(o) if o.role == Some(PgRole::Replica) && o.streaming_from.is_some() => PgRunState::Streaming,
            Some(_) => PgRunState::Running,
            None => PgRunState::Starting,
        },
    };
    let system_identifier = match seen.data {
        DataDir::Initialized { system_identifier } => Some(system_identifier.clone()),
        _ => None,
    };
    MemberStatus {
        name: config.name.clone(),
        role,
        state,
        conn_url: host
            .as_ref()
            .zip(port)
            .map(|(h, p)| format!("postgres://{h}:{p}/postgres")),
        api_url: api.map(|a| {
            let scheme = if config.restapi.certfile.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{a}/patroni")
        }),
        raft_addr: Some(config.raft.self_addr.clone()),
        admin_addr: config
            .raft
            .admin_listen
            .as_deref()
            .map(|a| admin_connect_address(a, &config.raft.self_addr)),
        host,
        port,
        timeline: obs.and_then(|o| o.timeline),
        received_lsn: obs.and_then(|o| o.received_lsn),
        replayed_lsn: obs.and_then(|o| o.replayed_lsn),
        wal_lsn: obs.and_then(|o| o.wal_lsn),
        replicating_from: if role == PgRole::Replica {
            seen.following.map(str::to_string)
        } else {
            None
        },
        tags: config.tags.clone(),
        pending_restart: obs.is_some_and(|o| o.pending_restart),
        version: env!("CARGO_PKG_VERSION").to_string(),
        server_version: obs.and_then(|o| o.server_version),
        system_identifier,
        raft_timings: Some(crate::config::RaftTimings::of(&config.raft)),
        writes_blocked: obs.and_then(super::sync_standby::writes_blocked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splitting() {
        assert_eq!(
            split_host_port("127.0.0.1:5432"),
            Some(("127.0.0.1".into(), 5432))
        );
        assert_eq!(split_host_port("[::1]:5432"), Some(("::1".into(), 5432)));
        assert_eq!(split_host_port("nohost"), None);
    }

    #[test]
    fn admin_address_others_reach() {
        let cases = [
            ("10.0.0.5:2390", "db1:2380", "10.0.0.5:2390"),
            ("0.0.0.0:2390", "db1:2380", "db1:2390"),
            ("[::]:2390", "10.0.0.1:2380", "10.0.0.1:2390"),
            ("0.0.0.0:2390", "[fd00::1]:2380", "[fd00::1]:2390"),
            ("[::1]:2390", "db1:2380", "[::1]:2390"),
        ];
        for (listen, peer, want) in cases {
            assert_eq!(admin_connect_address(listen, peer), want, "{listen} {peer}");
        }
    }

    #[test]
    fn the_record_carries_the_admin_address_when_there_is_a_listener() {
        let published = |extra: &str| {
            let yaml =
                format!("scope: demo\nname: n1\nraft:\n  self_addr: db1:2380\n  data_dir: /tmp/r\n{extra}");
            let config = Config::from_yaml_str(&yaml, "test", Vec::<(String, String)>::new())
                .expect("valid")
                .config;
            let seen = Observed {
                data: &DataDir::Empty,
                running: false,
                observation: None,
                job: None,
                following: None,
                state_override: None,
            };
            member_status(&config, &seen).admin_addr
        };
        assert_eq!(published(""), None);
        assert_eq!(
            published("  admin_listen: 0.0.0.0:2390\n").as_deref(),
            Some("db1:2390")
        );
    }

    #[test]
    fn old_records_without_admin_addr_decode() {
        let old = r#"{"name":"db1","raft_addr":"db1:2380"}"#;
        let m: MemberStatus = serde_json::from_str(old).unwrap();
        assert_eq!(m.admin_addr, None);
        assert!(!serde_json::to_string(&m).unwrap().contains("admin_addr"));
    }
}
