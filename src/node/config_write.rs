//! Client writes of the replicated `config` key, one path for every front end: the admin gRPC
//! service (`pgquorumctl edit-config`, `pause`, `resume`, hand-written clients) and the REST
//! API's `PATCH /config` / `PUT /config`. Each new configuration is checked with
//! [`check_config_write`] against the stored one and every member's Raft timings, and one that
//! lifts maintenance mode with the rule of `pgquorumctl resume` ([`resume_refusal`]).

use std::sync::Arc;

use serde_json::Value;

use super::{KeyspaceError, RaftNode, ReadQuery, ReadResult};
use crate::cluster::ClusterView;
use crate::config::guard::{check_config_write, MemberTimings};
use crate::config::merge_patch::merge_patch;
use crate::config::{RaftConfig, RaftTimings};
use crate::ha::shutdown::{lifts_pause, resume_refusal};
use crate::keyspace::{Command, CommandOutcome, Key, Precondition};

/// How a client changes the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigEdit {
    /// A JSON merge patch onto the stored configuration (`PATCH /config`).
    Patch(Value),
    /// The whole new configuration (`PUT /config`).
    Replace(Value),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigWriteError {
    #[error("the dynamic configuration is not stored yet: there is nothing to patch")]
    NotStored,
    #[error("the new configuration is invalid, nothing changed:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
    #[error("resume refused: {0}")]
    ResumeRefused(String),
    #[error("the configuration changed while it was being edited (twice); nothing changed")]
    Changed,
    #[error(transparent)]
    Keyspace(#[from] KeyspaceError),
}

/// A configuration written: what is stored now, at which revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigWritten {
    pub config: Value,
    /// `None`: the edit changed nothing, so nothing was written.
    pub revision: Option<u64>,
    pub warnings: Vec<String>,
}

#[derive(Clone)]
pub struct ConfigWrites {
    node: Arc<RaftNode>,
    /// This agent's Raft timings, which a new `ttl` must leave room for too (a Raft-only voter
    /// publishes no member key).
    raft: Option<RaftConfig>,
}

/// Compare-and-set attempts: a concurrent write between the read and ours is retried once.
const ATTEMPTS: usize = 2;

impl ConfigWrites {
    pub fn new(node: Arc<RaftNode>, raft: Option<RaftConfig>) -> ConfigWrites {
        ConfigWrites { node, raft }
    }

    /// Every key, read linearizably: the stored configuration, the members' timings and the
    /// state a resume is judged on, as of now (not a stale copy).
    async fn read_all(&self) -> Result<ReadResult, KeyspaceError> {
        let query = ReadQuery {
            key: String::new(),
            prefix: true,
            linearizable: true,
        };
        self.node.read(&query, false).await
    }

    /// The Raft timings a `config` write must fit: every member's as published in its member
    /// key, and this agent's own.
    fn member_timings(&self, view: &ClusterView) -> Vec<MemberTimings> {
        let mut timings = MemberTimings::of_members(&view.members);
        let me = &self.node.settings.name;
        if let Some(raft) = self
            .raft
            .as_ref()
            .filter(|_| !timings.iter().any(|t| t.name == *me))
        {
            timings.push(MemberTimings {
                name: me.clone(),
                timings: RaftTimings::of(raft),
            });
        }
        timings
    }

    /// [`check_config_write`] of `after` against what `all` holds; its warnings.
    fn check(&self, all: &ReadResult, after: &Value) -> Result<Vec<String>, ConfigWriteError> {
        let view = ClusterView::from_entries(&all.entries, all.as_of_ms);
        let before = stored(all).map(|(value, _)| value);
        check_config_write(before, after, &self.member_timings(&view))
            .map(|(_, warnings)| warnings)
            .map_err(ConfigWriteError::Invalid)
    }

    /// The rule of `pgquorumctl resume` for an `after` that lifts maintenance mode.
    fn check_resume(all: &ReadResult, after: &Value) -> Result<(), ConfigWriteError> {
        if !lifts_pause(stored(all).map(|(value, _)| value), after) {
            return Ok(());
        }
        match resume_refusal(&ClusterView::from_entries(&all.entries, all.as_of_ms)) {
            None => Ok(()),
            Some(why) => Err(ConfigWriteError::ResumeRefused(why)),
        }
    }

    /// Check a `config` value a client sends whole (the admin service's keyspace write).
    pub async fn check_client_config(&self, after: &Value) -> Result<Vec<String>, ConfigWriteError> {
        let all = self.read_all().await?;
        self.check(&all, after)
    }

    /// Check a `config` value against the resume rule (the admin service, for every caller).
    pub async fn check_resume_of(&self, after: &Value) -> Result<(), ConfigWriteError> {
        if after.get("pause").and_then(Value::as_bool) == Some(true) {
            return Ok(()); // still paused: nothing to check, no read
        }
        let all = self.read_all().await?;
        Self::check_resume(&all, after)
    }

    /// Read, edit, check and write with compare-and-set on the revision read; a concurrent
    /// change is re-read and the edit applied again once.
    pub async fn edit(&self, edit: &ConfigEdit) -> Result<ConfigWritten, ConfigWriteError> {
        for _ in 0..ATTEMPTS {
            let all = self.read_all().await?;
            let current = stored(&all);
            let (after, changed) = match (edit, current) {
                (ConfigEdit::Patch(_), None) => return Err(ConfigWriteError::NotStored),
                (ConfigEdit::Patch(patch), Some((value, _))) => {
                    let mut after = value.clone();
                    let changed = merge_patch(&mut after, patch);
                    (after, changed)
                }
                (ConfigEdit::Replace(value), current) => {
                    (value.clone(), current.map(|(v, _)| v) != Some(value))
                }
            };
            if !changed {
                return Ok(ConfigWritten {
                    config: after,
                    revision: None,
                    warnings: Vec::new(),
                });
            }
            let warnings = self.check(&all, &after)?;
            Self::check_resume(&all, &after)?;
            let precondition = match current {
                Some((_, revision)) => Precondition::Revision(revision),
                None => Precondition::Absent,
            };
            let command = Command::Put {
                key: Key::Config,
                value: after.clone(),
                ttl_ms: None,
                precondition,
            };
            match self.node.write(command, false).await?.outcome {
                CommandOutcome::Applied { revision } => {
                    return Ok(ConfigWritten {
                        config: after,
                        revision: Some(revision),
                        warnings,
                    })
                }
                CommandOutcome::Rejected { .. } => continue,
            }
        }
        Err(ConfigWriteError::Changed)
    }
}

/// The stored configuration and its revision.
fn stored(all: &ReadResult) -> Option<(&Value, u64)> {
    all.entries
        .iter()
        .find(|e| e.key == Key::Config)
        .map(|e| (&e.value, e.revision))
}
