# Session-3 sweep 7 (2026-11-26): a few GRMN size / optimiser settings around the best 24-identity setting
# (L, 4000 it x 64, adapt.anchor=10), targets gsyn_u and gsyn_v, seeds 0-1. Same bundle as sweep 4.
# Then: python bench/grmn_synth.py merge-sweep <files_at>/sweep.json
S="-S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.dropout=0.2 -S pretrain.batch_size=64 -S pretrain.iters=4000"
W="$S -S pretrain.d_model=128 -S pretrain.hidden=128"
R="$S -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.lr=0.002"
D="$S -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.weight_decay=0.1"
N="$S -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.n_layers=2"
V='-S targets=["gsyn_v"]'
runs=()
for s in 0 1; do
  for c in W R D N; do eval "a=\$$c"; runs+=("H${c}_s$s|cuda|$a --seeds $s" "HV${c}_s$s|cuda|$a $V --seeds $s"); done
done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-450} bash bench/grmn_synth_device.sh "${runs[@]}"
