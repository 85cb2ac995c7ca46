# Session-5 sweep 2 (2026-11-26): the paper's loss (L_Render, Eq. 11) against tracked-parameter supervision, on the
# 8-identity render bundle (gsyn_0..3 + gsyn_44..47, crops 128 px, target gsyn_u), same length and batch for all:
# R0 = L_Render + L_KL + L_Score (the paper; `param_supervision: 0`), R1 = R0 + the tracked-parameter L1
# (`param_supervision: 1`), M = motion-only (no rendering; `render: false`, `param_supervision: 1`, as every
# earlier row). Seeds 0 and 1. Bundle:
# python bench/grmn_synth.py bundle .grmn_bundle_r --ids gsyn_0 gsyn_1 gsyn_2 gsyn_3 gsyn_44 gsyn_45 gsyn_46 gsyn_47 gsyn_u --images 128
S="-S adapt.iters=300 -S adapt.static_iters=50 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 --keep-preds"
C='-S corpus=["gsyn_0","gsyn_1","gsyn_2","gsyn_3","gsyn_44","gsyn_45","gsyn_46","gsyn_47"] -S targets=["gsyn_u"]'
L="-S pretrain.iters=${ITERS:-2500} -S pretrain.batch_size=32 -S pretrain.image_size=128 -S pretrain.n_gaussians=10000 -S pretrain.static_iters=100"
# second call: ITERS=4000 SEEDS="0 1 2" (tags get the length: R0_8u_4000_s0 ...)
T=${ITERS:+_$ITERS}
runs=()
for s in ${SEEDS:-0 1}; do
  runs+=("R0_8u${T}_s$s|cuda|$S $C $L -S pretrain.render=true -S pretrain.param_supervision=0 --seeds $s"
         "R1_8u${T}_s$s|cuda|$S $C $L -S pretrain.render=true -S pretrain.param_supervision=1 --seeds $s"
         "M_8u${T}_s$s|cuda|$S $C $L -S pretrain.render=false -S pretrain.param_supervision=1 --seeds $s")
done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-470} bash bench/grmn_synth_render_device.sh "${runs[@]}"
