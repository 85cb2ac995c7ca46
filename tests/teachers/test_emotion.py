"""emotion@<id>: the fer mini-Xception (offline) on real media, Keras-HDF5 parity, DeepFace loading."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import teacher_media as tm
from emotag_core.config import EmotionConfig, LandmarksConfig
from emotag_core.errors import WeightsMissingError
from emotag_core.io.tables import EMOTION_LABELS, SPECS, column_array, read_table
from emotag_core.teachers import emotion, landmarks

NEGATIVE = {"angry", "disgust", "fear", "sad"}


@pytest.fixture(scope="module")
def wolfgang(tmp_path_factory):
    out = tmp_path_factory.mktemp("emo") / "emotion.parquet"
    emotion.emotion_run(tm.wolfgang_store(), tm.wolfgang_landmarks(), out, EmotionConfig())
    return read_table(out, "emotion")


def test_table_is_schema_valid_distribution_and_eq9(wolfgang):
    table, meta = wolfgang
    assert table.schema.equals(SPECS["emotion"].schema(meta), check_metadata=False)
    assert meta["labels"] == list(EMOTION_LABELS) and meta["backend"] == "fer"
    p = column_array(table, "probs")
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(column_array(table, "score"), 1.0 - p[:, EMOTION_LABELS.index("neutral")], atol=1e-6)


def test_argmax_turns_from_negative_to_happy_when_she_starts_laughing(wolfgang):
    """The clip: crying (0-6 s), a frightened stare behind her hand (6-9 s), laughing from ~10 s."""
    table, _ = wolfgang
    label = np.array(EMOTION_LABELS)[column_array(table, "probs").argmax(1)]
    t = column_array(table, "frame") / 25.0
    assert np.isin(label[t < 6.0], list(NEGATIVE)).mean() > 0.9
    assert (label[t < 6.0] == "happy").mean() < 0.05
    assert (label[t > 11.0] == "happy").mean() > 0.9
    # the switch: first second-long window that is mostly happy
    happy = (label == "happy").astype(float)
    window = np.convolve(happy, np.ones(25) / 25, mode="valid")
    onset = np.argmax(window > 0.5) / 25.0
    assert 8.0 <= onset <= 11.0


def test_no_face_frames_are_flagged(tmp_path):
    out = tmp_path / "emotion.parquet"
    emotion.emotion_run(tm.mixed_store(), tm.mixed_landmarks(), out, EmotionConfig())
    table, _ = read_table(out, "emotion")
    lm, _ = read_table(tm.mixed_landmarks(), "landmarks")
    np.testing.assert_array_equal(column_array(table, "face_found"), column_array(lm, "face_found"))
    assert not column_array(table, "face_found")[:25].any()
    np.testing.assert_allclose(column_array(table, "probs").sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("photo,want", [("0-f15-hao-ph.jpg", "happy"), ("0-f1-su-ph.jpg", "surprise")])
def test_posed_photos(photo, want):
    import cv2

    img = cv2.imread(str(tm.media(photo)))[..., ::-1].copy()[None]  # [1, 512, 512, 3]
    with landmarks.load("mediapipe", LandmarksConfig()) as lm:
        res = lm.predict(img, ["photo"], np.array([0]))
    p = emotion.load("fer", EmotionConfig()).predict(img, landmarks.face_boxes(res.landmarks, res.face_found, 512))
    assert EMOTION_LABELS[int(p[0].argmax())] == want


# ---------------------------------------------------------------- Keras HDF5 -> torch parity on a tiny model


def _tiny_keras_h5(path: Path, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """A tiny Keras-2 functional model in the fer file's layout (same layer types and names scheme)."""
    import h5py

    def layer(cls, name, inbound, **cfg):
        return {"class_name": cls, "name": name, "config": {"name": name, **cfg},
                "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else []}

    layers = [
        {"class_name": "InputLayer", "name": "input_1",
         "config": {"batch_input_shape": [None, 9, 9, 1], "name": "input_1"}, "inbound_nodes": []},
        layer("Conv2D", "conv2d_1", ["input_1"], filters=3, kernel_size=[3, 3], strides=[1, 1], padding="valid",
              use_bias=False, activation="linear"),
        layer("BatchNormalization", "bn_1", ["conv2d_1"], epsilon=1e-3),
        layer("Activation", "act_1", ["bn_1"], activation="relu"),
        layer("SeparableConv2D", "sep_1", ["act_1"], filters=4, kernel_size=[3, 3], strides=[1, 1], padding="same",
              use_bias=False, activation="linear", depth_multiplier=1),
        layer("MaxPooling2D", "pool_1", ["sep_1"], pool_size=[3, 3], strides=[2, 2], padding="same"),
        layer("Conv2D", "conv2d_2", ["act_1"], filters=4, kernel_size=[1, 1], strides=[2, 2], padding="same",
              use_bias=False, activation="linear"),
        layer("Add", "add_1", ["pool_1", "conv2d_2"]),
        layer("Conv2D", "conv2d_3", ["add_1"], filters=7, kernel_size=[3, 3], strides=[1, 1], padding="same",
              use_bias=True, activation="linear"),
        layer("GlobalAveragePooling2D", "gap", ["conv2d_3"]),
        layer("Activation", "predictions", ["gap"], activation="softmax"),
    ]
    cfg = {"class_name": "Model", "config": {"name": "tiny", "layers": layers,
                                             "input_layers": [["input_1", 0, 0]],
                                             "output_layers": [["predictions", 0, 0]]}}
    w = {
        "conv2d_1": {"kernel": rng.normal(size=(3, 3, 1, 3))},
        "bn_1": {"gamma": rng.uniform(0.5, 1.5, 3), "beta": rng.normal(size=3),
                 "moving_mean": rng.normal(size=3), "moving_variance": rng.uniform(0.5, 2, 3)},
        "sep_1": {"depthwise_kernel": rng.normal(size=(3, 3, 3, 1)), "pointwise_kernel": rng.normal(size=(1, 1, 3, 4))},
        "conv2d_2": {"kernel": rng.normal(size=(1, 1, 3, 4))},
        "conv2d_3": {"kernel": rng.normal(size=(3, 3, 4, 7)) * 0.3, "bias": rng.normal(size=7)},
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg).encode()
        f.attrs["keras_version"] = b"2.0.5"
        f.attrs["backend"] = b"tensorflow"
        mw = f.create_group("model_weights")
        for lyr in layers:
            g = mw.create_group(lyr["name"])
            names = []
            for k, v in w.get(lyr["name"], {}).items():
                n = f"{lyr['name']}_1/{k}:0"
                g.create_dataset(n, data=v.astype(np.float32))
                names.append(n.encode())
            g.attrs["weight_names"] = np.array(names, dtype="S")  # as Keras 2 writes it
    return w


def _ref_conv(x: np.ndarray, k: np.ndarray, stride: int, same: bool) -> np.ndarray:
    """NumPy reference of a Keras/TF conv: x [H, W, Cin], kernel [kh, kw, Cin, Cout]."""
    kh, kw = k.shape[:2]
    h, w = x.shape[:2]
    if same:
        oh, ow = -(-h // stride), -(-w // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - w, 0)
        x = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((oh, ow, k.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[i, j] = np.einsum("abc,abcd->d", patch, k)
    return out


def _ref_forward(x: np.ndarray, w) -> np.ndarray:
    a = _ref_conv(x, w["conv2d_1"]["kernel"], 1, False)
    bn = w["bn_1"]
    a = (a - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"] + bn["beta"]
    a = np.maximum(a, 0)
    dk = w["sep_1"]["depthwise_kernel"]
    d = np.stack([_ref_conv(a[..., c:c + 1], dk[:, :, c:c + 1, :], 1, True)[..., 0] for c in range(a.shape[2])], -1)
    s = _ref_conv(d, w["sep_1"]["pointwise_kernel"], 1, True)
    # max pool 3x3 stride 2 'same' (TF pads the bottom/right with -inf)
    h = s.shape[0]
    oh = -(-h // 2)
    pad = max((oh - 1) * 2 + 3 - h, 0)
    sp = np.pad(s, ((pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)), constant_values=-np.inf)
    pool = np.array([[sp[i * 2:i * 2 + 3, j * 2:j * 2 + 3].max((0, 1)) for j in range(oh)] for i in range(oh)])
    res = _ref_conv(a, w["conv2d_2"]["kernel"], 2, True)
    z = _ref_conv(pool + res, w["conv2d_3"]["kernel"], 1, True) + w["conv2d_3"]["bias"]
    g = z.mean((0, 1))
    e = np.exp(g - g.max())
    return e / e.sum()


def test_keras_hdf5_loader_matches_a_numpy_reference(tmp_path):
    rng = np.random.default_rng(0)
    w = _tiny_keras_h5(tmp_path / "tiny.hdf5", rng)
    net = emotion.load_keras_hdf5(tmp_path / "tiny.hdf5")
    assert net.input_size == 9
    x = rng.normal(size=(2, 9, 9, 1))
    with torch.no_grad():
        got = net(torch.from_numpy(x).float().permute(0, 3, 1, 2)).numpy()
    want = np.stack([_ref_forward(xi, w) for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fer_weights_missing_fail_before_work(tmp_path):
    missing = tmp_path / "emotion_model.hdf5"
    with pytest.raises(WeightsMissingError, match=str(missing)):
        emotion.emotion_run(tmp_path / "no_frames.parquet", tmp_path / "no_lm.parquet", tmp_path / "out.parquet",
                            EmotionConfig(backend="fer", weights_path=str(missing)))


# ---------------------------------------------------------------- DeepFace (paper backend)


def test_deepface_missing_weights_name_the_deepface_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(WeightsMissingError, match=str(tmp_path / ".deepface" / "weights")):
        emotion.emotion_run(tmp_path / "no_frames.parquet", tmp_path / "no_lm.parquet", tmp_path / "out.parquet",
                            EmotionConfig(backend="deepface"))


def test_deepface_loads_its_real_checkpoint_format(tmp_path, monkeypatch):
    """A randomly initialised DeepFace emotion net saved as DeepFace's .pth, loaded by our backend."""
    from deepface.models.demography.pytorch.Emotion import base_model

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    monkeypatch.setattr(emotion, "deepface_engine", lambda: "pytorch")
    torch.manual_seed(0)
    ref = base_model().eval()
    weights = tmp_path / ".deepface" / "weights"
    weights.mkdir(parents=True)
    torch.save(ref.state_dict(), weights / "facial_expression_model_weights.pth")

    teacher = emotion.load("deepface", EmotionConfig(backend="deepface"))
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, size=(3, 512, 512, 3), dtype=np.uint8)
    boxes = np.array([[256, 256, 300]] * 3, np.float32)
    got = teacher.predict(frames, boxes)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    faces = emotion.crop_faces(frames, boxes, 48, grey=True)
    with torch.no_grad():
        want = ref(torch.from_numpy(faces.astype(np.float32) / 255.0)[:, None]).numpy()
    np.testing.assert_allclose(got, want / want.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    assert "deepface" in teacher.version
