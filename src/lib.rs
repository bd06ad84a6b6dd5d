//! pgquorum: high availability for PostgreSQL with Raft consensus built in.
//!
//! # Layout: where each behaviour lives
//!
//! | behaviour | where |
//! |---|---|
//! | what the agent decides each cycle (bootstrap, clone, follow, promote, demote, rejoin, refuse) | [`ha::decide`] (pure; table rows in `ha/decide_test.rs`) |
//! | bootstrap and clone retries: back-off, give-up | `ha::retry` (pure) |
//! | the bootstrap claim: a lease with the claimer's name and address, refreshed, expiring; publishing the system identifier | `ha::bootstrap_claim` (pure) |
//! | the claim's deadline fencing the bootstrap's server (watchdog, fence guard, engine stop) until the bootstrap is published and the lease takes over | `ha::claim_fence` (pure) |
//! | a node removed from the Raft group: no lease, no promotion, a writable server demoted and its lease released | [`ha::removed`] (pure, over `decide`; rows `removed_node_table` in `ha/decide_test.rs`) |
//! | what the HA loop remembers between cycles, and how observations and executor events change it; a passed lease deadline given up once nothing is left to fence | [`ha::engine`] (pure; table rows in `ha/engine_test.rs`) |
//! | the HA loop's seam to the keyspace (Raft node, or in memory for tests) | [`ha::store`] |
//! | several HA loops under paused time with seeded faults and an invariant checker | `ha::sim` (tests only; `SIM_SEEDS`) |
//! | carrying decisions out, the loop's timers, operator requests | [`ha::runner`] (executor), [`ha::pg_adapter`] (on the real server) |
//! | why an action failed (operation, cause, retryable or fatal), fed back to the engine | [`ha::action_error`] |
//! | "keep the lease" around a start/restart/promotion, the bounded replay wait before promoting | [`ha::keep_lease`], [`ha::replay_wait`] (pure; table tests) |
//! | keyspace calls bounded by the remaining lease while holding it | `ha::store::within` |
//! | which PostgreSQL settings are written | [`ha::params`] (merge), `postgres::param_compat` (per-version translation), [`postgres::conf`] (files) |
//! | switchover / failover rules shared by CLI and REST | [`ha::switchover`] |
//! | synchronous replication: which standbys, the ordered steps (PostgreSQL first when adding, the `sync` key first when removing), strict mode's writes-blocked signal; carrying them out; the `sync` key and its failover rule | [`ha::sync_standby`] (pure; table rows in `ha/sync_standby_test.rs`), [`ha::sync_apply`], `cluster::SyncState` / `ClusterView::sync_forbids_promotion` |
//! | the old primary's side of a switchover: bounded fast stop, never immediate, abort and stay primary | [`ha::hand_over`] |
//! | a failed pg_rewind remembered on disk (refuse until `reinit`); leftovers of a dead postmaster | [`ha::rewind_marker`], `postgres::leftovers` |
//! | hooks (`on_start`, `on_role_change`, …) | [`ha::callbacks`] |
//! | the member record published every loop | [`ha::publish`] |
//! | the replicated keyspace: keys, commands, CAS, leases, TTL | [`keyspace`] (pure state machine) |
//! | lease time: the keyspace clock the Raft leader stamps with (monotonic, not wall) | `keyspace::clock` |
//! | typed values under the keys, and the cluster as one read sees it | [`cluster`] |
//! | leader-race positions compared within the newest timeline (abandoned WAL past a switch point cannot win) | `cluster::timeline_position` (pure) |
//! | the timeline a replica reports: the newest whose `pg_wal` segment holds its replay position (survives restarts) | `postgres::wal_segments` (pure), `postgres::query`, [`ha::pg_adapter`] |
//! | the Raft node: leader-stamped writes, forwarding, linearizable reads | [`node`] |
//! | keyspace errors over gRPC: code + `pgquorum-error` metadata + error source type, never text | `node::wire_error` |
//! | forming the Raft group, joining a running one by starting; a removed node never rejoining by itself | `node::formation` (runner), `node::formation_rule` (pure), `node::join` (leader side) |
//! | operators' membership changes (`members add/promote/remove`): refusal rules, carried out on the Raft leader | [`node::membership_rule`] (pure; table tests), `node::membership` |
//! | `pgquorumctl remove SCOPE`: wiping a decommissioned cluster's keyspace | [`node::cluster_removal`], `ctl::remove_cluster` |
//! | Raft storage (sled), snapshots, the Raft RPC client | [`raft`] |
//! | gRPC servers (Raft RPCs, admin service for `pgquorumctl`) | [`grpc`], protos in `proto/` |
//! | TLS, `raft.password`, the scope check on every call; every gRPC channel is built here | `grpc::transport`, `grpc::certs` (`generate-certs`) |
//! | who may call what on the gRPC services (agent / admin / read; `raft.agent_names` patterns), agent-only keys, the admin listener | `grpc::access` (pure classification), `grpc::admin_service` |
//! | what a client may write into `config` (shared by pgquorumctl and the server), a `ttl` every member's Raft timings fit | `config::guard`, `config::timing` |
//! | PostgreSQL operations (initdb, pg_basebackup, pg_ctl, pg_rewind, queries) | [`postgres`] |
//! | fencing a primary whose agent died or stalled | [`fence`] (guard process; `detach` leaves PostgreSQL running on purpose), [`ha::lease_watchdog`] (in-agent backstop), [`watchdog`] (device) |
//! | agent shutdown: stop PostgreSQL and release the lease, or (maintenance mode) leave it running, detached; when `resume` is refused | [`ha::shutdown`] (pure; table tests) |
//! | configuration file, validation, Patroni compatibility, env overrides | [`config`] |
//! | REST API (Patroni's paths, health checks, metrics) | [`rest`] |
//! | `config` writes from clients (admin service, REST `PATCH`/`PUT /config`): read, merge patch, check, compare-and-set | `node::config_write`, `config::merge_patch`, `rest::config_edit` |
//! | REST TLS, `verify_client`, allowlist (403 before 401), extra headers, re-read on reload | `rest::security`, `rest::listen`, `rest::access` |
//! | `restapi.keyfile` read and, when encrypted PKCS#8, decrypted with `keyfile_password` | `rest::keyfile` |
//! | libpq options, passfile and SCRAM verifiers for PostgreSQL connections; TLS of the agent's own TCP connection (superuser `sslmode`) | `postgres::conninfo`, `postgres::secret_file`, `postgres::query`, `postgres::local_tls` |
//! | `pgquorumctl` commands and their output (a closed stdout: `ctl::stdout`) | [`ctl`] |
//! | patronictl's argument shape in `pgquorumctl` (optional CLUSTER first, `-r/--role` on reload/restart) | `ctl::cluster_arg` (pure), `ctl::operate` |
//! | `pgquorumctl version` / `dsn` (patronictl's): member versions, a libpq DSN for a role or member | `ctl::version`, `ctl::dsn` (formatting and choice pure) |
//! | `pgquorumctl members list`: the Raft group reconciled with the `members/` records | [`ctl::members`] (`reconcile` is pure) |
//! | agent start-up and shutdown, SIGHUP = reload, an HA-loop panic ends the agent | [`agent`] |
//! | refusing to start under a name a live agent at another address uses | `agent::name_check` |
//! | the agent's log: `log.dir` file rotated by size, `log.type: json`, `log.level` changed on reload | [`logging`] (`logging::rotating`, `logging::json`) |
//! | the witness `pgquorum-controller` (`raft-controller/`): a Raft voter with no PostgreSQL, its `witnesses/<name>` record, health/metrics endpoint, Patroni controller config | [`witness`] (`witness::controller_config`, `witness::endpoint`), [`cluster::WitnessRecord`] |
//! | the Raft start-up every voter shares (transport, ports, name check) | `agent::VoterPorts` |
//! | whether a majority of Raft voters is reachable, which are not, in plain words (log, `/patroni`, `/metrics`, `list`) | `node::quorum` (pure), `node::quorum_watch` |
//! | `pgquorum demo` (`--tls`: generated certificates, mutual TLS, HTTPS, replication over TLS by client certificate) and the test/bench cluster launcher | [`demo`] |
//!
//! The map with the reasons is `docs/architecture.md`.

// openraft's `StorageError` and tonic's `Status` are large by design, and they are the
// error types the traits we implement require; boxing them at every call would only add
// noise on paths that are not hot.
#![allow(clippy::result_large_err)]

pub mod agent;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod demo;
pub mod fence;
pub mod grpc;
pub mod ha;
pub mod keyspace;
pub mod logging;
pub mod node;
pub mod postgres;
pub mod raft;
pub mod rest;
pub mod timefmt;
pub mod watchdog;
pub mod witness;
