//! Short-lived files holding a password for a PostgreSQL program (initdb's `--pwfile`,
//! pg_basebackup's pgpass), so passwords never appear on a command line. Mode 0600, owned by
//! the OS user the program runs as, removed when dropped.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::PgError;
use super::os_user::OsUser;

pub struct SecretFile {
    path: PathBuf,
}

impl SecretFile {
    pub fn create(user: &OsUser, purpose: &str, contents: &str) -> Result<Self, PgError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "pgquorum-{purpose}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let path = std::env::temp_dir().join(unique);
        // create_new: never follow or reuse a file someone planted at that name.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| PgError::io("create", &path, e))?;
        let secret = SecretFile { path };
        file.write_all(contents.as_bytes())
            .map_err(|e| PgError::io("write", &secret.path, e))?;
        user.give(&secret.path)?;
        Ok(secret)
    }

    /// A pgpass file for `username` when there is a password to pass (`None` otherwise).
    pub fn pgpass(user: &OsUser, username: &str, password: Option<&str>) -> Result<Option<Self>, PgError> {
        password
            .map(|p| SecretFile::create(user, "pgpass", &pgpass_line(username, p)))
            .transpose()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Write the lasting pgpass file `primary_conninfo` names as its `passfile` (the replication
/// password, so it is not inline in `postgresql.auto.conf`): mode 0600, owned by the OS user
/// PostgreSQL runs as, replaced atomically and only when its contents change.
pub fn write_pgpass(user: &OsUser, path: &Path, username: &str, password: &str) -> Result<(), PgError> {
    let contents = pgpass_line(username, password);
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    let temporary = PathBuf::from(name);
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| PgError::io("create", &temporary, e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| PgError::io("write", &temporary, e))?;
    user.give(&temporary)?;
    std::fs::rename(&temporary, path).map_err(|e| PgError::io("rename", path, e))
}

/// A `.pgpass` line matching any host, port and database for `user` (the file is dedicated
/// to one program run); `:` and `\` are escaped as libpq expects.
pub fn pgpass_line(user: &str, password: &str) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:*:{}:{}\n", escape(user), escape(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_escapes_separators() {
        assert_eq!(pgpass_line("rep", "a:b\\c"), "*:*:*:rep:a\\:b\\\\c\n");
    }

    #[test]
    fn lasting_pgpass_is_private_and_rewritten_on_change() {
        use std::os::unix::fs::PermissionsExt;
        let user = OsUser::for_agent(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg.pgpass");
        write_pgpass(&user, &path, "repl", "one").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "*:*:*:repl:one\n");
        write_pgpass(&user, &path, "repl", "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "*:*:*:repl:two\n");
    }

    #[test]
    fn secret_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let user = OsUser::for_agent(None).unwrap();
        let path = {
            let file = SecretFile::create(&user, "test", "hush").unwrap();
            let meta = std::fs::metadata(file.path()).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "hush");
            file.path().to_path_buf()
        };
        assert!(!path.exists());
    }
}
