//! The HA loop: every `loop_wait` (and at once when the keyspace's leader, config or
//! initialize keys change, when an operator asks, or when a background job ends) it
//! observes PostgreSQL, publishes this member, reads the cluster linearizably, decides, and
//! carries the decision out. One INFO line per cycle says what was decided and why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::decide::{decide, Action, DataDir, Inputs, Job, LeaseClock, LocalPg};
use super::params::{desired_config, upstream_of};
use super::pg_ops::{Applied, PgObservation, PgOps};
use super::publish::{member_status, Observed};
use super::snapshot::{NodeSnapshot, OperatorRequest};
use crate::cluster::{ClusterView, PgRole, PgRunState};
use crate::config::{Config, DynamicConfig};
use crate::keyspace::{Command, CommandOutcome, Key, Precondition};
use crate::node::{RaftNode, ReadQuery};

/// Member keys live at least this long: with the short default lease, a member busy with a
/// long action (a restart, a rewind) must not vanish from `list` between two of its loops.
const MEMBER_KEY_MIN_TTL_MS: u64 = 10_000;

enum JobResult {
    Bootstrapped { system_identifier: String },
    Cloned,
}

struct RunningJob {
    kind: Job,
    handle: JoinHandle<Result<JobResult, String>>,
    /// For a bootstrap: the revision of our `initialize` claim.
    claim_revision: Option<u64>,
}

pub struct HaLoop<P: PgOps> {
    node: Arc<RaftNode>,
    config: Config,
    config_path: Option<PathBuf>,
    pg: Arc<P>,
    lease: LeaseClock,
    job: Option<RunningJob>,
    job_done: Arc<Notify>,
    following: Option<String>,
    state_override: Option<PgRunState>,
    snapshot: watch::Sender<Arc<NodeSnapshot>>,
    requests: mpsc::Receiver<OperatorRequest>,
    clock0: Instant,
    /// Revisions of leader/initialize/config/failover seen by the last cycle.
    seen_revisions: Vec<u64>,
    last_reason: String,
    dynamic: DynamicConfig,
    postmaster_start_time: Option<String>,
    last_observe_error: Option<String>,
    /// The lease deadline as the lease watchdog sees it (see `lease_watchdog`).
    deadline_tx: watch::Sender<Option<u64>>,
}

impl<P: PgOps> HaLoop<P> {
    pub fn new(
        node: Arc<RaftNode>,
        config: Config,
        config_path: Option<PathBuf>,
        pg: Arc<P>,
        snapshot: watch::Sender<Arc<NodeSnapshot>>,
        requests: mpsc::Receiver<OperatorRequest>,
    ) -> HaLoop<P> {
        let dynamic = config.bootstrap.dcs.clone();
        HaLoop {
            node,
            config,
            config_path,
            pg,
            lease: LeaseClock::default(),
            job: None,
            job_done: Arc::new(Notify::new()),
            following: None,
            state_override: None,
            snapshot,
            requests,
            clock0: Instant::now(),
            seen_revisions: Vec::new(),
            last_reason: String::new(),
            dynamic,
            postmaster_start_time: None,
            last_observe_error: None,
            deadline_tx: watch::channel(None).0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock0.elapsed().as_millis() as u64
    }

    fn demote_margin_ms(&self) -> u64 {
        // Enough to stop PostgreSQL before the deadline even if the loop wakes a bit late.
        1_500
    }

    /// Run until `shutdown` fires.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let watchdog = tokio::spawn(lease_watchdog(
            self.pg.clone(),
            self.clock0,
            self.deadline_tx.subscribe(),
        ));
        let mut applied = self.node.subscribe_applied();
        loop {
            self.cycle().await;
            let wait = self.next_wait();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.job_done.notified() => {}
                Some(req) = self.requests.recv() => self.handle_request(req).await,
                _ = Self::relevant_change(&self.node, &mut applied, &self.seen_revisions) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
        if let Some(job) = self.job.take() {
            job.handle.abort();
        }
        self.stop_postgres_on_shutdown().await;
        watchdog.abort();
    }

    fn set_lease_deadline(&mut self, deadline_ms: Option<u64>) {
        self.lease.deadline_ms = deadline_ms;
        self.deadline_tx.send_replace(deadline_ms);
    }

    /// On agent shutdown PostgreSQL stops too (as with Patroni), and a primary gives its
    /// lease back so a replica can take over at once instead of after `ttl`.
    async fn stop_postgres_on_shutdown(&mut self) {
        if !self.pg.postmaster_running() {
            return;
        }
        tracing::info!("agent shutting down: stopping PostgreSQL");
        if let Err(e) = self.pg.stop().await {
            tracing::error!("stopping PostgreSQL failed: {e}");
            return;
        }
        // Tell the others at once rather than leaving a "running" record until it expires.
        let data = self.pg.data_dir();
        let stopped = member_status(
            &self.config,
            &Observed {
                data: &data,
                running: false,
                observation: None,
                job: None,
                following: self.following.as_deref(),
                state_override: Some(PgRunState::Stopped),
            },
        );
        self.publish_member(&stopped).await;
        if self.lease.deadline_ms.is_some() {
            self.set_lease_deadline(None);
            let cmd = Command::ReleaseLease {
                key: Key::Leader,
                holder: self.config.name.clone(),
            };
            match self.write(cmd).await {
                Ok(_) => tracing::info!("released the leader lease"),
                Err(e) => tracing::warn!("could not release the leader lease: {e}"),
            }
        }
    }

    fn next_wait(&self) -> Duration {
        let tick = Duration::from_millis(self.dynamic.loop_wait_ms());
        match self.lease.deadline_ms {
            // Wake in time to renew or demote before the lease deadline.
            Some(deadline) => {
                let until = deadline.saturating_sub(self.now_ms() + self.demote_margin_ms());
                tick.min(Duration::from_millis(until.max(50)))
            }
            None => tick,
        }
    }

    /// Completes when a key the decision depends on changes (not on every member update).
    async fn relevant_change(node: &RaftNode, applied: &mut watch::Receiver<u64>, seen: &[u64]) {
        loop {
            if applied.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            if watched_revisions(node) != seen {
                return;
            }
        }
    }

    async fn cycle(&mut self) {
        self.reap_job().await;
        let data = self.pg.data_dir();
        let running = self.pg.postmaster_running();
        let observation = if running && self.job.is_none() {
            self.observe().await
        } else {
            None
        };
        if !running
            && self.state_override.is_none()
            && self.job.is_none()
            && matches!(data, DataDir::Initialized { .. })
            && self.postmaster_start_time.is_some()
        {
            self.state_override = Some(PgRunState::Crashed);
        }
        let me = member_status(
            &self.config,
            &Observed {
                data: &data,
                running,
                observation: observation.as_ref(),
                job: self.job.as_ref().map(|j| j.kind),
                following: self.following.as_deref(),
                state_override: self.state_override,
            },
        );
        self.publish_member(&me).await;

        let cluster = self.read_cluster().await;
        if let Some(c) = &cluster {
            self.dynamic = if c.config_revision.is_some() {
                c.config.clone()
            } else {
                self.config.bootstrap.dcs.clone()
            };
        }

        let local = LocalPg {
            data: data.clone(),
            running,
            role: observation.as_ref().and_then(|o| o.role),
            following: self.following.clone(),
            job: self.job.as_ref().map(|j| j.kind),
        };
        let decision = decide(&Inputs {
            me: &self.config.name,
            tags: &self.config.tags,
            cluster: cluster.as_ref(),
            pg: &local,
            lease: self.lease,
            now_ms: self.now_ms(),
            demote_margin_ms: self.demote_margin_ms(),
        });
        tracing::info!("{}", decision.reason);
        self.last_reason = decision.reason.clone();

        let mut outcome = Ok(());
        for action in &decision.actions {
            outcome = self.execute(action, cluster.as_ref()).await;
            if let Err(e) = &outcome {
                tracing::warn!(?action, "{e}");
                break;
            }
        }
        // In steady state (nothing but lease upkeep to do), bring the config files in line
        // with the dynamic configuration: edits reach every node within one loop.
        let steady = decision.actions.iter().all(|a| {
            matches!(
                a,
                Action::AcquireLease | Action::PublishStatus | Action::SyncSlots
            )
        });
        if outcome.is_ok() && steady && running && self.job.is_none() {
            self.apply_dynamic_config(observation.as_ref().and_then(|o| o.role))
                .await;
        }
        self.publish_snapshot(me, cluster, observation).await;
        // Taken last, so that our own writes of this cycle do not wake us again.
        self.seen_revisions = watched_revisions(&self.node);
    }

    /// Query the running server; a failure is logged (once per distinct message) and the
    /// member is then published as starting rather than as running.
    async fn observe(&mut self) -> Option<PgObservation> {
        match self.pg.observe().await {
            Ok(o) => {
                self.last_observe_error = None;
                Some(o)
            }
            Err(e) => {
                if self.last_observe_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!("cannot query the local PostgreSQL: {e}");
                    self.last_observe_error = Some(e);
                }
                None
            }
        }
    }

    async fn read_cluster(&self) -> Option<ClusterView> {
        let query = ReadQuery {
            key: String::new(),
            prefix: true,
            linearizable: true,
        };
        match self.node.read(&query, false).await {
            Ok(read) => match ClusterView::from_entries(&read.entries, read.as_of_ms) {
                Ok(view) => Some(view),
                Err(e) => {
                    tracing::error!("the keyspace holds a value this agent cannot read: {e}");
                    None
                }
            },
            Err(e) => {
                tracing::warn!("keyspace read failed: {e}");
                None
            }
        }
    }

    async fn publish_member(&self, me: &crate::cluster::MemberStatus) {
        let Ok(key) = Key::member(&self.config.name) else {
            return;
        };
        let value = serde_json::to_value(me).unwrap_or_default();
        let ttl_ms = Some(self.dynamic.ttl_ms().max(MEMBER_KEY_MIN_TTL_MS));
        let cmd = Command::Put {
            key,
            value,
            ttl_ms,
            precondition: Precondition::Any,
        };
        if let Err(e) = self.node.write(cmd, false).await {
            tracing::debug!("publishing the member key failed: {e}");
        }
    }

    async fn write(&self, command: Command) -> Result<CommandOutcome, String> {
        self.node
            .write(command, false)
            .await
            .map(|r| r.outcome)
            .map_err(|e| e.to_string())
    }

    /// Carry one action out. An error stops the rest of this cycle's actions.
    async fn execute(&mut self, action: &Action, cluster: Option<&ClusterView>) -> Result<(), String> {
        match action {
            Action::ClaimInitialize => {
                let cmd = Command::Put {
                    key: Key::Initialize,
                    value: serde_json::json!(""),
                    ttl_ms: None,
                    precondition: Precondition::Absent,
                };
                match self.write(cmd).await? {
                    CommandOutcome::Applied { revision } => {
                        tracing::info!("won the bootstrap race: initializing a new cluster");
                        self.start_bootstrap(revision);
                        Ok(())
                    }
                    CommandOutcome::Rejected { .. } => {
                        Err("another member claimed the bootstrap first".into())
                    }
                }
            }
            Action::Bootstrap => Ok(()), // started by ClaimInitialize, which holds the claim revision
            Action::Clone { source } => {
                let upstream = cluster.and_then(|c| upstream_of(c, source)).ok_or_else(|| {
                    format!("primary {source} publishes no PostgreSQL address to clone from")
                })?;
                tracing::info!(source = %source, "creating a replica with pg_basebackup from {}:{}", upstream.host, upstream.port);
                let pg = self.pg.clone();
                let done = self.job_done.clone();
                let handle = tokio::spawn(async move {
                    let r = pg.clone_replica(&upstream).await.map(|_| JobResult::Cloned);
                    done.notify_one();
                    r
                });
                self.job = Some(RunningJob {
                    kind: Job::Clone,
                    handle,
                    claim_revision: None,
                });
                Ok(())
            }
            Action::AcquireLease => self.acquire_lease().await,
            Action::ReleaseLease => {
                self.set_lease_deadline(None);
                let cmd = Command::ReleaseLease {
                    key: Key::Leader,
                    holder: self.config.name.clone(),
                };
                self.write(cmd).await.map(|_| ())
            }
            Action::StartPrimary => {
                self.configure(None).await?;
                self.start().await
            }
            Action::StartReplica { leader } => self.start_replica_of(leader.as_deref(), cluster).await,
            Action::Promote => {
                self.pg.promote().await?;
                self.following = None;
                tracing::info!("promoted: PostgreSQL now accepts writes");
                Ok(())
            }
            Action::Demote { leader } => {
                self.state_override = Some(PgRunState::Stopping);
                self.pg.stop().await?;
                self.state_override = None;
                self.set_lease_deadline(None);
                tracing::info!("demoted: PostgreSQL stopped accepting writes");
                self.start_replica_of(leader.as_deref(), cluster).await
            }
            Action::Follow { leader } => {
                let upstream = cluster.and_then(|c| upstream_of(c, leader));
                if upstream.is_none() {
                    return Err(format!("primary {leader} publishes no PostgreSQL address yet"));
                }
                let applied = self.configure(Some(upstream)).await?;
                self.following = Some(leader.clone());
                if applied.restart_needed {
                    self.pg.restart().await
                } else {
                    self.pg.reload().await
                }
            }
            Action::SyncSlots => {
                if !self.dynamic.postgresql.use_slots {
                    return Ok(());
                }
                let names: Vec<String> = cluster
                    .map(|c| {
                        c.members
                            .iter()
                            .filter(|m| m.name != self.config.name)
                            .map(|m| slot_name_for(&m.name))
                            .collect()
                    })
                    .unwrap_or_default();
                self.pg.sync_slots(&names).await
            }
            Action::PublishStatus => Ok(()), // written with the snapshot (needs the observation)
            Action::Refuse => Ok(()),
        }
    }

    /// Configure as a standby of `leader` (or of nobody: read-only) and start.
    async fn start_replica_of(
        &mut self,
        leader: Option<&str>,
        cluster: Option<&ClusterView>,
    ) -> Result<(), String> {
        let upstream = leader.and_then(|l| cluster.and_then(|c| upstream_of(c, l)));
        self.configure(Some(upstream)).await?;
        self.following = leader.map(str::to_string);
        self.start().await
    }

    async fn acquire_lease(&mut self) -> Result<(), String> {
        let sent_at = self.now_ms();
        let ttl_ms = self.dynamic.ttl_ms();
        let cmd = Command::AcquireLease {
            key: Key::Leader,
            holder: self.config.name.clone(),
            value: serde_json::json!({ "holder": self.config.name }),
            ttl_ms,
        };
        match self.write(cmd).await? {
            CommandOutcome::Applied { .. } => {
                // Valid from when we sent it, not from when it committed: the keyspace may
                // have stamped it earlier than our reply arrived.
                self.set_lease_deadline(Some((sent_at + ttl_ms).saturating_sub(self.config.raft.max_clock_skew_ms)));
                Ok(())
            }
            CommandOutcome::Rejected { reason, .. } => {
                self.set_lease_deadline(None);
                Err(format!("could not take the lease: {reason}"))
            }
        }
    }

    /// Write the config files for a primary (`standby` None) or a standby. Returns whether
    /// PostgreSQL must restart to apply them.
    async fn configure(&self, standby: Option<Option<super::pg_ops::Upstream>>) -> Result<Applied, String> {
        let desired = desired_config(&self.config, &self.dynamic, standby);
        self.pg.configure(&desired).await
    }

    async fn start(&mut self) -> Result<(), String> {
        self.state_override = Some(PgRunState::Starting);
        let r = self.pg.start().await;
        self.state_override = if r.is_ok() {
            None
        } else {
            Some(PgRunState::StartFailed)
        };
        if r.is_ok() {
            self.postmaster_start_time = Some(crate::timefmt::rfc3339_now());
        }
        r
    }

    /// Dynamic configuration edits reach a running server within one loop: rewrite the
    /// files and reload; parameters that need a restart show up as `pending_restart`.
    async fn apply_dynamic_config(&self, role: Option<PgRole>) {
        let standby = match role {
            Some(PgRole::Primary) => None,
            _ => {
                let upstream = self.following.as_deref().and_then(|l| {
                    let view = self.node.read_local(&ReadQuery {
                        key: String::new(),
                        prefix: true,
                        linearizable: false,
                    });
                    ClusterView::from_entries(&view.entries, view.as_of_ms)
                        .ok()
                        .and_then(|c| upstream_of(&c, l))
                });
                Some(upstream)
            }
        };
        let desired = desired_config(&self.config, &self.dynamic, standby);
        match self.pg.configure(&desired).await {
            Ok(applied) if applied.changed => {
                tracing::info!("PostgreSQL configuration changed: reloading");
                if let Err(e) = self.pg.reload().await {
                    tracing::warn!("reload failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("applying the configuration failed: {e}"),
        }
    }

    fn start_bootstrap(&mut self, claim_revision: u64) {
        let desired = desired_config(&self.config, &self.config.bootstrap.dcs, None);
        let pg = self.pg.clone();
        let done = self.job_done.clone();
        let handle = tokio::spawn(async move {
            let r = pg
                .bootstrap(&desired)
                .await
                .map(|system_identifier| JobResult::Bootstrapped { system_identifier });
            done.notify_one();
            r
        });
        self.job = Some(RunningJob {
            kind: Job::Bootstrap,
            handle,
            claim_revision: Some(claim_revision),
        });
    }

    /// Finish what a background job left to the loop: the keyspace writes after a bootstrap,
    /// or giving the bootstrap claim back after a failure.
    async fn reap_job(&mut self) {
        let finished = self.job.as_ref().is_some_and(|j| j.handle.is_finished());
        if !finished {
            return;
        }
        let job = self.job.take().expect("checked above");
        let result = match job.handle.await {
            Ok(r) => r,
            Err(e) => Err(format!("the job panicked: {e}")),
        };
        match (job.kind, result) {
            (Job::Bootstrap, Ok(JobResult::Bootstrapped { system_identifier })) => {
                self.postmaster_start_time = Some(crate::timefmt::rfc3339_now());
                if let Err(e) = self
                    .finish_bootstrap(&system_identifier, job.claim_revision)
                    .await
                {
                    tracing::error!("bootstrap: {e}");
                }
            }
            (Job::Clone, Ok(_)) => tracing::info!("replica created; starting it"),
            (Job::Bootstrap, Err(e)) => {
                tracing::error!("bootstrap failed: {e}; giving the bootstrap claim back");
                if let Some(rev) = job.claim_revision {
                    let cmd = Command::Delete {
                        key: Key::Initialize,
                        precondition: Precondition::Revision(rev),
                    };
                    if let Err(e) = self.write(cmd).await {
                        tracing::error!("could not give the bootstrap claim back: {e}");
                    }
                }
            }
            (Job::Clone, Err(e)) => tracing::error!("creating the replica failed: {e}"),
            (_, Ok(_)) => {}
        }
    }

    async fn finish_bootstrap(&mut self, system_identifier: &str, claim: Option<u64>) -> Result<(), String> {
        self.acquire_lease().await?;
        let precondition = claim.map_or(Precondition::Absent, Precondition::Revision);
        let cmd = Command::Put {
            key: Key::Initialize,
            value: serde_json::json!(system_identifier),
            ttl_ms: None,
            precondition,
        };
        if !self.write(cmd).await?.is_applied() {
            return Err("the initialize key changed under us".into());
        }
        let config = self.config.bootstrap.dcs.to_json();
        let cmd = Command::Put {
            key: Key::Config,
            value: config,
            ttl_ms: None,
            precondition: Precondition::Absent,
        };
        self.write(cmd).await?;
        tracing::info!(system_identifier, "bootstrap complete: I am the primary");
        Ok(())
    }

    async fn handle_request(&mut self, request: OperatorRequest) {
        match request {
            OperatorRequest::Reload { reply } => {
                let r = self.reload_config().await;
                let _ = reply.send(r);
            }
            OperatorRequest::Restart { reply } if self.job.is_some() => {
                let _ = reply.send(Err(
                    "a bootstrap or replica creation is in progress; restart refused".into(),
                ));
            }
            OperatorRequest::Restart { reply } => {
                self.state_override = Some(PgRunState::Restarting);
                let r = self
                    .pg
                    .restart()
                    .await
                    .map(|_| "restarted successfully".to_string());
                self.state_override = None;
                if r.is_ok() {
                    self.postmaster_start_time = Some(crate::timefmt::rfc3339_now());
                }
                let _ = reply.send(r);
            }
            OperatorRequest::Reinit { reply } => {
                let _ = reply.send(Err("reinit is not available yet".into()));
            }
            OperatorRequest::KeyspaceWrite { command, reply } => {
                let _ = reply.send(self.write(command).await);
            }
        }
    }

    async fn reload_config(&mut self) -> Result<String, String> {
        if let Some(path) = &self.config_path {
            let loaded = Config::load(path).map_err(|e| e.to_string())?;
            self.config = loaded.config;
        }
        if self.pg.postmaster_running() {
            self.pg.reload().await?;
        }
        Ok("reload scheduled".to_string())
    }

    async fn publish_snapshot(
        &mut self,
        me: crate::cluster::MemberStatus,
        cluster: Option<ClusterView>,
        observation: Option<PgObservation>,
    ) {
        let holds_lease = cluster.as_ref().and_then(|c| c.leader_name()) == Some(self.config.name.as_str())
            && self.lease.deadline_ms.is_some_and(|d| d > self.now_ms());
        if holds_lease {
            if let Some(lsn) = observation.as_ref().and_then(|o| o.wal_lsn) {
                let cmd = Command::Put {
                    key: Key::Status,
                    value: serde_json::json!({ "optime": lsn }),
                    ttl_ms: None,
                    precondition: Precondition::Any,
                };
                let _ = self.write(cmd).await;
            }
        }
        let snapshot = NodeSnapshot {
            scope: self.config.scope.clone(),
            name: self.config.name.clone(),
            me,
            keyspace_reachable: cluster.is_some(),
            paused: cluster.as_ref().is_some_and(|c| c.paused()),
            cluster,
            holds_lease,
            last_cycle: Instant::now(),
            last_decision: self.last_reason.clone(),
            postmaster_start_time: self.postmaster_start_time.clone(),
            replication: observation.map(|o| o.replication).unwrap_or_default(),
            loop_wait_secs: self.dynamic.loop_wait,
            ttl_secs: self.dynamic.ttl,
        };
        self.snapshot.send_replace(Arc::new(snapshot));
    }
}

/// How long before the lease deadline the watchdog stops PostgreSQL at the latest.
const WATCHDOG_MARGIN_MS: u64 = 500;

/// The backstop for the lease rule, independent of the loop: the loop normally renews or
/// demotes well before the deadline, but one cycle can be slow (a keyspace request waiting
/// out an election, a PostgreSQL query timing out). When the deadline comes within
/// `WATCHDOG_MARGIN_MS` without a renewal, this task stops PostgreSQL itself (fast shutdown:
/// open sessions end at once). The loop then sees it stopped and starts it again only after
/// renewing the lease.
async fn lease_watchdog<P: PgOps>(pg: Arc<P>, clock0: Instant, mut deadline: watch::Receiver<Option<u64>>) {
    loop {
        let current = *deadline.borrow_and_update();
        let Some(d) = current else {
            if deadline.changed().await.is_err() {
                return;
            }
            continue;
        };
        let fire_at = clock0 + Duration::from_millis(d.saturating_sub(WATCHDOG_MARGIN_MS));
        tokio::select! {
            changed = deadline.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(fire_at.into()) => {
                if *deadline.borrow() == current && pg.postmaster_running() {
                    tracing::error!("the leader lease was not renewed before its deadline: stopping PostgreSQL now");
                    if let Err(e) = pg.stop().await {
                        tracing::error!("stopping PostgreSQL at the lease deadline failed: {e}");
                    }
                }
                // Fire once per deadline: wait for the next renewal (or release).
                if deadline.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Revisions of the keys whose change should wake the loop at once. For `leader` only a new
/// lease counts (its creation revision), not every renewal.
fn watched_revisions(node: &RaftNode) -> Vec<u64> {
    ["leader", "initialize", "config", "failover"]
        .iter()
        .map(|k| {
            let read = node.read_local(&ReadQuery {
                key: (*k).to_string(),
                prefix: false,
                linearizable: false,
            });
            read.entries.first().map_or(0, |e| {
                if *k == "leader" {
                    e.created_revision
                } else {
                    e.revision
                }
            })
        })
        .collect()
}

/// Patroni's slot naming: lower case, anything but `[a-z0-9_]` becomes `_`.
pub fn slot_name_for(member: &str) -> String {
    member
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
