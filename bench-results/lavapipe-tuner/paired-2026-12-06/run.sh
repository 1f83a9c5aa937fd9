#!/usr/bin/env bash
# Lavapipe: tune from an empty cache, then the tuned step against the direct kernels in pairs.
export XDG_RUNTIME_DIR=/tmp
cd /tmp/lvp
export HETCONV_TUNE_CACHE=/tmp/lvp/cache.json
rm -f cache.json
./hetconv tune --batch 16 --parts 1,4,16 --width-mult 0.25 --out tune-b16 > tune-b16.log 2>&1; echo "tune16 rc=$?" >> done.txt
./hetconv tune --batch 128 --parts 1,4,16 --width-mult 0.25 --out tune-b128 > tune-b128.log 2>&1; echo "tune128 rc=$?" >> done.txt
./hetconv --tune cached bench --versus-direct --batch 16 --parts 1,4,16 --width-mult 0.25 --steps 20 --out steps-b16 > steps-b16.log 2>&1; echo "b16 rc=$?" >> done.txt
./hetconv --tune cached bench --versus-direct --batch 128 --parts 1,4,16 --width-mult 0.25 --steps 8 --out steps-b128 > steps-b128.log 2>&1; echo "b128 rc=$?" >> done.txt
