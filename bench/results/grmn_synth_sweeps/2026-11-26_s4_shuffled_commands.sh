# Session-4 sweep 3 (2026-11-26): 44 corpus identities (gsyn_0..43: + gsyn_34..43 with `sentence_set: shuffled`,
# new text in every utterance), L settings, anchor 10, 6000 / 8000 it, and width 128 at 6000 it; targets gsyn_u / gsyn_v.
# Bundle: python bench/grmn_synth.py bundle .grmn_bundle --ids gsyn_{0..43} gsyn_u gsyn_v (after prepare --ids gsyn_34 ...
# gsyn_43; the 64 MiB carry leaves gsyn_t out). Then merge-sweep.
S="-S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 -S pretrain.batch_size=64 --keep-preds"
ids() { local o=""; for i in "$@"; do o="$o\"gsyn_$i\","; done; echo "-S corpus=[${o%,}]"; }
X44="$S $(ids $(seq 0 43))"
W="-S pretrain.d_model=128 -S pretrain.hidden=128"
V='-S targets=["gsyn_v"]'
runs=()
for s in 0 1 2; do
  runs+=("H_X44u6k_s$s|cuda|$X44 -S pretrain.iters=6000 --seeds $s" "H_X44v6k_s$s|cuda|$X44 $V -S pretrain.iters=6000 --seeds $s")
  runs+=("H_X44u8k_s$s|cuda|$X44 -S pretrain.iters=8000 --seeds $s" "H_X44v8k_s$s|cuda|$X44 $V -S pretrain.iters=8000 --seeds $s")
  runs+=("H_X44u6kw_s$s|cuda|$X44 $W -S pretrain.iters=6000 --seeds $s" "H_X44v6kw_s$s|cuda|$X44 $W $V -S pretrain.iters=6000 --seeds $s")
done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-570} bash bench/grmn_synth_device.sh "${runs[@]}"
