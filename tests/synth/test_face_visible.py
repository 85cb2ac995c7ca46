"""MediaPipe's FaceLandmarker finds the rendered face (what ingest and the landmark teacher need)."""
from __future__ import annotations

import numpy as np
import pytest

from emotag_core.assets import asset_path


@pytest.mark.parametrize("which", ["open", "standin"])
def test_mediapipe_finds_a_face_in_most_frames(which, standin_head):
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    from emotag_core.config import SynthConfig
    from emotag_core.synth import generator as gen

    if which == "open":                                       # the head model the stage renders with
        from emotag_core.config import FlameConfig
        from emotag_core.flame import load_head_model

        head = load_head_model(FlameConfig(), "cpu")
    else:
        head = standin_head
    task = asset_path("face_landmarker.task")
    opts = vision.FaceLandmarkerOptions(base_options=mp_tasks.BaseOptions(model_asset_path=str(task)),
                                        running_mode=vision.RunningMode.IMAGE, num_faces=1)
    found, total, err = 0, 0, []
    with vision.FaceLandmarker.create_from_options(opts) as lm:
        for seed in (0, 1, 2):
            cfg = SynthConfig(seconds=2.0, size=256, seed=seed)
            ident = gen.sample_identity(head, cfg)
            app = gen.build_appearance(head, ident, cfg)
            truth = gen.animate(head, ident, gen.plan_script(cfg, 0), cfg, 0)
            tr_lm = gen.truth_arrays(head, ident, truth, gen.plan_script(cfg, 0), cfg)["landmarks2d"]
            for i, frame in enumerate(gen.render_frames(head, ident, truth, app)):
                if i % 5:
                    continue
                total += 1
                res = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
                if res.face_landmarks:
                    found += 1
                    got = np.array([[p.x * cfg.size, p.y * cfg.size] for p in res.face_landmarks[0]])[:468]
                    err.append(np.linalg.norm(got - tr_lm[i, :468], axis=1).mean())
    assert found >= 0.9 * total, f"face found in {found}/{total} frames"
    # and where it is found, MediaPipe's landmarks sit on the true ones (a few pixels at 256 px)
    assert np.median(err) < 6.0, f"median landmark error {np.median(err):.1f} px"
