# Session-5 render probe (2026-11-26): speed of render-based (L_Render) pretraining on the device, 4 runs at once,
# 200 iterations each, on the 8-identity render bundle (gsyn_0..3 + gsyn_44..47, crops at 128 px; target gsyn_u):
# python bench/grmn_synth.py bundle .grmn_bundle_r --ids gsyn_0 gsyn_1 gsyn_2 gsyn_3 gsyn_44 gsyn_45 gsyn_46 gsyn_47 gsyn_u --images 128
S="-S adapt.iters=50 -S adapt.static_iters=10 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2"
C='-S corpus=["gsyn_0","gsyn_1","gsyn_2","gsyn_3","gsyn_44","gsyn_45","gsyn_46","gsyn_47"] -S targets=["gsyn_u"]'
R="-S pretrain.render=true -S pretrain.param_supervision=0 -S pretrain.image_size=128 -S pretrain.iters=200 -S pretrain.static_iters=10"
runs=("P_b16g10k|cuda|$S $C $R -S pretrain.batch_size=16 -S pretrain.n_gaussians=10000"
      "P_b32g10k|cuda|$S $C $R -S pretrain.batch_size=32 -S pretrain.n_gaussians=10000"
      "P_b64g10k|cuda|$S $C $R -S pretrain.batch_size=64 -S pretrain.n_gaussians=10000"
      "P_b16g30k|cuda|$S $C $R -S pretrain.batch_size=16 -S pretrain.n_gaussians=30000")
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-300} bash bench/grmn_synth_render_device.sh "${runs[@]}"
