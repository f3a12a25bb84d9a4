#!/bin/bash
hold=$1
pids=()
for i in 1 2 3; do
  port=$((17700 + 10 * i))
  args=(-log-level warn -no-limits -node "n$i" -tcp "127.0.0.1:$port" -kcp "127.0.0.1:$port" -http "127.0.0.1:$((port + 3))" -admin "127.0.0.1:$((port + 9))" -mesh "127.0.0.1:$((port + 1))" -gossip "127.0.0.1:$((port + 2))")
  if [ "$i" -gt 1 ]; then args+=(-join 127.0.0.1:17712); fi
  /tmp/covey-bench-server "${args[@]}" 2>/tmp/holdab/probe-n$i.log &
  pids+=($!)
  for k in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$((port+3))/readyz && break; sleep 0.1; done
done
for i in 1 2 3; do for k in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$((17700+10*i+3))/readyz && break; sleep 0.1; done; done
/tmp/covey-bench-loadtest -addr 127.0.0.1:17710,127.0.0.1:17720,127.0.0.1:17730 -transport tcp -scenario broadcast -sessions 100 -members 8 -rate 50 -size 64 -duration 12s $SPREAD -server-pid $(IFS=,; echo "${pids[*]}") -quiet > /tmp/holdab/probe2-$hold.load.txt &
lp=$!
sleep 6
ls -l /proc/${pids[0]}/fd 2>/dev/null > /tmp/holdab/probe2-$hold.fds.txt
ss -tnp 2>/dev/null | grep "pid=${pids[0]}," > /tmp/holdab/probe2-$hold.ss.txt
perf record -q -e syscalls:sys_enter_write -p ${pids[0]} -o /tmp/holdab/probe2-$hold.data -- sleep 2 2>/dev/null
wait $lp
kill ${pids[2]} ${pids[1]} ${pids[0]}; wait
perf script -i /tmp/holdab/probe2-$hold.data 2>/dev/null | grep -o "fd: 0x[0-9a-f]*, buf: 0x[0-9a-f]*, count: 0x[0-9a-f]*" | awk '{print $2, $6}' > /tmp/holdab/probe2-$hold.writes.txt
