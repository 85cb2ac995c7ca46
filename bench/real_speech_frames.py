"""Look at a synthetic identity speaking packaged real speech (`synth.speech: real`).

Renders the identity's frames at the widest-open vowels and at bilabial closures / pauses (tiled, labelled
with time, phone, viseme class, jaw and the recording) and plots the jaw against the audio's energy.
Usage: python bench/real_speech_frames.py OUT_DIR [--seed 3] [--set corpus]
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--set", default="corpus", choices=["corpus", "heldout", "all"])
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from PIL import Image, ImageDraw

    from emotag_core.config import FlameConfig, SynthConfig
    from emotag_core.synth.generator import animate, build_appearance, plan_script, render_frames, sample_identity
    from emotag_core.synth.identity import load_model

    torch.set_num_threads(1)
    model = load_model(FlameConfig(), "cpu")
    cfg = SynthConfig(seconds=8.0, size=256, seed=args.seed, speech="real", speech_set=args.set, emotions=["neutral"])
    ident = sample_identity(model, cfg)
    app = build_appearance(model, ident, cfg)
    script = plan_script(cfg, 0)
    truth = animate(model, ident, script, cfg, 0)
    T, jaw, vis = len(truth.jaw), truth.jaw[:, 0], np.array(truth.viseme)
    pick: list[tuple[str, int]] = []
    for cls in ("open_vowel", "mid_vowel", "bilabial", "pause"):
        idx = np.flatnonzero(vis == cls)
        if cls == "pause":
            idx = idx[~truth.speaking[idx]]
        order = idx[np.argsort(-jaw[idx])] if "vowel" in cls else idx[np.argsort(jaw[idx])]
        pick += [(cls, int(i)) for i in order[:2]]
    sel = sorted({i for _, i in pick})
    sub = dataclasses.replace(truth, **{f.name: (getattr(truth, f.name)[sel] if isinstance(getattr(truth, f.name), np.ndarray)
                                                 else [getattr(truth, f.name)[i] for i in sel])
                                        for f in dataclasses.fields(truth)
                                        if f.name not in ("au_names", "extra")})
    frames = dict(zip(sel, render_frames(model, ident, sub, app)))
    tiles = []
    for cls, i in pick:
        tile = Image.fromarray(frames[i]).resize((240, 240))
        d = ImageDraw.Draw(tile)
        d.rectangle((0, 0, 240, 30), fill=(0, 0, 0))
        d.text((4, 2), f"t={i / cfg.fps:.2f}s {truth.phoneme[i]} ({cls}) jaw={jaw[i]:.3f}", fill=(255, 255, 255))
        d.text((4, 15), script.segments[truth.segment[i]].voice, fill=(255, 255, 0))
        tiles.append(tile)
    sheet = Image.new("RGB", (240 * 4, 240 * ((len(tiles) + 3) // 4)))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % 4) * 240, (k // 4) * 240))
    args.out.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out / "real_speech_frames.png")
    hop = script.sample_rate // int(cfg.fps)
    env = np.array([np.sqrt(np.mean(script.audio[k * hop:(k + 1) * hop] ** 2)) for k in range(T)])
    fig, ax = plt.subplots(2, 1, figsize=(12, 4), sharex=True)
    ax[0].plot(np.arange(len(script.audio)) / script.sample_rate, script.audio, lw=0.3)
    ax[0].set_ylabel("audio")
    t = np.arange(T) / cfg.fps
    ax[1].plot(t, jaw, label="jaw (rad)")
    ax[1].plot(t, env / env.max() * jaw.max(), label="energy (scaled)", alpha=0.7)
    for s in script.segments:
        ax[1].axvspan(s.start, s.end, color="0.9", zorder=0)
    ax[1].legend()
    ax[1].set_xlabel("s")
    fig.tight_layout()
    fig.savefig(args.out / "real_speech_jaw.png", dpi=80)
    print("utterances:", [(s.voice, s.text) for s in script.segments])
    print(f"corr(jaw, energy) over the clip: {np.corrcoef(jaw, env)[0, 1]:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
