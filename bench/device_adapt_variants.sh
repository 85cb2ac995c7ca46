#!/usr/bin/env bash
# Several settings of bench/device_adapt_render.py on one bundle in one device call, one after the other (each in
# its own copy of the bundle: a run writes .work/ there), into $OUT/<name>/ (+ log.txt). Two runs at the same time
# on the one GPU (session 14) both adapted but then stalled in the render/metrics step until cut, so they run in turn.
#   WHL=.kit_t . bench/device_gsplat_env.sh && bash bench/device_adapt_variants.sh BUNDLE ID \
#       ctl "" y44 "--prior priors/grmn.pt" y44_ps "--prior priors/grmn.pt --set pretrain.param_supervision=1"
# Each NAME "ARGS" pair: ARGS are `device_adapt_render.py run` options after `--device cuda --features table`.
# RUN_TIMEOUT (s, default 560) bounds each run; what a cut run had written stays (metrics.json after adapt).
# Then here: python bench/device_adapt_render.py finish <files_at>/<name> --frames <processed/ID>
set -uo pipefail
: "${OUT:?set OUT}"
bundle=${1:?usage: device_adapt_variants.sh BUNDLE ID NAME ARGS [NAME ARGS ...]}; id=${2:?identity}; shift 2
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null; date -u
python3 -c "import gsplat; from gsplat.cuda._backend import _C; print('gsplat', gsplat.__version__, 'ext', _C is not None)" || exit 1
rc=0
while [ $# -ge 2 ]; do
  name=$1; args=$2; shift 2
  work=/tmp/variant_$name
  rm -rf "$work" && cp -r "$bundle" "$work" && mkdir -p "$OUT/$name"
  # shellcheck disable=SC2086  # ARGS split into options on purpose
  timeout "${RUN_TIMEOUT:-560}" python3 bench/device_adapt_render.py run "$work" "$id" --out "$OUT/$name" --device cuda \
    --features table $args > "$OUT/$name/log.txt" 2>&1
  r=$?
  echo "== $name: exit $r"; grep '^\[' "$OUT/$name/log.txt" | tail -4
  [ $r -eq 0 ] || rc=1
done
date -u
exit $rc
