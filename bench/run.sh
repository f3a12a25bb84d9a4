#!/usr/bin/env bash
# Reproduces the figures in bench/README.md: builds the server and the load
# test driver, and for each scenario starts a fresh server, runs the driver
# against it on loopback with -server-pid, and keeps the JSON.
#   bench/run.sh            all scenarios
#   bench/run.sh NAME...    only those (names as in the tables below)
# Cluster rows (cluster-*, at the end) start several nodes and compare
# with their 1-node row, run next to them; ROUNDS=N runs them N times,
# alternating with the 1-node row, and PROFILE=DIR takes CPU profiles of
# the nodes (then the CPU figures include the profiler's cost).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
go build -o /tmp/covey-bench-server ./cmd/server
go build -o /tmp/covey-bench-loadtest ./cmd/loadtest
go build -o /tmp/covey-bench-floor ./bench/floor

# name | server flags | driver flags
scenarios=(
  "bcast-tcp-100x8-10|  |-transport tcp -scenario broadcast -sessions 100 -members 8 -rate 10 -size 64 -duration 20s"
  "bcast-tcp-100x8-50|  |-transport tcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-tcp-34x8-50|  |-transport tcp -scenario broadcast -sessions 34 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-tcp-400x2-50|  |-transport tcp -scenario broadcast -sessions 400 -members 2 -rate 50 -size 64 -duration 20s"
  "bcast-tcp-134x2-50|  |-transport tcp -scenario broadcast -sessions 134 -members 2 -rate 50 -size 64 -duration 20s"
  "bcast-tcp-100x8-50-1loop|-event-loops 1|-transport tcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-tcp-100x8-50-2loop|-event-loops 2|-transport tcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-tcp-1000x8-5|  |-transport tcp -scenario broadcast -sessions 1000 -members 8 -rate 5 -size 64 -duration 20s"
  "bcast-kcp-100x8-10|  |-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 10 -size 64 -duration 20s"
  "bcast-kcp-100x8-50|  |-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-kcp-100x8-50-unshed|-kcp-overload-wait off|-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-kcp-100x8-50-backoff|  |-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s -backoff 100ms"
  "bcast-kcp-1000x8-5|-kcp-interval 20ms|-transport kcp -scenario broadcast -sessions 1000 -members 8 -rate 5 -size 64 -duration 20s"
  "bcast-kcp-1000x8-5-backoff|-kcp-interval 20ms|-transport kcp -scenario broadcast -sessions 1000 -members 8 -rate 5 -size 64 -duration 20s -backoff 100ms"
  "bcast-kcp-100x8-50-2r|-kcp-readers 2|-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-kcp-1000x8-5-2r|-kcp-interval 20ms -kcp-readers 2|-transport kcp -scenario broadcast -sessions 1000 -members 8 -rate 5 -size 64 -duration 20s"
  "max-tcp-100x8-w8|  |-transport tcp -scenario max -sessions 100 -members 8 -window 8 -size 64 -duration 20s"
  "max-tcp-1000x8-w1|  |-transport tcp -scenario max -sessions 1000 -members 8 -window 1 -size 64 -duration 20s"
  "idle-tcp-15000|  |-transport tcp -scenario idle -clients 15000 -duration 60s"
  "idle-kcp-4000|  |-transport kcp -scenario idle -clients 4000 -duration 60s"
)
# taken PORT...: whether something listens on one of the ports (TCP or
# UDP): a driver would measure that server instead. The machine is shared.
taken() {
  local p
  for p in "$@"; do
    if [ -n "$(ss -Hltun "( sport = :$p )")" ]; then
      echo "   port $p is taken: $(ss -Hltunp "( sport = :$p )" | head -1)"
      return 0
    fi
  done
  return 1
}

want=" $* "
for s in "${scenarios[@]}"; do
  IFS='|' read -r name sflags dflags <<<"$s"
  if [ $# -gt 0 ] && [[ "$want" != *" $name "* ]]; then continue; fi
  if taken 7700 7701; then echo "== $name skipped"; continue; fi
  # shellcheck disable=SC2086
  # -no-limits: the driver goes past the rates that protect a node from one player.
  /tmp/covey-bench-server -log-level warn -no-limits $sflags 2>/dev/null &
  pid=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:7701/readyz >/dev/null && break; sleep 0.1; done
  echo "== $name"
  # shellcheck disable=SC2086
  /tmp/covey-bench-loadtest $dflags -server-pid "$pid" -quiet -json "$out/$name.json" | tee "$out/$name.txt" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

# The floor (bench/floor): the same traffic through a server and a client
# that make only the system calls. name | loops on each side | client flags
floors=(
  "floor-tcp-100x8-10|2|-rate 10"
  "floor-tcp-100x8-10-1loop|1|-rate 10"
  "floor-tcp-100x8-50|2|-rate 50"
  "floor-tcp-100x8-50-1loop|1|-rate 50"
)
for s in "${floors[@]}"; do
  IFS='|' read -r name loops cflags <<<"$s"
  if [ $# -gt 0 ] && [[ "$want" != *" $name "* ]]; then continue; fi
  /tmp/covey-bench-floor -mode server -loops "$loops" 2>/dev/null &
  pid=$!
  # A probe connection sends no index: the server drops it.
  for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/7790) 2>/dev/null && break; sleep 0.1; done
  echo "== $name"
  # shellcheck disable=SC2086
  /tmp/covey-bench-floor -mode client -loops "$loops" -server-pid "$pid" -duration 20s $cflags | tee "$out/$name.txt" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

# Clusters: NODES cmd/server processes on 127.0.0.1, node i (n1, n2, ...)
# with TCP and KCP on port 17700+10i, its mesh on +1, gossip on +2 and
# HTTP on +3, every node after the first joining the first's gossip. Once
# every /readyz answers 200 (a node is ready when it has a link up to each
# node it knows), the driver runs with -addr over the nodes and
# -server-pid over their PIDs, and the nodes are stopped with SIGTERM. The
# driver's flags are the 1-node row's (BASE) plus the row's own. In each
# round BASE runs first, on a fresh single server as above, then the
# cluster rows: deliveries per server CPU-second (summed over the nodes) of
# a cluster row divided by BASE's of the same round is the row's ratio.
# A row may name a second 1-node row, NODE: one node's share of the
# cluster's load (bcast-tcp-34x8-50 is a third of bcast-tcp-100x8-50's
# sessions at the same rate per player: what each node of -spread session
# carries). It runs after BASE in each round, and the row gets a second
# ratio against it: the cluster's cost at equal load per node, without the
# batching a node gains from carrying all of the load (bench/README.md,
# "The cluster at equal load per node").
# Files: results/cluster/rN/NAME.{txt,json} (BASE's and NODE's too, so the
# 1-node files above stay those of the 1-node table), and per cluster row
# results/cluster/NAME.txt, the table of its rounds against BASE's, and
# results/cluster/NAME.per-node.txt against NODE's.
# cluster-bcast-tcp-400x2-50-3n is design §8.4's worst case: sessions of
# 2 members on 2 nodes, one delivery per broadcast and 1.5 mesh frames.
# name | BASE | nodes | extra driver flags | NODE
clusters=(
  "cluster-bcast-tcp-100x8-50-3n|bcast-tcp-100x8-50|3|-spread player|bcast-tcp-34x8-50"
  "cluster-bcast-tcp-100x8-50-3n-session|bcast-tcp-100x8-50|3|-spread session|bcast-tcp-34x8-50"
  "cluster-bcast-tcp-400x2-50-3n|bcast-tcp-400x2-50|3|-spread player|bcast-tcp-134x2-50"
)
rounds=${ROUNDS:-1}
profile=${PROFILE:-}
if [ -n "$profile" ]; then mkdir -p "$profile"; fi

# flags_of NAME [server]: the driver flags of 1-node row NAME, or with
# "server" its server flags. It exits the script for an unknown NAME, but
# only when not called in a command substitution: check names first.
flags_of() {
  local s name sflags dflags
  for s in "${scenarios[@]}"; do
    IFS='|' read -r name sflags dflags <<<"$s"
    if [ "$name" = "$1" ]; then
      if [ "${2:-}" = server ]; then echo "$sflags"; else echo "$dflags"; fi
      return
    fi
  done
  echo "bench/run.sh: no 1-node row $1" >&2
  exit 1
}

# ready URL TRIES: waits until URL answers 200, 0.1 s between tries.
ready() {
  local i
  for i in $(seq "$2"); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# profile_later ADMINPORT FILE: in the background, 10 s of the CPU profile
# of the server on HTTPPORT into FILE, from 5 s on (past the driver's
# ramp); its PID in $!.
profile_later() {
  (sleep 5; curl -sf -o "$2" "http://127.0.0.1:$1/debug/pprof/profile?seconds=10" || echo "   no profile from :$1") &
}

# stop_nodes PID...: SIGTERM, last node first, and wait for each; says so
# if a node did not exit cleanly (status 0).
stop_nodes() {
  local i rc pids=("$@")
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    rc=0
    wait "${pids[i]}" || rc=$?
    if [ "$rc" -ne 0 ]; then echo "   node n$((i + 1)) (pid ${pids[i]}) exited with status $rc"; fi
  done
}

# run_cluster NAME NODES DFLAGS FILE: one cluster row (of round $r), its
# output in FILE.txt and FILE.json.
run_cluster() {
  local name=$1 nodes=$2 dflags=$3 file=$4
  local i n port addrs="" pidlist="" pids=() logs=() args prof=()
  rm -f "$file.json" "$file.txt" # never compare an earlier run's
  for i in $(seq "$nodes"); do
    port=$((17700 + 10 * i))
    if taken $port $((port + 1)) $((port + 2)) $((port + 3)); then
      echo "   $name skipped"
      stop_nodes "${pids[@]}"
      return 1
    fi
    # port+9 is the node's admin listener (metrics, pprof); -no-limits as
    # for every row: the driver goes past one player's rates.
    args=(-log-level warn -no-limits -node "n$i" -tcp "127.0.0.1:$port" -kcp "127.0.0.1:$port" -http "127.0.0.1:$((port + 3))"
      -admin "127.0.0.1:$((port + 9))" -mesh "127.0.0.1:$((port + 1))" -gossip "127.0.0.1:$((port + 2))")
    if [ "$i" -gt 1 ]; then args+=(-join 127.0.0.1:17712); fi
    # NODE_FLAGS: extra flags for every node of a cluster row (e.g.
    # "-event-loops 1" when the three nodes share the machine's cores).
    # shellcheck disable=SC2206
    args+=(${NODE_FLAGS:-})
    if [ -n "$profile" ]; then args+=(-pprof); fi
    logs[i]="/tmp/covey-bench-$name-n$i.log"
    /tmp/covey-bench-server "${args[@]}" 2>"${logs[i]}" &
    pids+=($!)
    addrs+="${addrs:+,}127.0.0.1:$port"
    pidlist+="${pidlist:+,}$!"
    # One node at a time: each joins a cluster that has settled.
    if ! ready "http://127.0.0.1:$((port + 3))/readyz" 100; then
      echo "   node n$i not ready after 10 s; $name skipped"
      stop_nodes "${pids[@]}"
      return 1
    fi
  done
  for i in $(seq "$nodes"); do
    if ! ready "http://127.0.0.1:$((17700 + 10 * i + 3))/readyz" 100; then
      echo "   node n$i not ready after 10 s; $name skipped"
      stop_nodes "${pids[@]}"
      return 1
    fi
  done
  if [ -n "$profile" ]; then
    for i in $(seq "$nodes"); do
      profile_later $((17700 + 10 * i + 9)) "$profile/$name.r$r-n$i.cpu.prof"
      prof+=($!)
    done
  fi
  # shellcheck disable=SC2086
  /tmp/covey-bench-loadtest -addr "$addrs" $dflags -server-pid "$pidlist" -quiet -json "$file.json" | tee "$file.txt" || true
  if [ ${#prof[@]} -gt 0 ]; then wait "${prof[@]}" || true; fi
  stop_nodes "${pids[@]}"
  # Dev mode warns once at start; anything else is worth a look.
  for i in $(seq "$nodes"); do
    n=$(grep -cv 'DEV MODE' "${logs[i]}" || true)
    if [ "$n" -gt 0 ]; then echo "   node n$i logged $n lines at warn or above: ${logs[i]}"; fi
  done
}

# single ROW DIR: 1-node row ROW of round $r on a fresh server, its output
# in DIR/ROW.{txt,json}. Fails if the server's ports are taken.
single() {
  local row=$1 dir=$2 pid prof=()
  rm -f "$dir/$row.json" "$dir/$row.txt" # never compare with an earlier run's
  if taken 7700 7701; then return 1; fi
  # shellcheck disable=SC2046,SC2086
  /tmp/covey-bench-server -log-level warn -no-limits ${profile:+-pprof} $(flags_of "$row" server) 2>/dev/null &
  pid=$!
  ready http://127.0.0.1:7701/readyz 50 || true
  echo "== $row (round $r of $rounds, against the cluster rows)"
  if [ -n "$profile" ]; then profile_later 7709 "$profile/$row.r$r.cpu.prof"; prof=($!); fi
  # shellcheck disable=SC2046
  /tmp/covey-bench-loadtest $(flags_of "$row") -server-pid "$pid" -quiet -json "$dir/$row.json" | tee "$dir/$row.txt" || true
  if [ ${#prof[@]} -gt 0 ]; then wait "${prof[@]}" || true; fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# compare NAME BASE [FILE]: the table of NAME's rounds against BASE's, from
# the JSON files under results/cluster, with medians and spreads, also
# written to FILE (default results/cluster/NAME.txt).
compare() {
  local name=$1 base=$2 dir=$out/cluster r b c
  local file=${3:-$dir/$name.txt}
  {
    echo "$name against $base, $rounds round(s): deliveries per server CPU-second (dpc), latency, lost"
    printf '%-6s %10s %9s %9s %6s   %10s %9s %9s %6s   %6s\n' round "1n dpc" "1n p50" "1n p99" lost "${name##*-} dpc" p50 p99 lost ratio
    for r in $(seq "$rounds"); do
      b="$dir/r$r/$base.json" c="$dir/r$r/$name.json"
      if [ ! -s "$b" ] || [ ! -s "$c" ]; then echo "r$r     (missing)"; continue; fi
      jq -rn --slurpfile b "$b" --slurpfile c "$c" --arg r "r$r" '
        def ms: . / 1000 | tostring | .[0:6] + "ms";
        def dpc: .deliveries_per_server_cpu_s // 0 | floor;
        [$r, ($b[0] | dpc), ($b[0].latency_us.p50 | ms), ($b[0].latency_us.p99 | ms), $b[0].lost,
             ($c[0] | dpc), ($c[0].latency_us.p50 | ms), ($c[0].latency_us.p99 | ms), $c[0].lost,
             (if ($b[0] | dpc) > 0 then (($c[0] | dpc) / ($b[0] | dpc) * 1000 | round) / 1000 else "-" end)] | @tsv'
    done | awk -F'\t' '
      function median(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
        return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
      }
      function lo(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
      function hi(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
      NF == 10 {
        printf "%-6s %10s %9s %9s %6s   %10s %9s %9s %6s   %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
        n++; b[n] = $2; c[n] = $6; q[n] = $10; m1[n] = $3 + 0; p1[n] = $4 + 0; m3[n] = $7 + 0; p3[n] = $8 + 0
      }
      NF != 10 { print }
      END {
        if (n == 0) exit
        printf "median %10d %9s %9s %6s   %10d %9s %9s %6s   %6.3f\n", median(b, n), median(m1, n) "ms", median(p1, n) "ms", "", median(c, n), median(m3, n) "ms", median(p3, n) "ms", "", median(q, n)
        printf "spread %10s %9s %9s %6s   %10s %9s %9s %6s   %6s\n", lo(b, n) "-" hi(b, n), lo(m1, n) "-" hi(m1, n), lo(p1, n) "-" hi(p1, n), "", lo(c, n) "-" hi(c, n), lo(m3, n) "-" hi(m3, n), lo(p3, n) "-" hi(p3, n), "", sprintf("%.3f-%.3f", lo(q, n), hi(q, n))
      }'
  } | tee "$file"
}

picked=()
for s in "${clusters[@]}"; do
  IFS='|' read -r name base nodes xflags node <<<"$s"
  if [ $# -gt 0 ] && [[ "$want" != *" $name "* ]]; then continue; fi
  flags_of "$base" >/dev/null # exits here on a name that is no 1-node row
  if [ -n "$node" ]; then flags_of "$node" >/dev/null; fi
  picked+=("$s")
done
if [ ${#picked[@]} -gt 0 ]; then
  for r in $(seq "$rounds"); do
    dir="$out/cluster/r$r"
    mkdir -p "$dir"
    ran=" " failed=" "
    for s in "${picked[@]}"; do
      IFS='|' read -r name base nodes xflags node <<<"$s"
      # The 1-node rows, as above, each once a round before the first
      # cluster row that names it.
      for row in $base $node; do
        if [[ "$ran" == *" $row "* ]]; then continue; fi
        if ! single "$row" "$dir"; then echo "== $row skipped"; failed+="$row "; fi
        ran+="$row "
      done
      if [[ "$failed" == *" $base "* ]]; then
        echo "== $name skipped in round $r: no $base to compare it with"
        continue
      fi
      echo "== $name (round $r of $rounds)"
      run_cluster "$name" "$nodes" "$(flags_of "$base") $xflags" "$dir/$name" || true
    done
  done
  for s in "${picked[@]}"; do
    IFS='|' read -r name base nodes xflags node <<<"$s"
    echo "== $name: $rounds round(s) against $base"
    compare "$name" "$base"
    if [ -n "$node" ]; then
      echo "== $name: $rounds round(s) against $node (one node's share of the load)"
      compare "$name" "$node" "$out/cluster/$name.per-node.txt"
    fi
  done
fi

# Encryption: the same workload on a token-mode server, every client
# encrypted (PROTOCOL.md, Transport security; the driver mints connect
# tokens with the server's secret), against the plaintext 1-node row
# BASE, alternating over ROUNDS rounds on fresh servers. The ratio is
# deliveries per server CPU-second, encrypted over plaintext. Files:
# results/encryption/rN/NAME.{txt,json} and BASE's, and the table
# results/encryption/NAME.txt.
# name | BASE
encrypted=(
  "enc-bcast-tcp-100x8-50|bcast-tcp-100x8-50"
  "enc-bcast-kcp-100x8-10|bcast-kcp-100x8-10"
)
bench_secret="bench-secret-0123456789abcdef"
picked=()
for s in "${encrypted[@]}"; do
  IFS='|' read -r name base <<<"$s"
  if [ $# -gt 0 ] && [[ "$want" != *" $name "* ]]; then continue; fi
  picked+=("$s")
done
if [ ${#picked[@]} -gt 0 ]; then
  for r in $(seq "$rounds"); do
    dir="$out/encryption/r$r"
    mkdir -p "$dir"
    for s in "${picked[@]}"; do
      IFS='|' read -r name base <<<"$s"
      for row in "$base" "$name"; do
        if taken 7700 7701; then echo "== $row skipped"; continue; fi
        sflags=() dflags=()
        if [ "$row" = "$name" ]; then
          sflags=(-secret "$bench_secret" -api-key bench)
          dflags=(-secret "$bench_secret")
        fi
        /tmp/covey-bench-server -log-level warn -no-limits "${sflags[@]}" 2>/dev/null &
        pid=$!
        ready http://127.0.0.1:7701/readyz 50 || true
        echo "== $row (round $r of $rounds)"
        # shellcheck disable=SC2046
        /tmp/covey-bench-loadtest $(flags_of "$base") "${dflags[@]}" -server-pid "$pid" -quiet -json "$dir/$row.json" | tee "$dir/$row.txt" || true
        kill "$pid"; wait "$pid" 2>/dev/null || true
      done
    done
  done
  for s in "${picked[@]}"; do
    IFS='|' read -r name base <<<"$s"
    echo "== $name: $rounds round(s) against $base"
    compare "$name" "$base" "$out/encryption"
  done
fi
