#!/usr/bin/env bash
# A/B of covey builds against raw on the peers harness's levels.
# VARIANTS="raw base nogs" LEVELS="L1 L2" REPS=3 OUTDIR=/tmp/ab bash /tmp/ab.sh
set -u
W=$HOME/.cache/covey-peers
OUTDIR=${OUTDIR:-/tmp/ab}; mkdir -p $OUTDIR
level_args() { case $1 in L1) echo "100 8 10 8";; L2) echo "100 8 50 8";; L3) echo "1000 8 5 8";; S1) echo "100 8 0 8";; S2) echo "1000 8 0 1";; esac; }
for rep in $(seq ${REPS:-3}); do for lvl in ${LEVELS:-L1 L2}; do for v in ${VARIANTS:-raw base nogs}; do
  read -r rooms members rate window <<<"$(level_args $lvl)"
  if [ $v = raw ]; then $W/bin/rawfanout -addr 127.0.0.1:7400 >/dev/null 2>&1 & pid=$!; peer=raw; addr=127.0.0.1:7400
  elif [ $v = gnet ]; then $W/bin/gnetfanout -addr 127.0.0.1:7401 >/dev/null 2>&1 & pid=$!; peer=gnet; addr=127.0.0.1:7401
  else /tmp/covey-$v -tcp 127.0.0.1:17800 -kcp 127.0.0.1:17800 -http 127.0.0.1:17801 -admin 127.0.0.1:17809 -no-limits -log-level warn ${COVEY_FLAGS:-} >/dev/null 2>&1 & pid=$!; peer=covey; addr=127.0.0.1:17800; fi
  for i in $(seq 100); do (exec 3<>/dev/tcp/${addr%:*}/${addr##*:}) 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  $W/bin/loadgen -peer $peer -addr $addr -rooms $rooms -members $members -rate $rate -window $window -size 64 -warmup 3s -duration 10s -server-pid $pid -label $lvl -wait-quiet 60s -max-other 0.25 -out $OUTDIR/$v.jsonl >/dev/null
  kill $pid; wait $pid 2>/dev/null
done; done; done
for v in ${VARIANTS:-raw base nogs}; do echo "== $v"; jq -r '[.label, (.latency_us.p99//.p99_us//"?"), (.deliveries_per_server_cpu_s//"?")] | @tsv' $OUTDIR/$v.jsonl 2>/dev/null | head -20; done
