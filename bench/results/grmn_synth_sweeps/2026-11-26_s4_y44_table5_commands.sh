# Session-4 sweep 5 (2026-11-26): on Y44 (gsyn_0..13 + gsyn_24..53) at the selected 6000 it: seeds 3-5 of the full
# model on both targets, and Table 5 (each ablation, seed 0, gsyn_u). Same bundle as sweep 4. Then merge-sweep.
S="-S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 -S pretrain.batch_size=64 --keep-preds"
ids() { local o=""; for i in "$@"; do o="$o\"gsyn_$i\","; done; echo "-S corpus=[${o%,}]"; }
Y="$S $(ids $(seq 0 13) $(seq 24 53)) -S pretrain.iters=6000"
V='-S targets=["gsyn_v"]'
runs=()
for s in 3 4 5; do runs+=("M_Y44u6k_s$s|cuda|$Y --seeds $s" "M_Y44v6k_s$s|cuda|$Y $V --seeds $s"); done
for v in seg kl score gate residual adain; do runs+=("M_Y44u6k_$v|cuda|$Y --seeds 0|$v"); done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-500} bash bench/grmn_synth_device.sh "${runs[@]}"
