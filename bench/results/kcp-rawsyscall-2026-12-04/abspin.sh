#!/usr/bin/env bash
# base (09ebe56) vs new (HEAD), bcast-kcp-100x8-10 15 s, without and with two nice-19 spinners (keep the vCPUs from idling)
set -u
for rep in 1 2; do for spin in no yes; do for v in base new; do
  spids=""
  if [ $spin = yes ]; then for i in 1 2; do nice -n 19 timeout 30 sh -c 'while :; do :; done' & spids="$spids $!"; done; fi
  /tmp/covey-$v -log-level warn -no-limits 2>/dev/null & pid=$!
  for i in $(seq 50); do curl -sf http://127.0.0.1:7701/readyz >/dev/null && break; sleep 0.1; done
  r=$(/tmp/covey-bench-loadtest -transport kcp -scenario broadcast -sessions 100 -members 8 -rate 10 -size 64 -duration 15s -server-pid $pid -quiet)
  echo "$v spin=$spin $(echo "$r" | grep -o 'p50.*p99 [^ ]*') $(echo "$r" | grep -o '[0-9]* deliveries per cpu-second')"
  kill $pid; wait $pid 2>/dev/null; [ -n "$spids" ] && kill $spids 2>/dev/null; wait 2>/dev/null
done; done; done
