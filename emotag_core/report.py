"""Per-identity HTML report: rendered video beside ground truth, per-frame metric curves, the
emotion/gate trace over time, and the metric table. One self-contained file (video and figures
embedded as base64), written atomically.
"""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.io.atomic import write_text


def side_by_side(rendered: Iterable[np.ndarray], real: Iterable[np.ndarray], out: str | Path, side: int = 256,
                 fps: float = 25.0, audio: Iterable[np.ndarray] | None = None) -> int:
    """Stream an mp4 of [rendered | real] frames, each resized to side x side; returns frames written."""
    import cv2

    from emotag_core.render.video import Mp4Writer

    n = 0
    blocks = iter(audio) if audio is not None else None
    with Mp4Writer(out, fps=fps, size=(2 * side, side)) as w:
        for a, b in zip(rendered, real):
            ra = cv2.resize(a, (side, side), interpolation=cv2.INTER_AREA)
            rb = cv2.resize(b, (side, side), interpolation=cv2.INTER_AREA)
            w.write(np.concatenate([ra, rb], axis=1), next(blocks, None) if blocks is not None else None)
            n += 1
    return n


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def strip_image(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray], frozen: np.ndarray | None = None,
                side: int = 256, labels: Sequence[str] = ()) -> np.ndarray:
    """One row per frame: ground truth | render | error (|render - truth| summed over RGB, x2) | frozen frame
    (when given). gt, pred: [H, W, 3] uint8 each -> [rows * side, cols * side, 3] uint8 RGB."""
    import cv2

    def fit(x: np.ndarray) -> np.ndarray:
        return cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA if x.shape[0] > side else cv2.INTER_LINEAR)

    rows = []
    for i, (g, r) in enumerate(zip(gt, pred)):
        r = cv2.resize(r, g.shape[1::-1]) if r.shape != g.shape else r
        err = np.clip(np.abs(r.astype(np.int16) - g).sum(-1) * 2, 0, 255).astype(np.uint8)
        tiles = [fit(g), fit(r), fit(np.repeat(err[..., None], 3, -1))] + ([fit(frozen)] if frozen is not None else [])
        row = np.concatenate(tiles, 1)
        if i < len(labels):
            cv2.putText(row, labels[i], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    return np.concatenate(rows, 0)


def image_png(img: np.ndarray) -> str:
    """[H, W, 3] uint8 RGB -> base64 PNG (for `write_report`'s figures)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not PNG-encode the image")
    return base64.b64encode(buf.tobytes()).decode()


def curves_png(curves: Mapping[str, Sequence[float]], fps: float, title: str) -> str:
    """Stacked per-frame curves (one panel each) -> base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, v in curves.items() if len(v) and np.isfinite(np.asarray(v, float)).any()]
    fig, axes = plt.subplots(max(1, len(keys)), 1, figsize=(8, 1.6 * max(1, len(keys))), sharex=True, squeeze=False,
                             layout="constrained")  # the title sits on the panels, not 12 % of a tall figure above them
    for ax, k in zip(axes[:, 0], keys):
        v = np.asarray(curves[k], float)
        ax.plot(np.arange(len(v)) / fps, v, lw=1)
        ax.set_ylabel(k)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title)
    return _png(fig)


def emotion_png(gate: Sequence[float], emotion: Sequence[Sequence[float]], labels: Sequence[str], fps: float,
                title: str, gate_pred: Sequence[float] | None = None) -> str:
    """Gate g over time and the residual branch's emotion distribution softmax(z_e) (stacked) -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 3.6), sharex=True)
    t = np.arange(len(gate)) / fps
    a1.plot(t, gate, label="g (used)")
    if gate_pred is not None and len(gate_pred) and not np.allclose(gate_pred, gate):
        a1.plot(t, gate_pred, "--", label="g (predicted)")
    a1.set_ylim(-0.02, 1.02)
    a1.set_ylabel("gate g")
    a1.legend(loc="upper right", fontsize=7)
    if len(emotion):
        e = np.asarray(emotion, float)
        a2.stackplot(np.arange(len(e)) / fps, e.T, labels=list(labels))
        a2.legend(loc="upper left", fontsize=6, ncol=len(labels))
    a2.set_ylabel("softmax(z_e)")
    a2.set_xlabel("time (s)")
    fig.suptitle(title)
    return _png(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "&mdash;"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def write_report(path: str | Path, identity: str, metrics: Mapping[str, Any], video_mp4: str | Path | None,
                 figures: Sequence[tuple[str, str]], notes: Sequence[str] = (), keys: Sequence[str] = ()) -> None:
    """Write the HTML report atomically. figures: (caption, base64 PNG); keys: headline metric order."""
    rows = []
    for k in keys:
        v = metrics.get(k)
        why = metrics.get(f"{k}_reason", "")
        flags = ", ".join(metrics.get("flags", {}).get(k, []))
        rows.append(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td><td>{html.escape(why or '')}"
                    f"{' [' + html.escape(flags) + ']' if flags else ''}</td></tr>")
    video = ""
    if video_mp4 is not None and Path(video_mp4).exists():
        b64 = base64.b64encode(Path(video_mp4).read_bytes()).decode()
        video = (f'<h2>Rendered (left) vs ground truth (right)</h2>'
                 f'<video controls width="100%" style="max-width:768px" src="data:video/mp4;base64,{b64}"></video>')
    figs = "".join(f'<figure><img src="data:image/png;base64,{b}" style="max-width:100%">'
                   f"<figcaption>{html.escape(c)}</figcaption></figure>" for c, b in figures)
    note = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>EmoTaG report: {html.escape(identity)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px}}figure{{margin:1em 0}}</style></head>
<body><h1>EmoTaG: {html.escape(identity)}</h1>
<ul>{note}</ul>
{video}
<h2>Metrics</h2>
<table><tr><th>metric</th><th>value</th><th>note</th></tr>{''.join(rows)}</table>
{figs}
</body></html>
"""
    write_text(path, doc)
