//! Opening `raft.data_dir`: one sled database holding the Raft log, the vote and the state
//! machine, stamped with the identity of the cluster and node it belongs to.
//!
//! The identity check is what keeps a copied or mis-configured directory from being
//! merged into the wrong cluster: a directory that belongs to another `scope` or another
//! node is refused and left untouched.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::NodeId;

/// Who a data directory belongs to. Written once, when the directory is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster: String,
    pub node_id: NodeId,
    pub self_addr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("raft.data_dir {path}: cannot create the directory: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error(
        "raft.data_dir {path} is not empty and holds no pgquorum Raft data (found {found:?}); \
         refusing to use it — point raft.data_dir at an empty or pgquorum directory"
    )]
    Foreign { path: PathBuf, found: String },
    #[error("raft.data_dir {path} cannot be opened (corrupt or locked by another running agent?): {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error(
        "raft.data_dir {path} belongs to cluster {:?} node {} ({}), but this config is cluster {:?} \
         node {} ({}); refusing to use it, nothing was changed",
        found.cluster, found.self_addr, found.node_id, expected.cluster, expected.self_addr, expected.node_id
    )]
    OtherOwner {
        path: PathBuf,
        found: Identity,
        expected: Identity,
    },
    #[error("raft.data_dir {path}: the identity record is unreadable (corrupt?): {detail}")]
    CorruptIdentity { path: PathBuf, detail: String },
    #[error(
        "raft.data_dir {path} holds Raft data but no {IDENTITY_FILE} file (damaged, or written by \
         something else); refusing to use it"
    )]
    MissingIdentity { path: PathBuf },
}

/// The opened database and its trees (one tree per concern).
#[derive(Clone)]
pub struct Storage {
    pub db: sled::Db,
    /// Raft log entries, keyed by big-endian index so that sled's order is log order.
    pub logs: sled::Tree,
    /// Vote, committed log id, last purged log id, identity.
    pub meta: sled::Tree,
    /// The applied state machine and the current snapshot.
    pub state: sled::Tree,
    pub path: PathBuf,
}

/// The identity file, read before sled opens anything so that a foreign directory is
/// refused without a single byte of it being touched.
const IDENTITY_FILE: &str = "pgquorum.identity";

/// Files sled keeps in its directory; anything else means the directory is not ours.
fn is_ours(name: &str) -> bool {
    name == IDENTITY_FILE
        || name == "db"
        || name == "conf"
        || name == "blobs"
        || name == "snap"
        || name.starts_with("snap.")
}

/// sled's page cache for an agent: the keyspace is tiny, so a small cache keeps it light.
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Who `path` belongs to, if it holds a readable identity file; read-only. The witness
/// controller started without `scope` takes its cluster name from here on a restart.
pub fn stored_identity(path: &Path) -> Option<Identity> {
    let bytes = std::fs::read(path.join(IDENTITY_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Storage {
    pub fn open(path: &Path, expected: &Identity) -> Result<Storage, OpenError> {
        Self::open_with_cache(path, expected, DEFAULT_CACHE_BYTES)
    }

    /// [`Storage::open`] with sled's page cache limited to `cache_bytes`.
    pub fn open_with_cache(path: &Path, expected: &Identity, cache_bytes: u64) -> Result<Storage, OpenError> {
        let path = path.to_path_buf();
        let create_err = |source| OpenError::Create {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(create_err)?;
        let entries: Vec<String> = std::fs::read_dir(&path)
            .map_err(create_err)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if let Some(stranger) = entries.iter().find(|n| !is_ours(n)) {
            return Err(OpenError::Foreign {
                path,
                found: stranger.clone(),
            });
        }
        let identity_path = path.join(IDENTITY_FILE);
        if entries.iter().any(|n| n == IDENTITY_FILE) {
            let bytes = std::fs::read(&identity_path).map_err(create_err)?;
            let found: Identity = serde_json::from_slice(&bytes).map_err(|e| OpenError::CorruptIdentity {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            if &found != expected {
                return Err(OpenError::OtherOwner {
                    path,
                    found,
                    expected: expected.clone(),
                });
            }
        } else if entries.is_empty() {
            write_identity(&identity_path, expected).map_err(create_err)?;
        } else {
            return Err(OpenError::MissingIdentity { path });
        }

        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|source| OpenError::Sled {
                path: path.clone(),
                source,
            })?;
        let tree = |name: &str| {
            db.open_tree(name).map_err(|source| OpenError::Sled {
                path: path.clone(),
                source,
            })
        };
        Ok(Storage {
            logs: tree("logs")?,
            meta: tree("meta")?,
            state: tree("state")?,
            db: db.clone(),
            path,
        })
    }
}

/// Write the identity durably (temp file, fsync, rename) before any Raft data exists.
fn write_identity(path: &Path, identity: &Identity) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(identity).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file's name and content.
    fn snapshot_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        files.sort();
        files
    }

    fn id(cluster: &str, addr: &str) -> Identity {
        Identity {
            cluster: cluster.into(),
            node_id: super::super::node_id_for(addr),
            self_addr: addr.into(),
        }
    }

    #[test]
    fn reopening_with_the_same_identity_works() {
        let dir = tempfile::tempdir().unwrap();
        let me = id("demo", "127.0.0.1:2401");
        drop(Storage::open(dir.path(), &me).unwrap());
        Storage::open(dir.path(), &me).unwrap();
    }

    #[test]
    fn another_clusters_directory_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), &id("prod", "127.0.0.1:2401")).unwrap();
        s.logs.insert(1u64.to_be_bytes(), b"x".to_vec()).unwrap();
        s.db.flush().unwrap();
        drop(s);
        let before = snapshot_of(dir.path());
        let err = Storage::open(dir.path(), &id("demo", "127.0.0.1:2401"))
            .err()
            .unwrap();
        assert_eq!(
            snapshot_of(dir.path()),
            before,
            "a refused open must not touch a byte"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("belongs to cluster \"prod\"") && msg.contains("\"demo\""),
            "{msg}"
        );
        let s = Storage::open(dir.path(), &id("prod", "127.0.0.1:2401")).unwrap();
        assert_eq!(s.logs.len(), 1, "the refused open must not change anything");
    }

    #[test]
    fn another_nodes_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Storage::open(dir.path(), &id("demo", "127.0.0.1:2401")).unwrap());
        let err = Storage::open(dir.path(), &id("demo", "127.0.0.1:2402"))
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::OtherOwner { .. }), "{err}");
    }

    #[test]
    fn a_directory_with_other_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("PG_VERSION"), "15").unwrap();
        let err = Storage::open(dir.path(), &id("demo", "127.0.0.1:2401"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("PG_VERSION"), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing was written"
        );
    }

    #[test]
    fn a_corrupt_database_gives_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(Storage::open(dir.path(), &id("demo", "127.0.0.1:2401")).unwrap());
        std::fs::write(dir.path().join("conf"), b"garbage that is not a sled config").unwrap();
        let err = Storage::open(dir.path(), &id("demo", "127.0.0.1:2401"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("cannot be opened"), "{err}");
    }

    #[test]
    fn raft_data_without_an_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Storage::open(dir.path(), &id("demo", "127.0.0.1:2401")).unwrap());
        std::fs::remove_file(dir.path().join(IDENTITY_FILE)).unwrap();
        let err = Storage::open(dir.path(), &id("demo", "127.0.0.1:2401"))
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::MissingIdentity { .. }), "{err}");
    }
}
