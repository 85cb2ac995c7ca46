# Session-3 sweep 3 (2026-11-26): wider GRMN (d_model / hidden 64) with adaptation's anchor, 14-identity corpus
# (gsyn_0..13), target gsyn_u; same bundle as 2026-11-26_s3_commands.sh. Then: merge-sweep <files_at>/sweep.json
S="-S pretrain.batch_size=64 -S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10"
L="$S -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2"
M="$S -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.1"
runs=()
for s in 0 1 2; do runs+=("L2000_s$s|cuda|$L -S pretrain.iters=2000 --seeds $s" "L3000_s$s|cuda|$L -S pretrain.iters=3000 --seeds $s"); done
for s in 0 1; do runs+=("L4000_s$s|cuda|$L -S pretrain.iters=4000 --seeds $s" "M3000_s$s|cuda|$M -S pretrain.iters=3000 --seeds $s" "LA3000_s$s|cuda|$L -S pretrain.iters=3000 -S pretrain.score_target=aus --seeds $s"); done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-400} bash bench/grmn_synth_device.sh "${runs[@]}"
