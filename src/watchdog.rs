//! Patroni's `watchdog`: a Linux watchdog device (`/dev/watchdog`, hardware or the kernel's
//! `softdog`) that resets the whole machine when the agent stops sending keepalives, so a
//! primary whose agent froze, or whose machine hangs, stops accepting writes before its lease
//! can pass to another member.
//!
//! Patroni's rules, kept here:
//! - `mode: off` never touches the device; `automatic` uses it when it can be opened and set up,
//!   and carries on without it otherwise; `required` makes the node refuse to become primary
//!   without it ([`Watchdog::open`] returns an error, the HA loop does not promote).
//! - The device is armed just before promoting and disarmed after demoting or on a clean
//!   shutdown. Opening the device arms it; disarming writes the "magic close" character `V`
//!   before closing, so closing does not reboot the machine.
//! - Timeout: `ttl - safety_margin` seconds, or `ttl / 2` (rounded down) with
//!   `safety_margin: -1`. The agent sends a keepalive right after each lease renewal, so the
//!   machine resets at the latest `safety_margin` seconds before the lease can expire.
//! - A device that keeps a longer timeout than asked (some hardware has a fixed one) is unsafe:
//!   an error in `required` mode, a warning in `automatic` mode.
//!
//! - `driver: testing` is Patroni's test harness: the device (a named pipe or a plain file) gets
//!   no ioctls; arming writes `Ctimeout=<seconds>` and a newline, each keepalive `1`, the
//!   disarm `V`. It makes the watchdog path observable without a device; it resets nothing.
//!
//! Not kept: Patroni also refuses a watchdog whose timeout is shorter than `loop_wait` and
//! warns when `ttl < 2 × loop_wait`; this module does not know `loop_wait`. A kernel built or
//! loaded with `nowayout` ignores the magic close: then every agent stop reboots the machine
//! after the timeout.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use thiserror::Error;

use crate::config::{WatchdogConfig, WatchdogDriver, WatchdogMode};

// The ioctls of the Linux watchdog API (include/uapi/linux/watchdog.h), all of type 'W'. An
// ioctl number packs direction, size of the argument, type and number:
//   _IOR(type, nr, T)  = ioc(READ, type, nr, sizeof(T))
//   _IOWR(type, nr, T) = ioc(READ | WRITE, type, nr, sizeof(T))
// with ioc(dir, type, nr, size) = dir << DIRSHIFT | size << 16 | type << 8 | nr. Most
// architectures (asm-generic/ioctl.h: x86, arm, arm64, riscv, s390, loongarch) have a 14-bit
// size, DIRSHIFT 30, READ 2 and WRITE 1; powerpc, mips, sparc and alpha have a 13-bit size,
// DIRSHIFT 29, READ 2 and WRITE 4.
#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
mod ioc {
    pub const DIRSHIFT: u32 = 30;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 1;
}
#[cfg(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
mod ioc {
    pub const DIRSHIFT: u32 = 29;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 4;
}

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << ioc::DIRSHIFT) | ((size as u32) << 16) | ((b'W' as u32) << 8) | nr
}

/// `struct watchdog_info`: what the driver supports and who it is.
#[repr(C)]
#[derive(Default)]
struct WatchdogInfo {
    options: u32,
    firmware_version: u32,
    identity: [u8; 32],
}

/// `_IOR('W', 0, struct watchdog_info)`.
const WDIOC_GETSUPPORT: u32 = ioc(ioc::READ, 0, std::mem::size_of::<WatchdogInfo>());
/// `_IOWR('W', 6, int)`: set the timeout in seconds; the driver writes back what it set.
const WDIOC_SETTIMEOUT: u32 = ioc(ioc::READ | ioc::WRITE, 6, std::mem::size_of::<libc::c_int>());
/// `_IOR('W', 7, int)`: the timeout in force.
const WDIOC_GETTIMEOUT: u32 = ioc(ioc::READ, 7, std::mem::size_of::<libc::c_int>());
/// `watchdog_info.options` bit: the timeout can be set.
const WDIOF_SETTIMEOUT: u32 = 0x0080;
/// `watchdog_info.options` bit: writing `V` before closing stops the watchdog.
const WDIOF_MAGICCLOSE: u32 = 0x0100;
// Keepalives are written (any byte but `V`), which every driver accepts; the WDIOC_KEEPALIVE
// ioctl (`_IOR('W', 5, int)`) is refused by drivers without WDIOF_KEEPALIVEPING.

#[derive(Debug, Error)]
pub enum WatchdogError {
    #[error("watchdog.safety_margin {safety_margin} leaves no watchdog timeout within ttl {ttl} s")]
    NoTimeout { ttl: u64, safety_margin: i64 },
    #[error("{0}")]
    Unusable(String),
    #[error("cannot open watchdog device {}: {source}", device.display())]
    Open {
        device: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a usable watchdog device: {op} failed: {source}", device.display())]
    Ioctl {
        device: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "watchdog device {} keeps a timeout of {actual} s, longer than the {wanted} s that is safe \
         (ttl - safety_margin)",
        device.display()
    )]
    UnsafeTimeout {
        device: PathBuf,
        wanted: u64,
        actual: u64,
    },
    #[error("writing to watchdog device {}: {source}", device.display())]
    Write {
        device: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Patroni's watchdog timeout: `ttl - safety_margin`, or `ttl / 2` when `safety_margin` is -1.
/// `None` when that leaves no positive timeout.
pub fn timeout_secs(config: &WatchdogConfig, ttl_secs: u64) -> Option<u64> {
    let timeout = match config.safety_margin {
        -1 => ttl_secs / 2,
        margin => u64::try_from(i128::from(ttl_secs) - i128::from(margin)).ok()?,
    };
    (timeout > 0).then_some(timeout)
}

/// What the lease timings demand of the watchdog timeout, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseBounds {
    pub ttl_ms: u64,
    pub loop_wait_ms: u64,
    /// `worst_case_election_ms(election_timeout_ms, heartbeat_interval_ms)`.
    pub worst_election_ms: u64,
}

impl LeaseBounds {
    pub fn new(dynamic: &crate::config::DynamicConfig, raft: &crate::config::RaftConfig) -> LeaseBounds {
        LeaseBounds {
            ttl_ms: dynamic.ttl_ms(),
            loop_wait_ms: dynamic.loop_wait_ms(),
            worst_election_ms: crate::config::worst_case_election_ms(
                raft.election_timeout_ms,
                raft.heartbeat_interval_ms,
            ),
        }
    }
}

/// The watchdog this configuration gives under these lease timings (`GET /patroni` shows it
/// as `watchdog`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Plan {
    /// `mode: off`.
    Off,
    /// Armed with this timeout when this node holds the lease.
    Timeout { timeout: u64 },
    /// Armed now (this node holds the lease), with the timeout the device reports.
    Armed { timeout: u64 },
    /// No safe timeout: `automatic` runs without a watchdog, `required` never becomes primary.
    Unusable { reason: String },
}

/// The effective timeout (Patroni's `ttl − safety_margin`, whole seconds) checked against the
/// lease: it must end before the lease does (`< ttl`), and it must outlast what the primary's
/// keepalives may legitimately wait for — they follow its lease renewals, which a Raft
/// re-election may stall, so `≥ loop_wait + the longest Raft re-election` (else an election
/// alone resets the primary's machine). When it does not fit, the reason names the numbers and
/// a `safety_margin` that fits, if any.
pub fn plan(config: &WatchdogConfig, bounds: LeaseBounds) -> Plan {
    if config.mode == WatchdogMode::Off {
        return Plan::Off;
    }
    let ttl = crate::config::timing::secs(bounds.ttl_ms as i64);
    let shortest_ms = bounds.loop_wait_ms + bounds.worst_election_ms;
    let derivation = match config.safety_margin {
        -1 => "ttl / 2, safety_margin -1".to_string(),
        m => format!("ttl {ttl} s − safety_margin {m} s, in whole seconds"),
    };
    let problem = match timeout_secs(config, bounds.ttl_ms / 1000) {
        None => format!(
            "watchdog.safety_margin {} s leaves no watchdog timeout within ttl {ttl} s",
            config.safety_margin
        ),
        Some(t) if t * 1000 >= bounds.ttl_ms => format!(
            "the watchdog timeout of {t} s ({derivation}) does not end before the lease (ttl {ttl} s): it \
             would reset the machine only after another member may have taken over"
        ),
        Some(t) if t * 1000 < shortest_ms => format!(
            "the watchdog timeout of {t} s ({derivation}) is shorter than loop_wait ({} s) + the longest \
             Raft re-election ({} ms) = {} s: keepalives follow lease renewals, which a Raft election may \
             stall that long, so an election alone would reset the primary's machine",
            crate::config::timing::secs(bounds.loop_wait_ms as i64),
            bounds.worst_election_ms,
            crate::config::timing::secs(shortest_ms as i64)
        ),
        Some(t) => return Plan::Timeout { timeout: t },
    };
    // The shortest whole-second timeout that fits, as a safety margin.
    let fits = shortest_ms.div_ceil(1000).max(1);
    let advice = if fits * 1000 < bounds.ttl_ms {
        format!(
            "; watchdog.safety_margin: {} gives a timeout of {fits} s, which fits",
            bounds.ttl_ms / 1000 - fits
        )
    } else {
        format!(
            "; no whole-second timeout is both at least {} s and below ttl {ttl} s: raise ttl",
            crate::config::timing::secs(shortest_ms as i64)
        )
    };
    Plan::Unusable {
        reason: problem + &advice,
    }
}

/// What `GET /patroni` shows as `watchdog`: the armed device, or the [`plan`].
pub fn status(config: &WatchdogConfig, bounds: LeaseBounds, armed: Option<&Watchdog>) -> Plan {
    match armed {
        Some(w) => Plan::Armed {
            timeout: w.timeout_secs(),
        },
        None => plan(config, bounds),
    }
}

/// What `/patroni` reports as `watchdog_failed: true` (Patroni's `is_healthy` negated): in
/// `required` mode, the device cannot be written or the timeout leaves the HA loop no time
/// (`timeout < loop_wait`). Always false in the other modes. Such a member does not take part
/// in the leader race.
pub fn watchdog_failed(config: &WatchdogConfig, ttl_secs: u64, loop_wait_secs: u64) -> bool {
    if config.mode != WatchdogMode::Required {
        return false;
    }
    let slack_ok = timeout_secs(config, ttl_secs).is_some_and(|timeout| timeout >= loop_wait_secs);
    !(slack_ok && writable(&config.device))
}

fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) with a NUL-terminated path.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// The last problem `automatic` mode logged, so a device that stays unusable is reported at
/// WARN once, not at every promotion.
static LAST_AUTOMATIC_WARNING: Mutex<Option<String>> = Mutex::new(None);

fn warn_once(message: String) {
    let mut last = LAST_AUTOMATIC_WARNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.as_deref() == Some(message.as_str()) {
        tracing::debug!("{message}");
    } else {
        tracing::warn!("{message}");
        *last = Some(message);
    }
}

/// An open, armed watchdog device. Call [`Watchdog::keepalive`] after every lease renewal;
/// dropping it (or [`Watchdog::disable`]) disarms it.
#[derive(Debug)]
pub struct Watchdog {
    /// `None` once disabled.
    file: Option<File>,
    device: PathBuf,
    identity: String,
    firmware_version: u32,
    magic_close: bool,
    /// The timeout in force, as the driver reports it.
    timeout_secs: u64,
    /// Whether the last keepalive reached the device.
    healthy: AtomicBool,
}

impl Watchdog {
    /// Arm the watchdog as `config` says, for a lease of `ttl_secs`: `Ok(None)` in `off` mode
    /// and, after one warning, in `automatic` mode when the device is missing or unusable; an
    /// error in `required` mode then (the node must not become primary).
    pub fn open(config: &WatchdogConfig, ttl_secs: u64) -> Result<Option<Watchdog>, WatchdogError> {
        let required = match config.mode {
            WatchdogMode::Off => return Ok(None),
            WatchdogMode::Automatic => false,
            WatchdogMode::Required => true,
        };
        let armed = Self::arm(config, ttl_secs).and_then(|watchdog| {
            let wanted = timeout_secs(config, ttl_secs).unwrap_or(0);
            if watchdog.timeout_secs <= wanted {
                return Ok(watchdog);
            }
            let unsafe_timeout = WatchdogError::UnsafeTimeout {
                device: config.device.clone(),
                wanted,
                actual: watchdog.timeout_secs,
            };
            if required {
                // Dropping `watchdog` disarms it.
                Err(unsafe_timeout)
            } else {
                warn_once(format!(
                    "{unsafe_timeout}; using it anyway (watchdog.mode: automatic)"
                ));
                Ok(watchdog)
            }
        });
        match armed {
            Ok(watchdog) => {
                *LAST_AUTOMATIC_WARNING
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                tracing::info!("{} activated", watchdog.describe());
                Ok(Some(watchdog))
            }
            Err(e) if required => Err(e),
            Err(e) => {
                warn_once(format!(
                    "{e}; running without a watchdog (watchdog.mode: automatic)"
                ));
                Ok(None)
            }
        }
    }

    /// [`Watchdog::open`] after checking the timeout against the lease ([`plan`]): an unusable
    /// timeout is an error in `required` mode and, after one WARNING naming the numbers, no
    /// watchdog in `automatic` mode.
    pub fn open_checked(
        config: &WatchdogConfig,
        bounds: LeaseBounds,
    ) -> Result<Option<Watchdog>, WatchdogError> {
        match plan(config, bounds) {
            Plan::Off => Ok(None),
            Plan::Timeout { .. } | Plan::Armed { .. } => Self::open(config, bounds.ttl_ms / 1000),
            Plan::Unusable { reason } if config.mode == WatchdogMode::Required => {
                Err(WatchdogError::Unusable(reason))
            }
            Plan::Unusable { reason } => {
                warn_once(format!(
                    "{reason}; running without a watchdog (watchdog.mode: automatic)"
                ));
                Ok(None)
            }
        }
    }

    /// Open the device, set and read back its timeout, send a first keepalive.
    fn arm(config: &WatchdogConfig, ttl_secs: u64) -> Result<Watchdog, WatchdogError> {
        let wanted = timeout_secs(config, ttl_secs).ok_or(WatchdogError::NoTimeout {
            ttl: ttl_secs,
            safety_margin: config.safety_margin,
        })?;
        let device = config.device.clone();
        let mut options = OpenOptions::new();
        // Write-only, close-on-exec (std's default), so no child keeps the device open.
        options.write(true);
        if config.driver == WatchdogDriver::Testing {
            // A named pipe without a reader must fail at once (ENXIO) rather than block the HA
            // loop, and a full one must fail a keepalive rather than block; a plain file keeps
            // everything ever written.
            use std::os::unix::fs::OpenOptionsExt;
            options.append(true).custom_flags(libc::O_NONBLOCK);
        }
        let file = options.open(&device).map_err(|source| WatchdogError::Open {
            device: device.clone(),
            source,
        })?;
        // From here the device is armed: returning an error drops `watchdog`, which disarms it.
        let mut watchdog = Watchdog {
            file: Some(file),
            device,
            identity: String::new(),
            firmware_version: 0,
            magic_close: false,
            timeout_secs: 0,
            healthy: AtomicBool::new(true),
        };
        match config.driver {
            WatchdogDriver::Default => watchdog.set_up_device(wanted)?,
            WatchdogDriver::Testing => {
                watchdog.identity = "Watchdog test harness".to_string();
                watchdog.magic_close = true;
                watchdog.write_all(format!("Ctimeout={wanted}\n").as_bytes())?;
                watchdog.timeout_secs = wanted;
            }
        }
        watchdog.keepalive()?;
        Ok(watchdog)
    }

    /// Read the device's identity, set its timeout to `wanted` where it allows, and read back
    /// the timeout in force.
    fn set_up_device(&mut self, wanted: u64) -> Result<(), WatchdogError> {
        let mut info = WatchdogInfo::default();
        self.ioctl(WDIOC_GETSUPPORT, "WDIOC_GETSUPPORT", &mut info)?;
        let name_len = info.identity.iter().position(|&b| b == 0).unwrap_or(32);
        self.identity = String::from_utf8_lossy(&info.identity[..name_len])
            .trim()
            .to_string();
        self.firmware_version = info.firmware_version;
        self.magic_close = info.options & WDIOF_MAGICCLOSE != 0;
        if info.options & WDIOF_SETTIMEOUT != 0 {
            let mut timeout = libc::c_int::try_from(wanted).unwrap_or(libc::c_int::MAX);
            self.ioctl(WDIOC_SETTIMEOUT, "WDIOC_SETTIMEOUT", &mut timeout)?;
        }
        let mut actual: libc::c_int = 0;
        self.ioctl(WDIOC_GETTIMEOUT, "WDIOC_GETTIMEOUT", &mut actual)?;
        self.timeout_secs = u64::try_from(actual).unwrap_or(0);
        Ok(())
    }

    fn ioctl<T>(&self, request: u32, op: &'static str, arg: &mut T) -> Result<(), WatchdogError> {
        let fd = self.file.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        // SAFETY: every request used here reads or writes exactly one `T` (`c_int` or
        // `WatchdogInfo`, matching the size encoded in the request) behind a valid pointer.
        let rc = unsafe { libc::ioctl(fd, request as _, arg as *mut T) };
        if rc < 0 {
            return Err(WatchdogError::Ioctl {
                device: self.device.clone(),
                op,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn write(&self, byte: u8) -> Result<(), WatchdogError> {
        self.write_all(&[byte])
    }

    fn write_all(&self, bytes: &[u8]) -> Result<(), WatchdogError> {
        let result = match self.file.as_ref() {
            Some(file) => (&*file).write_all(bytes),
            None => Err(std::io::Error::from_raw_os_error(libc::EBADF)),
        };
        result.map_err(|source| WatchdogError::Write {
            device: self.device.clone(),
            source,
        })
    }

    /// Restart the device's countdown. Call right after each successful lease renewal.
    pub fn keepalive(&self) -> Result<(), WatchdogError> {
        let result = self.write(b'1');
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result
    }

    /// Disarm and close the device (writes the magic `V` first, so the close does not reset
    /// the machine). Dropping the watchdog does the same, logging instead of returning errors.
    pub fn disable(mut self) -> Result<(), WatchdogError> {
        self.close()
    }

    fn close(&mut self) -> Result<(), WatchdogError> {
        if self.file.is_none() {
            return Ok(());
        }
        let result = self.write(b'V');
        // Closing the descriptor is what stops the device (after the `V`).
        self.file = None;
        self.healthy.store(false, Ordering::Relaxed);
        result
    }

    /// Whether the device is open and the last keepalive reached it.
    pub fn is_healthy(&self) -> bool {
        self.file.is_some() && self.healthy.load(Ordering::Relaxed)
    }

    /// The timeout in force, in seconds, as the driver reports it.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs
    }

    pub fn device(&self) -> &Path {
        &self.device
    }

    /// E.g. `Software Watchdog (/dev/watchdog, firmware 0), timeout 25 s`. Drivers without the
    /// magic close (they stop on any close) are marked `no magic close`.
    pub fn describe(&self) -> String {
        let identity = if self.identity.is_empty() {
            "Linux watchdog device"
        } else {
            &self.identity
        };
        let magic = if self.magic_close { "" } else { ", no magic close" };
        format!(
            "{identity} ({}, firmware {}{magic}), timeout {} s",
            self.device.display(),
            self.firmware_version,
            self.timeout_secs
        )
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!("disarming the watchdog: {e}; the machine may reset");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: WatchdogMode, device: &Path) -> WatchdogConfig {
        WatchdogConfig {
            mode,
            driver: WatchdogDriver::Default,
            device: device.to_path_buf(),
            safety_margin: 5,
        }
    }

    /// pgquorum's defaults: ttl 2.5 s, loop_wait 0.5 s, election 250 / heartbeat 50 → 1100 ms.
    const DEFAULTS: LeaseBounds = LeaseBounds {
        ttl_ms: 2_500,
        loop_wait_ms: 500,
        worst_election_ms: 1_100,
    };

    #[test]
    fn the_timeout_is_checked_against_ttl_loop_wait_and_the_raft_election() {
        let margin = |safety_margin: i64| WatchdogConfig {
            safety_margin,
            ..WatchdogConfig::default()
        };
        let patroni = LeaseBounds {
            ttl_ms: 30_000,
            loop_wait_ms: 10_000,
            worst_election_ms: 1_100,
        };
        // (config, bounds, Ok(timeout) or Err(words the reason must contain))
        type Case = (WatchdogConfig, LeaseBounds, Result<u64, &'static [&'static str]>);
        let table: [Case; 7] = [
            // The defaults: margin 5 leaves nothing of 2.5 s; margin 0 gives 2 s, which fits.
            (
                margin(5),
                DEFAULTS,
                Err(&[
                    "safety_margin 5 s leaves no watchdog timeout within ttl 2.5 s",
                    "safety_margin: 0 gives a timeout of 2 s, which fits",
                ]),
            ),
            (margin(0), DEFAULTS, Ok(2)),
            // ttl / 2 = 1 s: a Raft election (1.1 s) after a loop (0.5 s) would reset the machine.
            (
                margin(-1),
                DEFAULTS,
                Err(&[
                    "timeout of 1 s (ttl / 2",
                    "loop_wait (0.5 s) + the longest Raft re-election (1100 ms) = 1.6 s",
                ]),
            ),
            (margin(5), patroni, Ok(25)),
            // Margin 0 on a whole-second ttl fires only when the lease can already pass on.
            (
                margin(0),
                patroni,
                Err(&["does not end before the lease (ttl 30 s)", "safety_margin: 18"]),
            ),
            (margin(25), patroni, Err(&["timeout of 5 s", "= 11.1 s"])),
            // No whole second fits: 1.6 s ≤ t < 2 s.
            (
                margin(0),
                LeaseBounds {
                    ttl_ms: 2_000,
                    ..DEFAULTS
                },
                Err(&["no whole-second timeout is both at least 1.6 s and below ttl 2 s: raise ttl"]),
            ),
        ];
        for (config, bounds, expected) in table {
            match (plan(&config, bounds), expected) {
                (Plan::Timeout { timeout }, Ok(want)) => assert_eq!(timeout, want, "{config:?} {bounds:?}"),
                (Plan::Unusable { reason }, Err(words)) => {
                    for w in words {
                        assert!(reason.contains(w), "{reason:?} lacks {w:?}");
                    }
                }
                (got, want) => panic!("{config:?} {bounds:?}: {got:?}, expected {want:?}"),
            }
        }
        let off = WatchdogConfig {
            mode: WatchdogMode::Off,
            ..WatchdogConfig::default()
        };
        assert_eq!(plan(&off, DEFAULTS), Plan::Off);
    }

    #[test]
    fn automatic_at_the_default_timings_says_why_it_runs_without_a_watchdog() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("wd");
        std::fs::write(&device, "").unwrap();
        let mut c = testing(WatchdogMode::Automatic, &device);
        c.safety_margin = WatchdogConfig::default().safety_margin;
        assert!(Watchdog::open_checked(&c, DEFAULTS).unwrap().is_none());
        assert_eq!(
            std::fs::read_to_string(&device).unwrap(),
            "",
            "the device was not armed"
        );
        c.mode = WatchdogMode::Required;
        let e = Watchdog::open_checked(&c, DEFAULTS).unwrap_err();
        assert!(matches!(e, WatchdogError::Unusable(_)), "{e}");
        // ttl / 2 = 1 s is shorter than a loop and a Raft election: not armed either.
        c.mode = WatchdogMode::Automatic;
        c.safety_margin = -1;
        assert!(Watchdog::open_checked(&c, DEFAULTS).unwrap().is_none());
        assert_eq!(
            std::fs::read_to_string(&device).unwrap(),
            "",
            "the device was not armed"
        );
        // With a margin that fits, the default timings arm a 2 s watchdog.
        c.mode = WatchdogMode::Required;
        c.safety_margin = 0;
        let w = Watchdog::open_checked(&c, DEFAULTS).unwrap().expect("armed");
        assert_eq!(w.timeout_secs(), 2);
    }

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "x86"))]
        {
            assert_eq!(WDIOC_GETSUPPORT, 0x8028_5700);
            assert_eq!(WDIOC_SETTIMEOUT, 0xC004_5706);
            assert_eq!(WDIOC_GETTIMEOUT, 0x8004_5707);
        }
        assert_eq!(std::mem::size_of::<WatchdogInfo>(), 40);
    }

    #[test]
    fn timeout_is_ttl_minus_margin_or_half_ttl() {
        let mut c = WatchdogConfig::default();
        assert_eq!(c.safety_margin, 5);
        assert_eq!(timeout_secs(&c, 30), Some(25));
        c.safety_margin = -1;
        assert_eq!(timeout_secs(&c, 30), Some(15));
        assert_eq!(timeout_secs(&c, 31), Some(15));
        assert_eq!(timeout_secs(&c, 1), None);
        c.safety_margin = 30;
        assert_eq!(timeout_secs(&c, 30), None);
        c.safety_margin = 40;
        assert_eq!(timeout_secs(&c, 30), None);
        c.safety_margin = 0;
        assert_eq!(timeout_secs(&c, 30), Some(30));
    }

    #[test]
    fn off_never_touches_the_device() {
        let tmp = tempfile::tempdir().unwrap();
        let device = tmp.path().join("watchdog");
        std::fs::write(&device, "").unwrap();
        let opened = Watchdog::open(&config(WatchdogMode::Off, &device), 30).unwrap();
        assert!(opened.is_none());
        assert_eq!(std::fs::read(&device).unwrap(), b"");
    }

    #[test]
    fn automatic_without_a_device_runs_without_one() {
        let tmp = tempfile::tempdir().unwrap();
        let device = tmp.path().join("no-watchdog");
        let c = config(WatchdogMode::Automatic, &device);
        assert!(Watchdog::open(&c, 30).unwrap().is_none());
        // The same problem again is not an error either (and is logged at DEBUG only).
        assert!(Watchdog::open(&c, 30).unwrap().is_none());
    }

    #[test]
    fn required_without_a_device_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let device = tmp.path().join("no-watchdog");
        let e = Watchdog::open(&config(WatchdogMode::Required, &device), 30).unwrap_err();
        assert!(matches!(e, WatchdogError::Open { .. }), "{e:?}");
        let message = e.to_string();
        assert!(message.contains(&device.display().to_string()), "{message}");
    }

    #[test]
    fn a_file_that_is_not_a_watchdog_is_refused_and_disarmed() {
        let tmp = tempfile::tempdir().unwrap();
        let device = tmp.path().join("plain-file");
        std::fs::write(&device, "").unwrap();

        // automatic: no watchdog, and the "device" got the magic close before being closed.
        assert!(Watchdog::open(&config(WatchdogMode::Automatic, &device), 30)
            .unwrap()
            .is_none());
        assert_eq!(std::fs::read(&device).unwrap(), b"V");

        // required: an error naming the device and the ioctl that failed.
        let e = Watchdog::open(&config(WatchdogMode::Required, &device), 30).unwrap_err();
        match &e {
            WatchdogError::Ioctl { op, source, .. } => {
                assert_eq!(*op, "WDIOC_GETSUPPORT");
                assert_eq!(source.raw_os_error(), Some(libc::ENOTTY));
            }
            other => panic!("unexpected error {other:?}"),
        }
        let message = e.to_string();
        assert!(message.contains(&device.display().to_string()), "{message}");
        assert!(message.contains("not a usable watchdog device"), "{message}");
    }

    #[test]
    fn no_timeout_within_ttl_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let device = tmp.path().join("no-watchdog");
        let mut c = config(WatchdogMode::Required, &device);
        c.safety_margin = 30;
        let e = Watchdog::open(&c, 30).unwrap_err();
        assert!(
            matches!(
                e,
                WatchdogError::NoTimeout {
                    ttl: 30,
                    safety_margin: 30
                }
            ),
            "{e:?}"
        );
        c.mode = WatchdogMode::Automatic;
        assert!(Watchdog::open(&c, 30).unwrap().is_none());
    }

    #[test]
    fn watchdog_failed_only_in_required_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let device = tmp.path().join("watchdog");
        let missing = tmp.path().join("missing");
        std::fs::write(&device, "").unwrap();
        assert!(!watchdog_failed(
            &config(WatchdogMode::Automatic, &missing),
            30,
            10
        ));
        assert!(!watchdog_failed(&config(WatchdogMode::Off, &missing), 30, 10));
        assert!(watchdog_failed(&config(WatchdogMode::Required, &missing), 30, 10));
        assert!(!watchdog_failed(&config(WatchdogMode::Required, &device), 30, 10));
        // ttl 12 - margin 5 = 7 s < loop_wait 10 s: the loop could miss a keepalive.
        assert!(watchdog_failed(&config(WatchdogMode::Required, &device), 12, 10));
    }

    #[test]
    fn a_disabled_watchdog_reports_unhealthy() {
        // No real device here: build one around a plain file to check the bookkeeping.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("fake");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut watchdog = Watchdog {
            file: Some(file),
            device: path.clone(),
            identity: "Fake".into(),
            firmware_version: 7,
            magic_close: true,
            timeout_secs: 25,
            healthy: AtomicBool::new(true),
        };
        watchdog.keepalive().unwrap();
        assert!(watchdog.is_healthy());
        assert_eq!(
            watchdog.describe(),
            format!("Fake ({}, firmware 7), timeout 25 s", path.display())
        );
        watchdog.close().unwrap();
        assert!(!watchdog.is_healthy());
        assert!(watchdog.keepalive().is_err());
        drop(watchdog);
        assert_eq!(std::fs::read(&path).unwrap(), b"1V");
    }

    fn testing(mode: WatchdogMode, device: &Path) -> WatchdogConfig {
        WatchdogConfig {
            driver: WatchdogDriver::Testing,
            ..config(mode, device)
        }
    }

    fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    #[test]
    fn testing_driver_writes_timeout_keepalives_and_close_to_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let device = tmp.path().join("watchdog");
        std::fs::write(&device, "").unwrap();
        let watchdog = Watchdog::open(&testing(WatchdogMode::Required, &device), 30)
            .unwrap()
            .expect("armed");
        assert_eq!(watchdog.timeout_secs(), 25);
        assert_eq!(
            watchdog.describe(),
            format!(
                "Watchdog test harness ({}, firmware 0), timeout 25 s",
                device.display()
            )
        );
        watchdog.keepalive().unwrap();
        assert!(watchdog.is_healthy());
        watchdog.disable().unwrap();
        assert_eq!(std::fs::read_to_string(&device).unwrap(), "Ctimeout=25\n11V");
        // Arming again appends: the file is the whole history.
        let again = Watchdog::open(&testing(WatchdogMode::Required, &device), 30).unwrap();
        drop(again);
        assert_eq!(
            std::fs::read_to_string(&device).unwrap(),
            "Ctimeout=25\n11VCtimeout=25\n1V"
        );
    }

    #[test]
    fn testing_driver_on_a_named_pipe() {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("watchdog.fifo");
        mkfifo(&fifo);
        // Nobody reading: arming fails at once instead of blocking.
        let e = Watchdog::open(&testing(WatchdogMode::Required, &fifo), 20).unwrap_err();
        match &e {
            WatchdogError::Open { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::ENXIO)),
            other => panic!("unexpected error {other:?}"),
        }
        assert!(Watchdog::open(&testing(WatchdogMode::Automatic, &fifo), 20)
            .unwrap()
            .is_none());

        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let mut c = testing(WatchdogMode::Required, &fifo);
        c.safety_margin = -1;
        let watchdog = Watchdog::open(&c, 20).unwrap().expect("armed");
        assert_eq!(watchdog.timeout_secs(), 10);
        watchdog.keepalive().unwrap();
        watchdog.keepalive().unwrap();
        watchdog.disable().unwrap();
        let mut seen = String::new();
        reader.read_to_string(&mut seen).unwrap();
        assert_eq!(seen, "Ctimeout=10\n111V");
    }
}
