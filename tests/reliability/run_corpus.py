"""Run the bad-input corpus through the real CLI (`emotag add-identity`) and `dvc repro` in a
scratch repository and judge each case against its expected outcome."""
from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpus import HANDLED, REJECTED, Case
from .harness import Scratch, exit_code_of, one_line, stage_failed

BASE = "rel_base"  # a good identity whose tables the table cases corrupt and the weight cases re-run


@dataclass
class Result:
    """How the pipeline treated one case."""

    case: str
    group: str
    expect: str
    outcome: str        # handled | rejected | crashed | wrong
    ok: bool
    partial: bool       # an output or temp file was left behind by a rejected run
    detail: str


def _section_text(sections: dict[str, str], stage: str) -> str:
    return one_line(sections.get(stage, ""))


def judge_rejected(case: Case, text: str, code: int | None, leftovers: list[Path]) -> Result:
    """A rejection passes when: exit 2, the named error matches, the file is named, no traceback,
    and nothing of the stage's output is left."""
    problems = []
    if code != 2:
        problems.append(f"exit code {code}, expected 2")
    if "Traceback" in text:
        problems.append("traceback instead of a one-line error")
    if case.error and not re.search(case.error, text):
        problems.append(f"error text does not match /{case.error}/")
    if case.names and case.names not in text:
        problems.append(f"error does not name {case.names}")
    partial = bool(leftovers)
    if partial:
        problems.append(f"left behind: {[str(p) for p in leftovers][:4]}")
    outcome = "rejected" if code == 2 and "Traceback" not in text else ("crashed" if code not in (0, None) else "wrong")
    msg = re.search(r"(failed: |emotag \S+: )(\w+Error: .*?)(?: ERROR:|$)", text)
    detail = "; ".join(problems) if problems else (msg.group(2)[:200] if msg else text[-200:])
    return Result(case.name, case.group, case.expect, outcome, not problems, partial, detail)


def _clip_of(meta: dict, filename: str) -> str | None:
    for cid, src in meta.get("source", {}).items():
        if src.get("file") == filename:
            return cid
    return None


def judge_handled(case: Case, scratch: Scratch, identity: str, text: str, code: int | None) -> Result:
    """A handled case passes when the stages succeeded and the clip's outputs show the handling
    its note asks for (frame count, rotation, codec, face gap, several faces, speech/silence)."""
    from emotag_core.io.audio import read_wav
    from emotag_core.io.frames import FrameStore
    from emotag_core.io.tables import column_array, read_table

    proc = scratch.root / "data" / "processed" / identity
    if code != 0:
        return Result(case.name, case.group, case.expect, "rejected" if code == 2 else "crashed", False, False,
                      f"exit {code}: {text[-300:]}")
    try:
        store = FrameStore(proc / "frames.parquet")
        fname = Path(case.files[0]).name
        cid = _clip_of(store.meta, fname)
        assert cid is not None, f"no clip for {fname} in frames metadata"
        keys = store.keys
        rows = np.flatnonzero(keys.column("clip_id").to_numpy(zero_copy_only=False).astype(str) == cid)
        n = len(rows)
        found = store.face_found()[rows]
        x, sr = read_wav(proc / "audio" / f"{cid}.wav")
        assert sr == 16000 and x.size == n * 640, f"wav {x.size} samples at {sr} Hz for {n} frames"
        assert np.all(np.isfinite(x)) and np.abs(x).max() <= 1.0
        crop = store.get(int(rows[n // 2]))
        assert crop.shape == (store.size, store.size, 3)
        src = store.meta["source"][cid]
        for cond in case.note.split(","):
            cond = cond.strip()
            if cond.startswith("frames>="):
                assert n >= int(cond[8:]), f"{n} frames"
            elif cond.startswith("frames<="):
                assert n <= int(cond[8:]), f"{n} frames"
            elif cond.startswith("rotation="):
                assert int(src.get("rotation", 0)) % 360 == int(cond[9:]), f"rotation {src.get('rotation')}"
            elif cond.startswith("codec="):
                assert src.get("codec") == cond[6:], f"codec {src.get('codec')}"
            elif cond == "gap":
                miss = np.flatnonzero(~found)
                assert miss.size >= 5 and found[: miss[0]].any() and found[miss[-1]:].any(), \
                    f"face_found gap not seen ({miss.size} missing frames)"
            elif cond.startswith("faces>="):
                fi = store.meta["face_index"][cid]
                assert fi["n_persistent"] >= int(cond[7:]) and fi["chosen"] == 0, fi
            elif cond == "silent":
                assert np.sqrt(np.mean(x ** 2)) < 1e-3
            elif cond == "speech":
                assert np.sqrt(np.mean(x ** 2)) > 0.01
        if "audio_features" in case.stages:
            t, meta = read_table(proc / "audio_features.parquet", "audio_features")
            f = column_array(t, "feature")
            sel = t.column("clip_id").to_numpy(zero_copy_only=False).astype(str) == cid
            assert sel.sum() == n and np.isfinite(f[sel]).all()
            if case.note == "silent" and meta["backend"] == "logmel":  # one constant vector, not -inf
                assert np.ptp(f[sel], axis=0).max() < 1e-3
            # (whisper: silence is finite states that still carry their window position; the job logs a warning)
    except AssertionError as exc:
        return Result(case.name, case.group, case.expect, "wrong", False, False, f"handled wrongly: {exc}")
    return Result(case.name, case.group, case.expect, "handled", True, False, f"{n} frames; face in {found.mean():.0%}")


# --- table corruptions -------------------------------------------------------------------------

def corrupt(name: str, src: Path, dst: Path) -> None:
    """Write a broken copy of table `src` to `dst` for case `name`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(src)
    md = dict(t.schema.metadata or {})
    if name == "table_missing_column":
        t = t.drop(["det_conf"])
    elif name == "table_wrong_dtype":
        i = t.schema.get_field_index("frame")
        t = t.set_column(i, pa.field("frame", pa.int64()), t.column("frame").cast(pa.int64()))
    elif name == "table_nan":
        for i, f in enumerate(t.schema):
            ty = f.type.value_type if pa.types.is_fixed_size_list(f.type) or pa.types.is_list(f.type) else f.type
            if pa.types.is_floating(ty) and f.name not in ("t",):
                col = t.column(i).to_pylist()
                col[len(col) // 2] = [float("nan")] * len(col[0]) if isinstance(col[0], list) else float("nan")
                t = t.set_column(i, f, pa.array(col, type=f.type))
                break
    elif name == "table_wrong_fps":
        md[b"emotag.fps"] = b"30.0"
    elif name == "table_foreign_schema_version":
        md[b"emotag.schema_version"] = b"99"
    elif name == "table_foreign_file":
        md = {}
    elif name == "table_not_parquet":
        dst.write_bytes(np.random.default_rng(0).bytes(4096))
        return
    pq.write_table(t.replace_schema_metadata(md), dst)


def run_corpus(scratch: Scratch, corpus: Path, cases: list[Case], group_handled: bool = True,
               log=print) -> list[Result]:
    """Feed every case through `emotag add-identity` / `dvc repro` and judge it."""
    t0 = time.perf_counter()
    results: dict[str, Result] = {}
    c_add = [c for c in cases if c.how == "add"]
    c_ing = [c for c in cases if c.how == "ingest"]
    c_tab = [c for c in cases if c.how == "table"]
    c_par = [c for c in cases if c.how == "params"]

    # 1. add-identity: rejections by the CLI itself
    for c in c_add:
        before = scratch.params_text()
        r = scratch.emotag("add-identity", *[str(corpus / f) for f in c.files], "--id", c.identity)
        left = [] if scratch.params_text() == before else [Path("params.yaml (changed)")]
        left += scratch.outputs_of(c.identity) + ([scratch.root / "data/raw" / c.identity]
                                                  if (scratch.root / "data/raw" / c.identity).exists() else [])
        results[c.name] = judge_rejected(c, one_line(r.stdout), r.returncode, left)

    # 2. add-identity for ingest cases (handled ones share an identity per group) + the base identity
    owners: dict[str, str] = {}
    adds: dict[str, list[Path]] = {BASE: [corpus / "good.mp4"]}
    for c in c_ing:
        ident = f"rel_ok_{c.group}" if (group_handled and c.expect == HANDLED) else c.identity
        owners[c.name] = ident
        adds.setdefault(ident, []).extend(corpus / f for f in c.files)
    for ident, files in adds.items():
        r = scratch.emotag("add-identity", *map(str, files), "--id", ident, "--role", "target")
        if r.returncode != 0:
            raise RuntimeError(f"add-identity {ident} failed: {r.stdout}")
    log(f"corpus: {len(adds)} identities added ({time.perf_counter() - t0:.0f} s)")

    # 3. one `dvc repro -k` for every ingest case and the base identity's tables
    targets = [f"landmarks@{BASE}", f"emotion@{BASE}"]
    for ident in dict.fromkeys(owners.values()):
        cs = [c for c in c_ing if owners[c.name] == ident]
        targets.append(f"audio_features@{ident}" if any("audio_features" in c.stages for c in cs) else f"ingest@{ident}")
    code, sections = scratch.repro(*targets)
    log(f"corpus: dvc repro of {len(targets)} targets -> {code} ({time.perf_counter() - t0:.0f} s)")
    for c in c_ing:
        ident = owners[c.name]
        texts = [_section_text(sections, f"{s}@{ident}") for s in c.stages]
        codes = [exit_code_of(sections.get(f"{s}@{ident}", "")) for s in c.stages if f"{s}@{ident}" in sections]
        code_c = next((k for k in codes if k != 0), 0 if codes else None)
        text = " ".join(texts)
        if c.expect == REJECTED:
            results[c.name] = judge_rejected(c, text, code_c, scratch.outputs_of(ident))
        else:
            results[c.name] = judge_handled(c, scratch, ident, text, code_c)
    base = scratch.root / "data" / "processed" / BASE
    for s in ("ingest", "landmarks", "emotion"):
        if stage_failed(sections.get(f"{s}@{BASE}", "")):
            raise RuntimeError(f"{s}@{BASE} failed on a good clip: {sections[f'{s}@{BASE}'][-800:]}")

    # 4. table cases: identities whose tables are the base's, one table broken; one `dvc repro -s`
    if c_tab:
        idents = {c.identity: {"role": "target", "source": f"data/raw/{BASE}"} for c in c_tab}
        scratch.edit_params({f"identities.{k}": v for k, v in idents.items()})
        for c in c_tab:
            d = scratch.root / "data" / "processed" / c.identity
            d.mkdir(parents=True, exist_ok=True)
            shutil.copytree(base / "audio", d / "audio", dirs_exist_ok=True)
            for t in ("frames", "landmarks"):
                shutil.copy(base / f"{t}.parquet", d / f"{t}.parquet")
            corrupt(c.name, base / f"{c.table}.parquet", d / f"{c.table}.parquet")
        code, sections = scratch.repro(*[f"{c.stages[0]}@{c.identity}" for c in c_tab], single=True)
        log(f"corpus: table cases -> {code} ({time.perf_counter() - t0:.0f} s)")
        for c in c_tab:
            sec = sections.get(f"{c.stages[0]}@{c.identity}", "")
            out = scratch.root / "data" / "processed" / c.identity / f"{c.stages[0]}.parquet"
            results[c.name] = judge_rejected(c, one_line(sec), exit_code_of(sec) if sec else None,
                                             [out] if out.exists() else [])

    # 5. weights/model cases: params edits. Each consuming stage gets its own copy of the base
    #    identity, so cases for different stages share one params.yaml and one `dvc repro -s`.
    outs = {"track": ["flame.parquet", "track_overlay.mp4"], "identity": ["identity.parquet"],
            "landmarks": ["landmarks.parquet"]}
    original = scratch.params_text()
    by_stage: dict[str, list[Case]] = {}
    for c in c_par:
        by_stage.setdefault(c.stages[0], []).append(c)
    copies = {st: f"rel_w_{st}" for st in by_stage}
    if copies:
        scratch.edit_params({f"identities.{i}": {"role": "target", "source": f"data/raw/{BASE}"} for i in copies.values()})
        original = scratch.params_text()
    for ident in copies.values():
        shutil.copytree(base, scratch.root / "data" / "processed" / ident, dirs_exist_ok=True)
    for k in range(max((len(v) for v in by_stage.values()), default=0)):
        batch = [(st, cs[k]) for st, cs in by_stage.items() if k < len(cs)]
        edits = {}
        for _, c in batch:
            edits.update({key: (v.format(corpus=corpus) if isinstance(v, str) else v) for key, v in c.params.items()})
        scratch.edit_params(edits)
        code, sections = scratch.repro(*[f"{st}@{copies[st]}" for st, _ in batch], single=True)
        for st, c in batch:
            sec = sections.get(f"{st}@{copies[st]}", "")
            d = scratch.root / "data" / "processed" / copies[st]
            left = [d / o for o in outs[st] if (d / o).exists()]
            results[c.name] = judge_rejected(c, one_line(sec) or one_line(f"dvc exit {code}"),
                                             exit_code_of(sec) if sec else None, left)
        (scratch.root / "params.yaml").write_text(original, encoding="utf-8")
    log(f"corpus: weight cases done ({time.perf_counter() - t0:.0f} s)")

    # 6. nothing stale anywhere
    stale = scratch.temp_leftovers()
    if stale:
        results["(temp files)"] = Result("(temp files)", "all", "none", "wrong", False, True,
                                         f"stale temp files: {[str(p) for p in stale][:5]}")
    return [results[c.name] for c in cases if c.name in results] + \
        ([results["(temp files)"]] if "(temp files)" in results else [])


def summary_rows(results: list[Result]) -> dict[str, int]:
    """Counts for the BENCHMARKS table."""
    real = [r for r in results if r.case != "(temp files)"]
    return {"tried": len(real),
            "handled": sum(r.ok and r.outcome == "handled" for r in real),
            "rejected": sum(r.ok and r.outcome == "rejected" for r in real),
            "failures": sum(not r.ok for r in results),
            "partial": sum(r.partial for r in results)}
