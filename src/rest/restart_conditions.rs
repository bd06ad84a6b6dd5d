//! The optional JSON body of `POST /restart` (what `patronictl restart` sends): conditions
//! under which the restart should happen. Parsed and judged here, before the HA loop is asked.

use serde_json::{Map, Value};

use crate::cluster::{MemberStatus, PgRole};

/// Restart only if all of these hold.
#[derive(Debug, Default, PartialEq)]
pub struct RestartConditions {
    /// `role`: the member's current role must be this one.
    role: Option<String>,
    /// `postgres_version`: restart only if the running version is older.
    older_than_version: Option<u32>,
    /// `restart_pending`: restart only if a parameter change waits for one.
    only_if_pending: bool,
}

/// Why a body is refused: with a status of 400 (malformed) or 501 (a feature pgquorum lacks).
#[derive(Debug, PartialEq)]
pub enum BodyProblem {
    Invalid(String),
    Unsupported(String),
}

impl RestartConditions {
    /// An empty body means no conditions, as in Patroni.
    pub fn parse(body: &[u8]) -> Result<RestartConditions, BodyProblem> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(RestartConditions::default());
        }
        let request: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| BodyProblem::Invalid("Bad Request".to_string()))?;
        let mut conditions = RestartConditions::default();
        for (key, value) in &request {
            match key.as_str() {
                "role" => conditions.role = Some(parse_role(value)?),
                "postgres_version" => conditions.older_than_version = Some(parse_version(value)?),
                "restart_pending" => conditions.only_if_pending = truthy(value),
                // Scheduling and a restart deadline (failover after `timeout`) need the HA loop
                // to support them; refusing beats silently restarting now.
                "schedule" | "timeout" => {
                    return Err(BodyProblem::Unsupported(format!(
                        "\"{key}\" is not supported by pgquorum yet"
                    )))
                }
                _ => {
                    return Err(BodyProblem::Invalid(format!(
                        "Unknown filter for the scheduled restart: {key}"
                    )))
                }
            }
        }
        Ok(conditions)
    }

    /// `None` when the member satisfies every condition, else Patroni's reason.
    pub fn unmet_by(&self, me: &MemberStatus) -> Option<&'static str> {
        if self.role.as_deref().is_some_and(|role| role != me.role.as_str()) {
            return Some("host role mismatch");
        }
        if let Some(wanted) = self.older_than_version {
            if me.server_version.is_some_and(|running| running >= wanted) {
                return Some("postgres version mismatch");
            }
        }
        if self.only_if_pending && !me.pending_restart {
            return Some("pending restart flag is not set");
        }
        None
    }
}

fn parse_role(value: &Value) -> Result<String, BodyProblem> {
    let accepted = [
        PgRole::Primary.as_str(),
        "standby_leader",
        PgRole::Replica.as_str(),
    ];
    match value.as_str() {
        Some(role) if accepted.contains(&role) => Ok(role.to_string()),
        _ => Err(BodyProblem::Invalid(
            "PostgreSQL role should be either primary, standby_leader, or replica".to_string(),
        )),
    }
}

/// `"16.2"` → 160002, `"9.6.24"` → 90624: PostgreSQL's `server_version_num` of a version.
fn parse_version(value: &Value) -> Result<u32, BodyProblem> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => String::new(),
    };
    let parts: Option<Vec<u32>> = text.trim().split('.').map(|p| p.parse().ok()).collect();
    let invalid = || BodyProblem::Invalid(format!("{text} is not a valid PostgreSQL version"));
    match parts.ok_or_else(invalid)?.as_slice() {
        [major, minor] if *major >= 10 => Ok(major * 10_000 + minor),
        [major, minor, patch] if *major < 10 => Ok(major * 10_000 + minor * 100 + patch),
        _ => Err(invalid()),
    }
}

/// Python truthiness, which Patroni applies to `restart_pending`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: PgRole, version: u32, pending: bool) -> MemberStatus {
        MemberStatus {
            role,
            server_version: Some(version),
            pending_restart: pending,
            ..Default::default()
        }
    }

    #[test]
    fn empty_body_has_no_conditions() {
        assert_eq!(RestartConditions::parse(b""), Ok(RestartConditions::default()));
        assert_eq!(RestartConditions::parse(b"{}"), Ok(RestartConditions::default()));
        assert_eq!(
            RestartConditions::default().unmet_by(&member(PgRole::Replica, 160002, false)),
            None
        );
    }

    #[test]
    fn conditions_are_judged_against_the_member() {
        let c = RestartConditions::parse(br#"{"role":"primary","restart_pending":true}"#).unwrap();
        assert_eq!(
            c.unmet_by(&member(PgRole::Replica, 160002, true)),
            Some("host role mismatch")
        );
        assert_eq!(
            c.unmet_by(&member(PgRole::Primary, 160002, false)),
            Some("pending restart flag is not set")
        );
        assert_eq!(c.unmet_by(&member(PgRole::Primary, 160002, true)), None);

        let c = RestartConditions::parse(br#"{"postgres_version":"16.3"}"#).unwrap();
        assert_eq!(c.unmet_by(&member(PgRole::Primary, 160002, false)), None);
        assert_eq!(
            c.unmet_by(&member(PgRole::Primary, 160003, false)),
            Some("postgres version mismatch")
        );
        assert_eq!(parse_version(&Value::from("9.6.24")), Ok(90624));
    }

    #[test]
    fn bad_and_unsupported_bodies_are_refused() {
        assert!(matches!(
            RestartConditions::parse(b"not json"),
            Err(BodyProblem::Invalid(_))
        ));
        assert!(matches!(
            RestartConditions::parse(br#"{"role":"boss"}"#),
            Err(BodyProblem::Invalid(_))
        ));
        assert!(matches!(
            RestartConditions::parse(br#"{"postgres_version":"x"}"#),
            Err(BodyProblem::Invalid(_))
        ));
        assert!(matches!(
            RestartConditions::parse(br#"{"colour":"red"}"#),
            Err(BodyProblem::Invalid(_))
        ));
        let scheduled = RestartConditions::parse(br#"{"schedule":"2030-01-01T00:00:00+00:00"}"#);
        assert!(matches!(scheduled, Err(BodyProblem::Unsupported(_))));
    }
}
