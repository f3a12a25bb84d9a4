#!/bin/bash
# idle.sh: CPU of 3 idle nodes (and of 1 idle single node) over 10 s, from /proc/PID/stat
pids=()
for i in 1 2 3; do
  port=$((17700 + 10 * i))
  args=(-log-level warn -no-limits -node "n$i" -tcp "127.0.0.1:$port" -kcp "127.0.0.1:$port" -http "127.0.0.1:$((port + 3))" -admin "127.0.0.1:$((port + 9))" -mesh "127.0.0.1:$((port + 1))" -gossip "127.0.0.1:$((port + 2))")
  if [ "$i" -gt 1 ]; then args+=(-join 127.0.0.1:17712); fi
  /tmp/covey-bench-server "${args[@]}" 2>/dev/null &
  pids+=($!)
  for k in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$((port+3))/readyz && break; sleep 0.1; done
done
sleep 3
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
declare -A a; for p in "${pids[@]}"; do a[$p]=$(cpu $p); done
sleep 10
for p in "${pids[@]}"; do echo "node pid $p: $(( $(cpu $p) - ${a[$p]} )) ticks in 10 s"; done
kill "${pids[@]}"; wait
/tmp/covey-bench-server -log-level warn -no-limits -tcp 127.0.0.1:17710 -kcp 127.0.0.1:17710 -http 127.0.0.1:17713 -admin 127.0.0.1:17719 2>/dev/null &
p=$!; sleep 3; a0=$(cpu $p); sleep 10; echo "single node: $(( $(cpu $p) - a0 )) ticks in 10 s"; kill $p; wait
