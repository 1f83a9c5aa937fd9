#!/usr/bin/env bash
set -euo pipefail
cd /work/main
export XDG_RUNTIME_DIR=$(mktemp -d) HETCONV_TUNE_CACHE=/tmp/bench2/cache.json
rm -f $HETCONV_TUNE_CACHE
B=target/release/hetconv
$B tune --batch 16 --parts 1,4,16 --width-mult 0.25 --out /tmp/bench2/tune-b16 > /tmp/bench2/tune-b16.log 2>&1
$B tune --batch 128 --parts 1,4,16 --width-mult 0.25 --out /tmp/bench2/tune-b128 > /tmp/bench2/tune-b128.log 2>&1
run() { # round batch mode
  local steps=20; [ $2 = 128 ] && steps=4
  local conv=(--tune cached); [ $3 = direct ] && conv=(--conv direct)
  $B "${conv[@]}" bench --batch $2 --parts 1,4,16 --width-mult 0.25 --steps $steps --out /tmp/bench2/r$1-b$2-$3 > /dev/null 2>&1
}
for r in 1 2 3 4; do
  if [ $((r % 2)) = 1 ]; then order="direct tuned"; else order="tuned direct"; fi
  for batch in 16 128; do for m in $order; do run $r $batch $m; done; done
done
echo done > /tmp/bench2/DONE
