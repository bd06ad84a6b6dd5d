//! `pgquorumctl`: the operator CLI. Talks gRPC to any agent.

pub mod client;
pub mod cluster_arg;
pub mod cluster_read;
mod config_cmd;
pub mod dsn;
mod get;
mod history;
pub mod list;
mod maintenance;
pub mod members;
pub mod operate;
mod raft_status;
mod remove_cluster;
pub mod stdout;
pub mod switchover;
pub mod table;
pub mod version;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::grpc::pb::admin::admin_client::AdminClient;
use crate::grpc::{process_channel, GrpcChannel};

pub use raft_status::{fetch_raft_status, MemberRow};

#[derive(Debug, Parser)]
#[command(name = "pgquorumctl", version, about = "Query and steer a pgquorum cluster")]
pub struct Cli {
    /// Agent configuration file; the agent at its `raft.self_addr` is asked. Without it (and
    /// without PGQUORUMCTL_CONFIG_FILE) PATRONICTL_CONFIG_FILE is read, for Patroni runbooks.
    #[arg(
        short = 'c',
        long = "config-file",
        global = true,
        env = "PGQUORUMCTL_CONFIG_FILE"
    )]
    pub config: Option<PathBuf>,
    /// Agent gRPC endpoint (HOST:PORT, the agent's `raft.self_addr`); overrides -c.
    #[arg(short = 'e', long, global = true, env = "PGQUORUMCTL_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Print JSON instead of a table (questions and progress lines then go to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// How to authenticate to the agents; without these flags taken from the `-c` file: its `ctl`
/// section's certfile/keyfile/cacert (else its `raft` section's certificate, key and CA),
/// its `raft.password` and its `scope`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecurityArgs {
    /// Client certificate (PEM) signed by the cluster CA, for agents that require mutual TLS.
    #[arg(long, global = true, value_name = "FILE", env = "PGQUORUMCTL_CERTFILE")]
    pub certfile: Option<PathBuf>,
    /// The private key (PEM) of --certfile.
    #[arg(long, global = true, value_name = "FILE", env = "PGQUORUMCTL_KEYFILE")]
    pub keyfile: Option<PathBuf>,
    /// The cluster CA (PEM) the agent's certificate must be signed by.
    #[arg(long, global = true, value_name = "FILE", env = "PGQUORUMCTL_CACERT")]
    pub cacert: Option<PathBuf>,
    /// The cluster's `raft.password`, for agents that run without TLS but with a shared secret.
    #[arg(long, global = true, env = "PGQUORUMCTL_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// The cluster name (`scope`) stamped on every call, so an agent of another cluster refuses.
    #[arg(long, global = true, env = "PGQUORUMCTL_SCOPE")]
    pub scope: Option<String>,
    /// Admin credentials USER:PASSWORD (the agents' `restapi.authentication`); else the `-c`
    /// file's `ctl.authentication`, else its `restapi.authentication`.
    #[arg(
        long,
        global = true,
        value_name = "USER:PASSWORD",
        env = "PGQUORUMCTL_AUTH",
        hide_env_values = true
    )]
    pub auth: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// The Raft group.
    Raft {
        #[command(subcommand)]
        command: RaftCommand,
    },
    /// The members: host, role, state, timeline, replication lag (like `patronictl list`).
    #[command(alias = "topology")]
    List {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Redraw every SECONDS seconds until interrupted.
        #[arg(long, short = 'W', value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
    },
    /// Reload the configuration of members' agents and PostgreSQL (all members by default).
    ///
    /// `[CLUSTER] [MEMBER...]`: a first name equal to the cluster's `scope` is the cluster
    /// name (patronictl's form); asks for confirmation on a terminal without --force.
    Reload(OperateCli),
    /// Restart PostgreSQL on members (all members by default); arguments as for `reload`.
    Restart(OperateCli),
    /// Show the dynamic (cluster-wide) configuration.
    ShowConfig {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
    },
    /// Change the dynamic configuration (compare-and-set); opens $EDITOR without --set/--pg.
    EditConfig {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// KEY=VALUE, KEY dotted (`ttl=20`, `postgresql.use_slots=false`); repeatable.
        #[arg(short = 's', long = "set")]
        set: Vec<String>,
        /// PostgreSQL PARAM=VALUE (`work_mem=8MB`); repeatable.
        #[arg(short = 'p', long = "pg")]
        pg: Vec<String>,
    },
    /// The timeline history.
    History {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
    },
    /// Hand the primary role to a replica in a planned way (like `patronictl switchover`).
    ///
    /// Checks the request like the REST API does, writes the `failover` key (refused while
    /// another request is pending), then follows the HA loop: prints a line whenever the state
    /// changes and, once the new primary holds the lease and runs as primary, the member table.
    /// Gives up after 60 s. Without --force it asks for what is missing and for confirmation
    /// (refusing when stdin is not a terminal).
    Switchover {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// The current primary (default: the lease holder); refused if it is not.
        #[arg(long, visible_alias = "primary")]
        leader: Option<String>,
        /// The member to promote (default: the most up-to-date eligible replica).
        #[arg(long)]
        candidate: Option<String>,
        /// When: RFC 3339 / ISO 8601 with an offset (`2030-01-31T22:00+01:00`, `...Z`), or
        /// `now` (default). A scheduled switchover is recorded and the command returns.
        #[arg(long, value_name = "TIME")]
        scheduled: Option<String>,
        /// No questions, no confirmation.
        #[arg(long)]
        force: bool,
    },
    /// Promote a named replica whatever the current primary's state (like `patronictl failover`).
    ///
    /// Works without a primary and in maintenance mode. Follows the takeover like
    /// `switchover` (60 s).
    Failover {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// The member to promote (asked for without --force).
        #[arg(long)]
        candidate: Option<String>,
        /// No questions, no confirmation.
        #[arg(long)]
        force: bool,
    },
    /// Cancel a pending request: `flush switchover` deletes the `failover` key (scheduled or
    /// not yet carried out), compare-and-set on the revision read.
    Flush {
        /// `[CLUSTER] switchover`: the cluster name (`scope`, optional, as patronictl takes
        /// it), then what to cancel (`switchover`).
        #[arg(value_name = "[CLUSTER] TARGET", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Maintenance mode on: the agents take no automatic action on PostgreSQL (no failover,
    /// no demotion); sets `pause: true` in the dynamic configuration (compare-and-set, as edit-config).
    Pause {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Also wait until every member's agent has run an HA cycle since the change (its
        /// member key was rewritten after the change was committed, so its loop read it).
        /// Agents that are down are not waited for once their member key expired (ttl).
        #[arg(long)]
        wait: bool,
    },
    /// Maintenance mode off: removes `pause` from the dynamic configuration. Refused while the
    /// keyspace cannot show that the primary is attended: a member's PostgreSQL runs without
    /// its agent (stopped while paused), nobody holds the leader lease, or the holder has no
    /// member record (docs/operations.md, src/ha/shutdown.rs).
    Resume {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// As for `pause`: wait until every member's agent has run a cycle since the change.
        #[arg(long)]
        wait: bool,
        /// Resume even so (a warning says why it would have been refused): only once no
        /// PostgreSQL runs as primary without its agent.
        #[arg(long)]
        force: bool,
    },
    /// Rebuild a replica from the primary: its agent stops PostgreSQL, removes the data
    /// directory and clones again. Waits (up to 30 min) until it runs as a replica again,
    /// printing each state it goes through. Refused on the primary.
    Reinit {
        /// `[CLUSTER] MEMBER`: the cluster name (`scope`, optional, as patronictl takes it),
        /// then the member to rebuild.
        #[arg(value_name = "[CLUSTER] MEMBER", num_args = 1..=2, required = true)]
        args: Vec<String>,
        /// No confirmation.
        #[arg(long)]
        force: bool,
    },
    /// The Raft group's voters and learners, reconciled with the members' records; adding,
    /// promoting and removing them (docs/membership.md).
    Members {
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// Delete every key of a decommissioned cluster (like `patronictl remove`): asks for the
    /// cluster name to be typed. Refused while a member holds the primary lease.
    Remove {
        /// The cluster name (`scope`); must be the asked agent's.
        #[arg(value_name = "SCOPE")]
        cluster: String,
        /// Do not ask for the cluster name (scripts).
        #[arg(long)]
        yes_i_am_sure: bool,
        /// Remove even while a member holds the primary lease.
        #[arg(long)]
        force: bool,
    },
    /// This tool's version; given the cluster, each member's pgquorum and PostgreSQL versions
    /// from its record (like `patronictl version`).
    ///
    /// `[CLUSTER [MEMBER...]]`: without CLUSTER no agent is asked.
    Version {
        #[arg(value_name = "CLUSTER [MEMBER...]")]
        names: Vec<String>,
    },
    /// A libpq connection string (`host=... port=...`) for the leader, a member with another
    /// role, or a named member (like `patronictl dsn`), from its published `connect_address`.
    Dsn {
        /// The cluster name (`scope`), as patronictl takes it; must be the asked agent's.
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// The first member with this role (default: the leader; `master` is the primary).
        #[arg(short = 'r', long, value_enum, conflicts_with = "member")]
        role: Option<operate::RoleFilter>,
        /// This member.
        #[arg(short = 'm', long)]
        member: Option<String>,
    },
    /// Read a keyspace key (`leader`, `members/node1`, `config`...) for debugging.
    Get {
        /// The key, or with --prefix a key prefix ("" or "members/").
        key: String,
        /// Read every key starting with KEY.
        #[arg(long)]
        prefix: bool,
        /// Answer from the asked agent's local copy, which may be stale, instead of a
        /// linearizable read through the Raft leader.
        #[arg(long)]
        stale: bool,
    },
}

/// `reload` and `restart`'s arguments (patronictl's).
#[derive(Debug, clap::Args)]
pub struct OperateCli {
    /// `[CLUSTER] [MEMBER...]`.
    #[arg(value_name = "CLUSTER|MEMBER")]
    pub names: Vec<String>,
    /// Only the members with this role (`master` is the primary, as in Patroni 3).
    #[arg(short = 'r', long, value_enum)]
    pub role: Option<operate::RoleFilter>,
    /// No confirmation.
    #[arg(long)]
    pub force: bool,
}

/// What `flush` cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushTarget {
    /// A pending switchover or manual failover (the `failover` key).
    Switchover,
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Raft voters and learners (address, matched log index, lag, reachable) and the members'
    /// records, with a note where they differ.
    List,
    /// Add a node to the Raft group as a learner (it receives the log, does not vote).
    Add {
        /// The member name its agent runs under.
        name: String,
        /// Its `raft.self_addr` (HOST:PORT).
        addr: String,
        /// Then wait for it to catch up (printing its lag) and make it a voter.
        #[arg(long)]
        voter: bool,
    },
    /// Make a caught-up learner a voter (one membership change at a time, joint consensus).
    Promote {
        /// Its member name or Raft address.
        name: String,
    },
    /// Remove a member from the Raft group and delete its `members/<name>` record. Refused
    /// for the primary's node and when the voters left would have no reachable majority.
    Remove {
        /// Its member name or Raft address.
        name: String,
        /// Remove even the primary's node, or without a reachable majority left.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// Members of the Raft group: role, term, log and commit index, lag.
    #[command(alias = "list")]
    Status,
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("no agent to talk to: give -c CONFIG_FILE or --endpoint HOST:PORT")]
    NoEndpoint,
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("invalid endpoint {0:?}: {1}")]
    BadEndpoint(String, String),
    #[error("agent at {endpoint}: {message}")]
    Rpc { endpoint: String, message: String },
    #[error(transparent)]
    Transport(#[from] crate::grpc::transport::TransportError),
    #[error("{explanation}\n(the keyspace read failed: {read_error})")]
    NoQuorum { read_error: String, explanation: String },
    #[error("{0}")]
    Other(String),
}

impl Cli {
    /// The `-c` file: the flag, else PGQUORUMCTL_CONFIG_FILE (both through clap), else
    /// patronictl's PATRONICTL_CONFIG_FILE so Patroni operators' environments keep working.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.config
            .clone()
            .or_else(|| std::env::var_os("PATRONICTL_CONFIG_FILE").map(PathBuf::from))
    }

    pub fn endpoint(&self) -> Result<String, CtlError> {
        if let Some(e) = &self.endpoint {
            return Ok(e.clone());
        }
        match &self.config_file() {
            Some(path) => Ok(Config::load(path)?.config.raft.self_addr),
            None => Err(CtlError::NoEndpoint),
        }
    }
}

impl Cli {
    /// The transport settings: flags first, then the `-c` file's `raft` section.
    pub fn transport(&self) -> Result<crate::grpc::Transport, CtlError> {
        use crate::grpc::transport::{TlsFiles, Transport};
        let file = match &self.config_file() {
            Some(path) => Some(Config::load(path)?.config),
            None => None,
        };
        let sec = &self.security;
        let scope = sec
            .scope
            .clone()
            .or_else(|| file.as_ref().map(|c| c.scope.clone()));
        let password = sec
            .password
            .clone()
            .or_else(|| file.as_ref().and_then(|c| c.raft.password.clone()));
        let flags = [&sec.certfile, &sec.keyfile, &sec.cacert];
        let (tls, keys) = match flags {
            [Some(c), Some(k), Some(a)] => (
                Some(TlsFiles {
                    certfile: c.clone(),
                    keyfile: k.clone(),
                    cafile: a.clone(),
                }),
                ["--certfile", "--keyfile", "--cacert"],
            ),
            // The file's `ctl` section, else the agent's own files from its `raft` section.
            [None, None, None] => match file.as_ref() {
                Some(c) => match (
                    (&c.ctl.certfile, &c.ctl.keyfile, &c.ctl.cacert),
                    (&c.raft.certfile, &c.raft.keyfile, &c.raft.cafile),
                ) {
                    ((Some(cert), Some(key), Some(ca)), _) => (
                        Some(TlsFiles {
                            certfile: cert.clone(),
                            keyfile: key.clone(),
                            cafile: ca.clone(),
                        }),
                        ["ctl.certfile", "ctl.keyfile", "ctl.cacert"],
                    ),
                    (_, (Some(cert), Some(key), Some(ca))) => (
                        Some(TlsFiles {
                            certfile: cert.clone(),
                            keyfile: key.clone(),
                            cafile: ca.clone(),
                        }),
                        ["raft.certfile", "raft.keyfile", "raft.cafile"],
                    ),
                    _ => (None, ["", "", ""]),
                },
                None => (None, ["", "", ""]),
            },
            _ => {
                return Err(CtlError::Other(
                    "give --certfile, --keyfile and --cacert together (mutual TLS needs all three)".into(),
                ))
            }
        };
        let transport = Transport::new(scope.as_deref(), tls.as_ref(), password.as_deref(), keys)?;
        let credentials = match &sec.auth {
            Some(text) => {
                let (user, pw) = text
                    .split_once(':')
                    .ok_or_else(|| CtlError::Other("--auth: expected USER:PASSWORD".into()))?;
                Some(crate::config::BasicAuth {
                    username: user.to_string(),
                    password: pw.to_string(),
                })
            }
            None => file.as_ref().and_then(|c| {
                c.ctl
                    .authentication
                    .clone()
                    .or_else(|| c.restapi.authentication.clone())
            }),
        };
        Ok(match credentials {
            Some(a) => transport.with_credentials(&a.username, &a.password),
            None => transport,
        })
    }
}

/// An admin client for `endpoint`.
pub fn connect(endpoint: &str) -> Result<AdminClient<GrpcChannel>, CtlError> {
    let channel = process_channel(endpoint, Duration::from_secs(2))
        .map_err(|e| CtlError::BadEndpoint(endpoint.to_string(), e.to_string()))?;
    Ok(AdminClient::new(channel))
}

pub fn rpc_error(endpoint: &str, status: tonic::Status) -> CtlError {
    use crate::grpc::transport::Refusal;
    let refused = Refusal::of(&status).is_some();
    let message = match status.code() {
        // Refused by the transport checks: the agent's own words name the reason.
        _ if refused => status.message().to_string(),
        // The call never reached the service: no connection, a TLS handshake refused, or a
        // plain-text client talking to a TLS port (which fails as an HTTP/2 protocol error).
        // tonic reports a connection that failed while the call was queued as Cancelled.
        tonic::Code::Cancelled => connect_failure(&status),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
            if std::error::Error::source(&status).is_some() =>
        {
            connect_failure(&status)
        }
        _ => status.message().to_string(),
    };
    CtlError::Rpc {
        endpoint: endpoint.to_string(),
        message,
    }
}

fn connect_failure(status: &tonic::Status) -> String {
    use crate::grpc::transport::{describe, process_uses_tls};
    {
        let hint = if process_uses_tls() {
            "is the agent running, and was its certificate signed by --cacert's CA \
                 (and ours by its raft.cafile)?"
        } else {
            "is the agent running? If it requires TLS, give --cacert, --certfile and \
                 --keyfile (or -c with a config that has raft.certfile/keyfile/cafile)"
        };
        format!("cannot connect ({}): {hint}", describe(status))
    }
}

/// The cluster name (`scope`) of the agent at `endpoint`.
pub async fn scope_of(endpoint: &str) -> Result<String, CtlError> {
    let mut client = connect(endpoint)?;
    let reply = client
        .node_status(crate::grpc::pb::admin::NodeStatusRequest {})
        .await
        .map_err(|s| rpc_error(endpoint, s))?;
    Ok(reply.into_inner().cluster)
}

/// Where to send an operator request for `member`, whose peer address (`raft.self_addr`) is
/// `address`: the endpoint asked when that member is the endpoint's own agent, so the request
/// reaches it through the listener the operator chose; otherwise the admin listener the member
/// publishes in `members/<name>` (`raft.admin_listen`: its peer port then refuses operators);
/// otherwise its peer address.
pub async fn operator_address(endpoint: &str, member: &str, address: &str) -> String {
    let own = match connect(endpoint) {
        Ok(mut client) => client
            .node_status(crate::grpc::pb::admin::NodeStatusRequest {})
            .await
            .map(|r| r.into_inner().addr)
            .ok(),
        Err(_) => None,
    };
    if own.as_deref() == Some(address) {
        return endpoint.to_string();
    }
    published_admin_address(endpoint, member)
        .await
        .unwrap_or_else(|| address.to_string())
}

/// The admin address `member` publishes, if its record (read through `endpoint`) has one.
async fn published_admin_address(endpoint: &str, member: &str) -> Option<String> {
    let key = crate::keyspace::Key::member(member).ok()?.to_string();
    let read = client::read(endpoint, &key, false, false).await.ok()?;
    let entry = read.entries.first()?;
    serde_json::from_value::<crate::cluster::MemberStatus>(entry.value.clone())
        .ok()?
        .admin_addr
}

/// Run one command; returns what to print on stdout.
pub async fn run(cli: &Cli) -> Result<String, CtlError> {
    // patronictl prints its own version without a cluster to ask.
    if let CtlCommand::Version { names } = &cli.command {
        if names.is_empty() {
            return Ok(version::render(None, cli.json));
        }
    }
    let endpoint = cli.endpoint()?;
    match &cli.command {
        CtlCommand::Raft {
            command: RaftCommand::Status,
        } => raft_status::run(&endpoint, cli.json).await,
        CtlCommand::Members { command } => match command {
            MembersCommand::List => members::list(&endpoint, cli.json).await,
            MembersCommand::Add { name, addr, voter } => {
                members::add(&endpoint, name, addr, *voter, cli.json).await
            }
            MembersCommand::Promote { name } => members::promote(&endpoint, name, cli.json).await,
            MembersCommand::Remove { name, force } => {
                members::remove(&endpoint, name, *force, cli.json).await
            }
        },
        CtlCommand::Remove {
            cluster,
            yes_i_am_sure,
            force,
        } => remove_cluster::run(&endpoint, cluster, *yes_i_am_sure, *force, cli.json).await,
        CtlCommand::Version { names } => version::run(&endpoint, names, cli.json).await,
        CtlCommand::Dsn {
            cluster,
            role,
            member,
        } => {
            check_cluster_of(&endpoint, cluster.as_deref()).await?;
            let target = match member {
                Some(name) => dsn::Target::Member(name.clone()),
                None => dsn::Target::Role(role.unwrap_or(operate::RoleFilter::Leader)),
            };
            dsn::run(&endpoint, &target, cli.json).await
        }
        CtlCommand::Get { key, prefix, stale } => get::run(&endpoint, key, *prefix, !*stale, cli.json).await,
        CtlCommand::List { cluster, watch } => {
            let scope = scope_of(&endpoint).await?;
            check_cluster(cluster.as_deref(), &scope)?;
            list::run(&endpoint, Some(&scope), cli.json, *watch).await
        }
        CtlCommand::Reload(a) => operate::run(&endpoint, "reload", &a.operate_args(cli.json)).await,
        CtlCommand::Restart(a) => operate::run(&endpoint, "restart", &a.operate_args(cli.json)).await,
        CtlCommand::ShowConfig { cluster } => {
            check_cluster_of(&endpoint, cluster.as_deref()).await?;
            config_cmd::show(&endpoint, cli.json).await
        }
        CtlCommand::EditConfig { cluster, set, pg } => {
            check_cluster_of(&endpoint, cluster.as_deref()).await?;
            config_cmd::edit(&endpoint, set, pg).await
        }
        CtlCommand::History { cluster } => {
            check_cluster_of(&endpoint, cluster.as_deref()).await?;
            history::run(&endpoint, cli.json).await
        }
        CtlCommand::Switchover {
            cluster,
            leader,
            candidate,
            scheduled,
            force,
        } => {
            let scope = scope_of(&endpoint).await?;
            check_cluster(cluster.as_deref(), &scope)?;
            let args = switchover::SwitchoverArgs {
                leader: leader.clone(),
                candidate: candidate.clone(),
                scheduled: scheduled.clone(),
                force: *force,
                json: cli.json,
            };
            switchover::switchover(&endpoint, &scope, &args).await
        }
        CtlCommand::Failover {
            cluster,
            candidate,
            force,
        } => {
            let scope = scope_of(&endpoint).await?;
            check_cluster(cluster.as_deref(), &scope)?;
            switchover::failover(&endpoint, &scope, candidate.as_deref(), *force, cli.json).await
        }
        CtlCommand::Flush { args } => {
            let (cluster, target) = args.split_at(args.len() - 1);
            check_cluster_of(&endpoint, cluster.first().map(String::as_str)).await?;
            match FlushTarget::from_str(&target[0], false).map_err(CtlError::Other)? {
                FlushTarget::Switchover => switchover::flush_switchover(&endpoint, cli.json).await,
            }
        }
        CtlCommand::Pause { cluster, wait } => {
            check_cluster_of(&endpoint, cluster.as_deref()).await?;
            maintenance::set_pause(&endpoint, true, *wait, false, cli.json).await
        }
        CtlCommand::Resume { cluster, wait, force } => {
            check_cluster_of(&endpoint, cluster.as_deref()).await?;
            maintenance::set_pause(&endpoint, false, *wait, *force, cli.json).await
        }
        CtlCommand::Reinit { args, force } => {
            let scope = scope_of(&endpoint).await?;
            let (cluster, member) = args.split_at(args.len() - 1);
            check_cluster(cluster.first().map(String::as_str), &scope)?;
            maintenance::reinit(&endpoint, &scope, &member[0], *force, cli.json).await
        }
    }
}

/// Refuse a CLUSTER positional that is not `scope` (the asked agent's cluster).
fn check_cluster(cluster: Option<&str>, scope: &str) -> Result<(), CtlError> {
    let given: Vec<String> = cluster.map(str::to_string).into_iter().collect();
    cluster_arg::no_members(&given, scope).map_err(|e| CtlError::Other(e.to_string()))
}

/// [`check_cluster`] against the agent at `endpoint`, asked for its scope only when a CLUSTER
/// was given.
async fn check_cluster_of(endpoint: &str, cluster: Option<&str>) -> Result<(), CtlError> {
    match cluster {
        Some(_) => check_cluster(cluster, &scope_of(endpoint).await?),
        None => Ok(()),
    }
}

impl OperateCli {
    fn operate_args(&self, json: bool) -> operate::OperateArgs<'_> {
        operate::OperateArgs {
            positionals: &self.names,
            role: self.role,
            force: self.force,
            json,
        }
    }
}
