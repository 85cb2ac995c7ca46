# Session-5 sweep 4 (2026-11-26): R0 (L_Render, the paper's loss) against M (motion-only) on 16 identities
# (gsyn_0..3 + gsyn_42..53) with crops at 96 px, JPEG quality 75 (what the carry holds), target gsyn_u, 4000 it,
# seeds 0-2. Carry [".whl_gs", ".grmn_bundle_r96"], where .whl_gs holds only the gsplat wheel and sitecustomize.py.
# python bench/grmn_synth.py bundle .grmn_bundle_r96 --ids gsyn_0 gsyn_1 gsyn_2 gsyn_3 gsyn_42 ... gsyn_53 gsyn_u --images 96 --quality 75
S="-S adapt.iters=300 -S adapt.static_iters=50 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 --keep-preds"
ids() { local o=""; for i in "$@"; do o="$o\"gsyn_$i\","; done; echo "-S corpus=[${o%,}]"; }
C="$(ids 0 1 2 3 $(seq 42 53)) -S targets=[\"gsyn_u\"]"
L="-S pretrain.iters=4000 -S pretrain.batch_size=32 -S pretrain.image_size=96 -S pretrain.n_gaussians=10000 -S pretrain.static_iters=100"
runs=()
for s in 0 1 2; do
  runs+=("R0_16u96_s$s|cuda|$S $C $L -S pretrain.render=true -S pretrain.param_supervision=0 --seeds $s"
         "M_16u96_s$s|cuda|$S $C $L -S pretrain.render=false -S pretrain.param_supervision=1 --seeds $s")
done
WHL=.whl_gs BUNDLE=.grmn_bundle_r96 SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-480} bash bench/grmn_synth_render_device.sh "${runs[@]}"
