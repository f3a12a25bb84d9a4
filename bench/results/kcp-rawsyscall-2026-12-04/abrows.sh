#!/usr/bin/env bash
# A/B of server builds on bench/run.sh rows, alternated: VARIANTS="base new" (binaries /tmp/covey-$v)
set -u
OUT=${OUT:-/tmp/abrows.txt}
rows=(
  "bcast-tcp-100x8-10||-transport tcp -scenario broadcast -sessions 100 -members 8 -rate 10 -size 64 -duration 20s"
  "bcast-kcp-100x8-10||-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 10 -size 64 -duration 20s"
  "bcast-kcp-100x8-50||-transport kcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 20s"
  "bcast-kcp-1000x8-5|-kcp-interval 20ms|-transport kcp -scenario broadcast -sessions 1000 -members 8 -rate 5 -size 64 -duration 20s"
)
for rep in $(seq ${REPS:-3}); do for row in "${rows[@]}"; do
  IFS='|' read -r name sflags dflags <<<"$row"
  case " ${ROWS:-all} " in *" all "*|*" $name "*) ;; *) continue;; esac
  for v in ${VARIANTS:-base new}; do
  /tmp/covey-$v -log-level warn -no-limits $sflags 2>/dev/null & pid=$!
  for i in $(seq 50); do curl -sf http://127.0.0.1:7701/readyz >/dev/null && break; sleep 0.1; done
  r=$(/tmp/covey-bench-loadtest $dflags -server-pid $pid -quiet)
  echo "$v $name $(echo "$r" | grep -o 'p50.*max [^ ]*') $(echo "$r" | grep -o '[0-9]* deliveries per cpu-second') $(echo "$r" | grep -o 'lost [0-9]*')" | tee -a $OUT
  kill $pid; wait $pid 2>/dev/null
done; done; done
