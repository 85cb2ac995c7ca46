#!/usr/bin/env bash
# A sweep spec of the synthetic-truth motion benchmark on the device machine (no dvc there): every run of
# bench/sweeps/<name>.yaml in its own process (1 torch thread each) in the spec's bundle (carry it; made by
# `python bench/grmn_synth.py bundle <bundle> [--ids ...] [--images N]`); results under $OUT/<run>/
# (params.yaml, run.json, data/metrics/<target>/grmn_eval.json, log.txt), packed as $OUT/<name>.tgz with the
# table $OUT/<name>.md (printed too). Specs with `gsplat: true`
# (render-based runs) load the device kit first (carry .whl too). Then here: python bench/sweep.py table <files_at>
#   bash bench/grmn_synth_device.sh bench/sweeps/2026-11-26_s4_y44_table5.yaml [--jobs N] [--runs NAME...]
set -uo pipefail
: "${OUT:?set OUT}"
spec=${1:?usage: grmn_synth_device.sh SPEC [sweep.py device options]}; shift
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null; nproc; date -u
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the repo root (run from it): sweep.py's helpers import emotag_core
if grep -q '^gsplat: true' "$spec"; then
  . "$(dirname "$0")/device_gsplat_env.sh"
  python3 -c "import gsplat; from gsplat.cuda._backend import _C; print('gsplat', gsplat.__version__, 'ext', _C is not None)" || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}  # the runs import gsplat (and its built extension) from here
fi
python3 "$(dirname "$0")/sweep.py" device "$spec" --out "$OUT" --device "${SWEEP_DEVICE:-cuda}" "$@"  # SWEEP_DEVICE=cpu: a smoke test here
date -u
# what comes back from $OUT is at most 2 folders deep (the metrics files are 4 down): one archive of every run's
# folder, and the table (also on stdout). Here: tar xzf <files_at>/NAME.tgz -C DIR && python bench/sweep.py table DIR
name=$(basename "$spec" .yaml)
(cd "$OUT" && tar -czf "/tmp/$name.tgz" --exclude="$name.*" -- */ && mv "/tmp/$name.tgz" "$OUT/$name.tgz") && ls -la "$OUT/$name.tgz"
python3 "$(dirname "$0")/sweep.py" table "$OUT" --metrics "${SWEEP_METRICS:-test.jaw_r,val.jaw_r,before_adapt.jaw_r,test.energy_r,test.tracked_jaw_r}" \
  --mean | tee "$OUT/$name.md"
