"""Multi-identity training data: a corpus index joined on (clip_id, frame), read lazily.

`build_identity_index` checks one identity's tables against each other and returns a small
per-frame index (ints only: which row of each table holds the frame); `CorpusLoader` samples
frames from that index and reads only the Parquet row groups it needs, through one bounded LRU
cache shared by every table of every identity. Memory is bounded by the cache size and the index
(a few ints per frame), never by the length of the videos or the number of identities.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from emotag_core.errors import ConfigError, InputError, SchemaError
from emotag_core.io.frames import decode_jpeg
from emotag_core.io.tables import EMOTION_LABELS, UPPER_AUS, TableReader, column_array

# tables the motion network trains on; geometry is needed by adaptation only (L_Geo)
TRAIN_TABLES = ("frames", "audio_features", "aus", "emotion", "identity", "flame")
OPTIONAL_TABLES = ("geometry",)
ROW_COLUMNS = {"frames": "row_frames", "audio_features": "row_audio", "aus": "row_aus",
               "emotion": "row_emotion", "flame": "row_flame", "geometry": "row_geometry"}


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """md5 of a file's bytes (the corpus manifest records it so `pretrain` reruns when a table changes)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _keys(r: TableReader) -> tuple[np.ndarray, np.ndarray]:
    t = r.read(columns=["clip_id", "frame"]) if r.name != "frames" else r._pf.read(columns=["clip_id", "frame"])
    return np.asarray(t.column("clip_id").to_pylist(), dtype=object), column_array(t, "frame").astype(np.int64)


def _clip_layout(path: Path, clips: np.ndarray, frames: np.ndarray) -> dict[str, tuple[int, int]]:
    """clip -> (first row, n frames); each clip must be contiguous with frames 0..n-1 in order."""
    out: dict[str, tuple[int, int]] = {}
    start = 0
    n = len(clips)
    while start < n:
        c = clips[start]
        end = start
        while end < n and clips[end] == c:
            end += 1
        if c in out:
            raise SchemaError(path, f"clip `{c}` is split into several runs of rows",
                              "re-run the producing stage (rows must be grouped by clip)")
        f = frames[start:end]
        if not np.array_equal(f, np.arange(end - start)):
            bad = int(np.argmax(f != np.arange(end - start)))
            raise SchemaError(path, f"clip `{c}`: frame {int(f[bad])} at position {bad}, expected {bad} "
                              "(frames must run 0..n-1 in order)", "re-run the producing stage")
        out[str(c)] = (start, end - start)
        start = end
    return out


@dataclass
class IdentityIndex:
    """One identity's per-frame index and the metadata training needs."""

    identity: str
    index: pa.Table  # clip_id, frame, t, usable, row_* (row of each table), row0_audio, row0_aus, clip_len
    meta: dict[str, Any]  # feature_dim, identity_vector, n_expr, shape, camera, frame_size, fps, backends ...
    tables: dict[str, str]  # table name -> path


def build_identity_index(identity: str, tables: Mapping[str, str | Path]) -> IdentityIndex:
    """Join one identity's tables on (clip_id, frame); check they describe the same frames.

    `tables` maps table names (TRAIN_TABLES, optionally `geometry`) to Parquet paths.
    """
    missing = [t for t in TRAIN_TABLES if t not in tables]
    if missing:
        raise InputError(None, f"identity `{identity}`: tables {missing} not given", "run their stages first")
    readers = {name: TableReader(tables[name], name) for name in list(TRAIN_TABLES) + [t for t in OPTIONAL_TABLES if t in tables]}
    fr = readers["frames"]
    clips, frames = _keys(fr)
    layout = _clip_layout(fr.path, clips, frames)
    n = len(frames)
    cols: dict[str, Any] = {"clip_id": clips.astype(str).tolist(), "frame": frames.astype(np.int32)}
    keys_t = fr._pf.read(columns=["t", "face_found"])
    cols["t"] = column_array(keys_t, "t").astype(np.float64)
    usable = column_array(keys_t, "face_found").astype(bool)
    cols["row_frames"] = np.arange(n, dtype=np.int64)
    clip_len = np.array([layout[str(c)][1] for c in clips], dtype=np.int64)
    cols["clip_len"] = clip_len
    for name, r in readers.items():
        if name in ("frames", "identity"):
            continue
        c2, f2 = _keys(r)
        lay2 = _clip_layout(r.path, c2, f2)
        if {k: v[1] for k, v in lay2.items()} != {k: v[1] for k, v in layout.items()}:
            diff = sorted(set(lay2.items()) ^ set(layout.items()))[:3]
            raise SchemaError(r.path, f"clips/frame counts differ from frames.parquet (e.g. {diff})",
                              f"re-run the `{name}` stage for `{identity}`")
        row0 = np.array([lay2[str(c)][0] for c in clips], dtype=np.int64)
        cols[ROW_COLUMNS[name]] = row0 + frames
        if name in ("audio_features", "aus"):
            cols[f"row0_{'audio' if name == 'audio_features' else 'aus'}"] = row0
    # frames the losses can use: a face, a valid track, an emotion label
    flame_valid = column_array(readers["flame"].read(columns=["valid"]), "valid").astype(bool)
    emo_face = column_array(readers["emotion"].read(columns=["face_found"]), "face_found").astype(bool)
    usable &= flame_valid[cols["row_flame"]] & emo_face[cols["row_emotion"]]
    cols["usable"] = usable
    if not usable.any():
        raise InputError(fr.path, f"identity `{identity}`: no usable frame (face + valid track + emotion)",
                         "check the ingest and track stages' outputs")
    meta = _identity_meta(identity, readers)
    return IdentityIndex(identity, pa.table(cols), meta, {k: str(v) for k, v in tables.items()})


def _identity_meta(identity: str, readers: Mapping[str, TableReader]) -> dict[str, Any]:
    am, fm, im, um = (readers[k].meta for k in ("audio_features", "flame", "identity", "aus"))
    s = im.get("identity_vector")
    if not isinstance(s, list) or not s:
        raise SchemaError(readers["identity"].path, "metadata `identity_vector` is empty", "re-run the identity stage")
    avail = um.get("available_aus", list(UPPER_AUS))
    missing = [a for a in UPPER_AUS if a not in avail]
    meta = {
        "identity": identity,
        "feature_dim": int(am["feature_dim"]),
        "audio_backend": am["backend"],
        "window": int(am.get("window", 16)),
        "identity_vector": [float(x) for x in s],
        "identity_backend": im["backend"],
        "n_expr": int(fm["n_expr"]),
        "flame_model": fm["flame_model"],
        "shape": fm["shape"],
        "camera": fm["camera"],
        "frame_size": readers["frames"].meta["frame_size"],
        "fps": float(readers["frames"].meta["fps"]),
        "missing_upper_aus": missing,
        "emotion_labels": readers["emotion"].meta.get("labels", list(EMOTION_LABELS)),
    }
    if "geometry" in readers:
        meta["geometry_size"] = int(readers["geometry"].meta["map_size"])
    if list(meta["emotion_labels"]) != list(EMOTION_LABELS):
        raise SchemaError(readers["emotion"].path, f"label order {meta['emotion_labels']} is not DeepFace's {list(EMOTION_LABELS)}",
                          "re-run the emotion stage")
    return meta


def check_compatible(indices: list[IdentityIndex]) -> None:
    """All corpus identities must share the audio feature size, FLAME variant and identity-vector size."""
    first = indices[0].meta
    for ix in indices[1:]:
        for key in ("feature_dim", "audio_backend", "n_expr", "flame_model"):
            if ix.meta[key] != first[key]:
                raise SchemaError(ix.tables["audio_features" if key.startswith(("feature", "audio")) else "flame"],
                                  f"`{key}` is {ix.meta[key]!r} for `{ix.identity}` but {first[key]!r} for "
                                  f"`{indices[0].identity}`", "re-run its stages with the same params")
        if len(ix.meta["identity_vector"]) != len(first["identity_vector"]):
            raise SchemaError(ix.tables["identity"], f"identity vector has {len(ix.meta['identity_vector'])} dims, "
                              f"`{indices[0].identity}` has {len(first['identity_vector'])}", "use one identity backend")


class RowGroupCache:
    """A bounded LRU of decoded Parquet row-group columns, shared by every lazily-read table."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = max(1, capacity)
        self._d: OrderedDict[tuple[str, int, str], Any] = OrderedDict()
        self.reads = 0

    def get(self, reader: TableReader, rg: int, column: str) -> Any:
        key = (str(reader.path), rg, column)
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        col = reader.read_row_group(rg, columns=[column]).column(column).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            val: Any = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, col.type.list_size)
        elif pa.types.is_binary(col.type):
            val = col.to_pylist()
        else:
            val = col.to_numpy(zero_copy_only=False)
        self.reads += 1
        self._d[key] = val
        while len(self._d) > self.capacity:
            self._d.popitem(last=False)
        return val

    def __len__(self) -> int:
        return len(self._d)


class LazyTable:
    """Row access to one Parquet table through a RowGroupCache (never the whole file)."""

    def __init__(self, path: str | Path, name: str, cache: RowGroupCache) -> None:
        self.r = TableReader(path, name)
        self.cache = cache
        md = self.r._pf.metadata
        self.starts = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])

    def rows(self, rows: np.ndarray, column: str) -> list[Any] | np.ndarray:
        """Values of `column` at table rows `rows` (any shape) -> array [*rows.shape, ...] (list for binary)."""
        flat = np.asarray(rows, dtype=np.int64).reshape(-1)
        rgs = np.searchsorted(self.starts, flat, side="right") - 1
        out: list[Any] = [None] * len(flat)
        for rg in np.unique(rgs):
            vals = self.cache.get(self.r, int(rg), column)
            sel = np.nonzero(rgs == rg)[0]
            for j in sel:
                out[j] = vals[int(flat[j] - self.starts[rg])]
        if isinstance(out[0], (bytes, bytearray)):
            return out
        arr = np.stack([np.asarray(o) for o in out])
        return arr.reshape(*np.shape(rows), *arr.shape[1:])


@dataclass
class Batch:
    """One training batch: B frames of one identity."""

    identity: str
    rows: np.ndarray  # [B] rows of the identity index
    image: Tensor  # [B, 3, S, S] in [0, 1]
    audio: Tensor  # [B, W, D]
    aus: Tensor  # [B, W, 6] upper-face AUs, OpenFace 0-5
    s: Tensor  # [B, S_id]
    p_emo: Tensor  # [B, 7]
    e: Tensor  # [B]
    expr: Tensor  # [B, E] tracked (teacher for the static stage and optional param supervision)
    jaw: Tensor  # [B, 3]
    rot: Tensor  # [B, 3]
    trans: Tensor  # [B, 3]
    depth: Tensor | None = None  # [B, S, S]
    normal: Tensor | None = None  # [B, S, S, 3]
    extras: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        kw = {k: (v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**kw)

    def pin_memory(self) -> "Batch":
        """The same batch in page-locked host memory (for asynchronous copies to CUDA)."""
        kw = {k: (v.pin_memory() if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**kw)


def _clips_of(row0: np.ndarray, clip_len: np.ndarray) -> Iterator[tuple[int, np.ndarray, int]]:
    """For sampled rows' clip start rows `row0` [B] and clip lengths [B]: (row0, row mask [B], length) per clip."""
    for r0 in np.unique(row0):
        sel = row0 == r0
        yield int(r0), sel, int(clip_len[sel][0])


class CorpusLoader:
    """Samples batches of frames (one identity per batch) and reads them lazily.

    Sampling is driven by its own numpy Generator; `state_dict()` / `load_state_dict()` make a
    resumed run draw exactly the batches an uninterrupted run would.
    """

    def __init__(self, indices: list[IdentityIndex], batch_size: int, image_size: int, window: int = 16,
                 seed: int = 0, cache_row_groups: int = 64, with_geometry: bool = False,
                 max_seconds: float | None = None, with_images: bool = True, clip_norm: bool = False,
                 audio_aug: Any = None, score_target: str = "teacher") -> None:
        """`with_images=False` (motion-only training) skips reading and decoding the frame crops:
        `Batch.image` is then an empty [B, 3, 0, 0] tensor.

        `clip_norm`: audio features standardised per clip (`audio_aug.clip_cmvn_stats`) over the clip's
        frames this loader may use (with `max_seconds`, only those in the limit). `audio_aug`: an
        `audio_aug.AudioAugment` applied to sampled batches (`next_batch`), never to `load`.

        `score_target`: what `Batch.e` (L_Score's target, Eq. 13) holds: `teacher` = the emotion table's
        score (Eq. 9, the paper), `aus` = `au_score.au_intensity_score` of the frame's clip (over the
        clip's frames this loader may use)."""
        from emotag_core.teachers.audio import window_offsets
        from emotag_core.train.au_score import check_score_target

        if not indices:
            raise InputError(None, "empty corpus", "list corpus identities in params.yaml `corpus`")
        self.indices = {ix.identity: ix for ix in indices}
        self.ids = [ix.identity for ix in indices]
        self.batch_size = batch_size
        self.image_size = image_size
        self.window = window
        self.offsets = window_offsets(window)
        self.with_geometry = with_geometry
        self.with_images = with_images
        self.cache = RowGroupCache(cache_row_groups)
        self.rng = np.random.default_rng(seed)
        self._tables: dict[tuple[str, str], LazyTable] = {}
        self._cols: dict[str, dict[str, np.ndarray]] = {}
        self._pool: dict[str, np.ndarray] = {}
        weights = []
        for ix in indices:
            cols = {c: ix.index.column(c).to_numpy(zero_copy_only=False) for c in ix.index.column_names if c != "clip_id"}
            self._cols[ix.identity] = cols
            ok = cols["usable"].astype(bool)
            if max_seconds is not None:  # the first `max_seconds` of the identity, in store order
                n_keep = int(round(max_seconds * ix.meta["fps"]))
                ok = ok & (np.arange(len(ok)) < n_keep)
            if with_geometry and "row_geometry" not in cols:
                raise InputError(ix.tables.get("frames"), f"identity `{ix.identity}` has no geometry table",
                                 f"run `dvc repro geometry@{ix.identity}`")
            pool = np.nonzero(ok)[0]
            if len(pool) == 0:
                raise InputError(ix.tables["frames"], f"identity `{ix.identity}`: no usable frame in range",
                                 "lower the time limit or check the tracked frames")
            self._pool[ix.identity] = pool
            weights.append(len(pool))
        self.weights = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        self.step = 0
        self.max_seconds = max_seconds
        self.clip_norm = clip_norm
        self.audio_aug = audio_aug if audio_aug is not None and audio_aug.active else None
        self._cmvn: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}  # (identity, clip row0) -> mean, std
        self.score_target = check_score_target(score_target)
        self._au_scores: dict[tuple[str, int], np.ndarray] = {}  # (identity, clip aus row0) -> [n] e per frame
        self._dev: dict[str, dict[str, Tensor]] | None = None  # preloaded pools (see `preload`)
        self.device: torch.device | None = None

    def n_frames(self, identity: str) -> int:
        return len(self._pool[identity])

    def _table(self, identity: str, name: str) -> LazyTable:
        key = (identity, name)
        if key not in self._tables:
            self._tables[key] = LazyTable(self.indices[identity].tables[name], name, self.cache)
        return self._tables[key]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "step": self.step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.step = int(state["step"])

    def sample(self) -> tuple[str, np.ndarray]:
        """Draw (identity, index rows [B]) for the next batch."""
        i = int(self.rng.choice(len(self.ids), p=self.weights))
        ident = self.ids[i]
        pool = self._pool[ident]
        rows = np.sort(self.rng.choice(pool, size=self.batch_size, replace=len(pool) < self.batch_size))
        self.step += 1
        return ident, rows

    def next_batch(self) -> Batch:
        ident, rows = self.sample()
        b = self._gather(ident, rows) if self._dev is not None else self.load(ident, rows)
        if self.audio_aug is not None:  # draws from self.rng: a resumed run augments identically
            aug = self.audio_aug(b.audio.cpu().numpy(), self.rng)
            b.audio = torch.from_numpy(aug).to(b.audio.device)
        return b

    def _clip_stats(self, ident: str, row0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """CMVN statistics of the clip whose audio rows start at `row0` ([D], [D]), cached per clip."""
        from emotag_core.train.audio_aug import clip_cmvn_stats

        key = (ident, int(row0))
        if key not in self._cmvn:
            n = self._visible(ident, "row0_audio", row0, n)
            x = self._table(ident, "audio_features").rows(np.arange(row0, row0 + n), "feature")  # [n, D]
            self._cmvn[key] = clip_cmvn_stats(np.asarray(x, np.float64))
        return self._cmvn[key]

    def _clip_au_score(self, ident: str, row0: int, n: int) -> np.ndarray:
        """`score_target: aus`: e of every frame of the clip whose AU rows start at `row0` ([n]), cached per clip."""
        from emotag_core.train.au_score import SCORE_AUS, au_intensity_score

        key = (ident, int(row0))
        if key not in self._au_scores:
            n_stat = self._visible(ident, "row0_aus", row0, n)  # statistics only over what the loader may see
            tab = self._table(ident, "aus")
            x = np.stack([np.asarray(tab.rows(np.arange(row0, row0 + n), a), np.float64) for a in SCORE_AUS], axis=-1)
            e = np.zeros(n, dtype=np.float64)  # frames past a time limit are never sampled: left 0
            e[:n_stat] = au_intensity_score(x[:n_stat])  # [n_stat]
            self._au_scores[key] = e
        return self._au_scores[key]

    def _visible(self, ident: str, row0_col: str, row0: int, n: int) -> int:
        """How many of the `n` frames of the clip whose `row0_col` is `row0` this loader may see
        (all of them, or only those within `max_seconds` for a time-limited loader; at least 1)."""
        if self.max_seconds is None:
            return n
        first = int(np.nonzero(self._cols[ident][row0_col] == row0)[0][0])  # index row of frame 0
        n_keep = int(round(self.max_seconds * self.indices[ident].meta["fps"]))
        return max(1, min(n, n_keep - first))

    @property
    def preloaded(self) -> bool:
        return self._dev is not None

    def preload(self, device: torch.device | str) -> int:
        """Read and decode, once, every frame the sampler can draw, onto `device`; returns the bytes held.

        Only for a time-limited pool (`max_seconds`, e.g. adaptation's 5 s clip): memory is bounded by
        that limit, never by the video length. Later batches are gathered there (no Parquet reads,
        no JPEG decoding, no host->device copies of frames) and are bit-identical to `load`'s.
        """
        if self.max_seconds is None:
            raise ConfigError("CorpusLoader.preload needs a time-limited pool (`max_seconds`); "
                              "whole videos are streamed, never preloaded")
        dev = torch.device(device)
        # 0..255 -> [0, 1] as the CPU computes it (a device division may round differently)
        lut = torch.arange(256, dtype=torch.float32) / 255.0
        held: dict[str, dict[str, Tensor]] = {}
        total = 0
        for ident in self.ids:
            pool = self._pool[ident]
            # the same reads and conversions as a streamed batch of the whole pool, frames kept as uint8
            b = self.load(ident, pool, images=False)
            d: dict[str, Tensor] = {"pool": torch.as_tensor(pool), "lut": lut.to(dev)}
            if self.with_images:
                d["image_u8"] = torch.from_numpy(self._images_u8(ident, pool)).to(dev)  # [P, S, S, 3]
            for k in ("audio", "aus", "p_emo", "e", "expr", "jaw", "rot", "trans"):
                d[k] = getattr(b, k).to(dev)
            d["s"] = b.s[:1].expand(self.batch_size, -1).contiguous().to(dev)  # [B, S_id]
            if b.depth is not None and b.normal is not None:  # float16 maps: the exact values
                d["depth"], d["normal"] = b.depth.half().to(dev), b.normal.half().to(dev)
            total += sum(int(t.numel() * t.element_size()) for t in d.values())
            held[ident] = d
        self._dev, self.device = held, dev
        return total

    def _gather(self, ident: str, rows: np.ndarray) -> Batch:
        """The batch at index `rows` from the preloaded pool (gathers on its device, no host sync)."""
        d = self._dev[ident]  # type: ignore[index]
        pos = np.searchsorted(d["pool"].numpy(), rows)
        idx = torch.from_numpy(pos)
        if self.device is not None and self.device.type == "cuda":
            idx = idx.pin_memory().to(self.device, non_blocking=True)
        b = len(rows)
        if "image_u8" in d:
            image = d["lut"][d["image_u8"][idx].long()].permute(0, 3, 1, 2)
        else:
            image = torch.empty(b, 3, 0, 0, device=self.device)
        g = {k: d[k][idx] for k in ("audio", "aus", "p_emo", "e", "expr", "jaw", "rot", "trans")}
        batch = Batch(identity=ident, rows=rows, image=image, s=d["s"], **g)
        if "depth" in d:
            batch.depth, batch.normal = d["depth"][idx].float(), d["normal"][idx].float()
        return batch

    def load(self, ident: str, rows: np.ndarray, images: bool = True) -> Batch:
        """Read the frames at index `rows` of identity `ident` (row groups through the cache).

        `images=False` leaves `Batch.image` empty [B, 3, 0, 0] whatever `with_images` says."""
        cols = self._cols[ident]
        meta = self.indices[ident].meta
        image = self._images(ident, rows) if self.with_images and images else torch.empty(len(rows), 3, 0, 0)
        frame = cols["frame"][rows].astype(np.int64)
        clip_len = cols["clip_len"][rows]
        win = np.clip(frame[:, None] + self.offsets[None, :], 0, clip_len[:, None] - 1)
        audio = self._table(ident, "audio_features").rows(cols["row0_audio"][rows][:, None] + win, "feature")
        if self.clip_norm:
            audio = np.asarray(audio, np.float64)
            for r0, sel, n in _clips_of(cols["row0_audio"][rows], clip_len):
                mu, sd = self._clip_stats(ident, r0, n)
                audio[sel] = (audio[sel] - mu) / sd
        aus_tab = self._table(ident, "aus")
        aus = np.stack([aus_tab.rows(cols["row0_aus"][rows][:, None] + win, a) for a in UPPER_AUS], axis=-1)
        emo = self._table(ident, "emotion")
        probs = emo.rows(cols["row_emotion"][rows], "probs")
        if self.score_target == "aus":  # not in the paper: an AU intensity replaces Eq. 9's e
            score = np.empty(len(rows), dtype=np.float64)
            for r0, sel, n in _clips_of(cols["row0_aus"][rows], clip_len):
                score[sel] = self._clip_au_score(ident, r0, n)[frame[sel]]
        else:
            score = emo.rows(cols["row_emotion"][rows], "score")
        fl = self._table(ident, "flame")
        fr = cols["row_flame"][rows]
        b = len(rows)
        sv = torch.tensor(meta["identity_vector"], dtype=torch.float32).expand(b, -1).contiguous()
        f32 = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
        batch = Batch(identity=ident, rows=rows, image=image, audio=f32(audio), aus=f32(aus), s=sv,
                      p_emo=f32(probs), e=f32(score), expr=f32(fl.rows(fr, "expr")), jaw=f32(fl.rows(fr, "jaw")),
                      rot=f32(fl.rows(fr, "rot")), trans=f32(fl.rows(fr, "trans")))
        if self.with_geometry:
            batch.depth, batch.normal = self._geometry(ident, cols["row_geometry"][rows], meta["geometry_size"])
        return batch

    def _images(self, ident: str, rows: np.ndarray) -> Tensor:
        """Frame crops at index `rows`, resized to the training size -> [B, 3, S, S] in [0, 1]."""
        return torch.from_numpy(self._images_u8(ident, rows)).permute(0, 3, 1, 2).float() / 255.0

    def _images_u8(self, ident: str, rows: np.ndarray) -> np.ndarray:
        """Frame crops at index `rows`, resized to the training size -> uint8 [B, S, S, 3]."""
        import cv2

        s = self.image_size
        jpegs = self._table(ident, "frames").rows(self._cols[ident]["row_frames"][rows], "jpeg")
        imgs = []
        for j, data in zip(rows, jpegs):
            try:
                im = decode_jpeg(data)
            except ValueError as exc:
                raise InputError(self.indices[ident].tables["frames"], f"frame row {int(j)}: {exc}", "re-run ingest") from exc
            if im.shape[0] != s or im.shape[1] != s:
                im = cv2.resize(im, (s, s), interpolation=cv2.INTER_AREA)
            imgs.append(im)
        return np.stack(imgs)

    def _geometry(self, ident: str, rows: np.ndarray, size: int) -> tuple[Tensor, Tensor]:
        import cv2

        g = self._table(ident, "geometry")
        s = self.image_size
        ds, ns = [], []
        for d_raw, n_raw in zip(g.rows(rows, "depth"), g.rows(rows, "normal")):
            d = np.frombuffer(d_raw, np.float16).astype(np.float32).reshape(size, size)
            n = np.frombuffer(n_raw, np.float16).astype(np.float32).reshape(size, size, 3)
            if size != s:  # nearest keeps the background (0) crisp
                d = cv2.resize(d, (s, s), interpolation=cv2.INTER_NEAREST)
                n = cv2.resize(n, (s, s), interpolation=cv2.INTER_NEAREST)
            ds.append(d)
            ns.append(n)
        return torch.from_numpy(np.stack(ds)), torch.from_numpy(np.stack(ns))


class Prefetcher:
    """Reads a streaming CorpusLoader's next batches in a background thread (Parquet reads and JPEG
    decoding overlap the device's work). The same batches in the same order; `state_dict()` is the
    loader state after the last batch handed out, so a checkpoint resumes exactly.
    """

    def __init__(self, loader: CorpusLoader, depth: int = 3, pin: bool = False) -> None:
        self.loader = loader
        self.depth = depth
        self.pin = pin
        self._cuda = threading.Lock()  # held by the worker while it pins (a CUDA call), and by `paused()`
        self._state: dict[str, Any] | None = None
        self._thread: Any = None
        self._q: Any = None
        self._stop = False

    def __getattr__(self, name: str) -> Any:  # ids, cache, n_frames ... of the wrapped loader
        return getattr(self.__dict__["loader"], name)

    def _start(self) -> None:
        import queue

        self._state = self.loader.state_dict()
        self._q = queue.Queue(maxsize=self.depth)
        self._stop = False

        def work() -> None:
            while not self._stop:
                try:
                    b = self.loader.next_batch()
                    if self.pin:
                        with self._cuda:
                            b = b.pin_memory()
                    item: Any = (b, self.loader.state_dict())
                except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                    item = exc
                while not self._stop:
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if isinstance(item, BaseException):
                    return

        self._thread = threading.Thread(target=work, name="corpus-prefetch", daemon=True)
        self._thread.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No CUDA call from the worker inside this block (pinning host memory while another thread
        captures a CUDA graph invalidates the capture); its CPU reads go on."""
        with self._cuda:
            yield

    def next_batch(self) -> Batch:
        if self._thread is None:
            self._start()
        item = self._q.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        batch, self._state = item
        return batch

    def state_dict(self) -> dict[str, Any]:
        return dict(self._state) if self._thread is not None and self._state is not None else self.loader.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.close()
        self.loader.load_state_dict(state)

    def close(self) -> None:
        """Stop the reader thread; the wrapped loader is left at the state of the last batch handed out."""
        if self._thread is None:
            return
        self._stop = True
        self._thread.join()
        state = self._state
        self._thread = self._q = None
        if state is not None:
            self.loader.load_state_dict(state)
