#!/usr/bin/env bash
# Real processes: Redis plus three `serve --cluster` nodes on this machine; jobs go to different
# nodes, one node is killed with SIGKILL while jobs run, and every accepted job must finish once
# with the right images (cluster_check.py). Everything is bounded in time and stopped at the end.
# Usage: .ci/cluster-check.sh PATH/TO/asyncdiffusion
set -euo pipefail
cli=${1:?usage: cluster-check.sh PATH/TO/asyncdiffusion}
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v redis-server >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null 2>&1 \
    || { echo "error: redis-server is missing and could not be installed" >&2; exit 1; }
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Keep the nodes' logs on failure when asked (CLUSTER_CHECK_LOGS=DIR).
save_logs() { [ -n "${CLUSTER_CHECK_LOGS:-}" ] && cp "$work"/*.log "$CLUSTER_CHECK_LOGS"/ 2>/dev/null; return 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.2; done

# Bad input first: an unreachable Redis is one clear error and exit code 2.
set +e
bad=$(timeout 60 "$cli" serve --cluster "redis://127.0.0.1:$(free_port)" --urls "http://127.0.0.1:$(free_port)" 2>&1 >/dev/null)
code=$?
set -e
if [ "$code" -ne 2 ] || ! grep -q "^error: cannot reach Redis" <<<"$bad"; then
  echo "error: serve with an unreachable Redis exited $code: $bad" >&2; exit 1
fi

start_node() { # name: starts it, records pid and URL
  local http silo gateway
  http=$(free_port); silo=$(free_port); gateway=$(free_port)
  XDG_CACHE_HOME="$work/cache" "$cli" serve --cluster "redis://127.0.0.1:$redis_port" --node-name "$1" \
    --urls "http://127.0.0.1:$http" --silo-port "$silo" --gateway-port "$gateway" >"$work/$1.log" 2>&1 &
  pids+=($!)
  echo "$1 $! http://127.0.0.1:$http" >>"$work/nodes"
}
wait_ready() { # url
  for _ in $(seq 240); do curl -sf -m 2 "$1/ready" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "error: node $1 not ready after 120 s" >&2; tail -20 "$work"/*.log >&2; return 1
}
# The first node writes the built-in model; the others start once it is there.
start_node node1; wait_ready "$(awk '$1=="node1"{print $3}' "$work/nodes")"
start_node node2; start_node node3
for url in $(awk '{print $3}' "$work/nodes"); do wait_ready "$url"; done

# Two nodes with the same name: the second is refused (exit 2).
set +e
dup=$(XDG_CACHE_HOME="$work/cache" timeout 120 "$cli" serve --cluster "redis://127.0.0.1:$redis_port" --node-name node2 \
  --urls "http://127.0.0.1:$(free_port)" --silo-port "$(free_port)" --gateway-port "$(free_port)" 2>&1 >/dev/null)
code=$?
set -e
if [ "$code" -ne 2 ] || ! grep -q "^error: node 'node2' refused" <<<"$dup"; then
  echo "error: a second node named node2 exited $code: $dup" >&2; exit 1
fi

timeout 300 python3 "$here/cluster_check.py" "$work/nodes" || { save_logs; exit 1; }
echo "cluster: three nodes on Redis, one killed mid-run: every accepted job finished once with the right images"
