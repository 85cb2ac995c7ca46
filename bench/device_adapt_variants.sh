#!/usr/bin/env bash
# Several settings of bench/device_adapt_render.py on one bundle in one device call, run at the same time on the
# one GPU (each in its own copy of the bundle: the runs write .work/ there), into $OUT/<name>/ (+ log.txt).
#   WHL=.kit_t . bench/device_gsplat_env.sh && bash bench/device_adapt_variants.sh BUNDLE ID \
#       ctl "" y44 "--prior priors/grmn.pt" y44_ps "--prior priors/grmn.pt --set pretrain.param_supervision=1"
# Each NAME "ARGS" pair: ARGS are `device_adapt_render.py run` options after `--device cuda --features table`.
# Runs sharing the GPU are slower than one alone: their adapt_s / FPS are not speed rows. RUN_TIMEOUT (s, default
# 560) bounds each; what a cut run had written stays. Then here: device_adapt_render.py finish <files_at>/<name> ...
set -uo pipefail
: "${OUT:?set OUT}"
bundle=${1:?usage: device_adapt_variants.sh BUNDLE ID NAME ARGS [NAME ARGS ...]}; id=${2:?identity}; shift 2
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null; date -u
python3 -c "import gsplat; from gsplat.cuda._backend import _C; print('gsplat', gsplat.__version__, 'ext', _C is not None)" || exit 1
pids=()
names=()
while [ $# -ge 2 ]; do
  name=$1; args=$2; shift 2
  work=/tmp/variant_$name
  rm -rf "$work" && cp -r "$bundle" "$work" && mkdir -p "$OUT/$name"
  # shellcheck disable=SC2086  # ARGS split into options on purpose
  timeout "${RUN_TIMEOUT:-560}" python3 bench/device_adapt_render.py run "$work" "$id" --out "$OUT/$name" --device cuda \
    --features table $args > "$OUT/$name/log.txt" 2>&1 &
  pids+=($!)
  names+=("$name")
done
rc=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; r=$?
  echo "== ${names[$i]}: exit $r"; tail -3 "$OUT/${names[$i]}/log.txt"
  [ $r -eq 0 ] || rc=1
done
date -u
exit $rc
