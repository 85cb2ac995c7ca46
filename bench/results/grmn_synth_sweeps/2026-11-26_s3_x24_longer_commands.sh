# Session-3 sweep 6 (2026-11-26): the 24-identity corpus trained longer still (6000 or 8000 it x 64), targets gsyn_u
# and gsyn_v, adaptation with adapt.anchor=10. Same bundle as sweep 4. Then: merge-sweep <files_at>/sweep.json
S="-S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2"
A="$S -S pretrain.batch_size=64 -S pretrain.iters=6000"; B="$S -S pretrain.batch_size=64 -S pretrain.iters=8000"
V='-S targets=["gsyn_v"]'
runs=()
for s in 0 1 2; do
  runs+=("Z_L6000_s$s|cuda|$A --seeds $s" "ZV_L6000_s$s|cuda|$A $V --seeds $s")
  runs+=("Z_L8000_s$s|cuda|$B --seeds $s" "ZV_L8000_s$s|cuda|$B $V --seeds $s")
done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-480} bash bench/grmn_synth_device.sh "${runs[@]}"
