//! pgquorum-jepsen: a fault-injection suite that checks pgquorum's safety invariant — never
//! two writable primaries, no acknowledged write lost where that is promised — on a cluster of
//! test hosts built as Linux network namespaces on one machine.
//!
//! - `history`: what the workload and the monitors record (shared by everything else).
//! - `checker`: pure analysis of a history: lost writes, split brain, recovery.
//! - `report`: the human summary, the JSON result and the SVG timeline.
//! - `net`: the namespaces, the bridge, partitions and netem.
//! - `cluster`: agents and PostgreSQL servers inside the host namespaces.
//! - `nemesis`: faults and seeded schedules of them.
//! - `workload`: the clients inserting unique ids.
//! - `scenario`: a named scenario run end to end.

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod scenario;
pub mod workload;
