# Session-4 sweep 4 (2026-11-26): Y44 = gsyn_0..13 + gsyn_24..53, i.e. X44 of sweep 3 with the 10 `even`-text identities
# gsyn_14..23 replaced by 10 more `shuffled` ones (gsyn_44..53); L settings, anchor 10, 5000 / 6000 it; gsyn_u / gsyn_v.
# Bundle: python bench/grmn_synth.py bundle .grmn_bundle --ids gsyn_{0..13} gsyn_{24..53} gsyn_u gsyn_v. Then merge-sweep.
S="-S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 -S pretrain.batch_size=64 --keep-preds"
ids() { local o=""; for i in "$@"; do o="$o\"gsyn_$i\","; done; echo "-S corpus=[${o%,}]"; }
Y44="$S $(ids $(seq 0 13) $(seq 24 53))"
V='-S targets=["gsyn_v"]'
runs=()
for s in 0 1 2; do
  runs+=("M_Y44u6k_s$s|cuda|$Y44 -S pretrain.iters=6000 --seeds $s" "M_Y44v6k_s$s|cuda|$Y44 $V -S pretrain.iters=6000 --seeds $s")
  runs+=("M_Y44u5k_s$s|cuda|$Y44 -S pretrain.iters=5000 --seeds $s" "M_Y44v5k_s$s|cuda|$Y44 $V -S pretrain.iters=5000 --seeds $s")
done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-560} bash bench/grmn_synth_device.sh "${runs[@]}"
