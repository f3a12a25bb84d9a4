#!/bin/bash
# probe.sh HOLD: 3 nodes with -mesh-write-interval HOLD, the player-spread load, perf stat of node 1's syscalls for 5 s
hold=$1
pids=()
for i in 1 2 3; do
  port=$((17700 + 10 * i))
  args=(-log-level warn -no-limits -node "n$i" -tcp "127.0.0.1:$port" -kcp "127.0.0.1:$port" -http "127.0.0.1:$((port + 3))" -admin "127.0.0.1:$((port + 9))" -mesh "127.0.0.1:$((port + 1))" -gossip "127.0.0.1:$((port + 2))")
  if [ "$i" -gt 1 ]; then args+=(-join 127.0.0.1:17712); fi
  GOMAXPROCS=$hold /tmp/covey-bench-server "${args[@]}" 2>/tmp/holdab/probe-n$i.log &
  pids+=($!)
  for k in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$((port+3))/readyz && break; sleep 0.1; done
done
for i in 1 2 3; do for k in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$((17700+10*i+3))/readyz && break; sleep 0.1; done; done
/tmp/covey-bench-loadtest -addr 127.0.0.1:17710,127.0.0.1:17720,127.0.0.1:17730 -transport tcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 15s -server-pid $(IFS=,; echo "${pids[*]}") -quiet > /tmp/holdab/probe-gmp$hold.load.txt &
lp=$!
sleep 6
perf stat -e 'syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex' -p ${pids[0]} -- sleep 5 2> /tmp/holdab/probe-gmp$hold.perf.txt
curl -s http://127.0.0.1:17719/metrics | grep -i "peer\|mesh" | grep -v "^#" > /tmp/holdab/probe-gmp$hold.metrics.txt
wait $lp
kill ${pids[2]} ${pids[1]} ${pids[0]}; wait
