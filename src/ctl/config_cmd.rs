//! `pgquorumctl show-config` and `edit-config`: the dynamic (cluster-wide) configuration,
//! edited with compare-and-set so two concurrent edits cannot overwrite each other.

use std::io::Write;

use serde_json::Value;

use super::{client, CtlError};
use crate::config::guard::{check_config_write, MemberTimings};
use crate::config::DynamicConfig;
use crate::keyspace::{Command, CommandOutcome, Key, Precondition};

/// The stored config and its revision (`None`: never written; the defaults apply).
pub(super) async fn current(endpoint: &str) -> Result<(Value, Option<u64>), CtlError> {
    let read = client::read(endpoint, "config", false, true).await?;
    Ok(match read.entries.first() {
        Some(e) => (e.value.clone(), Some(e.revision)),
        None => (DynamicConfig::default().to_json(), None),
    })
}

fn to_yaml(value: &Value) -> Result<String, CtlError> {
    serde_yaml_ng::to_string(value).map_err(|e| CtlError::Other(e.to_string()))
}

pub async fn show(endpoint: &str, json: bool) -> Result<String, CtlError> {
    let (value, _) = current(endpoint).await?;
    if json {
        return serde_json::to_string_pretty(&value).map_err(|e| CtlError::Other(e.to_string()));
    }
    to_yaml(&value)
}

/// Set `path` (dotted, e.g. `postgresql.parameters.work_mem`) to `raw`, read as a YAML
/// scalar so `10`, `true` and `8MB` get their natural types. An empty value removes the key.
pub fn set_path(root: &mut Value, path: &str, raw: &str) -> Result<(), CtlError> {
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts
        .split_last()
        .ok_or_else(|| CtlError::Other("empty key".into()))?;
    let mut node = root;
    for p in parents {
        if !node.is_object() {
            *node = Value::Object(Default::default());
        }
        node = node
            .as_object_mut()
            .expect("made an object above")
            .entry(p.to_string())
            .or_insert(Value::Null);
        if node.is_null() {
            *node = Value::Object(Default::default());
        }
    }
    let map = node
        .as_object_mut()
        .ok_or_else(|| CtlError::Other(format!("{path}: parent is not a mapping")))?;
    if raw.is_empty() || raw == "null" {
        map.remove(*last);
        return Ok(());
    }
    let parsed: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(raw).map_err(|e| CtlError::Other(format!("{path}: {e}")))?;
    let value = serde_json::to_value(parsed).map_err(|e| CtlError::Other(e.to_string()))?;
    map.insert(last.to_string(), value);
    Ok(())
}

fn edit_in_editor(yaml: &str) -> Result<Value, CtlError> {
    let editor = std::env::var("EDITOR")
        .or_else(|_| std::env::var("VISUAL"))
        .unwrap_or_else(|_| "vi".into());
    let path = std::env::temp_dir().join(format!("pgquorum-config-{}.yaml", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(yaml.as_bytes()))
        .map_err(|e| CtlError::Other(format!("{}: {e}", path.display())))?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status()
        .map_err(|e| CtlError::Other(format!("cannot run {editor}: {e}")))?;
    let text = std::fs::read_to_string(&path).map_err(|e| CtlError::Other(e.to_string()));
    let _ = std::fs::remove_file(&path);
    if !status.success() {
        return Err(CtlError::Other(format!(
            "{editor} exited with {status}; nothing changed"
        )));
    }
    let parsed: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text?).map_err(|e| CtlError::Other(e.to_string()))?;
    serde_json::to_value(parsed).map_err(|e| CtlError::Other(e.to_string()))
}

/// Lines of `after` not in `before` and the reverse, as `+`/`-` lines of the YAML form.
fn diff(before: &str, after: &str) -> String {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let mut out: Vec<String> = b
        .iter()
        .filter(|l| !a.contains(l))
        .map(|l| format!("-{l}"))
        .collect();
    out.extend(a.iter().filter(|l| !b.contains(l)).map(|l| format!("+{l}")));
    out.join("\n")
}

pub async fn edit(endpoint: &str, sets: &[String], pgs: &[String]) -> Result<String, CtlError> {
    let (before, revision) = current(endpoint).await?;
    let mut after = before.clone();
    if sets.is_empty() && pgs.is_empty() {
        after = edit_in_editor(&to_yaml(&before)?)?;
    }
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| CtlError::Other(format!("--set {s}: expected KEY=VALUE")))?;
        set_path(&mut after, k.trim(), v.trim())?;
    }
    for p in pgs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| CtlError::Other(format!("--pg {p}: expected PARAM=VALUE")))?;
        set_path(
            &mut after,
            &format!("postgresql.parameters.{}", k.trim().to_ascii_lowercase()),
            v.trim(),
        )?;
    }
    if after == before {
        return Ok("Not changed".into());
    }
    let stored = store(endpoint, revision.map(|_| &before), &after, revision, false).await?;
    let mut out = diff(&to_yaml(&before)?, &to_yaml(&stored.config.to_json())?);
    for w in stored.warnings {
        out.push_str(&format!("\nwarning: {w}"));
    }
    out.push_str("\nConfiguration changed");
    Ok(out)
}

/// A configuration written by [`store`].
pub(super) struct Stored {
    pub config: DynamicConfig,
    pub warnings: Vec<String>,
    /// The log index the write was committed at (the `config` key's new revision).
    pub revision: u64,
}

/// Validate `after` with the rules the agents apply to every `config` write
/// ([`check_config_write`]: those of `bootstrap.dcs`, and no change to what runs commands) and
/// write it compare-and-set against `revision`, the one `before` was read at (`None`: the key
/// must still be absent).
/// `force_resume`: the agent accepts lifting maintenance mode even while a primary may run
/// without its agent (`resume --force`).
pub(super) async fn store(
    endpoint: &str,
    before: Option<&Value>,
    after: &Value,
    revision: Option<u64>,
    force_resume: bool,
) -> Result<Stored, CtlError> {
    // Every member's Raft timings, as their member keys publish them: the new ttl must fit them.
    let members = super::cluster_read::cluster_view(endpoint).await?.members;
    let timings = MemberTimings::of_members(&members);
    let (validated, warnings) = check_config_write(before, after, &timings).map_err(|problems| {
        CtlError::Other(format!(
            "the new configuration is invalid, nothing changed:\n  - {}",
            problems.join("\n  - ")
        ))
    })?;
    let precondition = revision.map_or(Precondition::Absent, Precondition::Revision);
    let cmd = Command::Put {
        key: Key::Config,
        value: validated.to_json(),
        ttl_ms: None,
        precondition,
    };
    match client::write_forcing(endpoint, &cmd, force_resume).await?.0 {
        CommandOutcome::Applied { revision } => Ok(Stored {
            config: validated,
            warnings,
            revision,
        }),
        CommandOutcome::Rejected { .. } => Err(CtlError::Other(
            "the configuration was changed by someone else meanwhile; nothing changed — run the edit again"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::set_path;

    #[test]
    fn dotted_paths_create_and_remove_keys_with_natural_types() {
        let mut v = json!({"ttl": 30});
        set_path(&mut v, "postgresql.parameters.work_mem", "8MB").unwrap();
        set_path(&mut v, "loop_wait", "5").unwrap();
        set_path(&mut v, "pause", "true").unwrap();
        assert_eq!(
            v,
            json!({"ttl": 30, "loop_wait": 5, "pause": true, "postgresql": {"parameters": {"work_mem": "8MB"}}})
        );
        set_path(&mut v, "pause", "").unwrap();
        assert!(v.get("pause").is_none());
    }
}
