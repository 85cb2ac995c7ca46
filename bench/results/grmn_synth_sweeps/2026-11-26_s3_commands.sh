# Session-3 sweep (2026-11-26): 14-identity corpus (gsyn_0..13; gsyn_8..13 also speak es/it in other voices,
# `even` sentences only) and the new target gsyn_u (voices es / it, `odd` sentences only: voices and text unseen).
# One device-tool call (kind nvidia-h100-x1, carry [".grmn_bundle"], bundle: `python bench/grmn_synth.py bundle .grmn_bundle`
# from /tmp/grmn_synth after `python bench/grmn_synth.py prepare --ids gsyn_u gsyn_8 ... gsyn_13`).
# Then, here: python bench/grmn_synth.py merge-sweep <files_at>/sweep.json
S="-S pretrain.batch_size=64 -S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S pretrain.dropout=0.1 -S pretrain.d_model=32 -S pretrain.hidden=32"
A="$S -S pretrain.iters=1000"; B="$S -S pretrain.iters=2000"; C="$S -S pretrain.iters=3000"
L="$S -S pretrain.iters=2000 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2"
G="$A -S pretrain.score_target=aus"
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-280} bash bench/grmn_synth_device.sh \
  "U1000|cuda|$A" "U1000_s1|cuda|$A --seeds 1" "U1000_s2|cuda|$A --seeds 2" \
  "U2000|cuda|$B" "U2000_s1|cuda|$B --seeds 1" "U2000_s2|cuda|$B --seeds 2" \
  "U3000|cuda|$C" "U3000_s1|cuda|$C --seeds 1" \
  "UL2000|cuda|$L" "UL2000_s1|cuda|$L --seeds 1" "UL2000_s2|cuda|$L --seeds 2" \
  "UA1000|cuda|$G" "UA1000_s1|cuda|$G --seeds 1"
