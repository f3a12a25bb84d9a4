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
/tmp/covey-bench-loadtest -addr 127.0.0.1:17710,127.0.0.1:17720,127.0.0.1:17730 -transport tcp -scenario broadcast -sessions 100 -members 8 -rate 10 $SPREAD -size 64 -duration 15s -server-pid $(IFS=,; echo "${pids[*]}") -quiet > /tmp/holdab/probe-r10-$hold.load.txt &
lp=$!
wait $lp
kill ${pids[2]} ${pids[1]} ${pids[0]}; wait
