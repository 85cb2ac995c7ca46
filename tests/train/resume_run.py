"""Run a tiny pretraining (toy scenes, synthetic tables) and save the final GRMN weights.

`python tests/train/resume_run.py <workdir> <out.pt> <sleep_s>`: tables under <workdir>/tables,
checkpoints under <workdir>/ckpt; `sleep_s` slows each logged step so a test can kill it mid-run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from emotag_core.motion.grmn import GRMN, GRMNSpec  # noqa: E402
from emotag_core.train.data import CorpusLoader, build_identity_index  # noqa: E402
from emotag_core.train.loop import LoopConfig, LossSwitches, pretrain  # noqa: E402
from train.toydata import AUDIO_DIM, ID_DIM, N_EXPR, N_MOUTH, SIZE, ToyScene, write_identity  # noqa: E402

ITERS = 40


def main(work: Path, out: Path, sleep_s: float) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tables = work / "tables"
    ixs = []
    for s, ident in enumerate(("a", "b")):
        if not (tables / ident / "flame.parquet").exists():
            write_identity(tables, ident, seed=s)
        ixs.append(build_identity_index(ident, {t: tables / ident / f"{t}.parquet" for t in
                                                ("frames", "audio_features", "aus", "emotion", "identity", "flame")}))
    grmn = GRMN(GRMNSpec(audio_dim=AUDIO_DIM, n_aus=6, identity_dim=ID_DIM, n_expr=N_EXPR, n_mouth=N_MOUTH,
                         d_model=16, d_expr=8, n_layers=1, n_heads=2, hidden=16))
    scenes = {"a": ToyScene(0), "b": ToyScene(1)}
    loader = CorpusLoader(ixs, batch_size=2, image_size=SIZE, seed=0)
    cfg = LoopConfig(iters=ITERS, static_iters=3, lr=5e-3, image_size=SIZE, checkpoint_every=5, log_every=1)

    def log(step, terms):
        print(f"step {step}", flush=True)
        time.sleep(sleep_s)

    summary = pretrain(grmn, scenes, loader, cfg, LossSwitches(), ckpt_dir=work / "ckpt", fingerprint="toy",
                       log=log)
    torch.save({"grmn": grmn.state_dict(), "scenes": {k: v.state_dict() for k, v in scenes.items()},
                "resumed_from": summary["resumed_from"]}, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
