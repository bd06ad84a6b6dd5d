//! The HA loop: every `loop_wait` (and at once when the keyspace's leader, config or
//! initialize keys change, when an operator asks, or when a background job ends) it
//! observes PostgreSQL, publishes this member, reads the cluster linearizably, decides, and
//! carries the decision out. One INFO line per cycle says what was decided and why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::action_error::{ActionError, Cause, Operation as Op};
use super::bootstrap_claim;
use super::callbacks::{role, CallbackEvent, CallbackRunner};
use super::claim_fence;
use super::decide::{Action, DataDir, Job, WalPosition};
use super::engine::{self, EngineMemory, Event, JobOutcome, LocalObservation, Observation};
use super::hand_over;
use super::jobs::{rejoin, JobResult};
use super::keep_lease::{self, Keep};
use super::lease_watchdog::watch_deadline;
use super::params::{desired_config, upstream_of};
use super::pg_ops::{Applied, PgObservation, PgOps, PgResult};
use super::position::position_of;
use super::publish::{member_status, Observed};
use super::replay_wait::{self, Step};
use super::retry::wake_in;
use super::shutdown::{self, ShutdownAction, ShutdownFacts};
use super::snapshot::{NodeSnapshot, OperatorRequest};
use super::store::{self, ClusterStore};
use crate::cluster::{ClusterView, PgRole, PgRunState};
use crate::config::{Config, DynamicConfig};
use crate::fence::FenceFeed;
use crate::keyspace::{Command, CommandOutcome, Key, Precondition};
use crate::node::{KeyspaceError, RaftNode};
use futures::future::OptionFuture;

/// Member keys live at least this long: with the short default lease, a member busy with a
/// long action (a restart, a rewind) must not vanish from `list` between two of its loops.
const MEMBER_KEY_MIN_TTL_MS: u64 = 10_000;

struct RunningJob {
    kind: Job,
    handle: JoinHandle<Result<JobResult, String>>,
}

/// The loop over PostgreSQL `P` and the keyspace `S` (the Raft node; an in-memory
/// keyspace in tests, see src/ha/store.rs).
pub struct HaLoop<P: PgOps, S: ClusterStore = RaftNode> {
    node: Arc<S>,
    config: Config,
    config_path: Option<PathBuf>,
    pg: Arc<P>,
    /// Everything the loop remembers between cycles (src/ha/engine.rs).
    mem: EngineMemory,
    job: Option<RunningJob>,
    job_done: Arc<Notify>,
    snapshot: watch::Sender<Arc<NodeSnapshot>>,
    requests: mpsc::Receiver<OperatorRequest>,
    /// The loop's clock (tokio's, so a test can pause and advance it): `now_ms` counts from here.
    clock0: tokio::time::Instant,
    /// Revisions of leader/initialize/config/failover seen by the last cycle.
    seen_revisions: Vec<u64>,
    last_reason: String,
    dynamic: DynamicConfig,
    last_observe_error: Option<String>,
    /// The lease deadline as the lease watchdog sees it (see `lease_watchdog`).
    deadline_tx: watch::Sender<Option<u64>>,
    /// Woken when the postmaster exits (see `postmaster_watch`).
    postmaster_exit: Arc<Notify>,
    /// The last cluster view read, and when (for timed wake-ups).
    last_view: Option<ClusterView>,
    last_view_at: Option<tokio::time::Instant>,
    /// When the decision was last logged at INFO.
    last_logged: Option<tokio::time::Instant>,
    /// PostgreSQL's role as this cycle observed it.
    last_role: Option<PgRole>,
    /// The fence guard beside PostgreSQL (src/fence.rs), told every lease deadline.
    fence: Option<crate::fence::FenceGuard>,
    /// `postgresql.callbacks`, run without waiting on starts, stops and role changes.
    callbacks: CallbackRunner,
    /// The watchdog device, armed while this node holds the lease (`watchdog` section).
    watchdog: Option<crate::watchdog::Watchdog>,
    /// `mode: required` and arming or a keepalive failed (reported by `GET /patroni`).
    watchdog_failed: bool,
}

impl<P: PgOps, S: ClusterStore> HaLoop<P, S> {
    pub fn new(
        node: Arc<S>,
        config: Config,
        config_path: Option<PathBuf>,
        pg: Arc<P>,
        snapshot: watch::Sender<Arc<NodeSnapshot>>,
        requests: mpsc::Receiver<OperatorRequest>,
    ) -> HaLoop<P, S> {
        let dynamic = config.bootstrap.dcs.clone();
        let callbacks = CallbackRunner::new(&config.postgresql.callbacks, &config.scope);
        HaLoop {
            node,
            config,
            config_path,
            pg,
            mem: EngineMemory::default(),
            job: None,
            job_done: Arc::new(Notify::new()),
            snapshot,
            requests,
            clock0: tokio::time::Instant::now(),
            seen_revisions: Vec::new(),
            last_reason: String::new(),
            dynamic,
            last_observe_error: None,
            deadline_tx: watch::channel(None).0,
            postmaster_exit: Arc::new(Notify::new()),
            last_view: None,
            last_view_at: None,
            last_logged: None,
            last_role: None,
            fence: None,
            callbacks,
            watchdog: None,
            watchdog_failed: false,
        }
    }

    /// Hand the fence guard to the loop: it forwards every lease deadline to it, so a stalled
    /// agent's PostgreSQL is killed at the deadline.
    pub fn with_fence(mut self, guard: crate::fence::FenceGuard) -> HaLoop<P, S> {
        self.fence = Some(guard);
        self
    }

    fn now_ms(&self) -> u64 {
        self.clock0.elapsed().as_millis() as u64
    }

    /// See [`EngineMemory::holds_lease`].
    fn holds_lease(&self, cluster: Option<&ClusterView>) -> bool {
        self.mem.holds_lease(cluster, &self.config.name, self.now_ms())
    }

    /// Feed what happened back into the loop's memory (and the fences their deadline).
    fn apply(&mut self, event: Event) {
        let now = self.now_ms();
        engine::apply(&mut self.mem, event, now);
        self.sync_fences();
    }

    /// Tell the lease watchdog and the fence guard the deadline they enforce now.
    fn sync_fences(&self) {
        let d = self.mem.fence_deadline_ms();
        self.deadline_tx
            .send_if_modified(|cur| std::mem::replace(cur, d) != d);
    }

    fn demote_margin_ms(&self) -> u64 {
        // The loop demotes in an orderly way a little before the lease watchdog would stop
        // PostgreSQL itself (WATCHDOG_MARGIN_MS before the deadline).
        WATCHDOG_MARGIN_MS + 100
    }

    /// Run until `shutdown` fires.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // The in-agent backstop for the lease rule (src/ha/lease_watchdog.rs).
        let local = super::lease_watchdog::Local(self.pg.clone());
        let deadline = self.deadline_tx.subscribe();
        let watchdog = tokio::spawn(watch_deadline(local, self.clock0, WATCHDOG_MARGIN_MS, deadline));
        let postmaster_watch = tokio::spawn(postmaster_watch(self.pg.clone(), self.postmaster_exit.clone()));
        let (clock0, deadlines) = (self.clock0.into_std(), self.deadline_tx.subscribe());
        let fence = self
            .fence
            .take()
            .map(|guard| FenceFeed::start(guard, clock0, deadlines));
        let mut applied = self.node.subscribe_applied();
        loop {
            self.cycle().await;
            if std::mem::take(&mut self.mem.again) {
                continue;
            }
            let wait = self.next_wait();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.job_done.notified() => {}
                _ = self.postmaster_exit.notified() => {
                    tracing::info!("the postmaster exited: acting at once");
                }
                Some(req) = self.requests.recv() => self.handle_request(req).await,
                _ = Self::relevant_change(&self.node, &mut applied, &self.seen_revisions) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
        if let Some(mut job) = self.job.take() {
            // pg_rewind killed mid-copy leaves a directory of neither timeline: let it finish.
            if job.kind == Job::Rejoin {
                super::rewind_marker::let_rewind_finish(&*self.pg, &mut job.handle).await;
            }
            job.handle.abort();
        }
        postmaster_watch.abort();
        let facts = self.shutdown_facts();
        let mut plan = shutdown::plan(&facts);
        if let ShutdownAction::LeaveRunning { must_mark } = plan.action {
            match self
                .publish_final(PgRunState::Unattended, self.pg.observe().await.ok())
                .await
            {
                Err(why) if must_mark => plan = shutdown::unmarked(&facts, &why),
                _ => {
                    tracing::info!("agent shutting down: {}", plan.reason);
                    watchdog.abort();
                    self.disarm_watchdog();
                    if let Some(Err(e)) = OptionFuture::from(fence.map(FenceFeed::detach)).await {
                        tracing::error!("could not detach the fence guard: {e}");
                    }
                    return;
                }
            }
        }
        tracing::info!("agent shutting down: {}", plan.reason);
        if let ShutdownAction::Stop { lease_holder } = plan.action {
            self.stop_postgres_on_shutdown(lease_holder).await;
        }
        watchdog.abort();
        drop(fence); // PostgreSQL is stopped: the guard finds nothing to kill, and exits
    }

    fn shutdown_facts(&self) -> ShutdownFacts {
        let view = self.last_view.as_ref();
        ShutdownFacts {
            running: self.pg.postmaster_running(),
            paused: view.is_some_and(ClusterView::paused),
            in_handover: view.is_some_and(|v| super::decide::in_requested_handover(&self.config.name, v)),
            role: self.last_role,
            holds_lease: self.mem.lease_valid(self.now_ms()),
        }
    }

    /// The member record an agent leaves behind (`Stopped`, or `Unattended` with what
    /// PostgreSQL reports), written within `ttl`.
    async fn publish_final(
        &self,
        state: PgRunState,
        observation: Option<PgObservation>,
    ) -> Result<(), String> {
        let data = self.pg.data_dir();
        let seen = Observed {
            data: &data,
            running: state != PgRunState::Stopped,
            observation: observation.as_ref(),
            job: None,
            following: self.mem.following.as_deref(),
            state_override: Some(state),
        };
        let me = member_status(&self.config, &seen);
        let ttl = Duration::from_millis(self.dynamic.ttl_ms());
        tokio::time::timeout(ttl, self.publish_member(&me))
            .await
            .map_err(|_| "the keyspace did not answer within ttl".to_string())?
    }

    fn set_lease_deadline(&mut self, deadline_ms: Option<u64>) {
        self.apply(match deadline_ms {
            Some(deadline_ms) => Event::LeaseRenewed { deadline_ms },
            None => Event::LeaseDropped,
        });
    }

    /// No lease any more (given up, or passed with nothing left to fence): disarm the fences.
    fn drop_lease(&mut self) {
        self.set_lease_deadline(None);
        self.disarm_watchdog();
    }

    fn release_command(&self) -> Command {
        let (holder, addr) = (self.config.name.clone(), self.config.raft.self_addr.clone());
        Command::ReleaseLease {
            key: Key::Leader,
            holder,
            holder_addr: Some(addr),
        }
    }

    /// On agent shutdown PostgreSQL stops too (as with Patroni), and a primary gives its
    /// lease back so a replica can take over at once instead of after `ttl`.
    async fn stop_postgres_on_shutdown(&mut self, lease_holder: bool) {
        if lease_holder {
            // Publish the position now, while the other agents' Raft is surely still up (in a
            // whole-cluster stop they shut down at the same moment); the exact final position
            // follows after the stop if the keyspace still answers.
            if let Some(lsn) = self.pg.observe().await.ok().and_then(|o| o.wal_lsn) {
                self.publish_clean_shutdown(lsn, false).await;
            }
        }
        if let Err(e) = self.pg.stop().await {
            tracing::error!("stopping PostgreSQL failed: {e}");
            return;
        }
        self.callbacks.fire(CallbackEvent::OnStop, self.callback_role());
        // Tell the others at once rather than leaving a "running" record until it expires.
        let _ = self.publish_final(PgRunState::Stopped, None).await;
        if lease_holder {
            // The final position of a cleanly stopped primary: after a full-cluster restart
            // only a member with all of it may take over (the others stop their servers at the
            // same time and may have missed the last WAL).
            match self.pg.final_lsn() {
                Ok(final_lsn) => self.publish_clean_shutdown(final_lsn, true).await,
                Err(e) => tracing::warn!("no final WAL position to publish: {e}"),
            }
            self.drop_lease();
            let cmd = self.release_command();
            match self.write(cmd).await {
                Ok(_) => tracing::info!("released the leader lease"),
                Err(e) => tracing::warn!("could not release the leader lease: {e}"),
            }
        }
    }

    /// `status` for a primary stopping: its WAL position, and (`clean`: only from a control
    /// file that says `shut down`) the mark that only a member with all of it may take over.
    async fn publish_clean_shutdown(&self, lsn: u64, clean: bool) {
        let cmd = Command::Put {
            key: Key::Status,
            value: serde_json::json!({ "optime": lsn, "clean_shutdown": clean }),
            ttl_ms: None,
            precondition: Precondition::Any,
        };
        if let Err(e) = self.write(cmd).await {
            tracing::warn!("could not publish the final WAL position: {e}");
        }
    }

    fn next_wait(&self) -> Duration {
        let tick = Duration::from_millis(self.dynamic.loop_wait_ms());
        match self.mem.fence_deadline_ms() {
            // Wake in time to renew or demote before the lease (or bootstrap claim) deadline.
            Some(deadline) => {
                let until = deadline.saturating_sub(self.now_ms() + self.demote_margin_ms());
                tick.min(Duration::from_millis(until.max(50)))
            }
            None => tick,
        }
        // Wake when a failed job's back-off ends, to try it again then.
        .min(wake_in(
            &[
                &self.mem.bootstrap_retry,
                &self.mem.clone_retry,
                &self.mem.rejoin_retry,
            ],
            self.now_ms(),
        ))
    }

    /// Completes when a key the decision depends on changes (not on every member update).
    async fn relevant_change(node: &S, applied: &mut watch::Receiver<u64>, seen: &[u64]) {
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
        if let Some(reason) = self.pg.rewind_failed_marker().filter(|_| self.job.is_none()) {
            self.apply(Event::RewindMarkerFound { reason });
        }
        let data = self.pg.data_dir();
        let running = self.pg.postmaster_running();
        let observation = if running && self.job.is_none() {
            self.observe().await
        } else {
            None
        };
        let local = LocalObservation {
            data: data.clone(),
            running,
            job: self.job.as_ref().map(|j| j.kind),
        };
        self.mem = engine::local_step(&self.mem, &local);
        let me = member_status(
            &self.config,
            &Observed {
                data: &data,
                running,
                observation: observation.as_ref(),
                job: self.job.as_ref().map(|j| j.kind),
                following: self.mem.following.as_deref(),
                state_override: self.mem.state_override,
            },
        );
        let _ = self.publish_member(&me).await;

        let cluster = self.read_cluster().await;
        if let Some(c) = &cluster {
            self.dynamic = if c.config_revision.is_some() {
                c.config.clone()
            } else {
                self.config.bootstrap.dcs.clone()
            };
        }

        let role = observation.as_ref().and_then(|o| o.role);
        self.last_role = role;
        let initialized = matches!(data, DataDir::Initialized { .. });
        // Asked only when the engine can use it (a stopped directory, nothing in progress, no
        // passed rejoin check): it reads the control file.
        let former_primary =
            !running && self.job.is_none() && !self.mem.rejoined && initialized && self.pg.former_primary();
        let standby_dir = initialized && self.pg.is_standby_dir();
        let fresh = match &cluster {
            Some(c) if self.should_gather_positions(c) => Some(self.gather_positions(c).await),
            _ => None,
        };
        let (mem, decision) = engine::step(
            &self.mem,
            &Observation {
                me: &self.config.name,
                my_addr: &self.config.raft.self_addr,
                tags: &self.config.tags,
                cluster: cluster.as_ref(),
                local,
                role,
                streaming: observation.as_ref().is_some_and(|o| o.streaming_from.is_some()),
                timeline: observation.as_ref().and_then(|o| o.timeline),
                former_primary,
                standby_dir,
                my_position: observation.as_ref().and_then(position_of),
                fresh: fresh.as_ref(),
                demote_margin_ms: self.demote_margin_ms(),
                removed: self.node.removed_from_group(),
            },
            self.now_ms(),
        );
        if self.mem.lease.deadline_ms.is_some() && mem.lease.deadline_ms.is_none() {
            self.drop_lease(); // the engine gave up a passed deadline: nothing left to fence
        }
        self.mem = mem;
        self.sync_fences();
        if cluster.is_some() {
            self.last_view = cluster.clone();
            self.last_view_at = Some(tokio::time::Instant::now());
        }
        // One INFO line when the decision changes, and a reminder every REPEAT_LOG_EVERY while
        // it stays the same (the loop runs twice a second: every cycle would drown the log).
        let repeat_due = self.last_logged.is_none_or(|t| t.elapsed() >= REPEAT_LOG_EVERY);
        if decision.reason != self.last_reason || repeat_due {
            tracing::info!("{}", decision.reason);
            self.last_logged = Some(tokio::time::Instant::now());
        } else {
            tracing::debug!("{}", decision.reason);
        }
        self.last_reason = decision.reason.clone();

        let mut outcome = Ok(());
        for action in &decision.actions {
            outcome = self.execute(action, cluster.as_ref(), observation.as_ref()).await;
            if let Err(error) = &outcome {
                error.log(action);
                self.apply(Event::ActionFailed {
                    action: action.clone(),
                    error: error.clone(),
                });
                for next in engine::follow_up(error, running, role) {
                    if let Err(e) = self.execute(&next, cluster.as_ref(), observation.as_ref()).await {
                        tracing::error!(action = ?next, "{e}");
                    }
                }
                break;
            }
        }
        // In steady state (nothing but lease upkeep to do), bring the config files in line
        // with the dynamic configuration: edits reach every node within one loop.
        let steady = decision.actions.iter().all(|a| {
            matches!(
                a,
                Action::AcquireLease
                    | Action::PublishStatus
                    | Action::AppendHistory { .. }
                    | Action::SyncSlots
                    | Action::ManageSync
            )
        });
        if outcome.is_ok() && steady && running && self.job.is_none() {
            self.apply_dynamic_config(role).await;
        }
        self.publish_snapshot(me, cluster, observation).await;
        // Taken last, so that our own writes of this cycle do not wake us again.
        self.seen_revisions = watched_revisions(&*self.node);
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
                let e = e.to_string();
                if self.last_observe_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!("cannot query the local PostgreSQL: {e}");
                    self.last_observe_error = Some(e);
                }
                None
            }
        }
    }

    /// Fresh figures are worth a round trip only when a leader race is on: nobody holds the
    /// lease and this member could take it.
    fn should_gather_positions(&self, cluster: &ClusterView) -> bool {
        cluster.leader.is_none()
            && self.config.tags.may_become_primary()
            && cluster.initialize.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// Ask every other running member for its WAL position, all at once; a member that does
    /// not answer within `POSITION_TIMEOUT` is left out of the race (as in Patroni).
    async fn gather_positions(&self, cluster: &ClusterView) -> BTreeMap<String, WalPosition> {
        let asks = cluster
            .members
            .iter()
            .filter(|m| m.name != self.config.name && m.state.is_up())
            .filter_map(|m| Some((m.name.clone(), m.raft_addr.clone()?)))
            .map(|(name, addr)| async move {
                let ask = async {
                    let mut client = crate::ctl::connect(&addr).ok()?;
                    let reply = client
                        .wal_position(crate::grpc::pb::admin::WalPositionRequest {})
                        .await
                        .ok()?
                        .into_inner();
                    reply.error.is_empty().then_some(WalPosition {
                        timeline: reply.timeline,
                        lsn: reply.lsn,
                    })
                };
                let answer = tokio::time::timeout(POSITION_TIMEOUT, ask).await.ok().flatten();
                if answer.is_none() {
                    tracing::info!(
                        "member {name} did not report its WAL position: leaving it out of the race"
                    );
                }
                answer.map(|p| (name, p))
            });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// While this node holds the lease, every keyspace call ends in time to demote (hole 16).
    fn keyspace_deadline(&self) -> Option<tokio::time::Instant> {
        let may_write = self.pg.postmaster_running() && !self.pg.is_standby_dir();
        let (deadline, margin) = (self.mem.fence_deadline_ms(), self.demote_margin_ms());
        let at = store::call_deadline_ms(deadline, margin, self.now_ms(), may_write);
        at.map(|ms| self.clock0 + Duration::from_millis(ms))
    }

    async fn read_cluster(&self) -> Option<ClusterView> {
        match store::within(self.keyspace_deadline(), self.node.read_all()).await {
            Ok(read) => {
                let mut view = ClusterView::from_entries(&read.entries, read.as_of_ms);
                for e in &view.unreadable {
                    tracing::warn!("skipping a keyspace value this agent cannot read: {e}");
                }
                view.keep_config(&self.dynamic);
                Some(view)
            }
            Err(e) => {
                tracing::warn!("keyspace read failed: {e}");
                None
            }
        }
    }

    async fn publish_member(&self, me: &crate::cluster::MemberStatus) -> Result<(), String> {
        let key = Key::member(&self.config.name).map_err(|e| e.to_string())?;
        let value = serde_json::to_value(me).unwrap_or_default();
        let ttl_ms = Some(self.dynamic.ttl_ms().max(MEMBER_KEY_MIN_TTL_MS));
        let cmd = Command::Put {
            key,
            value,
            ttl_ms,
            precondition: Precondition::Any,
        };
        let written = self.write(cmd).await.map(|_| ()).map_err(|e| e.to_string());
        if let Err(e) = &written {
            tracing::debug!("publishing the member key failed: {e}");
        }
        written
    }

    async fn write(&self, command: Command) -> Result<CommandOutcome, KeyspaceError> {
        store::within(self.keyspace_deadline(), self.node.write(command)).await
    }

    /// Carry one action out. An error stops the rest of this cycle's actions and is fed back
    /// to the engine (`Event::ActionFailed`).
    async fn execute(
        &mut self,
        action: &Action,
        cluster: Option<&ClusterView>,
        observation: Option<&PgObservation>,
    ) -> Result<(), ActionError> {
        match action {
            Action::ClaimInitialize => {
                let revision = self.take_claim().await?;
                if self.job.is_none() {
                    tracing::info!("won the bootstrap race: initializing a new cluster");
                }
                self.apply(Event::InitializeClaimed { revision });
                Ok(())
            }
            Action::ReleaseInitialize => {
                let cmd = bootstrap_claim::release(&self.config.name, &self.config.raft.self_addr);
                self.write(cmd)
                    .await
                    .map(|_| ())
                    .map_err(Op::KeyspaceWrite.keyspace())
            }
            Action::Bootstrap => {
                self.mem.bootstrap_claim.ok_or_else(|| {
                    ActionError::not_ready(Op::StartJob, "no bootstrap claim of mine to bootstrap under")
                })?;
                self.start_bootstrap();
                self.apply(Event::BootstrapStarted);
                Ok(())
            }
            Action::FinishBootstrap { system_identifier } => self.finish_bootstrap(system_identifier).await,
            Action::Clone { source } => {
                let upstream = cluster.and_then(|c| upstream_of(c, source)).ok_or_else(|| {
                    ActionError::not_ready(
                        Op::StartJob,
                        format!("primary {source} publishes no PostgreSQL address to clone from"),
                    )
                })?;
                tracing::info!(source = %source, "creating a replica with pg_basebackup from {}:{}", upstream.host, upstream.port);
                let pg = self.pg.clone();
                let done = self.job_done.clone();
                let handle = tokio::spawn(async move {
                    let r = pg
                        .clone_replica(&upstream)
                        .await
                        .map(|_| JobResult::Cloned)
                        .map_err(String::from);
                    done.notify_one();
                    r
                });
                self.job = Some(RunningJob {
                    kind: Job::Clone,
                    handle,
                });
                Ok(())
            }
            Action::AcquireLease => self.acquire_lease().await,
            Action::ReleaseLease => {
                self.drop_lease();
                let cmd = self.release_command();
                self.write(cmd)
                    .await
                    .map(|_| ())
                    .map_err(Op::LeaseRelease.keyspace())
            }
            Action::StartPrimary => {
                self.configure(None).await.map_err(Op::Configure.pg())?;
                self.start().await
            }
            Action::StartReplica { leader } => self.start_replica_of(leader.as_deref(), cluster).await,
            Action::Promote => {
                self.wait_for_replay().await?;
                let pg = self.pg.clone();
                let promoted = self.keeping_lease(pg.promote()).await;
                promoted
                    .ok_or(ActionError::new(Op::Promote, Cause::LeaseExpired))?
                    .map_err(Op::Promote.pg())?;
                self.apply(Event::Promoted {
                    reason: promotion_reason(cluster),
                });
                tracing::info!("promoted: PostgreSQL now accepts writes");
                self.callbacks.fire(CallbackEvent::OnRoleChange, role::PRIMARY);
                Ok(())
            }
            Action::Demote => {
                self.stop_deliberately().await.map_err(Op::Stop.pg())?;
                self.drop_lease();
                self.apply(Event::Demoted);
                tracing::info!("demoted: PostgreSQL stopped accepting writes; it rejoins as a replica next");
                self.callbacks.fire(CallbackEvent::OnRoleChange, role::DEMOTED);
                Ok(())
            }
            Action::HandOver { candidate } => self.hand_over(candidate, cluster).await,
            Action::Rejoin { leader } => {
                let upstream = cluster.and_then(|c| upstream_of(c, leader)).ok_or_else(|| {
                    ActionError::not_ready(
                        Op::StartJob,
                        format!("primary {leader} publishes no PostgreSQL address yet"),
                    )
                })?;
                self.start_rejoin(upstream);
                Ok(())
            }
            Action::ClearFailover => {
                let Some(revision) = cluster.and_then(|c| c.failover_revision) else {
                    return Ok(());
                };
                let cmd = Command::Delete {
                    key: Key::Failover,
                    precondition: Precondition::Revision(revision),
                };
                self.write(cmd)
                    .await
                    .map(|_| ())
                    .map_err(Op::KeyspaceWrite.keyspace())
            }
            Action::Follow { leader } => {
                let upstream = cluster.and_then(|c| upstream_of(c, leader));
                if upstream.is_none() {
                    let what = format!("primary {leader} publishes no PostgreSQL address yet");
                    return Err(ActionError::not_ready(Op::Configure, what));
                }
                let upstream = upstream.filter(|_| !self.config.tags.nostream);
                let applied = self.configure(Some(upstream)).await.map_err(Op::Configure.pg())?;
                self.apply(Event::Following {
                    leader: Some(leader.clone()),
                });
                if applied.restart_needed {
                    self.pg.restart().await.map_err(Op::Restart.pg())
                } else {
                    self.pg.reload().await.map_err(Op::Reload.pg())
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
                self.pg.sync_slots(&names).await.map_err(Op::SyncSlots.pg())
            }
            Action::PublishStatus => {
                // Best effort, as every loop writes it again: a failed write stops nothing.
                if !self.holds_lease(cluster) {
                    return Ok(());
                }
                if let Some(lsn) = observation.and_then(|o| o.wal_lsn) {
                    let cmd = Command::Put {
                        key: Key::Status,
                        value: serde_json::json!({ "optime": lsn }),
                        ttl_ms: None,
                        precondition: Precondition::Any,
                    };
                    if let Err(e) = self.write(cmd).await {
                        tracing::debug!("publishing the WAL position failed: {e}");
                    }
                }
                Ok(())
            }
            Action::AppendHistory { timeline } => {
                if let Some(view) = cluster.filter(|_| self.holds_lease(cluster)) {
                    self.record_history(view, *timeline).await;
                }
                Ok(())
            }
            Action::ClaimSync => {
                let (pg, node, deadline) = (&*self.pg, &*self.node, self.keyspace_deadline());
                super::sync_apply::claim(pg, node, deadline, &self.config.name, cluster).await
            }
            Action::ManageSync if self.holds_lease(cluster) => {
                let (pg, node, deadline) = (&*self.pg, &*self.node, self.keyspace_deadline());
                super::sync_apply::manage(
                    pg,
                    node,
                    deadline,
                    &self.config.name,
                    &self.dynamic,
                    cluster,
                    observation,
                )
                .await
            }
            Action::ManageSync | Action::Refuse => Ok(()),
        }
    }

    /// Switchover, old primary's side: a clean (fast) shutdown makes PostgreSQL send every
    /// WAL record, up to its shutdown checkpoint, to the connected standbys before it exits;
    /// then publish that final position, so the candidate promotes only once it has all of it,
    /// and give the lease up for it.
    /// Never an immediate stop: when the fast one does not end in the lease's time, stay
    /// primary and cancel the request (src/ha/hand_over.rs).
    async fn hand_over(&mut self, candidate: &str, cluster: Option<&ClusterView>) -> Result<(), ActionError> {
        let (deadline, now, margin) = (self.mem.lease.deadline_ms, self.now_ms(), self.demote_margin_ms());
        self.apply(Event::OperationBegan(PgRunState::Stopping));
        let final_lsn = match hand_over::stop_cleanly(&*self.pg, candidate, deadline, now, margin).await {
            Ok(lsn) => lsn,
            Err(_) => {
                self.apply(Event::OperationEnded);
                return Box::pin(self.execute(&Action::ClearFailover, cluster, None)).await;
            }
        };
        self.apply(Event::StoppedDeliberately);
        let cmd = Command::Put {
            key: Key::Status,
            value: serde_json::json!({ "optime": final_lsn }),
            ttl_ms: None,
            precondition: Precondition::Any,
        };
        self.write(cmd).await.map_err(Op::KeyspaceWrite.keyspace())?;
        self.drop_lease();
        self.callbacks.fire(CallbackEvent::OnRoleChange, role::DEMOTED);
        let cmd = self.release_command();
        self.write(cmd).await.map_err(Op::LeaseRelease.keyspace())?;
        self.apply(Event::HandedOver);
        tracing::info!(
            "switchover to {candidate}: stopped at WAL {final_lsn:X} and released the lease; rejoining as a replica"
        );
        Ok(())
    }

    /// Stop PostgreSQL on purpose (a demote, a hand-over): published as `stopping`, then as
    /// `stopped` (not taken for a crash).
    async fn stop_deliberately(&mut self) -> PgResult<()> {
        self.apply(Event::OperationBegan(PgRunState::Stopping));
        let stopped = self.pg.stop().await;
        self.apply(if stopped.is_ok() {
            Event::StoppedDeliberately
        } else {
            Event::OperationEnded
        });
        stopped
    }

    /// Rejoin check of a former primary, in the background: pg_rewind `--dry-run` says whether
    /// its timeline diverged from the new primary's; if so, rewind when `use_pg_rewind`
    /// allows, else remove the directory (to clone again) when
    /// `remove_data_directory_on_diverged_timelines` allows, else refuse with what to do.
    fn start_rejoin(&mut self, upstream: super::pg_ops::Upstream) {
        let pg = self.pg.clone();
        let done = self.job_done.clone();
        let local = &self.config.postgresql;
        let cluster = &self.dynamic.postgresql;
        let use_rewind = local.use_pg_rewind.unwrap_or(cluster.use_pg_rewind);
        let remove_diverged = local.remove_data_directory_on_diverged_timelines
            || cluster.remove_data_directory_on_diverged_timelines;
        let remove_on_failure =
            local.remove_data_directory_on_rewind_failure || cluster.remove_data_directory_on_rewind_failure;
        let handle = tokio::spawn(async move {
            let r = rejoin(&*pg, &upstream, use_rewind, remove_diverged, remove_on_failure).await;
            done.notify_one();
            r
        });
        self.job = Some(RunningJob {
            kind: Job::Rejoin,
            handle,
        });
    }

    /// Configure as a standby of `leader` (or of nobody: read-only) and start.
    async fn start_replica_of(
        &mut self,
        leader: Option<&str>,
        cluster: Option<&ClusterView>,
    ) -> Result<(), ActionError> {
        // `nostream`: a standby that never streams (it replays archived WAL only).
        let upstream = leader
            .filter(|_| !self.config.tags.nostream)
            .and_then(|l| cluster.and_then(|c| upstream_of(c, l)));
        self.configure(Some(upstream)).await.map_err(Op::Configure.pg())?;
        self.apply(Event::Following {
            leader: leader.map(str::to_string),
        });
        self.start().await
    }

    async fn acquire_lease(&mut self) -> Result<(), ActionError> {
        let sent_at = self.now_ms();
        let ttl_ms = self.dynamic.ttl_ms();
        let cmd = Command::AcquireLease {
            key: Key::Leader,
            holder: self.config.name.clone(),
            holder_addr: Some(self.config.raft.self_addr.clone()),
            value: serde_json::json!({ "holder": self.config.name }),
            ttl_ms,
        };
        match self.write(cmd).await.map_err(Op::LeaseWrite.keyspace())? {
            CommandOutcome::Applied { .. } => {
                // Valid from when we sent it, not from when it committed: the keyspace may
                // have stamped it earlier than our reply arrived. Set before anything else can
                // fail: the lease is ours in the keyspace, so the deadline (and the fence
                // guard's copy of it) must be in force.
                self.set_lease_deadline(Some(
                    (sent_at + ttl_ms).saturating_sub(self.config.raft.max_clock_skew_ms),
                ));
                let armed = self.keep_watchdog_alive();
                if armed.is_err() && self.last_role != Some(PgRole::Primary) {
                    // Not primary yet and not allowed to become one: give the lease back so
                    // another member can take over instead of nobody.
                    self.set_lease_deadline(None);
                    let cmd = self.release_command();
                    let _ = self.write(cmd).await;
                }
                armed
            }
            // The deadline stays armed: the engine stops PostgreSQL first (`follow_up`).
            CommandOutcome::Rejected { reason, .. } => Err(ActionError::refused(Op::LeaseWrite, reason)),
        }
    }

    /// Run a long PostgreSQL operation (crash recovery, a restart) keeping the lease
    /// (src/ha/keep_lease.rs decides): renewed every loop; at the deadline, or when a renewal
    /// is refused, the operation is abandoned (`None`) and PostgreSQL stopped. The deadline
    /// stays armed unless the stop is confirmed: the operation has ended and no postmaster runs.
    async fn keeping_lease<T>(&mut self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        let loop_wait = self.dynamic.loop_wait_ms();
        let (mut renew_at, mut refused) = (self.now_ms() + loop_wait, false);
        let held = keep_lease::held(self.now_ms(), self.mem.lease.deadline_ms, self.demote_margin_ms());
        loop {
            let (now, margin) = (self.now_ms(), self.demote_margin_ms());
            let deadline = keep_lease::kept_deadline(held, self.mem.lease.deadline_ms);
            let wait = match keep_lease::next(now, deadline, margin, renew_at, refused) {
                Keep::Wait(ms) => ms,
                Keep::Renew => {
                    renew_at = now + loop_wait;
                    if let Err(e) = self.acquire_lease().await {
                        tracing::warn!("renewing the lease during a start or restart failed: {e}");
                        refused = e.lease_refused();
                    }
                    continue;
                }
                Keep::Abandon => break,
            };
            let tick = async {
                match wait {
                    Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                out = &mut work => return Some(out),
                _ = tick => {}
            }
        }
        tracing::error!("the lease ran out during a start or restart: giving it up and stopping PostgreSQL");
        // pg_ctl may have launched a postmaster a stop cannot see yet (no pid file): the stop
        // is confirmed only once the start itself has ended, stopping again meanwhile.
        loop {
            let _ = self.stop_deliberately().await;
            tokio::select! {
                _ = &mut work => break,
                _ = tokio::time::sleep(crate::fence::RECHECK_PERIOD) => {}
            }
        }
        if self.stop_deliberately().await.is_ok() && !self.pg.postmaster_running() {
            self.drop_lease();
            self.apply(Event::Demoted);
        }
        None
    }

    /// Before promoting: wait for the received WAL to be replayed while the lease is valid,
    /// renewing it; `Ok` only with a valid lease at the end (src/ha/replay_wait.rs decides).
    async fn wait_for_replay(&mut self) -> Result<(), ActionError> {
        let (started, loop_wait) = (self.now_ms(), self.dynamic.loop_wait_ms());
        let (mut renew_at, mut refused) = (started + loop_wait, false);
        loop {
            let replay = self.pg.replay_progress().await.ok().flatten();
            let look = replay_wait::Look {
                now_ms: self.now_ms(),
                deadline_ms: self.mem.lease.deadline_ms,
                margin_ms: self.demote_margin_ms(),
                renew_at_ms: renew_at,
                refused,
                started_ms: started,
                replay,
            };
            match replay_wait::next(&look) {
                Step::Promote => return Ok(()),
                Step::LeaseGone => return Err(ActionError::new(Op::Promote, Cause::LeaseExpired)),
                Step::Renew => {
                    renew_at = look.now_ms + loop_wait;
                    if let Err(e) = self.acquire_lease().await {
                        tracing::warn!("renewing the lease while waiting for replay failed: {e}");
                        refused = e.lease_refused();
                    }
                }
                Step::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            }
        }
    }

    /// The role callbacks are told about: primary while holding the lease.
    fn callback_role(&self) -> &'static str {
        if self.mem.lease_valid(self.now_ms()) {
            role::PRIMARY
        } else {
            role::REPLICA
        }
    }

    /// Arm the watchdog device on the first renewal (Patroni arms it when it becomes the
    /// leader) and keep it alive on every renewal after. With `mode: required` a node whose
    /// watchdog cannot be armed must not act as primary: the error stops this cycle's actions
    /// before any promotion.
    fn keep_watchdog_alive(&mut self) -> Result<(), ActionError> {
        if self.watchdog.is_none() {
            let bounds = crate::watchdog::LeaseBounds::new(&self.dynamic, &self.config.raft);
            match crate::watchdog::Watchdog::open_checked(&self.config.watchdog, bounds) {
                Ok(Some(w)) => {
                    self.watchdog_failed = false;
                    tracing::info!("watchdog armed: {}", w.describe());
                    self.watchdog = Some(w);
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.watchdog_failed = true;
                    let cause = Cause::WatchdogRequired(e.to_string());
                    return Err(ActionError::new(Op::Watchdog, cause));
                }
            }
        }
        if let Some(w) = &self.watchdog {
            if let Err(e) = w.keepalive() {
                tracing::error!("watchdog keepalive failed: {e}");
                self.watchdog_failed = self.config.watchdog.mode == crate::config::WatchdogMode::Required;
            }
        }
        Ok(())
    }

    /// Disarm the watchdog (magic close) once this node no longer holds the lease.
    fn disarm_watchdog(&mut self) {
        if let Some(w) = self.watchdog.take() {
            match w.disable() {
                Ok(()) => tracing::info!("watchdog disarmed"),
                Err(e) => tracing::warn!("disarming the watchdog failed: {e}"),
            }
        }
    }

    /// Write the config files for a primary (`standby` None) or a standby. Returns whether
    /// PostgreSQL must restart to apply them.
    async fn configure(&self, standby: Option<Option<super::pg_ops::Upstream>>) -> PgResult<Applied> {
        let desired = desired_config(&self.config, &self.dynamic, standby);
        self.pg.configure(&desired).await
    }

    async fn start(&mut self) -> Result<(), ActionError> {
        self.apply(Event::OperationBegan(PgRunState::Starting));
        let pg = self.pg.clone();
        let r = match self.keeping_lease(pg.start()).await {
            Some(r) => r.map_err(Op::Start.pg()),
            None => Err(ActionError::new(Op::Start, Cause::LeaseExpired)),
        };
        self.apply(if r.is_ok() {
            Event::Started {
                at: crate::timefmt::rfc3339_now(),
            }
        } else {
            Event::StartFailed
        });
        if r.is_ok() {
            let as_role = if self.mem.following.is_some() || self.mem.lease.deadline_ms.is_none() {
                role::REPLICA
            } else {
                role::PRIMARY
            };
            self.callbacks.fire(CallbackEvent::OnStart, as_role);
        }
        r
    }

    /// Dynamic configuration edits reach a running server within one loop: rewrite the
    /// files and reload; parameters that need a restart show up as `pending_restart`.
    async fn apply_dynamic_config(&self, role: Option<PgRole>) {
        let standby = match role {
            Some(PgRole::Primary) => None,
            _ => {
                let upstream = self.mem.following.as_deref().and_then(|l| {
                    let view = self.node.read_all_local();
                    upstream_of(&ClusterView::from_entries(&view.entries, view.as_of_ms), l)
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

    fn start_bootstrap(&mut self) {
        let desired = desired_config(&self.config, &self.config.bootstrap.dcs, None);
        let pg = self.pg.clone();
        let done = self.job_done.clone();
        let handle = tokio::spawn(async move {
            let r = pg
                .bootstrap(&desired)
                .await
                .map(|system_identifier| JobResult::Bootstrapped { system_identifier })
                .map_err(String::from);
            done.notify_one();
            r
        });
        self.job = Some(RunningJob {
            kind: Job::Bootstrap,
            handle,
        });
    }

    /// Reap a finished background job and feed its outcome back (a finished bootstrap is
    /// published by the `FinishBootstrap` the next decision holds).
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
        let outcome = match &result {
            Ok(JobResult::Bootstrapped { system_identifier }) => JobOutcome::Bootstrapped {
                started_at: crate::timefmt::rfc3339_now(),
                system_identifier: system_identifier.clone(),
            },
            Ok(JobResult::Cloned) => JobOutcome::Cloned,
            Ok(JobResult::Rejoined) => JobOutcome::Rejoined,
            Ok(JobResult::Removed) => JobOutcome::Removed,
            Ok(JobResult::RetryLater(e)) => JobOutcome::FailedRetryable(e.clone()),
            Err(e) => JobOutcome::Failed(e.clone()),
        };
        self.apply(Event::JobFinished {
            job: job.kind,
            outcome,
        });
        match (job.kind, result) {
            (Job::Clone, Ok(_)) => tracing::info!("replica created; starting it"),
            (Job::Rejoin, Err(e)) => tracing::error!("{e}"),
            _ => {}
        }
    }

    /// Publish a finished bootstrap: take the claim again (it must still be ours), the lease,
    /// `config` (first, so a published cluster always has it), then the system identifier
    /// under the claim's revision. Any step failing is retried by the next decision.
    async fn finish_bootstrap(&mut self, system_identifier: &str) -> Result<(), ActionError> {
        let revision = self.take_claim().await?;
        self.acquire_lease().await?;
        let config = self.config.bootstrap.dcs.to_json();
        let cmd = Command::Put {
            key: Key::Config,
            value: config,
            ttl_ms: None,
            precondition: Precondition::Absent,
        };
        self.write(cmd).await.map_err(Op::KeyspaceWrite.keyspace())?;
        let cmd = bootstrap_claim::publish(system_identifier, revision);
        if !self
            .write(cmd)
            .await
            .map_err(Op::KeyspaceWrite.keyspace())?
            .is_applied()
        {
            return Err(ActionError::refused(
                Op::KeyspaceWrite,
                "the initialize key changed under us",
            ));
        }
        self.apply(Event::BootstrapPublished);
        tracing::info!(system_identifier, "bootstrap complete: I am the primary");
        Ok(())
    }

    /// Take the bootstrap claim (again): its deadline arms the fences until the bootstrap is
    /// published (src/ha/claim_fence.rs). Refused: another member holds it.
    async fn take_claim(&mut self) -> Result<u64, ActionError> {
        let (sent_at, ttl_ms) = (self.now_ms(), self.dynamic.ttl_ms());
        let cmd = bootstrap_claim::claim(&self.config.name, &self.config.raft.self_addr, ttl_ms);
        match self.write(cmd).await.map_err(Op::ClaimBootstrap.keyspace())? {
            CommandOutcome::Applied { revision } => {
                let skew = self.config.raft.max_clock_skew_ms;
                let deadline_ms = claim_fence::claim_deadline_ms(sent_at, ttl_ms, skew);
                self.apply(Event::ClaimKept { deadline_ms });
                Ok(revision)
            }
            CommandOutcome::Rejected { reason, .. } => Err(ActionError::refused(Op::ClaimBootstrap, reason)),
        }
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
                self.apply(Event::OperationBegan(PgRunState::Restarting));
                let pg = self.pg.clone();
                let r = match self.keeping_lease(pg.restart()).await {
                    Some(r) => r
                        .map(|_| "restarted successfully".to_string())
                        .map_err(String::from),
                    None => Err("the lease ran out during the restart: PostgreSQL stopped".to_string()),
                };
                self.apply(Event::OperationEnded);
                if r.is_ok() {
                    self.apply(Event::Restarted {
                        at: crate::timefmt::rfc3339_now(),
                    });
                    self.callbacks
                        .fire(CallbackEvent::OnRestart, self.callback_role());
                }
                let _ = reply.send(r);
            }
            OperatorRequest::Reinit { reply } => {
                let r = self.reinit().await;
                let _ = reply.send(r);
            }
            OperatorRequest::KeyspaceWrite { command, reply } => {
                let _ = reply.send(self.write(command).await.map_err(|e| e.to_string()));
            }
        }
    }

    /// Rebuild this replica: stop PostgreSQL, empty the data directory; the next cycle
    /// clones it again from the primary. Never on the primary.
    async fn reinit(&mut self) -> Result<String, String> {
        if self.job.is_some() {
            return Err("a bootstrap, clone or rejoin is in progress; reinit refused".into());
        }
        let view = self
            .read_cluster()
            .await
            .ok_or("cannot confirm the keyspace: reinit refused")?;
        let me = self.config.name.as_str();
        if view.leader_name() == Some(me) || self.mem.lease.deadline_ms.is_some() {
            return Err(format!(
                "{me} is the primary (holds the leader lease): reinit refused"
            ));
        }
        let Some(leader) = view.leader_name() else {
            return Err("no primary holds the lease: nothing to clone from, reinit refused".into());
        };
        tracing::info!(
            "reinit requested: stopping PostgreSQL and removing the data directory to clone it from {leader}"
        );
        if self.pg.postmaster_running() {
            self.apply(Event::OperationBegan(PgRunState::Stopping));
            let stopped = self.pg.stop().await;
            self.apply(Event::OperationEnded);
            stopped?;
        }
        self.pg.remove_data_dir().await?;
        self.apply(Event::Reinitialized);
        Ok(format!("reinitialize started: cloning from {leader}"))
    }

    async fn reload_config(&mut self) -> Result<String, String> {
        if let Some(path) = &self.config_path {
            let loaded = Config::load(path).map_err(|e| e.to_string())?;
            self.config = loaded.config;
            crate::logging::reload_level(&self.config.log);
        }
        if self.pg.postmaster_running() {
            self.pg.reload().await?;
            self.callbacks.fire(CallbackEvent::OnReload, self.callback_role());
        }
        Ok("reload scheduled".to_string())
    }

    /// After a promotion, the new primary appends the timeline it left to the `history` key
    /// (timeline, switch LSN from PostgreSQL's own history file, reason, time, new leader),
    /// keeping `max_timelines_history` entries, compare-and-set on the revision it read.
    /// Idempotent: done when the entry is there; a lost race is tried again next loop.
    async fn record_history(&mut self, view: &ClusterView, timeline: u64) {
        if timeline <= 1 || view.history.iter().any(|h| h.timeline == timeline - 1) {
            return;
        }
        let (parent, switch_lsn) = match self.pg.timeline_switch(timeline) {
            Ok(Some((parent, lsn, _))) => (parent, lsn),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("cannot read the history of timeline {timeline}: {e}");
                return;
            }
        };
        let reason = self.mem.promote_reason.clone();
        let reason =
            reason.unwrap_or_else(|| "promoted (reason not recorded: the agent restarted)".to_string());
        let mut history = view.history.clone();
        history.push(crate::cluster::HistoryEntry {
            timeline: parent,
            switch_lsn,
            reason,
            time: crate::timefmt::rfc3339_now(),
            new_leader: Some(self.config.name.clone()),
        });
        let keep = self.dynamic.max_timelines_history as usize;
        if keep > 0 && history.len() > keep {
            history.drain(..history.len() - keep);
        }
        let cmd = Command::Put {
            key: Key::History,
            value: serde_json::to_value(&history).unwrap_or_default(),
            ttl_ms: None,
            precondition: view
                .history_revision
                .map_or(Precondition::Absent, Precondition::Revision),
        };
        match self.write(cmd).await {
            Ok(CommandOutcome::Rejected { reason, .. }) => {
                tracing::warn!("could not record the timeline history (it changed since read: {reason}); trying again next loop")
            }
            Ok(CommandOutcome::Applied { .. }) => {
                self.apply(Event::HistoryWritten);
                tracing::info!(
                    "history: timeline {parent} ended at {switch_lsn:X}; I lead timeline {timeline}"
                );
            }
            Err(e) => tracing::warn!("could not record the timeline history: {e}"),
        }
    }

    async fn publish_snapshot(
        &mut self,
        me: crate::cluster::MemberStatus,
        cluster: Option<ClusterView>,
        observation: Option<PgObservation>,
    ) {
        let holds_lease = self.holds_lease(cluster.as_ref());
        let writes_blocked = me.writes_blocked.clone();
        super::sync_standby::log_change(
            self.snapshot.borrow().writes_blocked.as_deref(),
            writes_blocked.as_deref(),
        );
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
            postmaster_start_time: self.mem.postmaster_start_time.clone(),
            replication: observation.map(|o| o.replication).unwrap_or_default(),
            loop_wait_secs: self.dynamic.loop_wait,
            ttl_secs: self.dynamic.ttl,
            watchdog_failed: self.watchdog_failed,
            watchdog: Some(crate::watchdog::status(
                &self.config.watchdog,
                crate::watchdog::LeaseBounds::new(&self.dynamic, &self.config.raft),
                self.watchdog.as_ref(),
            )),
            writes_blocked,
        };
        self.snapshot.send_replace(Arc::new(snapshot));
    }
}

/// Why this promotion happened, in the words the `history` key keeps.
fn promotion_reason(cluster: Option<&ClusterView>) -> String {
    match cluster.and_then(|c| c.failover.as_ref()) {
        Some(f) if f.is_switchover() => format!(
            "switchover from {}",
            f.leader.as_deref().unwrap_or("the old primary")
        ),
        Some(_) => "manual failover".to_string(),
        None => "automatic failover: no primary held the lease".to_string(),
    }
}

/// How long before the lease deadline the watchdog stops PostgreSQL at the latest.
const WATCHDOG_MARGIN_MS: u64 = 500;

/// An unchanged decision is logged at INFO again after this long.
const REPEAT_LOG_EVERY: Duration = Duration::from_secs(30);

/// How long a member may take to report its WAL position in a leader race.
const POSITION_TIMEOUT: Duration = Duration::from_millis(500);

/// Watch the postmaster between cycles, so its exit (a crash, an OOM kill) starts the reaction
/// at once instead of at the next loop tick.
async fn postmaster_watch<P: PgOps>(pg: Arc<P>, exited: Arc<Notify>) {
    let mut was_running = pg.postmaster_running();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let running = pg.postmaster_running();
        if was_running && !running {
            exited.notify_one();
        }
        was_running = running;
    }
}

/// Revisions of the keys whose change should wake the loop at once. For `leader` only a new
/// lease counts (its creation revision), not every renewal.
fn watched_revisions<S: ClusterStore>(node: &S) -> Vec<u64> {
    [Key::Leader, Key::Initialize, Key::Config, Key::Failover]
        .iter()
        .map(|k| {
            node.local_entry(k).map_or(0, |e| {
                // A lease's renewals (the leader's, a bootstrap claim's) do not count.
                if e.holder.is_some() {
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
