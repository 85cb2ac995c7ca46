"""InsTaG / ER-NeRF / TalkingGaussian processed folders → frames, audio_features, aus tables.

Those projects preprocess one video into a folder with (the parts we read):
- `transforms_train.json`, `transforms_val.json`: `focal_len`, `cx`, `cy`, and `frames` with
  `img_id` (frame index), `aud_id` and a 4x4 `transform_matrix` (camera-to-head pose);
- `ori_imgs/<img_id>.jpg`: the 25 fps frames (already face-centred, usually 512x512);
- `aud.wav` (16 kHz) and one of `aud_ds.npy` [N, 16, 29] (DeepSpeech), `aud_eo.npy`
  [N, 16, 44] (ESPnet), `aud_hu.npy` [N, 2, 1024] (HuBERT) or `aud.npy`;
- `au.csv`: OpenFace FeatureExtraction output (`AUxx_r` columns).

Per-frame audio vectors: for windowed features [N, 16, C] (50 Hz windows centred on each video
frame) the two centre steps [7:9] are the frame's own audio and are kept ([N, 2C]); for
[N, 2, C] both 50 Hz steps are kept ([N, 2C]). The source file and this choice are recorded in
the metadata, so nothing is silently reshaped. Head poses and intrinsics go to `camera.json`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotag_core.errors import InputError
from emotag_core.io.atomic import write_text
from emotag_core.io.frames import decode_jpeg, encode_jpeg
from emotag_core.io.tables import OPENFACE_AUS, TableWriter, write_table

AUDIO_FILES = ("aud_hu.npy", "aud_ds.npy", "aud_eo.npy", "aud.npy")


@dataclass
class ImportResult:
    """What was imported, for the log."""

    frames: int
    audio_source: str | None
    feature_dim: int | None
    aus: bool


def _frames_list(src: Path) -> tuple[list[dict], dict]:
    frames: list[dict] = []
    cam: dict = {}
    found = False
    for name in ("transforms_train.json", "transforms_val.json"):
        p = src / name
        if not p.exists():
            continue
        found = True
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            cam = {k: doc[k] for k in ("focal_len", "cx", "cy") if k in doc} or cam
            frames += [{"img_id": int(f["img_id"]), "aud_id": int(f.get("aud_id", f["img_id"])),
                        "transform_matrix": f.get("transform_matrix")} for f in doc["frames"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(p, f"not an ER-NeRF transforms file ({exc})") from exc
    if not found:
        raise InputError(src, "no transforms_train.json / transforms_val.json",
                         "point at an InsTaG/ER-NeRF processed folder (data/<name>/)")
    uniq = {f["img_id"]: f for f in frames}
    return [uniq[k] for k in sorted(uniq)], cam


def per_frame_audio(feats: np.ndarray, path: Path) -> np.ndarray:
    """[N, ...] peer audio features → [N, D] per-frame vectors (see module doc)."""
    if feats.ndim == 2:
        return feats.astype(np.float32)
    if feats.ndim == 3 and feats.shape[1] == 16:
        return feats[:, 7:9].reshape(len(feats), -1).astype(np.float32)
    if feats.ndim == 3 and feats.shape[1] == 2:
        return feats.reshape(len(feats), -1).astype(np.float32)
    raise InputError(path, f"audio feature array of shape {feats.shape} is not a known peer layout",
                     "expected [N, D], [N, 16, C] or [N, 2, C]")


def import_folder(src: str | Path, out_dir: str | Path, clip_id: str = "clip0", size: int = 512,
                  fps: float = 25.0) -> ImportResult:
    """Import a peer processed folder into `out_dir/{frames,audio_features,aus}.parquet`."""
    src, out_dir = Path(src), Path(out_dir)
    frames, cam = _frames_list(src)
    if not frames:
        raise InputError(src, "transforms files list no frames")
    img_dir = src / "ori_imgs"
    if not img_dir.is_dir():
        raise InputError(src, "ori_imgs/ folder missing", "the frames must be present to import")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = {"fps": fps, "frame_size": [size, size], "backend": "import:ernerf", "backend_version": "1"}
    with TableWriter(out_dir / "frames.parquet", "frames",
                     dict(base, source=str(src), audio=f"audio/{clip_id}.wav", face_index=None), row_group_size=32) as w:
        for s in range(0, len(frames), 32):
            rows = frames[s:s + 32]
            jpegs, boxes = [], []
            for f in rows:
                p = img_dir / f"{f['img_id']}.jpg"
                if not p.exists():
                    raise InputError(p, "frame listed in transforms is missing")
                data = p.read_bytes()
                img = decode_jpeg(data)
                h, wd = img.shape[:2]
                if (h, wd) != (size, size):
                    import cv2

                    side = min(h, wd)
                    y0, x0 = (h - side) // 2, (wd - side) // 2
                    img = cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
                    data = encode_jpeg(img)
                    boxes.append([x0, y0, side, side])
                else:
                    boxes.append([0, 0, wd, h])
                jpegs.append(data)
            n = len(rows)
            w.write({"clip_id": [clip_id] * n, "frame": np.array([f["img_id"] for f in rows], np.int32),
                     "t": np.array([f["img_id"] / fps for f in rows]), "src_t": np.array([f["img_id"] / fps for f in rows]),
                     "box": np.array(boxes, np.float32), "det_conf": np.ones(n, np.float32),
                     "face_found": np.ones(n, bool), "jpeg": jpegs})
    wav = src / "aud.wav"
    if wav.exists():
        from emotag_core.io.audio import load_audio, write_wav

        (out_dir / "audio").mkdir(exist_ok=True)
        write_wav(out_dir / "audio" / f"{clip_id}.wav", load_audio(wav, 16000), 16000)
    audio_src, dim = None, None
    for name in AUDIO_FILES:
        p = src / name
        if p.exists():
            feats = per_frame_audio(np.load(p), p)
            ids = np.array([min(f["aud_id"], len(feats) - 1) for f in frames])
            vec = feats[ids]
            dim = int(vec.shape[1])
            write_table(out_dir / "audio_features.parquet", "audio_features",
                        {"clip_id": [clip_id] * len(frames), "frame": np.array([f["img_id"] for f in frames], np.int32),
                         "feature": vec},
                        dict(base, backend=f"import:ernerf:{name}", feature_dim=dim, sample_rate=16000, window=16))
            audio_src = name
            break
    has_au = (src / "au.csv").exists()
    if has_au:
        from emotag_core.teachers.aus import read_openface_csv

        tr = read_openface_csv(src / "au.csv")
        idx = np.clip(np.array([f["img_id"] for f in frames]), 0, len(tr.aus) - 1)
        cols = {"clip_id": [clip_id] * len(frames), "frame": np.array([f["img_id"] for f in frames], np.int32),
                "face_found": tr.success[idx]}
        for j, a in enumerate(OPENFACE_AUS):
            cols[a] = tr.aus[idx, j]
        write_table(out_dir / "aus.parquet", "aus", cols,
                    dict(base, backend="import:openface_csv", aus=list(OPENFACE_AUS), available_aus=list(tr.available),
                         scale="openface_0_5"))
    write_text(out_dir / "camera.json", json.dumps({"intrinsics": cam, "poses": {
        str(f["img_id"]): f["transform_matrix"] for f in frames if f["transform_matrix"] is not None}}))
    return ImportResult(len(frames), audio_src, dim, has_au)
