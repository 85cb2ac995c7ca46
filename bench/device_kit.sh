#!/usr/bin/env bash
# `make device-kit`: the folder the device scripts carry (default .whl/, ignored by git), from the repo alone:
# the wheels of what the device image (Python 3.12, torch, numpy, pyarrow, pytest, rich, ... see BENCHMARKS.md
# "Device kit") lacks, plus bench/device_kit/sitecustomize.py. Run on a machine with pip and network to PyPI.
# `bash bench/device_kit.sh .kit_t tests`: the same without PyAV's 35 MB wheel (no GPU test needs it), so the whole
# `pytest -m gpu tests` fits one 64 MiB carry beside the Whisper port (.emotag-cache/whisper_port).
set -euo pipefail
KIT=${1:-.whl}
FLAVOUR=${2:-full}
# name==version, one each: gsplat's rasterizer (JIT-built there), smplx (FLAME lbs reference in tests/flame),
# ruamel.yaml (the registry's round-trip YAML), PyAV (video I/O of the render/ingest code).
WHEELS=(gsplat==1.5.3 smplx==0.1.28 ruamel.yaml==0.19.1)
case "$FLAVOUR" in
  full) WHEELS+=(av==18.1.0) ;;
  tests) ;;
  *) echo "device_kit.sh: flavour '$FLAVOUR' is not 'full' or 'tests'" >&2; exit 2 ;;
esac
mkdir -p "$KIT"
rm -f "$KIT"/*.whl
for w in "${WHEELS[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$KIT" "$w"
done
cp bench/device_kit/sitecustomize.py "$KIT"/
ls -l "$KIT"
du -sh "$KIT"
