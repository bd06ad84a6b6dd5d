//! `GET /metrics`: Prometheus text exposition with Patroni's metric names, help texts and
//! `scope`/`name` labels, so existing dashboards and alerts keep working.

use std::fmt::{Display, Write};

use super::epoch;
use super::status_json::{cluster_unlocked, dcs_last_seen};
use crate::cluster::{PgRole, PgRunState};
use crate::ha::NodeSnapshot;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn render(snapshot: &NodeSnapshot, version: &str) -> String {
    let me = &snapshot.me;
    let running = me.state.is_up();
    let primary = me.role == PgRole::Primary;
    let replica = me.role == PgRole::Replica;
    // Positions, versions and timelines come from a query on the running PostgreSQL in Patroni,
    // so they read 0 when it is down.
    let when_running = |value: Option<u64>| value.filter(|_| running).unwrap_or(0);
    let failsafe_enabled = snapshot
        .cluster
        .as_ref()
        .is_some_and(|view| view.config.failsafe_mode);
    let sync_standby = replica
        && snapshot
            .cluster
            .as_ref()
            .is_some_and(|view| view.is_sync_standby(&me.name));

    let mut out = Exposition::new(&snapshot.scope, &snapshot.name);
    out.gauge(
        "patroni_version",
        "Patroni semver without periods.",
        padded_version(version),
    );
    out.gauge(
        "patroni_postgres_running",
        "Value is 1 if Postgres is running, 0 otherwise.",
        flag(running),
    );
    let start_time = snapshot
        .postmaster_start_time
        .as_deref()
        .filter(|_| running)
        .and_then(epoch::parse_timestamp)
        .unwrap_or(0.0);
    out.gauge(
        "patroni_postmaster_start_time",
        "Epoch seconds since Postgres started.",
        start_time,
    );
    out.gauge(
        "patroni_primary",
        "Value is 1 if this node is the leader, 0 otherwise.",
        flag(primary),
    );
    out.counter(
        "patroni_xlog_location",
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
        when_running(me.wal_lsn.or(me.received_lsn).filter(|_| primary)),
    );
    out.gauge(
        "patroni_standby_leader",
        "Value is 1 if this node is the standby_leader, 0 otherwise.",
        0,
    );
    out.gauge(
        "patroni_replica",
        "Value is 1 if this node is a replica, 0 otherwise.",
        flag(replica),
    );
    out.gauge(
        "patroni_sync_standby",
        "Value is 1 if this node is a sync standby, 0 otherwise.",
        flag(sync_standby),
    );
    out.gauge(
        "pgquorum_writes_blocked",
        "Value is 1 if this primary's commits wait for a synchronous standby that is not there, 0 otherwise.",
        flag(snapshot.writes_blocked.is_some()),
    );
    out.gauge(
        "patroni_quorum_standby",
        "Value is 1 if this node is a quorum standby, 0 otherwise.",
        0,
    );
    out.counter(
        "patroni_xlog_received_location",
        "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
        when_running(me.received_lsn.or(me.replayed_lsn).filter(|_| replica)),
    );
    out.counter(
        "patroni_xlog_replayed_location",
        "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
        when_running(me.replayed_lsn.filter(|_| replica)),
    );
    out.gauge(
        "patroni_xlog_replayed_timestamp",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
        0,
    );
    out.gauge(
        "patroni_xlog_paused",
        "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
        0,
    );
    let server_version = when_running(me.server_version.map(u64::from));
    if server_version >= 90600 {
        out.gauge(
            "patroni_postgres_streaming",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            flag(me.state == PgRunState::Streaming),
        );
        out.gauge(
            "patroni_postgres_in_archive_recovery",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            0,
        );
    }
    out.gauge(
        "patroni_postgres_server_version",
        "Version of Postgres (if running), 0 otherwise.",
        server_version,
    );
    out.gauge(
        "patroni_cluster_unlocked",
        "Value is 1 if the cluster is unlocked, 0 if locked.",
        flag(cluster_unlocked(snapshot)),
    );
    out.gauge(
        "patroni_failsafe_mode_is_active",
        "Value is 1 if failsafe mode is active, 0 if inactive.",
        0,
    );
    out.gauge(
        "patroni_failsafe_mode_enabled",
        "Value is 1 if failsafe_mode is enabled, 0 otherwise.",
        flag(failsafe_enabled),
    );
    out.gauge(
        "patroni_failsafe_member",
        "Value is 1 if this node is a member of failsafe, 0 otherwise.",
        0,
    );
    out.gauge(
        "patroni_postgres_timeline",
        "Postgres timeline of this node (if running), 0 otherwise.",
        when_running(me.timeline),
    );
    out.gauge(
        "patroni_dcs_last_seen",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        dcs_last_seen(snapshot),
    );
    out.gauge(
        "patroni_pending_restart",
        "Value is 1 if the node needs a restart, 0 otherwise.",
        flag(me.pending_restart),
    );
    out.gauge(
        "patroni_is_paused",
        "Value is 1 if auto failover is disabled, 0 otherwise.",
        flag(snapshot.paused),
    );
    out.postgres_state(me.state);
    out.gauge(
        "patroni_failover_priority",
        "Failover priority of this node.",
        me.tags.effective_failover_priority(),
    );
    out.text
}

/// Patroni's `patroni_postgres_state` numbering (fixed forever by Patroni); states pgquorum
/// does not have are listed for the help text only.
const POSTGRES_STATE_VALUES: &str =
    "0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, \
4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, 9=restarting, \
10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, 14=crashed";

fn postgres_state_value(state: PgRunState) -> u8 {
    match state {
        PgRunState::InitializingNewCluster => 0,
        PgRunState::CreatingReplica => 4,
        PgRunState::Running | PgRunState::Streaming | PgRunState::Unattended => 5,
        PgRunState::Starting => 6,
        PgRunState::StartFailed => 8,
        PgRunState::Restarting => 9,
        PgRunState::Stopping => 11,
        // Patroni has no rewinding state; it reports a member running pg_rewind as stopped.
        // (`Unknown` is only ever another member's state, read from a newer agent.)
        PgRunState::Stopped | PgRunState::Rewinding | PgRunState::RewindFailed | PgRunState::Unknown => 12,
        PgRunState::Crashed => 14,
    }
}

fn flag(value: bool) -> u8 {
    u8::from(value)
}

/// `2.0.2` → `020002`: each numeric part padded to two digits, as Patroni does.
fn padded_version(version: &str) -> String {
    version
        .split('.')
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            format!("{:0>2}", digits)
        })
        .collect()
}

/// pgquorum's own Raft gauges (Patroni has none), in the agent's and the witness's
/// `/metrics`: role, term, leader, voters, and whether a majority of them can be reached.
pub fn raft_gauges(scope: &str, name: &str, node: &crate::node::RaftNode) -> String {
    let m = node.raft.metrics().borrow().clone();
    let loss = node.quorum_loss().borrow().clone();
    let voters = m.membership_config.membership().voter_ids().count();
    let mut out = Exposition::new(scope, name);
    let role = crate::node::status::role_name(m.state);
    let _ = write!(
        out.text,
        "# HELP pgquorum_raft_role This node's Raft role (the label with value 1).\n\
         # TYPE pgquorum_raft_role gauge\n"
    );
    for r in ["leader", "follower", "candidate", "learner", "shutdown"] {
        let _ = writeln!(
            out.text,
            "pgquorum_raft_role{{scope=\"{}\",name=\"{}\",role=\"{r}\"}} {}",
            escape_label(scope),
            escape_label(name),
            u8::from(r == role)
        );
    }
    out.gauge("pgquorum_raft_term", "Current Raft term.", m.current_term);
    out.gauge(
        "pgquorum_raft_leader_id",
        "Node id of the Raft leader this node knows (0: none).",
        m.current_leader.unwrap_or(0),
    );
    out.gauge("pgquorum_raft_voters", "Voters in the Raft membership.", voters);
    out.gauge(
        "pgquorum_raft_quorum",
        "0 while a majority of the Raft voters cannot be reached (nothing can be promoted; the log and /patroni raft_quorum name the unreachable voters), 1 otherwise.",
        u8::from(loss.is_none()),
    );
    out.gauge(
        "pgquorum_raft_voters_unreachable",
        "Voters this node cannot reach while it has no quorum (0 otherwise).",
        loss.as_ref().map_or(0, |l| l.unreachable().count()),
    );
    out.text
}

/// The text being built, with the label set every metric carries.
struct Exposition {
    text: String,
    labels: String,
}

impl Exposition {
    fn new(scope: &str, name: &str) -> Exposition {
        let labels = format!(
            "{{scope=\"{}\",name=\"{}\"}}",
            escape_label(scope),
            escape_label(name)
        );
        Exposition {
            text: String::new(),
            labels,
        }
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.metric(name, help, "gauge", value);
    }

    fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.metric(name, help, "counter", value);
    }

    fn metric(&mut self, name: &str, help: &str, kind: &str, value: impl Display) {
        // Writing to a String cannot fail.
        let _ = write!(
            self.text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {value}\n",
            labels = self.labels
        );
    }

    fn postgres_state(&mut self, state: PgRunState) {
        let _ = write!(
            self.text,
            "# HELP patroni_postgres_state Numeric representation of Postgres state.\n\
             # Values: {POSTGRES_STATE_VALUES}\n\
             # TYPE patroni_postgres_state gauge\n\
             patroni_postgres_state{labels} {value}\n",
            labels = self.labels,
            value = postgres_state_value(state)
        );
    }
}

/// Label values escape backslash, double quote and newline in the text format.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_padded_like_patroni() {
        assert_eq!(padded_version("2.0.2"), "020002");
        assert_eq!(padded_version("4.0.0"), "040000");
        assert_eq!(padded_version("0.1.0-dev"), "000100");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
