//! A data directory about to be filled from scratch (initdb, base backup): it must be missing
//! or empty, is prepared for the PostgreSQL OS user, and on failure is put back exactly as it
//! was: directories this code created are removed, an existing empty directory is emptied
//! again and gets its owner and mode back. Nothing else is ever deleted.
//!
//! The undo also runs when the guard is dropped without [`FreshDataDir::commit`], so a
//! cancelled initdb or base backup (its program is killed on drop) does not leave a
//! half-written directory behind.

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::data_dir::DataDirState;
use super::error::PgError;
use super::os_user::{remove_created_dirs, OsUser};

pub(crate) struct FreshDataDir {
    path: PathBuf,
    /// Directories created here, outermost first (empty when the directory existed).
    created: Vec<PathBuf>,
    /// Owner, group and mode of a directory that existed, to restore on failure.
    original: Option<(u32, u32, u32)>,
    committed: bool,
}

impl FreshDataDir {
    /// `state` is the directory's current state; anything but Missing/Empty is refused.
    pub(crate) fn prepare(
        path: &Path,
        state: DataDirState,
        user: &OsUser,
        operation: &'static str,
    ) -> Result<Self, PgError> {
        let fresh = match state {
            DataDirState::Missing => FreshDataDir {
                path: path.to_path_buf(),
                created: user.create_dir_all(path, 0o700)?,
                original: None,
                committed: false,
            },
            DataDirState::Empty => {
                let meta = std::fs::metadata(path).map_err(|e| PgError::io("inspect", path, e))?;
                let fresh = FreshDataDir {
                    path: path.to_path_buf(),
                    created: Vec::new(),
                    original: Some((meta.uid(), meta.gid(), meta.mode() & 0o7777)),
                    committed: false,
                };
                user.give(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| PgError::io("set the mode of", path, e))?;
                fresh
            }
            _ => {
                return Err(PgError::DataDirNotEmpty {
                    operation,
                    path: path.to_path_buf(),
                })
            }
        };
        if !user.can_write_dir(path) {
            return Err(PgError::NotWritable {
                path: path.to_path_buf(),
                user: user.name.clone(),
            });
        }
        Ok(fresh)
    }

    /// The directory now holds a complete cluster: keep it.
    pub(crate) fn commit(mut self) {
        self.committed = true;
    }

    /// Puts the directory back as it was before [`FreshDataDir::prepare`].
    fn undo(&self) {
        clear_directory(&self.path);
        if let Some((uid, gid, mode)) = self.original {
            let _ = chown(&self.path, Some(uid), Some(gid));
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(mode));
        }
        remove_created_dirs(&self.created);
    }
}

impl Drop for FreshDataDir {
    fn drop(&mut self) {
        if !self.committed {
            self.undo();
        }
    }
}

/// Removes everything inside `dir` (only called on a directory this code found empty).
fn clear_directory(dir: &Path) {
    // Failures are logged by remove_contents; the undo carries on regardless.
    let _ = remove_contents(dir);
}

/// Removes everything inside `dir`, keeping `dir` itself (its owner and mode stay as they
/// are). Symbolic links are removed, never followed, so nothing outside `dir` is deleted.
/// Carries on past a failure to remove as much as it can, then returns the first failure.
pub(crate) fn remove_contents(dir: &Path) -> Result<(), PgError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PgError::io("list", dir, e))?;
    let mut first_failure = None;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                first_failure.get_or_insert(PgError::io("list", dir, e));
                continue;
            }
        };
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        if let Err(e) = removed {
            tracing::warn!(path = %path.display(), error = %e, "could not remove from the data directory");
            first_failure.get_or_insert(PgError::io("remove", path, e));
        }
    }
    first_failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> OsUser {
        let mut user = OsUser::for_agent(None).unwrap();
        user.switch_user = false;
        user
    }

    #[test]
    fn undo_removes_only_what_was_created() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("a").join("b");
        let fresh = FreshDataDir::prepare(&target, DataDirState::Missing, &me(), "test").unwrap();
        std::fs::write(target.join("f"), "x").unwrap();
        drop(fresh);
        assert!(!root.path().join("a").exists());
        assert!(root.path().exists());
    }

    #[test]
    fn undo_empties_and_restores_an_existing_directory() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("data");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fresh = FreshDataDir::prepare(&target, DataDirState::Empty, &me(), "test").unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o700);
        std::fs::create_dir(target.join("base")).unwrap();
        drop(fresh);
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o755);
    }

    #[test]
    fn commit_keeps_the_contents() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("data");
        let fresh = FreshDataDir::prepare(&target, DataDirState::Missing, &me(), "test").unwrap();
        std::fs::write(target.join("PG_VERSION"), "15").unwrap();
        fresh.commit();
        assert!(target.join("PG_VERSION").exists());
    }

    #[test]
    fn remove_contents_keeps_the_directory_and_does_not_follow_links() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("data");
        let elsewhere = root.path().join("wal");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("000000010000000000000001"), "wal").unwrap();
        std::fs::create_dir_all(target.join("base").join("1")).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(target.join("PG_VERSION"), "15\n").unwrap();
        std::fs::write(target.join("base").join("1").join("1259"), "x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, target.join("pg_wal")).unwrap();

        remove_contents(&target).unwrap();
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o700);
        assert!(elsewhere.join("000000010000000000000001").exists());

        let err = remove_contents(&root.path().join("nope")).unwrap_err();
        assert!(err.to_string().starts_with("cannot list"), "{err}");
    }

    #[test]
    fn refuses_anything_else() {
        let err = FreshDataDir::prepare(
            Path::new("/x"),
            DataDirState::NotPostgres("y".into()),
            &me(),
            "initdb",
        )
        .err()
        .unwrap();
        assert_eq!(err.to_string(), "initdb refused: /x is not empty");
    }
}
