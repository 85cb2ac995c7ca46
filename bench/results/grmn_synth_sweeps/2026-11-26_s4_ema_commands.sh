# Session-4 sweep 1 (2026-11-26): the best session-3 settings again with the per-frame series kept (--keep-preds, for
# the error analysis of BENCHMARKS "session 4"), and the same with `pretrain.ema` (weight average) 0.999 / 0.995.
# 14 ids = gsyn_0..13 (L 2000 it), 24 ids = gsyn_0..23 (L 4000 it); anchor 10. Then: merge-sweep <files_at>/sweep.json
# Bundle (session 3's): python bench/grmn_synth.py bundle .grmn_bundle --ids gsyn_{0..23} gsyn_u gsyn_v gsyn_t
S="-S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 -S pretrain.batch_size=64 --keep-preds"
C14='-S corpus=["gsyn_0","gsyn_1","gsyn_2","gsyn_3","gsyn_4","gsyn_5","gsyn_6","gsyn_7","gsyn_8","gsyn_9","gsyn_10","gsyn_11","gsyn_12","gsyn_13"]'
U14="$S $C14 -S pretrain.iters=2000"; X24="$S -S pretrain.iters=4000"; V='-S targets=["gsyn_v"]'
runs=()
for s in 0 1 2; do
  runs+=("E_U14_s$s|cuda|$U14 --seeds $s" "E_U14e999_s$s|cuda|$U14 -S pretrain.ema=0.999 --seeds $s" "E_U14e995_s$s|cuda|$U14 -S pretrain.ema=0.995 --seeds $s")
  runs+=("E_X24u_s$s|cuda|$X24 --seeds $s" "E_X24ue999_s$s|cuda|$X24 -S pretrain.ema=0.999 --seeds $s")
  runs+=("E_X24v_s$s|cuda|$X24 $V --seeds $s" "E_X24ve999_s$s|cuda|$X24 $V -S pretrain.ema=0.999 --seeds $s")
done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-540} bash bench/grmn_synth_device.sh "${runs[@]}"
