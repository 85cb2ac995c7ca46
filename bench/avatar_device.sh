#!/usr/bin/env bash
# Avatar work on the device machine (run through the device tool from the repo root, carrying .whl
# (gsplat 1.5.3 + pytest wheels, sitecustomize.py) and optionally .gsplat_build (a prebuilt
# gsplat_cuda .so from an earlier call). Usage: bash bench/avatar_device.sh <step>...
# steps: gpu_tests bench fit
set -uo pipefail
. "$(dirname "$0")/device_gsplat_env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
t0=$(date +%s)
python3 -c "import torch, gsplat; from gsplat.cuda._backend import _C; print('gsplat', gsplat.__version__, 'ext', _C is not None, 'torch', torch.__version__)" || exit 1
echo "gsplat ready in $(( $(date +%s) - t0 )) s"
if [ -z "${GSPLAT_PREBUILT_SO:-}" ]; then
  so=$(find /tmp/torch_ext -name 'gsplat_cuda*.so' | head -1); ls -la "$so"
  cp "$so" $OUT/gsplat_cuda.so
fi
for step in "$@"; do
  case $step in
    gpu_tests) python3 -m pytest -q -m gpu tests/avatar -s -p no:cacheprovider 2>&1 | tee $OUT/gpu_tests.log ;;
    bench) python3 bench/bench_render.py --json $OUT/bench_render.json ${BENCH_ARGS:-} 2>&1 | tee $OUT/bench_render.log
           python3 bench/bench_render.py --mesh open --batch 1 8 --json $OUT/bench_render_open.json 2>&1 | tail -9 ;;
    fit) python3 bench/fit_static.py --device cuda --out $OUT ${FIT_ARGS:-} 2>&1 | tee $OUT/fit.log ;;
  esac
done
