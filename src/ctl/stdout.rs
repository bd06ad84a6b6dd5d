//! The CLI's standard output. A reader that went away (`pgquorumctl list | head`) ends the
//! command quietly with the status a Unix filter killed by SIGPIPE has (141), instead of the
//! panic `println!` gives. (Restoring SIGPIPE's default action is not an option: the gRPC
//! client's own socket writes would then kill the process when a server hangs up.)

use std::io::{ErrorKind, Write};

/// The exit status of a process killed by SIGPIPE, as shells report it.
pub const BROKEN_PIPE_STATUS: i32 = 128 + 13;

/// Write `text` (and a newline if `newline`) to stdout and flush it.
pub fn print(text: &str, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = if newline {
        writeln!(out, "{text}")
    } else {
        write!(out, "{text}")
    }
    .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        // Anything else (a full disk behind a redirect) is worth saying.
        eprintln!("Error: writing the output failed: {e}");
        std::process::exit(1);
    }
}
