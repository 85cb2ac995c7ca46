# Session-3 sweep 4 (2026-11-26): the 24-identity corpus (gsyn_0..23; gsyn_8..23 also speak es/it in voices the targets
# never use, `even` sentences only); targets gsyn_u and gsyn_v (voices es / it, `odd` sentences only). Bundle rebuilt
# after `python bench/grmn_synth.py prepare --ids gsyn_14 ... gsyn_23 gsyn_v`. Adaptation with `adapt.anchor=10`
# (not in the paper). Table 5 ablations at the L2000 settings, seed 0, target gsyn_u.
# Then: python bench/grmn_synth.py merge-sweep <files_at>/sweep.json
S="-S pretrain.batch_size=64 -S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10"
L="$S -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 -S pretrain.iters=2000"
V='-S targets=["gsyn_v"]'
runs=()
for s in 0 1 2; do
  runs+=("X_L2000_s$s|cuda|$L --seeds $s" "X_LA2000_s$s|cuda|$L -S pretrain.score_target=aus --seeds $s")
  runs+=("XV_L2000_s$s|cuda|$L $V --seeds $s" "XV_LA2000_s$s|cuda|$L -S pretrain.score_target=aus $V --seeds $s")
done
for v in seg kl score gate residual adain; do runs+=("X_L2000_$v|cuda|$L --seeds 0|$v"); done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-420} bash bench/grmn_synth_device.sh "${runs[@]}"
