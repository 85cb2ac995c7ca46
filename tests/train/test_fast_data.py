"""Preloaded and read-ahead loaders give exactly the streamed batches; deferred loss read-back names the bad step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.errors import ConfigError, DivergenceError
from emotag_core.train.data import CorpusLoader, Prefetcher, build_identity_index
from emotag_core.train.loop import _Pending
from train.toydata import write_identity

FIELDS = ("image", "audio", "aus", "s", "p_emo", "e", "expr", "jaw", "rot", "trans", "depth", "normal")


def _same(a, b) -> None:
    assert a.identity == b.identity and np.array_equal(a.rows, b.rows)
    for k in FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        if x is None or y is None:
            assert x is None and y is None, k
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, k
        assert torch.equal(x, y), k  # bit-identical, not close


def test_preloaded_clip_gives_the_streamed_batches(tmp_path):
    ix = build_identity_index("a", write_identity(tmp_path, "a", seed=0, geometry=True))
    kw = dict(batch_size=3, image_size=12, seed=4, with_geometry=True, max_seconds=0.8)  # 20 frames, resized
    ref, pre = CorpusLoader([ix], **kw), CorpusLoader([ix], **kw)
    held = pre.preload("cpu")
    assert pre.preloaded and held > 20 * 12 * 12 * 3
    for _ in range(6):
        _same(ref.next_batch(), pre.next_batch())
    st = pre.state_dict()
    want = [pre.next_batch() for _ in range(3)]
    pre.load_state_dict(st)
    for w in want:
        _same(w, pre.next_batch())
    with pytest.raises(ConfigError, match="max_seconds"):
        CorpusLoader([ix], 2, 8).preload("cpu")  # whole videos are never preloaded


def test_prefetcher_same_batches_and_exact_state(tmp_path):
    ixs = [build_identity_index(i, write_identity(tmp_path, i, seed=s)) for s, i in enumerate("ab")]
    ref = CorpusLoader(ixs, 2, 8, seed=7)
    pf = Prefetcher(CorpusLoader(ixs, 2, 8, seed=7), depth=3)
    got = [pf.next_batch() for _ in range(4)]
    st = pf.state_dict()  # after the 4th batch handed out, although the thread has read further
    for g in got:
        _same(ref.next_batch(), g)
    nxt = ref.next_batch()
    resumed = CorpusLoader(ixs, 2, 8, seed=0)
    resumed.load_state_dict(st)
    _same(nxt, resumed.next_batch())
    pf.close()  # the wrapped loader is put back where the consumer stopped
    _same(nxt, pf.loader.next_batch())
    pf.load_state_dict(st)
    _same(nxt, pf.next_batch())
    pf.close()


def test_prefetcher_pins_nothing_while_paused(tmp_path, monkeypatch):
    """`paused()` (held around CUDA-graph captures) stops the worker's pinning, a CUDA call; reads go on after."""
    import threading
    import time

    from emotag_core.train import data

    pinned: list[str] = []

    def pin(self):  # CPU stand-in for Batch.pin_memory (which needs CUDA): record who pinned, return the batch
        pinned.append(threading.current_thread().name)
        return self

    monkeypatch.setattr(data.Batch, "pin_memory", pin)
    ixs = [build_identity_index(i, write_identity(tmp_path, i, seed=s)) for s, i in enumerate("ab")]
    ref = CorpusLoader(ixs, 2, 8, seed=3)
    pf = Prefetcher(CorpusLoader(ixs, 2, 8, seed=3), depth=2, pin=True)
    _same(ref.next_batch(), pf.next_batch())
    deadline = time.monotonic() + 5
    while len(pinned) < 3 and time.monotonic() < deadline:  # the queue (depth 2) fills, a third batch waits
        time.sleep(0.01)
    assert len(pinned) >= 3  # else the paused block below would wait on an empty queue
    with pf.paused():
        for _ in range(2):  # queued batches are handed out; the worker reads the next ones but may not pin
            _same(ref.next_batch(), pf.next_batch())
        n = len(pinned)
        time.sleep(0.3)
        assert len(pinned) == n <= 4
    for _ in range(3):
        _same(ref.next_batch(), pf.next_batch())
    assert len(pinned) > n and set(pinned) == {"corpus-prefetch"}
    pf.close()


def test_deferred_read_back_names_the_first_diverged_step(tmp_path):
    ix = build_identity_index("a", write_identity(tmp_path, "a", seed=0))
    loader = CorpusLoader([ix], 2, 8, seed=1)
    p = _Pending()
    batches = [loader.next_batch() for _ in range(3)]
    for it, (b, v) in enumerate(zip(batches, (0.5, float("nan"), float("inf")))):
        p.add(it, b, False, {"render": torch.tensor(0.25), "loss": torch.tensor(v)})
    with pytest.raises(DivergenceError, match=rf"index rows {batches[1].rows.tolist()}".replace("[", r"\[").replace("]", r"\]")):
        p.flush()
    p = _Pending()
    p.add(0, batches[0], True, {"render": torch.tensor(0.25), "loss": torch.tensor(0.5)})
    assert p.flush() == [(0, True, {"render": 0.25, "loss": 0.5})]
