#!/usr/bin/env bash
# Render-based (L_Render, `pretrain.render: true`) runs of `bench/grmn_synth.py run` on the device machine:
# gsplat from the carried wheels (bench/device_gsplat_env.sh, as the other device scripts), built once before the runs start, then
# bench/grmn_synth_device.sh over the bundle in $BUNDLE (default .grmn_bundle_r, made by
# `python bench/grmn_synth.py bundle .grmn_bundle_r --images 128 --ids ...`). Carry [".whl", "$BUNDLE"].
#   bash bench/grmn_synth_render_device.sh "TAG|cuda|ARGS" ...
set -uo pipefail
: "${OUT:?set OUT}"
. "$(dirname "$0")/device_gsplat_env.sh"  # WHL=<folder>: e.g. only the gsplat wheel and sitecustomize.py, to save carry
t0=$(date +%s)
python3 -c "import gsplat; from gsplat.cuda._backend import _C; print('gsplat', gsplat.__version__, 'ext', _C is not None)" || exit 1
echo "gsplat ready in $(( $(date +%s) - t0 )) s"
export EXTRA_PYTHONPATH=/tmp/site  # the runs import gsplat (and its built extension) from here
BUNDLE=${BUNDLE:-.grmn_bundle_r} bash "$(dirname "$0")/grmn_synth_device.sh" "$@"
