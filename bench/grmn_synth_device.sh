#!/usr/bin/env bash
# Several `bench/grmn_synth.py run` configurations at once on the device machine (issue 6, synthetic corpus).
# Run from the repo root with carry [".grmn_bundle"] (made by `python bench/grmn_synth.py bundle .grmn_bundle`;
# another bundle folder: BUNDLE=<dir>).
# Each argument is "TAG|DEVICE|ARGS" or "TAG|DEVICE|ARGS|VARIANT" (VARIANT: full (default) or a Table 5
# ablation name of `run`): one process per argument (1 torch thread each). At the end the
# per-TAG results are merged into $OUT/sweep.json (keys variant/seedN/TAG) and the logs into $OUT/sweep.log
# (the device tool brings back only a few files); add them here with
# `python bench/grmn_synth.py merge-sweep $FILES_AT/sweep.json`.
#   bash bench/grmn_synth_device.sh "norm|cuda|-S pretrain.audio_norm=true" "base|cpu|--seeds 1"
set -uo pipefail
: "${OUT:?set OUT}"
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null; nproc; date -u
cd "${BUNDLE:-.grmn_bundle}" || exit 1
pids=()
for spec in "$@"; do
  IFS='|' read -r tag dev args variant <<< "$spec"
  # shellcheck disable=SC2086
  PYTHONPATH="..${EXTRA_PYTHONPATH:+:$EXTRA_PYTHONPATH}" PYTHONUNBUFFERED=1 GRMN_THREADS=1 timeout "${SWEEP_TIMEOUT:-300}" python3 ../bench/grmn_synth.py run "${variant:-full}" \
    --device "$dev" --out "$OUT/$tag.json" $args > "$OUT/$tag.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
date -u
mkdir -p "$OUT/parts"
for spec in "$@"; do
  tag=${spec%%|*}; echo "== $tag"; tail -n 1 "$OUT/$tag.log"
  { echo "== $tag"; cat "$OUT/$tag.log"; } >> "$OUT/sweep.log"; rm -f "$OUT/$tag.log"
  [ -f "$OUT/$tag.json" ] && mv "$OUT/$tag.json" "$OUT/parts/"
done
PYTHONPATH=.. python3 ../bench/grmn_synth.py merge "$OUT"/parts/*.json --out "$OUT/sweep.json" && rm -rf "$OUT/parts"
