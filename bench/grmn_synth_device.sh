#!/usr/bin/env bash
# Several `bench/grmn_synth.py run` configurations at once on the device machine (issue 6, synthetic corpus).
# Run from the repo root with carry [".grmn_bundle"] (made by `python bench/grmn_synth.py bundle .grmn_bundle`).
# Each argument is "TAG|DEVICE|ARGS": one process per argument (1 torch thread each), results in
# $OUT/TAG.json and $OUT/TAG.log; merge them here with `python bench/grmn_synth.py merge $FILES_AT/*.json`.
#   bash bench/grmn_synth_device.sh "norm|cuda|-S pretrain.audio_norm=true" "base|cpu|--seeds 1"
set -uo pipefail
: "${OUT:?set OUT}"
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null; nproc; date -u
cd .grmn_bundle || exit 1
pids=()
for spec in "$@"; do
  IFS='|' read -r tag dev args <<< "$spec"
  # shellcheck disable=SC2086
  PYTHONPATH=.. PYTHONUNBUFFERED=1 GRMN_THREADS=1 timeout "${SWEEP_TIMEOUT:-300}" python3 ../bench/grmn_synth.py run full \
    --device "$dev" --out "$OUT/$tag.json" $args > "$OUT/$tag.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
date -u
for spec in "$@"; do tag=${spec%%|*}; echo "== $tag"; tail -n 2 "$OUT/$tag.log"; done
