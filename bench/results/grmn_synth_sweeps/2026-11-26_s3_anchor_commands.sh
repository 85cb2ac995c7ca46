# Session-3 sweep 2 (2026-11-26): adaptation's L2 pull toward the pretrained AdaIN values (`adapt.anchor`, not in
# the paper) after 3000 / 4000 pretraining iterations on the 14-identity corpus, target gsyn_u. Same bundle and
# call shape as 2026-11-26_s3_commands.sh. Then: python bench/grmn_synth.py merge-sweep <files_at>/sweep.json
S="-S pretrain.batch_size=64 -S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S pretrain.dropout=0.1 -S pretrain.d_model=32 -S pretrain.hidden=32"
C="$S -S pretrain.iters=3000"; D="$S -S pretrain.iters=4000"
runs=()
for s in 0 1 2; do
  for a in 0 1 10 100; do runs+=("P3000a${a}_s$s|cuda|$C -S adapt.anchor=$a --seeds $s"); done
done
runs+=("P4000a10_s0|cuda|$D -S adapt.anchor=10 --seeds 0" "P4000a10_s1|cuda|$D -S adapt.anchor=10 --seeds 1")
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-330} bash bench/grmn_synth_device.sh "${runs[@]}"
