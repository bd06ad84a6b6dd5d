//! The test network: Linux network namespaces on one machine, nothing routed out of them.
//!
//! ```text
//!             pgqj-sw (bridge br0)
//!      ┌──────────┬──────┴───┬──────────┐
//!   pgqj-n1    pgqj-n2    pgqj-n3    pgqj-cl
//!  10.177.0.11 .12         .13        .100
//! ```
//!
//! Every host namespace has `lo` and `eth0` (a veth whose peer is a port of `br0` in the switch
//! namespace), an address in 10.177.0.0/24 and no default route: nothing can leave. The client
//! namespace holds the workload and the monitors.
//!
//! Faults are made with `tc` on each host's `eth0`:
//!
//! - **Cuts** are ingress filters (`u32 match ip src PEER`) whose action redirects the packet
//!   to a device that is down, which drops it silently — a partition as the hosts see one:
//!   packets vanish, connections time out. (A blackhole route would instead make `connect()`
//!   fail at once with EINVAL, which no real partition does; and this kernel has no `gact`
//!   action for a plain `drop`.) A cut between two endpoints is a filter on both sides.
//! - **Packet loss** is a classic-BPF ingress classifier that matches a random fraction of
//!   the packets, with the same dropping action.
//! - **Delay** needs the `netem` queueing discipline (`tc qdisc replace dev eth0 root netem`);
//!   [`Network::netem_supported`] tells whether the kernel has it (a kernel built without
//!   `CONFIG_NET_SCH_NETEM` has not, and then only the loss part of a netem fault applies).
//!
//! [`Network::create`] first removes what a crashed run left behind (every namespace named
//! `pgqj-*` and every process inside one); [`Network::destroy`] is idempotent and also runs on
//! drop.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

/// Every namespace this suite creates starts with this.
pub const PREFIX: &str = "pgqj-";
/// The namespace holding the bridge.
pub const SWITCH_NS: &str = "pgqj-sw";
/// The namespace of the workload and the monitors.
pub const CLIENT_NS: &str = "pgqj-cl";
/// The client's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 177, 0, 100);
/// The test network (used only inside these namespaces).
pub const SUBNET: &str = "10.177.0.0/24";
/// The most hosts the address plan allows (10.177.0.11 ..).
pub const MAX_NODES: usize = 9;

/// The device the dropping filters redirect to: an `ifb` that is never brought up.
const DROP_DEV: &str = "pgqjdrop";
/// Filter priority of the packet-loss classifier.
const LOSS_PRIO: u32 = 1000;

/// Namespace of host `i` (0-based): `pgqj-n1`...
pub fn host_ns(i: usize) -> String {
    format!("{PREFIX}n{}", i + 1)
}

/// Address of host `i` (0-based): 10.177.0.11...
pub fn host_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 177, 0, 11 + i as u8)
}

/// One end of a cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Host(usize),
    Client,
}

impl Endpoint {
    pub fn ns(self) -> String {
        match self {
            Endpoint::Host(i) => host_ns(i),
            Endpoint::Client => CLIENT_NS.to_string(),
        }
    }

    pub fn addr(self) -> Ipv4Addr {
        match self {
            Endpoint::Host(i) => host_addr(i),
            Endpoint::Client => CLIENT_ADDR,
        }
    }

    /// The filter priority used on the *other* side for packets from this endpoint: its last
    /// address octet, so each cut has its own filter and can be removed alone.
    fn prio(self) -> u32 {
        self.addr().octets()[3] as u32
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot run `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("network namespace {ns}: {source}")]
    Setns { ns: String, source: std::io::Error },
    #[error("{0} hosts requested; the address plan allows 1..={MAX_NODES}")]
    TooManyNodes(usize),
    #[error("another pgquorum-jepsen is running (it holds {path}); runs share the namespace names, wait for it to finish")]
    Busy { path: String },
    #[error("{path}: {source}")]
    Lock { path: String, source: std::io::Error },
}

/// Held while this process builds or removes namespaces: two runs at once would tear down
/// each other's network (each run first removes every `pgqj-*` namespace it finds).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// The lock file every run takes.
pub const LOCK_PATH: &str = "/run/pgquorum-jepsen.lock";

/// Take the run lock, or fail at once if another process holds it.
pub fn lock() -> Result<RunLock, NetError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .map_err(|source| NetError::Lock {
            path: LOCK_PATH.into(),
            source,
        })?;
    // SAFETY: flock(2) on a descriptor we own; released when the file is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(NetError::Busy {
            path: LOCK_PATH.into(),
        });
    }
    Ok(RunLock { _file: file })
}

/// Run a command, capture its output, fail on a non-zero exit.
fn run(cmd: &mut Command) -> Result<String, NetError> {
    let text = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetError::Spawn {
            cmd: text.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetError::Failed {
            cmd: text,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn ip(args: &[&str]) -> Result<String, NetError> {
    run(Command::new("ip").args(args))
}

fn tc(ns: &str, args: &[&str]) -> Result<String, NetError> {
    run(Command::new("tc").arg("-n").arg(ns).args(args))
}

/// `ip netns exec NS PROGRAM`: a command that runs `program` inside namespace `ns`.
pub fn exec_in(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// The same for tokio.
pub fn exec_in_async(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Names of the namespaces a run of this suite left (any `pgqj-*`).
pub fn leftover_namespaces() -> Result<Vec<String>, NetError> {
    let list = ip(&["netns", "list"])?;
    Ok(list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// Process ids of everything running inside namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<i32> {
    ip(&["netns", "pids", ns])
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILL every process inside namespace `ns` (except this one) and wait until they are gone
/// (bounded). Returns how many there were.
pub fn kill_all_in(ns: &str) -> usize {
    let me = std::process::id() as i32;
    let mut killed = 0;
    for round in 0..50 {
        let pids: Vec<i32> = pids_in(ns).into_iter().filter(|p| *p != me).collect();
        if pids.is_empty() {
            break;
        }
        if round == 0 {
            killed = pids.len();
        }
        for pid in pids {
            // SAFETY: kill(2) has no memory effects; these are processes of our test hosts.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    killed
}

/// Remove everything a previous (crashed) run left: processes inside `pgqj-*` namespaces,
/// the namespaces, and temp directories `/tmp/pgqj-<pid>-*` whose process is gone.
/// Returns what was removed, for the log.
pub fn cleanup_leftovers() -> Result<Vec<String>, NetError> {
    let mut removed = Vec::new();
    for ns in leftover_namespaces()? {
        let n = kill_all_in(&ns);
        if n > 0 {
            removed.push(format!("killed {n} processes in {ns}"));
        }
        ip(&["netns", "del", &ns])?;
        removed.push(format!("deleted namespace {ns}"));
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            // SAFETY: kill(pid, 0) only checks whether the process exists.
            let alive = pid == std::process::id() as i32 || unsafe { libc::kill(pid, 0) } == 0;
            if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
                removed.push(format!("removed {}", entry.path().display()));
            }
        }
    }
    Ok(removed)
}

/// The namespaces, the bridge and the links of one run.
#[derive(Debug)]
pub struct Network {
    nodes: usize,
    destroyed: bool,
    netem_supported: bool,
}

impl Network {
    /// Build the network for `nodes` hosts and the client, after removing any leftovers.
    pub fn create(nodes: usize) -> Result<Network, NetError> {
        if nodes == 0 || nodes > MAX_NODES {
            return Err(NetError::TooManyNodes(nodes));
        }
        for line in cleanup_leftovers()? {
            tracing::warn!("leftover of an earlier run: {line}");
        }
        let mut net = Network {
            nodes,
            destroyed: false,
            netem_supported: false,
        };
        // On error the partly built network is destroyed by Drop.
        net.build()?;
        Ok(net)
    }

    fn build(&mut self) -> Result<(), NetError> {
        ip(&["netns", "add", SWITCH_NS])?;
        ip(&["-n", SWITCH_NS, "link", "set", "lo", "up"])?;
        ip(&["-n", SWITCH_NS, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", SWITCH_NS, "link", "set", "br0", "up"])?;
        let mut ends: Vec<Endpoint> = (0..self.nodes).map(Endpoint::Host).collect();
        ends.push(Endpoint::Client);
        for end in ends {
            let ns = end.ns();
            let port = format!("p-{}", ns.trim_start_matches(PREFIX));
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", SWITCH_NS, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["-n", SWITCH_NS, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", SWITCH_NS, "link", "set", &port, "up"])?;
            let cidr = format!("{}/24", end.addr());
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            // The dropping device (never up) and the ingress hook for the cut filters.
            ip(&["-n", &ns, "link", "add", DROP_DEV, "type", "ifb"])?;
            tc(&ns, &["qdisc", "add", "dev", "eth0", "ingress"])?;
        }
        self.netem_supported = tc(
            SWITCH_NS,
            &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        )
        .and_then(|_| tc(SWITCH_NS, &["qdisc", "del", "dev", "lo", "root"]))
        .is_ok();
        if !self.netem_supported {
            tracing::warn!("this kernel has no netem qdisc: netem faults apply packet loss only");
        }
        Ok(())
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Whether `tc qdisc ... netem` works on this kernel (delay and jitter need it).
    pub fn netem_supported(&self) -> bool {
        self.netem_supported
    }

    /// Drop every packet from `from` arriving at `to` (one direction).
    fn drop_from(&self, to: Endpoint, from: Endpoint) -> Result<(), NetError> {
        let prio = from.prio().to_string();
        let src = format!("{}/32", from.addr());
        let args = [
            "filter", "replace", "dev", "eth0", "parent", "ffff:", "protocol", "ip", "prio", &prio, "u32",
            "match", "ip", "src", &src, "action", "mirred", "egress", "redirect", "dev", DROP_DEV,
        ];
        tc(&to.ns(), &args).map(|_| ())
    }

    fn undrop_from(&self, to: Endpoint, from: Endpoint) -> Result<(), NetError> {
        let prio = from.prio().to_string();
        let args = [
            "filter", "del", "dev", "eth0", "parent", "ffff:", "protocol", "ip", "prio", &prio,
        ];
        match tc(&to.ns(), &args) {
            Ok(_) => Ok(()),
            // Not there: already healed.
            Err(NetError::Failed { stderr, .. })
                if stderr.contains("No such file") || stderr.contains("Cannot find") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Cut `a` and `b` from each other (both directions).
    pub fn cut(&self, a: Endpoint, b: Endpoint) -> Result<(), NetError> {
        self.drop_from(a, b)?;
        self.drop_from(b, a)
    }

    /// Undo [`Network::cut`].
    pub fn heal_cut(&self, a: Endpoint, b: Endpoint) -> Result<(), NetError> {
        self.undrop_from(a, b)?;
        self.undrop_from(b, a)
    }

    /// Cut host `i` from every other host; the client still reaches it.
    pub fn isolate(&self, i: usize) -> Result<(), NetError> {
        for j in (0..self.nodes).filter(|j| *j != i) {
            self.cut(Endpoint::Host(i), Endpoint::Host(j))?;
        }
        Ok(())
    }

    /// Degrade host `i`'s link: `delay_ms` ± `jitter_ms` on what it sends (netem, when the
    /// kernel has it) and `loss_pct` % of what it receives dropped. Returns what was applied.
    pub fn netem(&self, i: usize, delay_ms: u32, jitter_ms: u32, loss_pct: u32) -> Result<String, NetError> {
        let ns = host_ns(i);
        let mut applied = Vec::new();
        if delay_ms > 0 && self.netem_supported {
            let (d, j) = (format!("{delay_ms}ms"), format!("{jitter_ms}ms"));
            tc(
                &ns,
                &[
                    "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", &d, &j,
                ],
            )?;
            applied.push(format!("delay {delay_ms}±{jitter_ms} ms"));
        }
        if loss_pct > 0 {
            // Classic BPF: A = random u32; match (drop) when A < loss% of 2^32.
            let threshold = ((loss_pct.min(100) as u64 * (1u64 << 32)) / 100).min(u32::MAX as u64);
            let bytecode = format!(
                "4,32 0 0 {},53 1 0 {threshold},6 0 0 4294967295,6 0 0 0",
                0xFFFF_F038u32
            );
            let prio = LOSS_PRIO.to_string();
            tc(
                &ns,
                &[
                    "filter", "replace", "dev", "eth0", "parent", "ffff:", "protocol", "ip", "prio", &prio,
                    "bpf", "bytecode", &bytecode, "action", "mirred", "egress", "redirect", "dev", DROP_DEV,
                ],
            )?;
            applied.push(format!("loss {loss_pct}%"));
        }
        Ok(applied.join(", "))
    }

    /// Undo [`Network::netem`] on host `i`.
    pub fn clear_netem(&self, i: usize) -> Result<(), NetError> {
        let ns = host_ns(i);
        // Absent qdisc or filter: nothing to undo.
        let _ = tc(&ns, &["qdisc", "del", "dev", "eth0", "root"]);
        let prio = LOSS_PRIO.to_string();
        let _ = tc(
            &ns,
            &[
                "filter", "del", "dev", "eth0", "parent", "ffff:", "protocol", "ip", "prio", &prio,
            ],
        );
        Ok(())
    }

    /// Remove every cut and every netem: a fully connected network again.
    pub fn heal_all(&self) -> Result<(), NetError> {
        let mut ends: Vec<Endpoint> = (0..self.nodes).map(Endpoint::Host).collect();
        ends.push(Endpoint::Client);
        for &to in &ends {
            for &from in ends.iter().filter(|f| **f != to) {
                self.undrop_from(to, from)?;
            }
        }
        for i in 0..self.nodes {
            self.clear_netem(i)?;
        }
        Ok(())
    }

    /// Kill every process in every namespace of this run and delete the namespaces.
    /// Idempotent; errors are logged, not returned (it runs on every exit path).
    pub fn destroy(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        let mut names: Vec<String> = (0..self.nodes).map(host_ns).collect();
        names.push(CLIENT_NS.into());
        names.push(SWITCH_NS.into());
        for ns in names {
            if !Path::new("/run/netns").join(&ns).exists() {
                continue;
            }
            kill_all_in(&ns);
            if let Err(e) = ip(&["netns", "del", &ns]) {
                tracing::warn!("cannot delete namespace {ns}: {e}");
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// The calling thread is inside a namespace; dropping this moves it back to where it was.
/// Threads the calling thread creates meanwhile start in the namespace (that is how a tokio
/// runtime built after [`enter`] runs entirely in it).
#[derive(Debug)]
pub struct NetnsGuard {
    original: std::fs::File,
}

/// Move the calling thread into namespace `ns` (a name under /run/netns).
pub fn enter(ns: &str) -> Result<NetnsGuard, NetError> {
    let err = |source| NetError::Setns {
        ns: ns.into(),
        source,
    };
    let original = std::fs::File::open("/proc/thread-self/ns/net").map_err(err)?;
    let target = std::fs::File::open(Path::new("/run/netns").join(ns)).map_err(err)?;
    setns(&target).map_err(err)?;
    Ok(NetnsGuard { original })
}

fn setns(file: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: setns(2) on a namespace file descriptor we hold open.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.original) {
            tracing::error!("cannot return to the original network namespace: {e}");
        }
    }
}
