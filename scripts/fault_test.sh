#!/usr/bin/env bash
# Fault injection against `hetconv train`: kill -9 at random moments (then --resume, again and
# again), SIGINT and SIGTERM, and a disk that fills up during a checkpoint write. After each
# fault it checks that the checkpoint on disk loads (`hetconv eval`), that no temporary file is
# left beside it, how many steps were lost (at most --checkpoint-every), and at the end that the
# resumed run reached its last step with one steps.csv row per step. Prints a table and writes
# it to bench-results/faults-DATE.md.
#
#   scripts/fault_test.sh [KILLS]     (default 20; the full-disk case needs root, for a tmpfs)
#
# HETCONV_BIN picks the binary (default: target/release/hetconv, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
bin=${HETCONV_BIN:-target/release/hetconv}
[ -x "$bin" ] || cargo build --release --locked
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
export HETCONV_TUNE=off
work=$(mktemp -d)
trap 'umount "$work/full" 2>/dev/null || true; rm -rf "$work"' EXIT

every=4
base=(train --width-mult 0.125 --part 2 --batch-size 16 --train-limit 640 --eval-limit 16
  --epochs 8 --checkpoint-every "$every" --report-every 1 --lr 0.05 --schedule constant)
total=320 # 8 epochs of 640 / 16 steps

fail() { echo "fault_test: FAILED: $*" >&2; exit 1; }
# The step a checkpoint holds (its hetconv.step metadata).
ckpt_step() {
  python3 - "$1" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
print(json.loads(b[8:8 + n])['__metadata__']['hetconv.step'])
EOF
}
# The last step steps.csv recorded (0 when it has none).
last_row() { tail -n +2 "$1/steps.csv" 2>/dev/null | tail -n 1 | cut -d, -f1 | grep -E '^[0-9]+$' || echo 0; }
loads() { "$bin" eval --weights "$1" --limit 16 >/dev/null 2>&1; }
temps() { find "$1" -name '.*.tmp-*' | wc -l; }
random_delay() { python3 -c "import random; print(round(random.uniform($1, $2), 2))"; }

rows=()

# kill -9, again and again, each followed by --resume.
run="$work/run"
intact=0 max_lost=0 leftover=0 killed=0
for i in $(seq 1 "$kills"); do
  if [ -f "$run/checkpoint.safetensors" ]; then
    args=(train --resume "$run/checkpoint.safetensors")
  else
    # A start again: a run killed before its first checkpoint left only its metrics.
    args=("${base[@]}" --out "$run" --overwrite)
  fi
  "$bin" "${args[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep "$(random_delay 1.5 5)"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null || true
  reached=$(last_row "$run")
  if [ -f "$run/checkpoint.safetensors" ]; then
    loads "$run/checkpoint.safetensors" || fail "kill $i: the checkpoint does not load"
    intact=$((intact + 1))
    saved=$(ckpt_step "$run/checkpoint.safetensors")
  else
    saved=0
  fi
  lost=$((reached > saved ? reached - saved : 0))
  [ "$lost" -le "$every" ] || fail "kill $i: $lost steps lost (checkpoint every $every)"
  max_lost=$((lost > max_lost ? lost : max_lost))
  leftover=$((leftover + $(temps "$run")))
  [ "$saved" -lt "$total" ] || break
done
# Finish the run; it must reach the last step with one row per step.
"$bin" train --resume "$run/checkpoint.safetensors" >/dev/null 2>&1 ||
  "$bin" eval --weights "$run/checkpoint.safetensors" --limit 16 >/dev/null
[ "$(ckpt_step "$run/checkpoint.safetensors")" = "$total" ] || fail "the resumed run did not finish"
rows_total=$(tail -n +2 "$run/steps.csv" | cut -d, -f1 | sort -un | wc -l)
rows_all=$(tail -n +2 "$run/steps.csv" | wc -l)
[ "$rows_total" = "$rows_all" ] || fail "steps.csv repeats steps"
rows+=("| kill -9 at a random moment, then --resume | $killed kills | $intact of $intact checkpoints load | $max_lost (interval $every) | $leftover | run finished at step $total, steps.csv $rows_all rows, none repeated |")

# SIGINT and SIGTERM: exit code 130, a checkpoint at the step reached.
for signal in INT TERM; do
  sig_run="$work/sig-$signal"
  trials=3 ok=0 lost_max=0
  for t in $(seq 1 $trials); do
    rm -rf "$sig_run"
    "$bin" "${base[@]}" --out "$sig_run" >/dev/null 2>&1 &
    pid=$!
    sleep "$(random_delay 2 5)"
    kill -s "$signal" "$pid"
    code=0
    wait "$pid" || code=$?
    [ "$code" = 130 ] || fail "SIG$signal: exit code $code, 130 expected"
    loads "$sig_run/checkpoint.safetensors" || fail "SIG$signal: the checkpoint does not load"
    saved=$(ckpt_step "$sig_run/checkpoint.safetensors")
    reached=$(last_row "$sig_run")
    lost=$((reached > saved ? reached - saved : 0))
    lost_max=$((lost > lost_max ? lost : lost_max))
    [ "$(temps "$sig_run")" = 0 ] || fail "SIG$signal: temporary files left"
    ok=$((ok + 1))
  done
  rows+=("| SIG$signal | $trials | $ok of $trials load | $lost_max | 0 | exit code 130 each time |")
done

# A disk that fills up while a checkpoint is written: a clean error naming the file, the
# previous checkpoint intact, no temporary file left.
if [ "$(id -u)" = 0 ] && mkdir -p "$work/full" && size=$(stat -c %s "$run/checkpoint.safetensors") &&
  mount -t tmpfs -o size=$((size * 3 / 2 + 262144)) tmpfs "$work/full" 2>/dev/null; then
  full_run="$work/full/run"
  code=0
  "$bin" "${base[@]}" --out "$full_run" >"$work/full.out" 2>"$work/full.err" || code=$?
  [ "$code" != 0 ] || fail "full disk: the run succeeded"
  [ "$code" != 101 ] && ! grep -q panicked "$work/full.err" || fail "full disk: panic"
  grep -q "checkpoint.safetensors" "$work/full.err" && grep -qi "no space" "$work/full.err" ||
    fail "full disk: the error does not name the file and the cause: $(cat "$work/full.err")"
  loads "$full_run/checkpoint.safetensors" || fail "full disk: the previous checkpoint does not load"
  [ "$(temps "$full_run")" = 0 ] || fail "full disk: temporary files left"
  reached=$(last_row "$full_run")
  saved=$(ckpt_step "$full_run/checkpoint.safetensors")
  lost=$((reached > saved ? reached - saved : 0))
  [ "$lost" -le "$every" ] || fail "full disk: $lost steps lost"
  rows+=("| disk full during a checkpoint write (tmpfs) | 1 | the previous one (step $saved) loads | $lost | 0 | exit $code: $(head -c 160 "$work/full.err" | tr '\n|' ' /') |")
  umount "$work/full"
else
  echo "fault_test: note: the full-disk case needs root (a tmpfs mount); not run"
  rows+=("| disk full during a checkpoint write | not run (needs root for a tmpfs) | | | | |")
fi

header="| fault | trials | checkpoint afterwards | steps lost, most | temporary files left | notes |
|---|---|---|---|---|---|"
printf '%s\n' "$header" "${rows[@]}"
out="bench-results/faults-$(date +%F).md"
{
  echo "# Fault injection against hetconv train, $(date +%F)"
  echo
  echo "\`scripts/fault_test.sh $kills\` on $(nproc) cores ($(uname -m)), $("$bin" --version)."
  echo "Run: VGG-16 at width 0.125, P = 2, batch 16, $total steps, a checkpoint every $every steps; each kill -9 comes 1.5 to 5 s after the start or resume."
  echo
  printf '%s\n' "$header" "${rows[@]}"
} >"$out"
echo "fault_test: wrote $out"
