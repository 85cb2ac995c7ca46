# Session-4 sweep 2 (2026-11-26): more distinct text in pretraining. gsyn_24..33 speak `synth.sentence_set: extended`
# (even + 8 new sentences per language). T24 = gsyn_0..13 + gsyn_24..33 against X24 = gsyn_0..23 (same number of
# identities and seconds, ~2x the distinct sentences); X34 = all 34. L settings, anchor 10, --keep-preds.
# Bundle: python bench/grmn_synth.py bundle .grmn_bundle --ids gsyn_{0..33} gsyn_u gsyn_v gsyn_t (after prepare --ids
# gsyn_24 ... gsyn_33). Then merge-sweep.
S="-S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 -S pretrain.batch_size=64 --keep-preds"
ids() { local o=""; for i in "$@"; do o="$o\"gsyn_$i\","; done; echo "-S corpus=[${o%,}]"; }
T24="$(ids 0 1 2 3 4 5 6 7 8 9 10 11 12 13 24 25 26 27 28 29 30 31 32 33)"
X34="$(ids $(seq 0 33))"
V='-S targets=["gsyn_v"]'
runs=()
for s in 0 1 2; do
  runs+=("T_T24u_s$s|cuda|$S $T24 -S pretrain.iters=4000 --seeds $s" "T_T24v_s$s|cuda|$S $T24 $V -S pretrain.iters=4000 --seeds $s")
  runs+=("T_X34u_s$s|cuda|$S $X34 -S pretrain.iters=4000 --seeds $s" "T_X34v_s$s|cuda|$S $X34 $V -S pretrain.iters=4000 --seeds $s")
  runs+=("T_X34u6k_s$s|cuda|$S $X34 -S pretrain.iters=6000 --seeds $s" "T_X34v6k_s$s|cuda|$S $X34 $V -S pretrain.iters=6000 --seeds $s")
done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-560} bash bench/grmn_synth_device.sh "${runs[@]}"
