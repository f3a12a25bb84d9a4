#!/usr/bin/env bash
# Reproduces the figures in bench/README.md: builds the server and the load
# test driver, and for each scenario starts a fresh server, runs the driver
# against it on loopback with -server-pid, and keeps the JSON.
#   bench/run.sh            all scenarios
#   bench/run.sh NAME...    only those (names as in the table below)
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
  "bcast-tcp-1000x8-5|  |-transport tcp -scenario broadcast -sessions 1000 -members 8 -rate 5 -size 64 -duration 20s"
  "bcast-kcp-100x8-10|  |-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 10 -size 64 -duration 20s"
  "bcast-kcp-100x8-50|  |-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-kcp-1000x8-5|-kcp-interval 20ms|-transport kcp -scenario broadcast -sessions 1000 -members 8 -rate 5 -size 64 -duration 20s"
  "max-tcp-100x8-w8|  |-transport tcp -scenario max -sessions 100 -members 8 -window 8 -size 64 -duration 20s"
  "max-tcp-1000x8-w1|  |-transport tcp -scenario max -sessions 1000 -members 8 -window 1 -size 64 -duration 20s"
  "idle-tcp-15000|  |-transport tcp -scenario idle -clients 15000 -duration 60s"
  "idle-kcp-4000|  |-transport kcp -scenario idle -clients 4000 -duration 60s"
)
want=" $* "
for s in "${scenarios[@]}"; do
  IFS='|' read -r name sflags dflags <<<"$s"
  if [ $# -gt 0 ] && [[ "$want" != *" $name "* ]]; then continue; fi
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
