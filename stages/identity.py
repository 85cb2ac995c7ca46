"""DVC stage `identity@<id>`: identity vector s from the top-k most neutral frames (paper Sec. 3.2.1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emotag_core.config import IdentityConfig
from emotag_core.errors import InputError, SchemaError
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import EMOTION_LABELS, TableWriter, column_array, read_table
from emotag_core.teachers import identity
from stages.common import Paths, main_for, need, params, stage, sweep


def _bar(label: str, enabled: bool):  # noqa: ANN202 - rich Progress
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("faces"),
                    TimeRemainingColumn(), disable=not enabled)


def neutral_scores(emotion_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clip_id [N], frame [N], p(neutral) [N], face_found [N]) from the emotion table, label order checked."""
    table, meta = read_table(emotion_path, "emotion", columns=["clip_id", "frame", "face_found", "probs"])
    labels = list(meta.get("labels", []))
    if "neutral" not in labels:
        raise SchemaError(emotion_path, f"metadata `labels` {labels} has no `neutral`", "re-run the emotion stage")
    if labels != list(EMOTION_LABELS):
        raise SchemaError(emotion_path, f"label order {labels} is not DeepFace's {list(EMOTION_LABELS)}",
                          "re-run the emotion stage")
    probs = column_array(table, "probs")                                        # [N, 7]
    return (column_array(table, "clip_id").astype(str), column_array(table, "frame").astype(np.int64),
            probs[:, labels.index("neutral")], column_array(table, "face_found").astype(bool))


def run(frames_path: Path, emotion_path: Path, out_path: Path, cfg: IdentityConfig, box_scale: float = 1.8,
        batch_size: int = 16, progress: bool = True) -> np.ndarray:
    """Embed the top-k neutral frames, write the `identity` table (atomic); returns s [D]."""
    store = FrameStore(frames_path)
    clip_e, frame_e, neutral_p, face = neutral_scores(emotion_path)
    chosen = identity.select_neutral(neutral_p, face, cfg.top_k)
    if len(chosen) == 0:
        raise InputError(emotion_path, "no frame with a face (face_found is False everywhere)",
                         "check the ingest crop / emotion stage outputs for this identity")
    keys = store.keys
    row_of = {(c, int(f)): i for i, (c, f) in enumerate(zip(keys.column("clip_id").to_pylist(),
                                                              keys.column("frame").to_pylist()))}
    missing = [(clip_e[i], int(frame_e[i])) for i in chosen if (clip_e[i], int(frame_e[i])) not in row_of]
    if missing:
        raise SchemaError(emotion_path, f"frames {missing[:3]} are not in {frames_path}",
                          "the emotion table is stale: re-run the emotion stage")
    store_rows = np.array([row_of[(clip_e[i], int(frame_e[i]))] for i in chosen])
    embedder = identity.load(cfg.backend, cfg, box_scale=box_scale)  # fails here if weights are missing
    emb = np.zeros((len(chosen), embedder.dim), np.float32)
    det = np.zeros(len(chosen), bool)
    order = np.argsort(store_rows, kind="stable")                      # read the store front to back
    with _bar("identity", progress) as bar:
        task = bar.add_task("identity", total=len(chosen))
        for s in range(0, len(order), batch_size):
            part = order[s:s + batch_size]
            images = np.stack([store.get(int(r)) for r in store_rows[part]])
            emb[part], det[part] = embedder.embed(images)
            bar.advance(task, len(part))
    s_vec = identity.identity_vector(emb)
    meta = {"fps": store.fps, "frame_size": store.meta["frame_size"], "backend": embedder.name,
            "backend_version": embedder.version, "embedding_dim": int(embedder.dim),
            "identity_vector": [float(x) for x in s_vec], "top_k": int(cfg.top_k),
            "n_candidates": int(face.sum()), "ranking": "p(neutral) of the emotion table, descending"}
    with TableWriter(out_path, "identity", meta) as out:
        out.write({"clip_id": clip_e[chosen], "frame": frame_e[chosen].astype(np.int32),
                   "neutral_p": neutral_p[chosen].astype(np.float32), "face_detected": det, "embedding": emb})
    return s_vec


@stage("identity")
def main(identity_id: str) -> None:
    p = params()
    paths = Paths(identity_id)
    sweep(paths.processed)
    for name, producer in (("frames", "ingest"), ("emotion", "emotion")):
        need(paths.table(name), f"the {name} table", producer, identity_id)
    run(paths.table("frames"), paths.table("emotion"), paths.table("identity"), p.identity,
        box_scale=p.ingest.box_scale)


if __name__ == "__main__":
    main_for(main)
