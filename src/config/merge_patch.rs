//! `PATCH /config`'s merge: a JSON merge patch (RFC 7386), as Patroni's `patch_config` applies
//! it to the dynamic configuration — objects are merged key by key, `null` removes a key, any
//! other value (arrays included) replaces what was there.

use serde_json::{Map, Value};

/// Apply `patch` to `target`; returns whether anything changed (Patroni writes nothing then).
/// A `patch` that is not an object replaces `target` whole.
pub fn merge_patch(target: &mut Value, patch: &Value) -> bool {
    let Some(patch) = patch.as_object() else {
        let changed = target != patch;
        *target = patch.clone();
        return changed;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let object = target.as_object_mut().expect("made an object above");
    let mut changed = false;
    for (key, value) in patch {
        if value.is_null() {
            changed |= object.remove(key).is_some();
            continue;
        }
        match object.get_mut(key) {
            Some(existing) if value.is_object() && existing.is_object() => {
                changed |= merge_patch(existing, value);
            }
            Some(existing) if existing == &without_nulls(value) => {}
            _ => {
                object.insert(key.clone(), without_nulls(value));
                changed = true;
            }
        }
    }
    changed
}

/// A new object from a patch carries no `null` members (RFC 7386: they mean "absent").
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_merge_null_removes_other_values_replace() {
        let stored = json!({
            "ttl": 30, "loop_wait": 10,
            "postgresql": {"parameters": {"work_mem": "4MB", "max_connections": 100}, "pg_hba": ["a", "b"]},
        });
        // (case, patch, expected, changed)
        let rows = [
            (
                "a top-level value",
                json!({"ttl": 20}),
                json!({"ttl": 20, "loop_wait": 10,
                "postgresql": {"parameters": {"work_mem": "4MB", "max_connections": 100}, "pg_hba": ["a", "b"]}}),
                true,
            ),
            (
                "a nested value, its siblings kept",
                json!({"postgresql": {"parameters": {"work_mem": "8MB"}}}),
                json!({"ttl": 30, "loop_wait": 10,
                "postgresql": {"parameters": {"work_mem": "8MB", "max_connections": 100}, "pg_hba": ["a", "b"]}}),
                true,
            ),
            (
                "null removes, nested too",
                json!({"loop_wait": null, "postgresql": {"parameters": {"work_mem": null}}}),
                json!({"ttl": 30, "postgresql": {"parameters": {"max_connections": 100}, "pg_hba": ["a", "b"]}}),
                true,
            ),
            (
                "an array is replaced, not merged",
                json!({"postgresql": {"pg_hba": ["c"]}}),
                json!({"ttl": 30, "loop_wait": 10,
                "postgresql": {"parameters": {"work_mem": "4MB", "max_connections": 100}, "pg_hba": ["c"]}}),
                true,
            ),
            (
                "a new section loses its nulls",
                json!({"standby_cluster": {"host": "h", "port": null}}),
                json!({"ttl": 30, "loop_wait": 10, "standby_cluster": {"host": "h"},
                "postgresql": {"parameters": {"work_mem": "4MB", "max_connections": 100}, "pg_hba": ["a", "b"]}}),
                true,
            ),
            (
                "the same values change nothing",
                json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}}),
                stored.clone(),
                false,
            ),
            (
                "removing an absent key changes nothing",
                json!({"pause": null}),
                stored.clone(),
                false,
            ),
        ];
        for (case, patch, expected, changed) in rows {
            let mut config = stored.clone();
            assert_eq!(merge_patch(&mut config, &patch), changed, "{case}");
            assert_eq!(config, expected, "{case}");
        }
    }
}
