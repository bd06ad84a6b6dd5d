//! The OS user PostgreSQL runs as.
//!
//! PostgreSQL refuses to run as root. When the agent is root, every PostgreSQL program is
//! started with this user's uid/gid (and no supplementary groups: std drops them when a root
//! process switches uid), and every directory or file the agent creates for PostgreSQL is
//! chowned to it. When the agent is not root, PostgreSQL runs as the agent's own user and no
//! switching or chowning happens.

use std::ffi::{CStr, CString};
use std::os::unix::fs::{chown, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::PgError;

/// Default OS user when the agent runs as root.
pub const DEFAULT_RUN_AS: &str = "postgres";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// True when the agent is root and must switch to this user for PostgreSQL programs.
    pub switch_user: bool,
}

impl OsUser {
    /// The user PostgreSQL will run as: `run_as` (default `postgres`) when the agent is root,
    /// the agent's own user otherwise.
    pub fn for_agent(run_as: Option<&str>) -> Result<OsUser, PgError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            let name = run_as.unwrap_or(DEFAULT_RUN_AS);
            let mut user = lookup_by_name(name)?;
            if user.uid == 0 {
                return Err(PgError::OsUser {
                    user: name.to_string(),
                    reason: "is root; PostgreSQL refuses to run as root, name an unprivileged user".into(),
                });
            }
            user.switch_user = true;
            Ok(user)
        } else {
            let user = lookup_by_uid(euid)?;
            if let Some(wanted) = run_as {
                if wanted != user.name {
                    tracing::warn!(
                        wanted,
                        actual = %user.name,
                        "the agent is not root, so PostgreSQL runs as the agent's own OS user"
                    );
                }
            }
            Ok(user)
        }
    }

    /// Makes `command` run as this user: uid/gid when switching, and always a HOME of this
    /// user and `/` as working directory (the agent's own directory may be unreadable to it).
    pub fn apply(&self, command: &mut tokio::process::Command) {
        if self.switch_user {
            command.uid(self.uid).gid(self.gid);
        }
        command.env("HOME", &self.home).current_dir("/");
    }

    /// Same as [`OsUser::apply`] for a blocking `std` command.
    pub fn apply_std(&self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        if self.switch_user {
            command.uid(self.uid).gid(self.gid);
        }
        command.env("HOME", &self.home).current_dir("/");
    }

    /// Gives `path` to this user (no-op unless switching users).
    pub fn give(&self, path: &Path) -> Result<(), PgError> {
        if self.switch_user {
            chown(path, Some(self.uid), Some(self.gid)).map_err(|e| PgError::io("chown", path, e))?;
        }
        Ok(())
    }

    /// Creates `dir` and any missing parents with `mode`, owned by this user. Returns the
    /// directories it created, outermost first, so a failed operation can remove exactly those.
    pub fn create_dir_all(&self, dir: &Path, mode: u32) -> Result<Vec<PathBuf>, PgError> {
        let mut missing = Vec::new();
        let mut cursor = Some(dir);
        while let Some(path) = cursor {
            if path.exists() {
                break;
            }
            missing.push(path.to_path_buf());
            cursor = path.parent();
        }
        missing.reverse();
        let mut created = Vec::new();
        for path in &missing {
            match std::fs::DirBuilder::new().mode(mode).create(path) {
                Ok(()) => created.push(path.clone()),
                // Someone else made it meanwhile: not ours to remove or chown.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    remove_created_dirs(&created);
                    return Err(PgError::io("create directory", path, e));
                }
            }
            // The umask may have narrowed the mode; the data directory must be exactly 0700.
            let set = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| PgError::io("set the mode of", path, e))
                .and_then(|()| self.give(path));
            if let Err(e) = set {
                remove_created_dirs(&created);
                return Err(e);
            }
        }
        Ok(created)
    }

    /// Whether this user can create files in `dir` (checked as that user, so group membership
    /// and parent directory permissions count exactly as they will for PostgreSQL).
    pub fn can_write_dir(&self, dir: &Path) -> bool {
        if self.switch_user {
            let mut probe = std::process::Command::new("/bin/sh");
            probe
                .arg("-c")
                .arg("test -d \"$1\" && test -w \"$1\" && test -x \"$1\"")
                .arg("sh")
                .arg(dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            self.apply_std(&mut probe);
            probe.status().map(|s| s.success()).unwrap_or(false)
        } else {
            let Ok(path) = CString::new(dir.as_os_str().as_encoded_bytes()) else {
                return false;
            };
            // SAFETY: `path` is a valid NUL-terminated string.
            unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
        }
    }
}

/// Removes directories made by [`OsUser::create_dir_all`], innermost first, only while empty.
pub fn remove_created_dirs(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        if let Err(e) = std::fs::remove_dir(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a directory the agent created");
        }
    }
}

/// Looks up an OS user by name (`getpwnam_r`).
pub fn lookup_by_name(name: &str) -> Result<OsUser, PgError> {
    let c_name = CString::new(name).map_err(|_| PgError::OsUser {
        user: name.to_string(),
        reason: "the name contains a NUL byte".into(),
    })?;
    lookup(name, |pwd, buf, result| {
        // SAFETY: all pointers are valid for the duration of the call; buf's length is passed.
        unsafe { libc::getpwnam_r(c_name.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

fn lookup_by_uid(uid: u32) -> Result<OsUser, PgError> {
    lookup(&format!("uid {uid}"), |pwd, buf, result| {
        // SAFETY: as above.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

fn lookup(
    label: &str,
    call: impl Fn(&mut libc::passwd, &mut Vec<libc::c_char>, &mut *mut libc::passwd) -> libc::c_int,
) -> Result<OsUser, PgError> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: passwd is plain old data; an all-zero value is a valid placeholder.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, &mut buf, &mut result);
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            let bigger = buf.len() * 4;
            buf.resize(bigger, 0);
            continue;
        }
        if rc != 0 {
            return Err(PgError::OsUser {
                user: label.to_string(),
                reason: format!("lookup failed: {}", std::io::Error::from_raw_os_error(rc)),
            });
        }
        if result.is_null() {
            return Err(PgError::OsUser {
                user: label.to_string(),
                reason: "no such user on this machine".into(),
            });
        }
        // SAFETY: on success pw_name and pw_dir point to NUL-terminated strings inside buf.
        let (name, home) = unsafe {
            (
                CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
                CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned(),
            )
        };
        return Ok(OsUser {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home),
            switch_user: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root_and_rejects_unknown_users() {
        let root = lookup_by_name("root").unwrap();
        assert_eq!(root.uid, 0);
        let err = lookup_by_name("pgquorum-no-such-user").unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
    }

    #[test]
    fn the_agent_user_is_never_root() {
        if let Ok(user) = OsUser::for_agent(None) {
            assert!(user.uid != 0 || !user.switch_user);
        }
    }
}
