//! One thing wrong with a configuration, tied to the key it concerns.

use std::fmt;

/// A single problem found while loading a configuration.
///
/// Problems are collected rather than returned one at a time, so an operator fixing a file sees
/// everything that is wrong with it in one run instead of one error per restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Dotted key path (`raft.partner_addrs[1]`), an environment variable name, or empty for
    /// problems with the file as a whole.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Appends `name` to a dotted key path.
pub(crate) fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}
