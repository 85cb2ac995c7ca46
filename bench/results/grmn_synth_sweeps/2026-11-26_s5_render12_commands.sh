# Session-5 sweep 3 (2026-11-26): L_Render (R0, the paper's loss) against motion-only (M) on a larger corpus at a
# smaller image: 12 identities (gsyn_0..3 + gsyn_44..51) with crops at 96 px, target gsyn_u, 4000 it, seeds 0-2.
# Bundle (the carry holds 12 identities at 96 px):
# python bench/grmn_synth.py bundle .grmn_bundle_r96 --ids gsyn_0 gsyn_1 gsyn_2 gsyn_3 gsyn_44 gsyn_45 gsyn_46 gsyn_47 gsyn_48 gsyn_49 gsyn_50 gsyn_51 gsyn_u --images 96
S="-S adapt.iters=300 -S adapt.static_iters=50 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 --keep-preds"
ids() { local o=""; for i in "$@"; do o="$o\"gsyn_$i\","; done; echo "-S corpus=[${o%,}]"; }
C="$(ids 0 1 2 3 $(seq 44 51)) -S targets=[\"gsyn_u\"]"
L="-S pretrain.iters=4000 -S pretrain.batch_size=32 -S pretrain.image_size=96 -S pretrain.n_gaussians=10000 -S pretrain.static_iters=100"
runs=()
for s in 0 1 2; do
  runs+=("R0_12u96_s$s|cuda|$S $C $L -S pretrain.render=true -S pretrain.param_supervision=0 --seeds $s"
         "M_12u96_s$s|cuda|$S $C $L -S pretrain.render=false -S pretrain.param_supervision=1 --seeds $s")
done
BUNDLE=.grmn_bundle_r96 SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-470} bash bench/grmn_synth_render_device.sh "${runs[@]}"
