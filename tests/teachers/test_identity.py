"""Identity vector: neutral-frame selection, pooling, the AdaFace checkpoint format, dlib on real faces."""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from emotag_core.assets import packaged_file
from emotag_core.config import IdentityConfig
from emotag_core.errors import InputError, SchemaError, WeightsMissingError
from emotag_core.io.frames import encode_jpeg
from emotag_core.io.tables import EMOTION_LABELS, TableWriter, column_array, read_table
from emotag_core.teachers import identity

PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")  # four different people
# square crops (x0, y0, side) around the face in the packaged clips, like ingest's face-centred crop
CROPS = {"WolfgangLanger_Pexels.mp4": (280, 0, 360), "single_face.mp4": (115, 20, 340)}


def feat(name: str) -> Path:
    return packaged_file("feat", f"tests/data/{name}")


@functools.cache
def video_crops(name: str, every: int) -> np.ndarray:
    """Every `every`-th frame of a packaged clip, face-cropped and resized to 512: [T, 512, 512, 3]."""
    import av
    import cv2

    x0, y0, side = CROPS[name]
    out = []
    with av.open(str(feat(name))) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % every == 0:
                a = f.to_ndarray(format="rgb24")[y0:y0 + side, x0:x0 + side]
                out.append(cv2.resize(a, (512, 512), interpolation=cv2.INTER_AREA))
    return np.stack(out)


@functools.cache
def photos() -> list[np.ndarray]:
    from PIL import Image
    from skimage.data import astronaut

    return [np.asarray(Image.open(feat(n)).convert("RGB")) for n in PHOTOS] + [astronaut()]


# ---- selection and pooling -------------------------------------------------------------------


def test_select_neutral_ranks_skips_faceless_and_caps():
    p = np.array([0.1, 0.9, 0.5, 0.95, 0.9, 0.2])
    face = np.array([True, True, True, False, True, True])
    assert list(identity.select_neutral(p, face, 3)) == [1, 4, 2]        # 0.95 has no face; tie keeps order
    assert list(identity.select_neutral(p, face, 50)) == [1, 4, 2, 5, 0]  # fewer than k: all faces
    assert len(identity.select_neutral(p, np.zeros(6, bool), 50)) == 0


def test_identity_vector_is_normalised_mean_of_unit_embeddings():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((7, 16)).astype(np.float32)
    s = identity.identity_vector(e * rng.uniform(0.1, 10, (7, 1)))      # per-row scale must not matter
    want = (e / np.linalg.norm(e, axis=1, keepdims=True)).mean(0)
    assert np.isclose(np.linalg.norm(s), 1.0, atol=1e-6)
    assert np.allclose(s, want / np.linalg.norm(want), atol=1e-6)


# ---- AdaFace: the official checkpoint format on a tiny-depth IR network ------------------------


def save_adaface_ckpt(path: Path, units=(1, 1, 1, 1)) -> torch.nn.Module:
    """A randomly initialised IR net saved like AdaFace's Lightning checkpoints (`model.` prefix + head)."""
    torch.manual_seed(0)
    net = identity._torch_modules()[1](units=units)
    with torch.no_grad():   # non-trivial BN statistics, so a loader that drops buffers would be caught
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    sd = {f"model.{k}": v for k, v in net.state_dict().items()}
    sd["head.kernel"] = torch.randn(512, 10)                          # the margin head, not part of the backbone
    torch.save({"state_dict": sd, "epoch": 1, "hyper_parameters": argparse.Namespace(arch="ir_101")}, path)
    return net.eval()


def test_adaface_loads_official_format_and_reproduces_network(tmp_path):
    ckpt = tmp_path / "adaface_ir_tiny.ckpt"
    ref = save_adaface_ckpt(ckpt)
    emb = identity.load("adaface", IdentityConfig(backend="adaface", weights_path=str(ckpt)))
    assert emb.dim == 512 and emb.net.units == (1, 1, 1, 1) and "ir_1-1-1-1" in emb.version
    faces = video_crops("single_face.mp4", 24)[:2]
    out, detected = emb.embed(faces)
    assert out.shape == (2, 512) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    with torch.no_grad():
        want = ref(emb.preprocess(faces))[0].numpy()
    assert np.allclose(out, want, atol=1e-5)
    x = emb.preprocess(faces)                                         # AdaFace input: 112x112 BGR in [-1, 1]
    assert tuple(x.shape) == (2, 3, 112, 112) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_ir50_and_ir101_depths_are_read_back_from_state_dicts():
    for name, units in (("ir_50", (3, 4, 14, 3)), ("ir_101", (3, 13, 30, 3))):
        with torch.device("meta"):                                       # shapes only: no 65M-parameter init
            net = identity.build_ir(name)
            again = identity.ir_from_state_dict(net.state_dict())
        assert len(net.body) == sum(units)
        assert tuple(net.output_layer[3].weight.shape) == (512, 512 * 7 * 7)   # 112 px in, 7x7 after 4 strides
        assert again.units == units and identity.variant_name(again.units) == name


def test_adaface_missing_or_wrong_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTAG_WEIGHTS", str(tmp_path / "w"))
    with pytest.raises(WeightsMissingError) as e:
        identity.load("adaface", IdentityConfig(backend="adaface"))
    assert str(tmp_path / "w" / "adaface_ir101_webface12m.ckpt") in str(e.value) and "mk-minchul/AdaFace" in str(e.value)
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"backbone.conv.weight": torch.zeros(3)}}, bad)
    with pytest.raises(InputError, match="bad.ckpt"):
        identity.load("adaface", IdentityConfig(backend="adaface", weights_path=str(bad)))


# ---- dlib (offline): tells people apart on real packaged faces --------------------------------


@functools.cache
def dlib_embedder() -> identity.DlibEmbedder:
    return identity.load("dlib", IdentityConfig())


@functools.cache
def photo_embeddings() -> np.ndarray:
    """dlib embeddings of the 4 packaged photos + the astronaut: five people. [5, 128]"""
    e = dlib_embedder()
    return np.concatenate([e.embed(p[None])[0] for p in photos()])


def test_dlib_same_person_closer_than_different_people():
    e = dlib_embedder()
    wolf, wolf_found = e.embed(video_crops("WolfgangLanger_Pexels.mp4", 48))   # 10 frames over 19.7 s
    jin, jin_found = e.embed(video_crops("single_face.mp4", 12))               # 6 frames, another person
    ph = photo_embeddings()                                                      # 5 more people
    assert wolf_found.all() and jin_found.all()
    assert wolf.shape[1] == 128
    for own, others in ((wolf, np.concatenate([jin, ph])), (jin, np.concatenate([wolf, ph]))):
        s = identity.identity_vector(own[0::2])          # built from half the frames, as the stage does
        held_out = own[1::2] @ s
        assert held_out.min() > (others @ s).max()      # every held-out frame beats every other person
        pair_same = (own @ own.T)[np.triu_indices(len(own), 1)].mean()
        assert pair_same > (own @ others.T).mean() + 0.05
    # the four photos are four different people: each is closer to itself flipped than to the others
    flipped = np.concatenate([e.embed(np.ascontiguousarray(p[:, ::-1])[None])[0] for p in photos()])
    sims = flipped @ ph.T                                  # [5, 5]
    assert (np.argmax(sims, axis=1) == np.arange(len(ph))).all()


# ---- the stage -----------------------------------------------------------------------------


def write_inputs(tmp: Path, faces: np.ndarray, neutral: np.ndarray, face_found: np.ndarray) -> tuple[Path, Path]:
    n = len(faces)
    idx = np.arange(n)
    meta = {"fps": 25.0, "frame_size": [512, 512], "backend": "fixture", "backend_version": "0",
            "source": "feat/tests/data", "audio": None, "face_index": None}
    frames = tmp / "frames.parquet"
    with TableWriter(frames, "frames", meta, row_group_size=4) as w:
        w.write({"clip_id": ["c0"] * n, "frame": idx.astype(np.int32), "t": idx / 25, "src_t": idx / 25,
                 "box": np.zeros((n, 4), np.float32), "det_conf": np.ones(n, np.float32),
                 "face_found": face_found, "jpeg": [encode_jpeg(f) for f in faces]})
    probs = np.full((n, 7), 0.0, np.float32)
    probs[:, 6] = neutral
    probs[:, 3] = 1 - neutral                                            # the rest is `happy`
    emo = tmp / "emotion.parquet"
    with TableWriter(emo, "emotion", {"fps": 25.0, "frame_size": [512, 512], "backend": "fixture",
                                      "backend_version": "0", "labels": list(EMOTION_LABELS)}) as w:
        w.write({"clip_id": ["c0"] * n, "frame": idx.astype(np.int32), "face_found": face_found,
                 "probs": probs, "score": 1 - neutral})
    return frames, emo


def test_job_pools_the_top_k_neutral_frames(tmp_path):
    faces = video_crops("WolfgangLanger_Pexels.mp4", 48)[:7]
    neutral = np.array([0.2, 0.9, 0.3, 0.99, 0.8, 0.1, 0.7], np.float32)
    face_found = np.ones(7, bool)
    face_found[3] = False                                                # the most neutral has no face
    frames, emo = write_inputs(tmp_path, faces, neutral, face_found)
    out = tmp_path / "identity.parquet"
    seen = []
    s = identity.identity_run(frames, emo, out, IdentityConfig(top_k=3), progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (3, 3)
    table, meta = read_table(out, "identity")
    assert list(column_array(table, "frame")) == [1, 4, 6]               # top-3 p(neutral) among faces
    assert np.allclose(column_array(table, "neutral_p"), [0.9, 0.8, 0.7])
    emb = column_array(table, "embedding")
    assert emb.shape == (3, 128) and meta["embedding_dim"] == 128 and meta["top_k"] == 3
    assert np.allclose(meta["identity_vector"], s) and np.allclose(s, identity.identity_vector(emb), atol=1e-6)
    assert meta["backend"] == "dlib" and column_array(table, "face_detected").all()
    # frames not used (0, 5) are the same man: s is closer to them than to any photo of someone else
    rest, _ = dlib_embedder().embed(faces[[0, 5]])
    assert (rest @ s).min() > (photo_embeddings() @ s).max()


def test_job_without_faces_or_with_stale_emotion_fails_clearly(tmp_path):
    faces = video_crops("single_face.mp4", 24)[:2]
    frames, emo = write_inputs(tmp_path, faces, np.array([0.5, 0.6], np.float32), np.zeros(2, bool))
    with pytest.raises(InputError, match="no frame with a face"):
        identity.identity_run(frames, emo, tmp_path / "identity.parquet", IdentityConfig())
    assert not (tmp_path / "identity.parquet").exists()
    # an emotion table from an older ingest (frames the store no longer has) is named, not guessed around
    stale = tmp_path / "stale"
    stale.mkdir()
    _, emo3 = write_inputs(stale, video_crops("single_face.mp4", 24)[:3], np.array([0.1, 0.2, 0.9], np.float32),
                           np.ones(3, bool))
    with pytest.raises(SchemaError, match="stale"):
        identity.identity_run(frames, emo3, tmp_path / "identity.parquet", IdentityConfig())
