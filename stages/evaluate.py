"""DVC stage `evaluate@<id>`: the paper's metrics (Sec. 4) on the identity's renders.

Writes `data/metrics/<id>.json` (DVC metrics), `data/metrics/<id>/frames.csv` and `gate.json`
(DVC plots) and `data/reports/<id>.html`. The protocol (which frames, which metrics, null with a
reason where a metric cannot be computed) is `emotag_core.metrics.evaluate.evaluate_run`; the
held-out frames are `emotag_core.split.Split`'s, the same ones `render@<id>` rendered.
"""
from __future__ import annotations

from emotag_core.metrics.evaluate import EvaluationPaths, Teachers, evaluate_run
from emotag_core.render.jobs import TargetFiles
from stages.common import Paths, main_for, need, params, progress_bar, source_dir, stage, sweep


@stage("evaluate")
def main(identity: str) -> None:
    import torch

    p, paths = params(), Paths(identity)
    sweep(paths.report.parent)
    torch.set_num_threads(max(1, p.evaluate.threads))
    need(paths.renders / "render.json", f"the renders of `{identity}`", "render", identity)
    need(paths.table("frames"), "the frame store", "ingest", identity)
    need(paths.table("landmarks"), f"the `landmarks` table of `{identity}`", "landmarks", identity)
    files = TargetFiles(identity, paths.processed)
    out = EvaluationPaths(renders=paths.renders, source=source_dir(p, identity), models=paths.models,
                          metrics_json=paths.metrics_json, metrics_dir=paths.metrics_dir, report=paths.report)
    with progress_bar(f"evaluate@{identity}") as bar:
        evaluate_run(files, files.split(p.adapt, p.evaluate, p.ingest.fps), out, p.evaluate,
                     Teachers(landmarks=p.landmarks, aus=p.aus, fps=p.ingest.fps), bar)


if __name__ == "__main__":
    main_for(main)
