# Sourced (not run) by the device scripts: installs the carried wheels of $WHL (default .whl, built by
# `make device-kit` = bench/device_kit.sh; contents in BENCHMARKS.md "Device kit") into /tmp/site, puts it and the repo on PYTHONPATH, sends gsplat's
# JIT build to /tmp/torch_ext, and uses a carried prebuilt extension (.gsplat_build/gsplat_cuda.so) if there is one.
WHL=${WHL:-.whl}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl || exit 1
cp "$WHL"/sitecustomize.py /tmp/site/ 2>/dev/null || cp bench/device_kit/sitecustomize.py /tmp/site/
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCH_EXTENSIONS_DIR=/tmp/torch_ext MAX_JOBS=16
if [ -f .gsplat_build/gsplat_cuda.so ]; then export GSPLAT_PREBUILT_SO=$PWD/.gsplat_build/gsplat_cuda.so; fi
