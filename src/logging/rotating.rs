//! A size-rotated log file, as Python's `RotatingFileHandler` (Patroni's `log.dir`,
//! `log.file_size`, `log.file_num`): before a line would take the file past `max_bytes`, the
//! file is renamed `NAME.1` (`NAME.1` → `NAME.2` … and `NAME.<file_num>` is dropped), and a new
//! file is started. Our own rather than `tracing-appender`'s, which rotates by time only.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

/// The file name inside `log.dir` (Patroni writes `patroni.log`).
pub const FILE_NAME: &str = "pgquorum.log";

/// Patroni's defaults: four old files of 25 MB.
pub const DEFAULT_FILE_SIZE: u64 = 25_000_000;
pub const DEFAULT_FILE_NUM: u64 = 4;

struct State {
    file: File,
    size: u64,
}

/// Shared by every thread that logs; one line is written whole under the lock, so lines from
/// two threads never interleave and a rotation never splits a line.
#[derive(Clone)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    backups: u64,
    state: Arc<Mutex<State>>,
}

impl RotatingFile {
    /// Opens (appending) `<dir>/pgquorum.log`, creating `dir` if needed. As in Python,
    /// `max_bytes` or `backups` 0 never rotates.
    pub fn open(dir: &Path, max_bytes: u64, backups: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes,
            backups,
            state: Arc::new(Mutex::new(State { file, size })),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn backup(&self, n: u64) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&self, state: &mut State) -> io::Result<()> {
        state.file.flush()?;
        for n in (1..self.backups).rev() {
            let from = self.backup(n);
            if from.exists() {
                std::fs::rename(&from, self.backup(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.backup(1))?;
        state.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        state.size = 0;
        Ok(())
    }

    /// Writes one whole line (or the buffer a formatter hands over for one event).
    fn write_record(&self, buf: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let len = buf.len() as u64;
        // Python's test: rotate when the record would bring the file to `max_bytes` or more
        // (an empty file takes the record whatever its size).
        let rotates = self.max_bytes > 0 && self.backups > 0;
        if rotates && state.size > 0 && state.size + len >= self.max_bytes {
            self.rotate(&mut state)?;
        }
        state.file.write_all(buf)?;
        state.size += len;
        Ok(())
    }
}

/// One event's output, buffered so the file sees it in one write (see [`RotatingFile`]).
pub struct RecordWriter<'a> {
    target: &'a RotatingFile,
    buf: Vec<u8>,
}

impl Write for RecordWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RecordWriter<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            // Nowhere to report a failed log write but stderr.
            if let Err(e) = self.target.write_record(&self.buf) {
                eprintln!("cannot write to {}: {e}", self.target.path.display());
            }
        }
    }
}

impl<'a> MakeWriter<'a> for RotatingFile {
    type Writer = RecordWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        RecordWriter {
            target: self,
            buf: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_line(file: &RotatingFile, line: &str) {
        let mut w = file.make_writer();
        w.write_all(line.as_bytes()).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotation_keeps_at_most_file_num_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = RotatingFile::open(dir.path(), 101, 3).unwrap();
        // 10-byte lines: 10 fit a file (the 11th would reach 101), 100 lines make 10 files.
        for i in 0..100 {
            write_line(&file, &format!("line {i:04}\n"));
        }
        assert_eq!(
            names(dir.path()),
            [
                "pgquorum.log",
                "pgquorum.log.1",
                "pgquorum.log.2",
                "pgquorum.log.3"
            ]
        );
        for name in names(dir.path()) {
            let len = std::fs::metadata(dir.path().join(&name)).unwrap().len();
            assert!(len < 101, "{name} has {len} bytes");
        }
        // Newest in the file, then .1, .2, .3 older and older, no line split or lost between them.
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let all = [".3", ".2", ".1", ""]
            .iter()
            .map(|s| read(&format!("pgquorum.log{s}")))
            .collect::<String>();
        let expected: String = (60..100).map(|i| format!("line {i:04}\n")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tempfile::tempdir().unwrap();
        let file = RotatingFile::open(dir.path(), 25, 1).unwrap();
        write_line(&file, "first line 01234567\n");
        drop(file);
        let file = RotatingFile::open(dir.path(), 25, 1).unwrap();
        write_line(&file, "second line\n");
        assert_eq!(names(dir.path()), ["pgquorum.log", "pgquorum.log.1"]);
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("pgquorum.log.1"), "first line 01234567\n");
        assert_eq!(read("pgquorum.log"), "second line\n");
    }

    #[test]
    fn no_backups_or_no_size_never_rotates() {
        for (size, backups) in [(15, 0), (0, 3)] {
            let dir = tempfile::tempdir().unwrap();
            let file = RotatingFile::open(dir.path(), size, backups).unwrap();
            write_line(&file, "0123456789\n");
            write_line(&file, "abcdefghij\n");
            assert_eq!(names(dir.path()), ["pgquorum.log"]);
            assert_eq!(
                std::fs::read_to_string(file.path()).unwrap(),
                "0123456789\nabcdefghij\n"
            );
        }
    }
}
