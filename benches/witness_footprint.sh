#!/bin/sh
# Witness footprint: resident memory and idle CPU of `pgquorum-controller` beside two
# Raft-only agents on 127.0.0.1 (no PostgreSQL: the witness's work does not depend on it).
#
#   cargo build --release -p pgquorum-controller --bins && cargo build --release --bins
#   benches/witness_footprint.sh [BIN_DIR (default target/release)] [SECONDS (default 30)]
#
# AGENT_BIN_DIR (default BIN_DIR) is where `pgquorum` and `pgquorumctl` are taken from.
#
# Reports, after the group has formed and settled: the witness's Raft role, VmRSS and VmHWM
# (peak) from /proc/PID/status, its threads, and CPU over SECONDS from /proc/PID/stat
# (utime + stime). The same for one agent, for comparison. Run it in a network namespace of
# its own if other programs use ports BASE_PORT..BASE_PORT+2 (default 23400).
set -eu
BIN=${1:-target/release}
SECS=${2:-30}
BASE=${BASE_PORT:-23400}
AGENTS=${AGENT_BIN_DIR:-$BIN}
DIR=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

addr() { echo "127.0.0.1:$((BASE + $1))"; }
config() { # index name
    others=""
    for j in 0 1 2; do [ "$j" = "$1" ] || others="$others, '$(addr "$j")'"; done
    printf "scope: footprint\nname: %s\nraft:\n  self_addr: '%s'\n  partner_addrs: [%s]\n  data_dir: %s\nlog:\n  level: WARNING\n" \
        "$2" "$(addr "$1")" "${others#, }" "$DIR/$2/raft" > "$DIR/$2.yml"
}
config 0 node1; config 1 node2; config 2 witness
printf 'watchdog:\n  mode: "off"\n' | tee -a "$DIR/node1.yml" >> "$DIR/node2.yml"
"$AGENTS/pgquorum" "$DIR/node1.yml" 2>>"$DIR/node1.log" & PIDS="$PIDS $!"; AGENT=$!
"$AGENTS/pgquorum" "$DIR/node2.yml" 2>>"$DIR/node2.log" & PIDS="$PIDS $!"
"$BIN/pgquorum-controller" "$DIR/witness.yml" 2>>"$DIR/witness.log" & PIDS="$PIDS $!"; WITNESS=$!

# Formed: three voters answer and one leads.
i=0
until "$AGENTS/pgquorumctl" -e "$(addr 0)" raft status 2>/dev/null \
    | awk -F'|' '/127.0.0.1/ {gsub(/ /, "", $5); if ($5=="leader" || $5=="follower") n++} END {exit n==3 ? 0 : 1}'; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "the group did not form"; cat "$DIR"/*.log; exit 1; }
    sleep 0.2
done
sleep 5 # settle: start-up allocations and the first snapshot are not the idle state

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { awk -v k="$2:" '$1==k {print $2, $3}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
W0=$(ticks $WITNESS); A0=$(ticks $AGENT)
sleep "$SECS"
W1=$(ticks $WITNESS); A1=$(ticks $AGENT)
role=$("$AGENTS/pgquorumctl" -e "$(addr 0)" raft status | awk -F'|' -v a="$(addr 2)" '$0 ~ a {gsub(/ /, "", $5); print $5}')
cpu() { awk -v d="$1" -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.3f %%", d / hz / s * 100}'; }
echo "witness (pgquorum-controller): raft role $role"
echo "  VmRSS $(field $WITNESS VmRSS)  VmHWM $(field $WITNESS VmHWM)  threads $(field $WITNESS Threads)"
echo "  CPU over ${SECS} s: $(cpu $((W1 - W0)))"
echo "  threads by name: $(cat /proc/$WITNESS/task/*/comm | sort | uniq -c | tr -s ' \n' ' ')"
echo "  largest mappings (kB RSS): $(awk '/^[0-9a-f]+-/ {name=$6} /^Rss:/ {rss[name]+=$2} END {for (n in rss) print rss[n], (n == "" ? "[anon]" : n)}' /proc/$WITNESS/smaps | sort -rn | head -4 | tr '\n' ';')"
echo "agent node1 (pgquorum, no PostgreSQL), for comparison:"
echo "  VmRSS $(field $AGENT VmRSS)  VmHWM $(field $AGENT VmHWM)  threads $(field $AGENT Threads)"
echo "  CPU over ${SECS} s: $(cpu $((A1 - A0)))"
