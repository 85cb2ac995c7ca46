# Session-5 sweep 1 (2026-11-26): the gate on Y44 at 6000 it (the session-4 settings), both targets, 3 seeds:
# the gate without its teacher (w/o L_Score; w/o SEG) and with the AU score target (`pretrain.score_target: aus`),
# against the full model's paper target (session 4 rows). Same bundle as session 4. Then merge-sweep.
S="-S adapt.iters=300 -S pretrain.audio_norm=true -S pretrain.param_jaw_weight=3 -S pretrain.adain_axis=channel -S pretrain.lr_schedule=cosine -S adapt.anchor=10 -S pretrain.d_model=64 -S pretrain.hidden=64 -S pretrain.dropout=0.2 -S pretrain.batch_size=64 --keep-preds"
ids() { local o=""; for i in "$@"; do o="$o\"gsyn_$i\","; done; echo "-S corpus=[${o%,}]"; }
Y="$S $(ids $(seq 0 13) $(seq 24 53)) -S pretrain.iters=6000"
V='-S targets=["gsyn_v"]'
A='-S pretrain.score_target=aus'
runs=()
for s in 1 2; do runs+=("M_Y44u6k_score_s$s|cuda|$Y --seeds $s|score" "M_Y44u6k_seg_s$s|cuda|$Y --seeds $s|seg"); done
for s in 0 1 2; do runs+=("M_Y44v6k_score_s$s|cuda|$Y $V --seeds $s|score"); done
runs+=("M_Y44v6k_seg_s0|cuda|$Y $V --seeds 0|seg")
for s in 0 1 2; do runs+=("A_Y44u6k_s$s|cuda|$Y $A --seeds $s" "A_Y44v6k_s$s|cuda|$Y $A $V --seeds $s"); done
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-520} bash bench/grmn_synth_device.sh "${runs[@]}"
