//! The keyspace clock: the time the Raft leader stamps on each command, on which every TTL
//! (and so every lease) is judged.
//!
//! It is continued, not read from a wall clock: keyspace time is the last applied stamp plus
//! the time this node's *monotonic* clock says has passed since that stamp was applied (the
//! anchor). The leader stamps with it, so a leader whose wall clock is an hour ahead cannot
//! expire every lease at once, and one an hour behind cannot freeze expiry for an hour. A new
//! leader resumes from the applied time plus its own monotonic elapsed time since it applied
//! it (as etcd carries remaining TTL across leaders): never ahead of its predecessor's
//! timeline, so a lease never expires earlier than its holder counted. The price is the other
//! way round: the gap between the old leader's last stamp and the moment the new leader
//! applied it is not counted, so leases live that much longer across a leader change.
//!
//! The wall clock is read for two things only: to seed the first stamp of an empty keyspace
//! (so stamps stay readable as dates), and to detect wall-clock jumps, which the node logs.
//!
//! Pure: every function takes the instant (and the wall reading) it should use.

use std::time::Duration;

use tokio::time::Instant;

/// A wall-clock step larger than this between two stamps (against the monotonic elapsed
/// time) is reported as a jump. NTP slewing moves the clock far less between two stamps.
pub const WALL_JUMP_TOLERANCE: Duration = Duration::from_millis(500);

/// The wall clock moved by `by_ms` more (positive: forward) than the monotonic clock between
/// two stamps of this leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallJump {
    pub by_ms: i64,
}

#[derive(Debug, Clone)]
pub struct KeyspaceClock {
    /// Keyspace time at `anchor_at`.
    anchor_ms: u64,
    anchor_at: Instant,
    /// The wall reading of the previous stamp and when it was taken, for jump detection.
    last_wall: Option<(u64, Instant)>,
}

impl KeyspaceClock {
    /// A clock resuming from the applied keyspace time `as_of_ms` at `at`.
    pub fn new(as_of_ms: u64, at: Instant) -> KeyspaceClock {
        KeyspaceClock {
            anchor_ms: as_of_ms,
            anchor_at: at,
            last_wall: None,
        }
    }

    /// Keyspace time at `at`: the anchor plus monotonic elapsed time.
    pub fn now_ms(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.anchor_at).as_millis() as u64;
        self.anchor_ms.saturating_add(elapsed)
    }

    /// A batch was applied and the keyspace time is now `as_of_ms`. A stamp ahead of this
    /// clock's reading moves the anchor up to it (a follower following its leader, or a new
    /// leader catching up with entries of the previous term); one behind changes nothing (this
    /// leader's own stamps, applied after they were taken).
    pub fn observe_applied(&mut self, as_of_ms: u64, at: Instant) {
        if as_of_ms > self.now_ms(at) {
            self.anchor_ms = as_of_ms;
            self.anchor_at = at;
        }
    }

    /// The stamp for a command the Raft leader proposes at `at`, when its wall clock reads
    /// `wall_ms`; and a wall-clock jump since this leader's previous stamp, if there was one.
    pub fn stamp(&mut self, at: Instant, wall_ms: u64) -> (u64, Option<WallJump>) {
        if self.anchor_ms == 0 {
            // An empty keyspace: start at wall time so stamps read as dates.
            self.anchor_ms = wall_ms;
            self.anchor_at = at;
        }
        let jump = self.last_wall.and_then(|(prev_wall, prev_at)| {
            let mono = at.saturating_duration_since(prev_at).as_millis() as i64;
            let wall = wall_ms as i64 - prev_wall as i64;
            let by_ms = wall - mono;
            (by_ms.unsigned_abs() > WALL_JUMP_TOLERANCE.as_millis() as u64).then_some(WallJump { by_ms })
        });
        self.last_wall = Some((wall_ms, at));
        (self.now_ms(at), jump)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keyspace::{Command, Key, Keyspace, Stamped};

    const HOUR_MS: i64 = 3_600_000;
    const TTL_MS: u64 = 10_000;
    const WALL0: u64 = 1_800_000_000_000;

    /// One Raft node: its keyspace copy and its clock.
    struct Node {
        ks: Keyspace,
        clock: KeyspaceClock,
        /// How far this node's wall clock is from true time.
        wall_offset_ms: i64,
    }

    /// A tiny two-node group on a shared monotonic timeline `t0 + s`: node 0 leads first,
    /// takes the lease for `node1`; then leadership moves to node 1, whose wall clock is
    /// `offset` off, which proposes `Expire` every 100 ms. Returns how long after the lease
    /// was stamped it disappeared from node 1's keyspace.
    fn lease_lifetime_after_leader_change(offset_ms: i64) -> Duration {
        let t0 = Instant::now();
        let wall =
            |n: &Node, at: Instant| ((WALL0 + (at - t0).as_millis() as u64) as i64 + n.wall_offset_ms) as u64;
        let mut nodes: Vec<Node> = (0..2)
            .map(|i| Node {
                ks: Keyspace::default(),
                clock: KeyspaceClock::new(0, t0),
                wall_offset_ms: if i == 1 { offset_ms } else { 0 },
            })
            .collect();
        let mut index = 0;
        // Replicate: the leader stamps, every node applies (10 ms later) and observes.
        let mut propose = |nodes: &mut Vec<Node>, leader: usize, at: Instant, command: Command| {
            let w = wall(&nodes[leader], at);
            let (now_ms, _) = nodes[leader].clock.stamp(at, w);
            index += 1;
            let applied_at = at + Duration::from_millis(10);
            for n in nodes.iter_mut() {
                n.ks.apply(
                    index,
                    &Stamped {
                        now_ms,
                        command: command.clone(),
                    },
                );
                n.clock.observe_applied(n.ks.as_of_ms(), applied_at);
            }
        };
        let lease = Command::AcquireLease {
            key: Key::Leader,
            holder: "node1".into(),
            holder_addr: None,
            value: json!({}),
            ttl_ms: TTL_MS,
        };
        propose(&mut nodes, 0, t0, lease);
        propose(&mut nodes, 0, t0 + Duration::from_millis(500), Command::Expire);
        // Node 0 dies; node 1 wins the election 1.5 s later and keeps the keyspace tidy.
        let mut s = Duration::from_millis(2_000);
        while s < Duration::from_millis(2 * HOUR_MS as u64) {
            propose(&mut nodes, 1, t0 + s, Command::Expire);
            if nodes[1].ks.get(&Key::Leader).is_none() {
                return s;
            }
            s += Duration::from_millis(100);
        }
        s
    }

    #[test]
    fn a_leader_with_its_wall_clock_an_hour_ahead_does_not_expire_leases_early() {
        let lived = lease_lifetime_after_leader_change(HOUR_MS);
        assert!(
            lived >= Duration::from_millis(TTL_MS),
            "the lease expired {lived:?} after it was stamped, before its ttl of {TTL_MS} ms"
        );
    }

    #[test]
    fn a_leader_with_its_wall_clock_an_hour_behind_does_not_freeze_expiry() {
        let lived = lease_lifetime_after_leader_change(-HOUR_MS);
        // Across the leader change the lease lives on by at most the election gap (1.5 s).
        assert!(
            lived <= Duration::from_millis(TTL_MS + 2_000),
            "the lease lived {lived:?}, far past its ttl of {TTL_MS} ms"
        );
    }

    #[test]
    fn a_correct_wall_clock_gives_the_same_lease_lifetime_within_the_election_gap() {
        let lived = lease_lifetime_after_leader_change(0);
        assert!(lived >= Duration::from_millis(TTL_MS));
        assert!(lived <= Duration::from_millis(TTL_MS + 2_000), "{lived:?}");
    }

    #[test]
    fn the_leader_does_not_drift_on_its_own_applied_stamps() {
        let t0 = Instant::now();
        let mut c = KeyspaceClock::new(5_000, t0);
        let (s1, _) = c.stamp(t0 + Duration::from_millis(100), WALL0);
        assert_eq!(s1, 5_100);
        // Applied 30 ms after it was stamped: the clock is not pulled back.
        c.observe_applied(s1, t0 + Duration::from_millis(130));
        assert_eq!(c.now_ms(t0 + Duration::from_millis(1_100)), 6_100);
    }

    #[test]
    fn a_fresh_keyspace_starts_at_wall_time() {
        let t0 = Instant::now();
        let mut c = KeyspaceClock::new(0, t0);
        assert_eq!(c.stamp(t0 + Duration::from_millis(7), WALL0).0, WALL0);
        assert_eq!(c.now_ms(t0 + Duration::from_millis(1_007)), WALL0 + 1_000);
    }

    #[test]
    fn wall_jumps_are_reported_once_per_jump() {
        let t0 = Instant::now();
        let mut c = KeyspaceClock::new(WALL0, t0);
        let ms = |m: u64| t0 + Duration::from_millis(m);
        assert_eq!(c.stamp(ms(0), WALL0).1, None);
        assert_eq!(c.stamp(ms(100), WALL0 + 100).1, None, "no jump");
        assert_eq!(
            c.stamp(ms(200), WALL0 + 200 + 60_000).1,
            Some(WallJump { by_ms: 60_000 })
        );
        assert_eq!(c.stamp(ms(300), WALL0 + 300 + 60_000).1, None, "reported once");
        assert_eq!(
            c.stamp(ms(400), WALL0 + 400 - 5_000).1,
            Some(WallJump { by_ms: -65_000 })
        );
        // The stamps followed the monotonic clock throughout.
        assert_eq!(c.now_ms(ms(400)), WALL0 + 400);
    }
}
