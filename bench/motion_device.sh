#!/usr/bin/env bash
# GRMN / inference / training speed work on the device machine (issue 6 and issue 7 item 4).
# Run through the device tool from the repo root, carrying .whl (gsplat 1.5.3 + pytest wheels,
# sitecustomize.py) and .gsplat_build (a prebuilt gsplat_cuda .so), as bench/avatar_device.sh does.
# Usage: bash bench/motion_device.sh <step>...   steps: gpu_tests train_tests infer train compile_test
set -uo pipefail
. "$(dirname "$0")/device_gsplat_env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
nproc; date -u
t0=$(date +%s)
python3 -c "import torch, gsplat, emotag_core.train.loop, emotag_core.render.graphed; from gsplat.cuda._backend import _C; print('gsplat', gsplat.__version__, 'ext', _C is not None, 'torch', torch.__version__)" || exit 1
echo "imports ready in $(( $(date +%s) - t0 )) s"
for step in "$@"; do
  ts=$(date +%s)
  case $step in
    # gpu_tests: GRMN CUDA vs CPU; graph posing = eager; render@<id>'s animator graphed by default on CUDA and
    # streaming the same frames as eager (test_render_stage_graphed_matches_eager_on_cuda)
    gpu_tests) timeout 150 python3 -m pytest -q -rs -m gpu tests/motion/test_grmn_gpu.py tests/render/test_graphed.py -k "not compile" \
                 -p no:cacheprovider 2>&1 | tee $OUT/gpu_tests.log ;;
    train_tests) timeout 120 python3 -m pytest -q -m gpu tests/train/test_fast_gpu.py -p no:cacheprovider 2>&1 \
                   | tee $OUT/gpu_tests_train.log ;;
    compile_test) timeout 70 python3 -m pytest -q -m gpu tests/render/test_graphed.py -k compile -p no:cacheprovider 2>&1 | tee -a $OUT/gpu_tests.log ;;
    infer) timeout 200 python3 bench/bench_inference.py --batch 1 8 32 --wav2vec2 --compile ${INFER_ARGS:-} \
             --json $OUT/bench_inference.json 2>&1 | tee $OUT/bench_inference.log ;;
    train) timeout ${TRAIN_TIMEOUT:-240} python3 bench/bench_train.py ${TRAIN_ARGS:-} --json $OUT/bench_train.json 2>&1 | tee $OUT/bench_train.log ;;
  esac
  echo "== step $step took $(( $(date +%s) - ts )) s"
done
