//! What an operator reads after a run: a text summary, a JSON result and an SVG timeline, all
//! built from the [`History`] and its [`CheckResult`] without any I/O except
//! [`write_all`], which saves them.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::checker::{describe_op, fmt_lsn, plural, secs, CheckResult, SplitBrainKind, Window};
use crate::history::{History, NodeRole, Outcome};

/// Ops listed one per line in the summary before it switches to a count.
const OPS_LISTED: usize = 20;
/// Unavailability windows listed in the summary.
const WINDOWS_LISTED: usize = 30;

/// A compact human summary of one scenario.
pub fn summary_text(h: &History, r: &CheckResult) -> String {
    let mut s = String::new();
    let i = &h.info;
    // Writing to a String cannot fail, so the results of writeln! are ignored throughout.
    let _ = writeln!(
        s,
        "scenario {}  seed {}  duration {}  nodes {}",
        i.scenario,
        i.seed,
        secs(i.duration_ms),
        i.nodes.join(", ")
    );
    let _ = writeln!(
        s,
        "synchronous_mode {}  maximum_lag_on_failover {} bytes  ttl {}  agents' gRPC and REST {}",
        match (i.synchronous_mode, i.synchronous_mode_strict) {
            (false, _) => "off",
            (true, false) => "on",
            (true, true) => "on (strict)",
        },
        i.maximum_lag_on_failover,
        secs(i.ttl_ms),
        if i.tls { "over mutual TLS" } else { "plain" }
    );
    let c = &r.counts;
    let _ = writeln!(
        s,
        "ops {} total: {} ok, {} failed, {} unknown ({} of them committed)",
        c.total, c.ok, c.failed, c.unknown, c.unknown_committed
    );

    if h.faults.is_empty() {
        let _ = writeln!(s, "faults: none");
    } else {
        let _ = writeln!(s, "faults:");
        for (n, f) in h.faults.iter().enumerate() {
            let end = f.end_ms.map(secs).unwrap_or_else(|| "never healed".to_string());
            let _ = writeln!(
                s,
                "  [{n}] {} – {}  {}: {}",
                secs(f.start_ms),
                end,
                f.kind,
                f.description
            );
        }
    }

    if r.unavailability.is_empty() {
        let _ = writeln!(
            s,
            "unavailability: none (no gap over {} ms without an acknowledged write)",
            r.unavailability_threshold_ms
        );
    } else {
        let _ = writeln!(
            s,
            "unavailability (gaps over {} ms without an acknowledged write):",
            r.unavailability_threshold_ms
        );
        // Too many to list: keep the longest, still in time order.
        let mut shown: Vec<&Window> = r.unavailability.iter().collect();
        if shown.len() > WINDOWS_LISTED {
            shown.sort_by_key(|w| std::cmp::Reverse(w.duration_ms));
            shown.truncate(WINDOWS_LISTED);
            shown.sort_by_key(|w| w.start_ms);
        }
        for w in shown {
            let cause = if w.faults.is_empty() {
                "no fault active".to_string()
            } else {
                let faults: Vec<String> = w
                    .faults
                    .iter()
                    .zip(&w.causes)
                    .map(|(n, d)| format!("[{n}] {d}"))
                    .collect();
                format!("during {}", faults.join(", "))
            };
            let _ = writeln!(
                s,
                "  {} – {} ({}): {} failed, {} unknown; {}",
                secs(w.start_ms),
                secs(w.end_ms),
                secs(w.duration_ms),
                w.failed,
                w.unknown,
                cause
            );
        }
        if r.unavailability.len() > WINDOWS_LISTED {
            let _ = writeln!(
                s,
                "  ... and {} shorter ones (all are in result.json)",
                r.unavailability.len() - WINDOWS_LISTED
            );
        }
    }

    let rec = &r.recovery;
    let _ = writeln!(
        s,
        "recovery: healed at {}, {}, bound {}: {}",
        secs(rec.healed_at_ms),
        match (rec.recovered_at_ms, rec.took_ms) {
            (Some(at), Some(took)) => format!("recovered at {} (after {})", secs(at), secs(took)),
            _ => "never recovered".to_string(),
        },
        secs(rec.bound_ms),
        match &rec.reason {
            None => "ok".to_string(),
            Some(reason) => format!("FAILED, {reason}"),
        }
    );
    let _ = writeln!(
        s,
        "final: primary {}, {}, {} on the primary",
        r.final_primary.as_deref().unwrap_or("none"),
        plural(r.acked, "acknowledged id", "acknowledged ids"),
        plural(h.final_state.ids_on_primary.len(), "id", "ids")
    );

    if !r.lost.is_empty() {
        let _ = writeln!(
            s,
            "lost writes: {}{}",
            r.lost.len(),
            if r.lost_is_violation {
                if h.info.synchronous_mode {
                    " (synchronous_mode on: a violation)".to_string()
                } else {
                    format!(" (scenario {} promises zero loss: a violation)", h.info.scenario)
                }
            } else {
                format!(
                    " (synchronous_mode off: allowed up to maximum_lag_on_failover {} bytes)",
                    r.maximum_lag_on_failover
                )
            }
        );
        for l in &r.lost_bytes {
            let _ = writeln!(
                s,
                "  timeline {}: {} lost, last acknowledged at {}, timeline ended at {}: {}",
                l.timeline.map_or("?".to_string(), |t| t.to_string()),
                l.ids.len(),
                l.last_lsn.map_or("?".to_string(), fmt_lsn),
                l.switch_lsn
                    .map_or("? (not in the final history)".to_string(), fmt_lsn),
                l.bytes
                    .map_or("unbounded".to_string(), |b| format!("{b} bytes past it"))
            );
        }
        let lost: HashSet<i64> = r.lost.iter().copied().collect();
        let lost_ops: Vec<_> = h
            .ops
            .iter()
            .filter(|op| op.outcome == Outcome::Ok && lost.contains(&op.id))
            .collect();
        for op in lost_ops.iter().take(OPS_LISTED) {
            let _ = writeln!(s, "  {}", describe_op(op));
        }
        if lost_ops.len() > OPS_LISTED {
            let _ = writeln!(s, "  ... and {} more", lost_ops.len() - OPS_LISTED);
        }
    }

    if !r.split_brain.is_empty() {
        let _ = writeln!(s, "split brain (from client ops):");
        for sb in &r.split_brain {
            let kind = match sb.kind {
                SplitBrainKind::StaleTimeline => "stale timeline",
                SplitBrainKind::SharedTimeline => "shared timeline",
            };
            let _ = writeln!(
                s,
                "  {kind}, {}:",
                plural(
                    sb.count,
                    "offending acknowledgement",
                    "offending acknowledgements"
                )
            );
            let _ = writeln!(s, "    first:  {}", describe_op(&sb.first));
            let _ = writeln!(s, "    second: {}", describe_op(&sb.second));
        }
    }
    if !r.monitor_split_brain.is_empty() {
        let _ = writeln!(s, "split brain (seen by the role monitor):");
        for m in &r.monitor_split_brain {
            let _ = writeln!(
                s,
                "  {} and {} both primary, {} – {} ({})",
                m.nodes.0,
                m.nodes.1,
                secs(m.from_ms),
                secs(m.to_ms),
                plural(m.pairs, "pair of samples", "pairs of samples")
            );
        }
    }

    if !r.findings.is_empty() {
        let _ = writeln!(s, "findings (not failures):");
        for f in &r.findings {
            let _ = writeln!(s, "  - {f}");
        }
    }
    if r.passed() {
        let _ = writeln!(s, "RESULT: PASS");
    } else {
        let _ = writeln!(
            s,
            "RESULT: FAIL ({})",
            plural(r.violations.len(), "violation", "violations")
        );
        for v in &r.violations {
            let _ = writeln!(s, "  - {v}");
        }
    }
    s
}

/// The machine-readable result: the run's settings, the check result, the faults and the final
/// state without its id lists (the ops and ids are in `history.json`).
pub fn result_json(h: &History, r: &CheckResult) -> serde_json::Value {
    let fs = &h.final_state;
    json!({
        "passed": r.passed(),
        "info": h.info,
        "result": r,
        "faults": h.faults,
        "final_state": {
            "healed_at_ms": fs.healed_at_ms,
            "recovered_at_ms": fs.recovered_at_ms,
            "recovery_bound_ms": fs.recovery_bound_ms,
            "primary": fs.primary,
            "ids_on_primary": fs.ids_on_primary.len(),
            "ids_per_node": fs
                .ids_per_node
                .iter()
                .map(|(node, ids)| (node.clone(), ids.len()))
                .collect::<BTreeMap<_, _>>(),
            "notes": fs.notes,
        },
    })
}

/// Escape text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab/newline are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Shorten to at most `max` characters, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else if max == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

const W: f64 = 1000.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 62.0;
const LANE: f64 = 60.0;
const BAR: f64 = 34.0;
const NEMESIS_ROW: f64 = 22.0;
/// Past this many ops the client lane is drawn as binned bars, to keep the file small.
const MAX_TICKS: usize = 600;
const MIN_BIN_MS: u64 = 200;
/// More violation marks than this are summarised in one label.
const MAX_MARKS: usize = 30;

const C_PRIMARY: &str = "#1f6fb4";
const C_REPLICA: &str = "#a9cbe8";
const C_DOWN: &str = "#9a9a9a";
const C_OK: &str = "#2ca02c";
const C_FAILED: &str = "#d62728";
const C_UNKNOWN: &str = "#ff8c1a";
const C_LOST: &str = "#000000";
const C_FAULT: &str = "#8e63b8";
const C_UNAVAILABLE: &str = "#f6c6c6";
const C_VIOLATION: &str = "#d00000";

/// Maps run time to x.
struct Scale {
    end_ms: f64,
}

impl Scale {
    fn x(&self, ms: u64) -> f64 {
        LEFT + (ms as f64 / self.end_ms).min(1.0) * (W - LEFT - RIGHT)
    }
}

/// The timeline picture: one lane per node coloured by role, the client writes, the nemesis
/// intervals, violations as red vertical lines. Self-contained SVG (generic font, no scripts).
pub fn timeline_svg(h: &History, r: &CheckResult) -> String {
    let fs = &h.final_state;
    let end_ms = h
        .ops
        .iter()
        .map(|op| op.end_ms)
        .chain(h.faults.iter().map(|f| f.end_ms.unwrap_or(f.start_ms)))
        .chain(h.roles.iter().map(|s| s.at_ms))
        .chain(fs.recovered_at_ms)
        .chain(r.marks.iter().map(|m| m.at_ms))
        .chain([h.info.duration_ms, fs.healed_at_ms, 1])
        .max()
        .unwrap_or(1);
    let sc = Scale {
        end_ms: end_ms as f64,
    };

    // Nodes in the run's order, then any the monitor saw that the info does not list.
    let mut nodes: Vec<String> = h.info.nodes.clone();
    for s in &h.roles {
        if !nodes.contains(&s.node) {
            nodes.push(s.node.clone());
        }
    }

    // Nemesis rows: greedy packing so overlapping faults do not hide each other.
    let mut order: Vec<usize> = (0..h.faults.len()).collect();
    order.sort_by_key(|&i| h.faults[i].start_ms);
    let mut row_ends: Vec<u64> = Vec::new();
    let mut fault_row = vec![0usize; h.faults.len()];
    for &i in &order {
        let f = &h.faults[i];
        let end = f.end_ms.unwrap_or(end_ms);
        let row = match row_ends.iter().position(|&e| e <= f.start_ms) {
            Some(row) => row,
            None => {
                row_ends.push(0);
                row_ends.len() - 1
            }
        };
        row_ends[row] = end;
        fault_row[i] = row;
    }
    let nemesis_rows = row_ends.len().max(1);

    let client_y = TOP + LANE * nodes.len() as f64;
    let nemesis_y = client_y + LANE;
    let axis_y = nemesis_y + nemesis_rows as f64 * NEMESIS_ROW + 8.0;
    let legend_y = axis_y + 40.0;
    let height = legend_y + 24.0;
    let plot_w = W - LEFT - RIGHT;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height:.0}" viewBox="0 0 {W} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{W}" height="{height:.0}" fill="#ffffff"/>"##
    );
    let verdict = if r.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{} (seed {}) — {} — {}</text>"#,
        esc(&h.info.scenario),
        h.info.seed,
        verdict,
        esc(&format!(
            "{} ok, {} failed, {} unknown",
            r.counts.ok, r.counts.failed, r.counts.unknown
        ))
    );

    // Time grid and axis.
    let step_s = [1u64, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]
        .into_iter()
        .find(|st| end_ms / (st * 1000) <= 12)
        .unwrap_or(3600);
    let _ = writeln!(s, r##"<g class="axis" stroke="#e4e4e4">"##);
    let mut t = 0;
    while t <= end_ms {
        let x = sc.x(t);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{TOP:.0}" x2="{x:.1}" y2="{:.0}"/>"#,
            axis_y
        );
        t += step_s * 1000;
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r#"<g class="axis-labels" text-anchor="middle">"#);
    let mut t = 0;
    while t <= end_ms {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.0}">{}s</text>"#,
            sc.x(t),
            axis_y + 14.0,
            t / 1000
        );
        t += step_s * 1000;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="{:.0}">time since start (s)</text>"#,
        LEFT + plot_w / 2.0,
        axis_y + 28.0
    );
    let _ = writeln!(s, "</g>");

    // Node lanes.
    let last_sample = h.roles.iter().map(|s| s.at_ms).max().unwrap_or(0);
    for (n, node) in nodes.iter().enumerate() {
        let y = TOP + LANE * n as f64;
        let _ = writeln!(s, r#"<g class="lane node-lane" data-node="{}">"#, esc(node));
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.0}" font-weight="bold">{}</text>"#,
            y + BAR / 2.0 + 4.0,
            esc(node)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{y:.0}" width="{plot_w}" height="{BAR}" fill="none" stroke="#cccccc"/>"##
        );
        let mut samples: Vec<_> = h.roles.iter().filter(|x| &x.node == node).collect();
        samples.sort_by_key(|x| x.at_ms);
        // Merge runs of the same role and timeline: one rectangle per run keeps the file small.
        let mut k = 0;
        while k < samples.len() {
            let first = samples[k];
            let mut j = k + 1;
            while j < samples.len() && samples[j].role == first.role && samples[j].timeline == first.timeline
            {
                j += 1;
            }
            let until = samples.get(j).map(|x| x.at_ms).unwrap_or(last_sample);
            let (x0, x1) = (sc.x(first.at_ms), sc.x(until));
            let w = (x1 - x0).max(1.0);
            let (fill, name) = match first.role {
                NodeRole::Primary => (C_PRIMARY, "primary"),
                NodeRole::Replica => (C_REPLICA, "replica"),
                NodeRole::Down => (C_DOWN, "down"),
            };
            let tl = first
                .timeline
                .map(|t| format!(" timeline {t}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                r#"<rect x="{x0:.1}" y="{:.0}" width="{w:.1}" height="{BAR}" fill="{fill}"><title>{} {name}{tl} {}–{}</title></rect>"#,
                y,
                esc(node),
                secs(first.at_ms),
                secs(until)
            );
            if first.role == NodeRole::Primary && w > 34.0 {
                if let Some(t) = first.timeline {
                    let _ = writeln!(
                        s,
                        r##"<text x="{:.1}" y="{:.0}" fill="#ffffff">TL{t}</text>"##,
                        x0 + 3.0,
                        y + BAR / 2.0 + 4.0
                    );
                }
            }
            k = j;
        }
        let _ = writeln!(s, "</g>");
    }

    // Client lane: unavailability shading, then the writes.
    let _ = writeln!(s, r#"<g class="lane client-lane">"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="{:.0}" font-weight="bold">client writes</text>"#,
        client_y + BAR / 2.0 + 4.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{client_y:.0}" width="{plot_w}" height="{BAR}" fill="none" stroke="#cccccc"/>"##
    );
    for w in &r.unavailability {
        let (x0, x1) = (sc.x(w.start_ms), sc.x(w.end_ms));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{client_y:.0}" width="{:.1}" height="{BAR}" fill="{C_UNAVAILABLE}"><title>no acknowledged write {}–{}</title></rect>"#,
            (x1 - x0).max(1.0),
            secs(w.start_ms),
            secs(w.end_ms)
        );
    }
    if h.ops.len() <= MAX_TICKS {
        // Ok ticks in the upper half, failures in the lower half, so neither hides the other.
        for op in &h.ops {
            let x = sc.x(op.end_ms);
            let (color, y0, y1) = match op.outcome {
                Outcome::Ok => (C_OK, client_y, client_y + BAR / 2.0),
                Outcome::Failed => (C_FAILED, client_y + BAR / 2.0, client_y + BAR),
                Outcome::Unknown => (C_UNKNOWN, client_y + BAR / 2.0, client_y + BAR),
            };
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{y0:.0}" x2="{x:.1}" y2="{y1:.0}" stroke="{color}"/>"#
            );
        }
    } else {
        // Stacked bars per bin: the share of ok / failed / unknown among the ops ending there.
        let bin_ms = MIN_BIN_MS.max(end_ms.div_ceil(430));
        let bins = (end_ms / bin_ms + 1) as usize;
        let mut counts = vec![[0usize; 3]; bins];
        for op in &h.ops {
            let b = ((op.end_ms / bin_ms) as usize).min(bins - 1);
            let k = match op.outcome {
                Outcome::Ok => 0,
                Outcome::Failed => 1,
                Outcome::Unknown => 2,
            };
            counts[b][k] += 1;
        }
        for (b, c) in counts.iter().enumerate() {
            let total: usize = c.iter().sum();
            if total == 0 {
                continue;
            }
            let x0 = sc.x(b as u64 * bin_ms);
            let w = (sc.x((b as u64 + 1) * bin_ms) - x0).max(0.5);
            let mut y = client_y;
            for (k, color) in [C_OK, C_FAILED, C_UNKNOWN].iter().enumerate() {
                if c[k] == 0 {
                    continue;
                }
                let hgt = BAR * c[k] as f64 / total as f64;
                let _ = writeln!(
                    s,
                    r#"<rect x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{hgt:.1}" fill="{color}"/>"#
                );
                y += hgt;
            }
        }
    }
    // Lost writes on top, at their acknowledgement.
    let lost: HashSet<i64> = r.lost.iter().copied().collect();
    for op in h
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Ok && lost.contains(&op.id))
    {
        let x = sc.x(op.end_ms);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{:.0}" x2="{x:.1}" y2="{:.0}" stroke="{C_LOST}" stroke-width="3"><title>lost: {}</title></line>"#,
            client_y - 5.0,
            client_y + BAR + 5.0,
            esc(&describe_op(op))
        );
    }
    let _ = writeln!(s, "</g>");

    // Nemesis lane.
    let _ = writeln!(s, r#"<g class="lane nemesis-lane">"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="{:.0}" font-weight="bold">nemesis</text>"#,
        nemesis_y + 15.0
    );
    for (i, f) in h.faults.iter().enumerate() {
        let y = nemesis_y + fault_row[i] as f64 * NEMESIS_ROW;
        let x0 = sc.x(f.start_ms);
        let x1 = sc.x(f.end_ms.unwrap_or(end_ms));
        let w = (x1 - x0).max(2.0);
        let unhealed = if f.end_ms.is_none() {
            r##" stroke="#d00000" stroke-dasharray="4 2""##
        } else {
            ""
        };
        let label = if f.end_ms.is_none() {
            format!("{} (never healed)", f.description)
        } else {
            f.description.clone()
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{y:.0}" width="{w:.1}" height="{:.0}" fill="{C_FAULT}" fill-opacity="0.8"{unhealed}><title>[{i}] {} {}–{}</title></rect>"#,
            NEMESIS_ROW - 4.0,
            esc(&label),
            secs(f.start_ms),
            f.end_ms.map(secs).unwrap_or_else(|| "never healed".into())
        );
        // About 6 px per character at 11 px sans-serif.
        let fits = ((w - 6.0) / 6.0).max(0.0) as usize;
        if fits >= 3 {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.0}" fill="#ffffff">{}</text>"##,
                x0 + 3.0,
                y + 13.0,
                esc(&clip(&label, fits))
            );
        }
    }
    let _ = writeln!(s, "</g>");

    // Healing and recovery, dashed across the lanes.
    let mut guides = Vec::new();
    if !h.faults.is_empty() {
        guides.push((r.recovery.healed_at_ms, "healed"));
    }
    if let Some(at) = r.recovery.recovered_at_ms {
        guides.push((at, "recovered"));
    }
    for (at, label) in guides {
        let x = sc.x(at);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP:.0}" x2="{x:.1}" y2="{axis_y:.0}" stroke="#555555" stroke-dasharray="3 3"/><text x="{:.1}" y="{:.0}" fill="#555555">{label}</text>"##,
            x + 2.0,
            client_y - 4.0
        );
    }

    // Violations: red lines with labels staggered over two rows above the lanes.
    let _ = writeln!(s, r#"<g class="violations">"#);
    let mut marks = r.marks.clone();
    marks.sort_by_key(|m| m.at_ms);
    let extra = marks.len().saturating_sub(MAX_MARKS);
    marks.truncate(MAX_MARKS);
    for (k, m) in marks.iter().enumerate() {
        let x = sc.x(m.at_ms);
        let ly = if k % 2 == 0 { TOP - 20.0 } else { TOP - 6.0 };
        let anchor = if x > W - 200.0 { "end" } else { "start" };
        let dx = if anchor == "end" { -3.0 } else { 3.0 };
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{:.0}" x2="{x:.1}" y2="{axis_y:.0}" stroke="{C_VIOLATION}" stroke-width="1.5"><title>{}</title></line><text x="{:.1}" y="{ly:.0}" fill="{C_VIOLATION}" text-anchor="{anchor}">{}</text>"#,
            ly - 10.0,
            esc(&m.label),
            x + dx,
            esc(&clip(&m.label, 40))
        );
    }
    if extra > 0 {
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.0}" fill="{C_VIOLATION}" text-anchor="end">+{extra} more violations</text>"#,
            W - RIGHT,
            18.0
        );
    }
    let _ = writeln!(s, "</g>");

    // Legend.
    let _ = writeln!(s, r#"<g class="legend">"#);
    let items = [
        (C_PRIMARY, "primary"),
        (C_REPLICA, "replica"),
        (C_DOWN, "down"),
        (C_OK, "write ok"),
        (C_FAILED, "write failed"),
        (C_UNKNOWN, "write unknown"),
        (C_LOST, "lost write"),
        (C_UNAVAILABLE, "no write ok"),
        (C_FAULT, "fault"),
        (C_VIOLATION, "violation"),
    ];
    let mut x = 10.0;
    for (color, name) in items {
        let _ = writeln!(
            s,
            r#"<rect x="{x:.0}" y="{:.0}" width="12" height="12" fill="{color}"/><text x="{:.0}" y="{:.0}">{name}</text>"#,
            legend_y,
            x + 16.0,
            legend_y + 10.0
        );
        x += 24.0 + 7.0 * name.len() as f64;
    }
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
}

/// Write `history.json`, `result.json`, `summary.txt` and `timeline.svg` into `dir` (created if
/// missing) and return their paths.
pub fn write_all(dir: &Path, h: &History, r: &CheckResult) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut paths = Vec::new();

    let path = dir.join("history.json");
    // Compact: a history holds every op and sample and can be large.
    let mut w = BufWriter::new(fs::File::create(&path)?);
    serde_json::to_writer(&mut w, h)?;
    w.write_all(b"\n")?;
    w.flush()?;
    paths.push(path);

    let path = dir.join("result.json");
    let mut text = serde_json::to_string_pretty(&result_json(h, r))?;
    text.push('\n');
    fs::write(&path, text)?;
    paths.push(path);

    let path = dir.join("summary.txt");
    fs::write(&path, summary_text(h, r))?;
    paths.push(path);

    let path = dir.join("timeline.svg");
    fs::write(&path, timeline_svg(h, r))?;
    paths.push(path);

    Ok(paths)
}
