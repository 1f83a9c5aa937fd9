#!/usr/bin/env bash
set -euo pipefail
cd /work/main
export XDG_RUNTIME_DIR=$(mktemp -d) HETCONV_TUNE_CACHE=/tmp/bench/cache.json
B=target/release/hetconv
( time $B tune --batch 128 --parts 1,4,16 --width-mult 0.25 --out /tmp/bench/tune-b128 ) > /tmp/bench/tune-b128.log 2>&1
for r in 1 2 3 4 5; do
  for batch in 16 128; do
    steps=20; [ $batch = 128 ] && steps=5
    $B --conv direct bench --batch $batch --parts 1,4,16 --width-mult 0.25 --steps $steps --out /tmp/bench/r$r-b$batch-direct > /dev/null 2>&1
    $B --tune cached bench --batch $batch --parts 1,4,16 --width-mult 0.25 --steps $steps --out /tmp/bench/r$r-b$batch-tuned > /dev/null 2>&1
  done
done
echo done > /tmp/bench/DONE
