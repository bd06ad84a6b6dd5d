//! Where another member's PostgreSQL is, and the libpq connection string a replica uses to
//! stream from it.

use super::settings::Credentials;

/// Another member's PostgreSQL (a base backup source, a primary to stream from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTarget {
    /// Member name, for log lines ("base backup from node1").
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl ConnTarget {
    pub fn new(name: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        ConnTarget {
            name: name.into(),
            host: host.into(),
            port,
        }
    }

    /// `host:port` (`[v6]:port` for IPv6), for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `primary_conninfo` for a replica of `target`: the replication role's credentials and this
/// member's name as `application_name`, so the primary's `pg_stat_replication` (and
/// `synchronous_standby_names`) can tell replicas apart.
///
/// With `passfile` (the pgpass file holding the replication password) the password is not
/// written into the string; without one it is, inline.
pub fn primary_conninfo(
    target: &ConnTarget,
    replication: &Credentials,
    application_name: &str,
    passfile: Option<&std::path::Path>,
) -> String {
    let mut parts = vec![
        format!("host={}", quote_conninfo_value(&target.host)),
        format!("port={}", target.port),
        format!("user={}", quote_conninfo_value(&replication.username)),
    ];
    match (passfile, &replication.password) {
        (Some(file), Some(_)) => parts.push(format!(
            "passfile={}",
            quote_conninfo_value(&file.display().to_string())
        )),
        (None, Some(password)) => parts.push(format!("password={}", quote_conninfo_value(password))),
        (_, None) => {}
    }
    parts.push(format!(
        "application_name={}",
        quote_conninfo_value(application_name)
    ));
    parts.extend(libpq_options(replication));
    parts.join(" ")
}

/// The role's libpq options as `keyword='value'`, with `sslmode=prefer` (libpq's default,
/// written out) when no `sslmode` is configured.
pub fn libpq_options(role: &Credentials) -> Vec<String> {
    let mut parts: Vec<String> = role
        .libpq
        .iter()
        .map(|(keyword, value)| format!("{keyword}={}", quote_conninfo_value(value)))
        .collect();
    if !role.libpq.iter().any(|(keyword, _)| *keyword == "sslmode") {
        parts.push("sslmode=prefer".to_string());
    }
    parts
}

/// A libpq keyword value in single quotes, with `\` and `'` backslash-escaped.
pub fn quote_conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_quotes_every_value() {
        let target = ConnTarget::new("node1", "10.0.0.1", 5432);
        let creds = Credentials::new("repl", Some("it's \\ secret"));
        assert_eq!(
            primary_conninfo(&target, &creds, "node 2", None),
            "host='10.0.0.1' port=5432 user='repl' password='it\\'s \\\\ secret' application_name='node 2' sslmode=prefer"
        );
        assert_eq!(ConnTarget::new("n", "::1", 5).address(), "[::1]:5");
    }

    #[test]
    fn with_a_passfile_the_password_is_not_inline() {
        let target = ConnTarget::new("node1", "10.0.0.1", 5432);
        let creds = Credentials::new("repl", Some("s3cret"));
        let conninfo = primary_conninfo(
            &target,
            &creds,
            "n2",
            Some(std::path::Path::new("/pg/data.pgpass")),
        );
        assert!(!conninfo.contains("s3cret"), "{conninfo}");
        assert!(conninfo.contains("passfile='/pg/data.pgpass'"), "{conninfo}");
    }

    #[test]
    fn configured_tls_options_replace_the_default_sslmode() {
        let target = ConnTarget::new("node1", "10.0.0.1", 5432);
        let mut creds = Credentials::new("repl", None);
        creds.libpq = vec![
            ("sslmode", "verify-full".to_string()),
            ("sslcert", "/tls/repl.pem".to_string()),
            ("sslkey", "/tls/repl-key.pem".to_string()),
            ("sslrootcert", "/tls/ca.pem".to_string()),
            ("channel_binding", "require".to_string()),
        ];
        assert_eq!(
            primary_conninfo(&target, &creds, "node2", None),
            "host='10.0.0.1' port=5432 user='repl' application_name='node2' sslmode='verify-full' \
             sslcert='/tls/repl.pem' sslkey='/tls/repl-key.pem' sslrootcert='/tls/ca.pem' channel_binding='require'"
        );
    }
}
