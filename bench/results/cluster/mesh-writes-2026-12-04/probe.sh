#!/bin/bash
# probe.sh TAG: three nodes of the bench binary on bench/run.sh's cluster
# ports, the 100x8 broadcast load over them, and a look at node 1. Output
# in $OUT (default .) as probe-TAG.*. Knobs:
#   NODE_FLAGS   extra flags of every node ("-mesh-write-interval 500us"
#                with write-interval.patch applied, say)
#   NODE_ENV     environment of the nodes ("GOMAXPROCS=1")
#   LOAD_FLAGS   extra driver flags (default "-rate 50"; "-rate 10",
#                "-spread session")
#   DURATION     the load's length (default 15s)
#   PERF         stat: syscall counts of node 1 for 5 s, 6 s in;
#                record: every write of node 1 for 2 s, 6 s in, tallied
#                by fd into probe-TAG.writes.txt (fd, bytes), with the
#                sockets in probe-TAG.ss.txt; none (default)
# Build the binaries first: go build -o /tmp/covey-bench-server ./cmd/server
# and -o /tmp/covey-bench-loadtest ./cmd/loadtest.
tag=$1 out=${OUT:-.}
pids=()
for i in 1 2 3; do
  port=$((17700 + 10 * i))
  args=(-log-level warn -no-limits -node "n$i" -tcp "127.0.0.1:$port" -kcp "127.0.0.1:$port" -http "127.0.0.1:$((port + 3))"
    -admin "127.0.0.1:$((port + 9))" -mesh "127.0.0.1:$((port + 1))" -gossip "127.0.0.1:$((port + 2))")
  if [ "$i" -gt 1 ]; then args+=(-join 127.0.0.1:17712); fi
  # shellcheck disable=SC2086,SC2206
  args+=(${NODE_FLAGS:-})
  # shellcheck disable=SC2086
  env ${NODE_ENV:-} /tmp/covey-bench-server "${args[@]}" 2>"$out/probe-$tag-n$i.log" &
  pids+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$((port + 3))/readyz" && break; sleep 0.1; done
done
for i in 1 2 3; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$((17700 + 10 * i + 3))/readyz" && break; sleep 0.1; done
done
# shellcheck disable=SC2086
/tmp/covey-bench-loadtest -addr 127.0.0.1:17710,127.0.0.1:17720,127.0.0.1:17730 -transport tcp -scenario broadcast \
  -sessions 100 -members 8 -size 64 ${LOAD_FLAGS:--rate 50} -duration "${DURATION:-15s}" \
  -server-pid "$(IFS=,; echo "${pids[*]}")" -quiet >"$out/probe-$tag.load.txt" &
lp=$!
case ${PERF:-none} in
stat)
  sleep 6
  perf stat -e 'syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex' \
    -p "${pids[0]}" -- sleep 5 2>"$out/probe-$tag.perf.txt"
  ;;
record)
  sleep 6
  ss -tnp 2>/dev/null | grep "pid=${pids[0]}," >"$out/probe-$tag.ss.txt"
  perf record -q -e syscalls:sys_enter_write -p "${pids[0]}" -o "/tmp/probe-$tag.data" -- sleep 2 2>/dev/null
  ;;
esac
wait $lp
kill "${pids[2]}" "${pids[1]}" "${pids[0]}"
wait
if [ "${PERF:-none}" = record ]; then
  perf script -i "/tmp/probe-$tag.data" 2>/dev/null | grep -o "fd: 0x[0-9a-f]*, buf: 0x[0-9a-f]*, count: 0x[0-9a-f]*" |
    awk '{print $2, $6}' >"$out/probe-$tag.writes.txt"
fi
