#!/usr/bin/env bash
# Peer comparison, one run: distlog vs Redis Streams (AOF) vs NATS JetStream, all on
# loopback, with matched record sizes (100 B, 1 KiB), batches (BATCH records per request /
# pipeline) and durability (no fsync / fsync per batch), produce then consume.
#
#   benches/peers/run.sh            # full run (a few minutes)
#   QUICK=1 benches/peers/run.sh    # small counts
#
# Loads:
# - distlog: the release `distlog` CLI. produce -f FILE --batch-records BATCH (pipelined
#   ProduceStream, 8 requests in flight; figure from its own JSON summary); consume with
#   Fetch to /dev/null (timed around the process). Topic flush.policy os | batch.
# - Redis 7 Streams: redis-benchmark (C), XADD with -P BATCH pipelining on one connection;
#   consume = XRANGE - + COUNT BATCH (re-reads the stream head: hot data). AOF on with
#   appendfsync no | always (Redis fsyncs once per event-loop pass, i.e. per pipelined batch).
# - NATS JetStream (file storage): benches/peers/nats_load.py (nats-py, one ack per batch;
#   pull consumer fetching BATCH). Debian's nats-server 2.9 has no per-write fsync setting
#   (sync_interval arrived in 2.10), so its sync-per-batch row is not matched and is skipped.
#   The Python client is likely its bottleneck: read its figures as a lower bound.
#
# Installs what it needs (apt-get, pip), starts each server on a loopback port in a
# temporary directory, and stops them on exit (trap). Bounded: fixed record counts.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
QUICK="${QUICK:-}"
BATCH="${BATCH:-1000}"
if [[ -n "$QUICK" ]]; then N100=50000; N1K=20000; else N100=400000; N1K=100000; fi
REDIS_PORT="${REDIS_PORT:-16379}"
NATS_PORT="${NATS_PORT:-14222}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/distlog/target}"

WORK="$(mktemp -d /tmp/distlog-peers.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log() { echo "peers: $*" >&2; }

# --- install -------------------------------------------------------------------------
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-benchmark >/dev/null || need_apt+=(redis-tools)
command -v nats-server >/dev/null || need_apt+=(nats-server)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -c "import nats" 2>/dev/null || { log "installing nats-py"; pip install -q nats-py; }
log "building distlog (bench profile: optimised, shares the benches' artifacts)"
(cd "$ROOT" && cargo build -q --profile bench -p distlog)
DISTLOG="$CARGO_TARGET_DIR/release/distlog"

# --- start servers -------------------------------------------------------------------
start_distlog() {
  mkdir -p "$WORK/distlog"
  "$DISTLOG" serve --listen 127.0.0.1:0 --metrics-listen "" --data-dir "$WORK/distlog/data" \
    --log-level warn,distlog::serve=info 2>"$WORK/distlog/log" &
  PIDS+=($!)
  for _ in $(seq 600); do
    BROKER="$(grep -o 'grpc listening on [0-9.:]*' "$WORK/distlog/log" | awk '{print $4}' || true)"
    [[ -n "$BROKER" ]] && return 0
    sleep 0.1
  done
  log "distlog did not start:"; cat "$WORK/distlog/log" >&2; exit 1
}

start_redis() { # $1: no|always
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  mkdir -p "$WORK/redis-$1"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis-$1" --save "" \
    --appendonly yes --appendfsync "$1" --daemonize no >"$WORK/redis-$1.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=($REDIS_PID)
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
  log "redis did not start"; exit 1
}

stop_redis() { kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null || true; }

start_nats() {
  mkdir -p "$WORK/nats"
  nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "Server is ready" "$WORK/nats.log" && return 0; sleep 0.1; done
  log "nats did not start"; cat "$WORK/nats.log" >&2; exit 1
}

# --- loads ---------------------------------------------------------------------------
now() { date +%s.%N; }
rate() { python3 -c "import sys; n,s,t0,t1=map(float,sys.argv[1:]); d=t1-t0; print(f'{n/d:.0f} {n*s/d/1e6:.1f}')" "$@"; }

# distlog: prints "records/s MB/s"
distlog_produce() { # topic size count file
  "$DISTLOG" produce "$1" --broker "$BROKER" -f "$4" --batch-records "$BATCH" -q -o json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"{d['records_per_sec']:.0f} {d['records_per_sec']*$2/1e6:.1f}\")"
}
distlog_consume() { # topic size count
  local t0 t1
  t0=$(now)
  "$DISTLOG" consume "$1" --broker "$BROKER" --partition 0 --max "$3" --format raw -q >/dev/null
  t1=$(now)
  rate "$3" "$2" "$t0" "$t1"
}

redis_produce() { # size count
  local v rps
  v="$(head -c "$1" /dev/zero | tr '\0' x)"
  redis-cli -p "$REDIS_PORT" del s >/dev/null
  rps=$(redis-benchmark -p "$REDIS_PORT" -c 1 -P "$BATCH" -n "$2" -q XADD s '*' v "$v" \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}')
  python3 -c "r=$rps; print(f'{r:.0f} {r*$1/1e6:.1f}')"
}
redis_consume() { # size count
  local rps
  rps=$(redis-benchmark -p "$REDIS_PORT" -c 1 -P 1 -n $(( $2 / BATCH )) -q XRANGE s - + COUNT "$BATCH" \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}')
  python3 -c "r=$rps*$BATCH; print(f'{r:.0f} {r*$1/1e6:.1f}')"
}

nats_run() { # mode size count
  python3 "$ROOT/benches/peers/nats_load.py" "$1" --url "nats://127.0.0.1:$NATS_PORT" \
    --size "$2" --count "$3" --batch "$BATCH" \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"{d['records_per_sec']:.0f} {d['mb_per_sec']:.1f}\")"
}

# --- run -----------------------------------------------------------------------------
start_distlog
start_nats
RESULTS="$WORK/results"
: >"$RESULTS"
row() { echo "$*" >>"$RESULTS"; }
seq_topic=0
for size in 100 1024; do
  if [[ $size == 100 ]]; then count=$N100; else count=$N1K; fi
  input="$WORK/input-$size"
  python3 -c "import sys; sys.stdout.write(('x'*$size+'\n')*$count)" >"$input"
  for sync in no batch; do
    seq_topic=$((seq_topic + 1)); topic="peers-$seq_topic"
    if [[ $sync == no ]]; then policy=os; fsync=no; else policy=batch; fsync=always; fi
    log "size=$size sync=$sync count=$count"
    "$DISTLOG" topic create "$topic" --broker "$BROKER" -c "flush.policy=$policy" >/dev/null
    d_p=$(distlog_produce "$topic" "$size" "$count" "$input")
    d_c=$(distlog_consume "$topic" "$size" "$count")
    start_redis "$fsync"
    r_p=$(redis_produce "$size" "$count")
    r_c=$(redis_consume "$size" "$count")
    stop_redis
    if [[ $sync == no ]]; then
      n_p=$(nats_run produce "$size" "$count")
      n_c=$(nats_run consume "$size" "$count")
    else
      n_p="- -"; n_c="- -"
    fi
    row "$size $sync produce $d_p $r_p $n_p"
    row "$size $sync consume $d_c $r_c $n_c"
  done
done

python3 - "$RESULTS" "$BATCH" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
batch = sys.argv[2]
print(f"peer comparison, loopback, batch/pipeline {batch} records (MB/s is value bytes)")
hdr = f"{'size':>5} {'sync':<6}{'op':<8}{'distlog rec/s':>14}{'MB/s':>8}{'redis rec/s':>13}{'MB/s':>8}{'ratio':>7}{'nats rec/s':>12}{'MB/s':>8}{'ratio':>7}"
print(hdr)
def ratio(a, b):
    try:
        return f"{float(a)/float(b):.2f}x"
    except (ValueError, ZeroDivisionError):
        return "-"
for size, sync, op, drec, dmb, rrec, rmb, nrec, nmb in rows:
    print(f"{size:>5} {sync:<6}{op:<8}{drec:>14}{dmb:>8}{rrec:>13}{rmb:>8}{ratio(drec, rrec):>7}{nrec:>12}{nmb:>8}{ratio(drec, nrec):>7}")
print("aim: distlog >= 2x both peers. nats has no per-write fsync in Debian's 2.9 (sync=batch rows: -).")
PY
