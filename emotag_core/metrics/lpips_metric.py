"""LPIPS (AlexNet, v0.1) through the `lpips` package's own network code (paper Sec. 4, [44]).

`lpips.LPIPS(net='alex', pretrained=True)` would download torchvision's ImageNet AlexNet at
run time. Here the trunk is built untrained (`pnet_rand=True`), the calibrated linear heads are
the ones that ship inside the lpips wheel (`weights/v0.1/alex.pth`), and the AlexNet trunk is
loaded from a local file in torchvision's `alexnet` state_dict format (`features.<i>.weight` /
`.bias`; `classifier.*` is ignored). Torchvision's file is `alexnet-owt-7be5be79.pth` in
`~/.cache/torch/hub/checkpoints/` on a machine that has used it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from emotag_core.errors import InputError, WeightsMissingError

STANDARD_PLACES = (Path("~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth"),)
HOW = ("copy torchvision's AlexNet ImageNet weights (alexnet-owt-7be5be79.pth, from a machine with "
       "internet: `python -c \"import torchvision; torchvision.models.alexnet(weights='DEFAULT')\"`) "
       "and set evaluate.lpips_weights to its path")


def find_weights(path: str | Path | None) -> Path:
    """The AlexNet trunk file to use: `path` if given, else the torchvision cache; raises if absent."""
    looked = [Path(path).expanduser()] if path else [p.expanduser() for p in STANDARD_PLACES]
    for p in looked:
        if p.is_file():
            return p
    raise WeightsMissingError("lpips-alex", looked, HOW)


class Lpips:
    """LPIPS-Alex distance between frames; lower is more similar."""

    name = "lpips-alex-v0.1"

    def __init__(self, weights: str | Path | None, device: str | torch.device = "cpu") -> None:
        import warnings

        import lpips

        path = find_weights(weights)
        self.device = torch.device(device)
        # heads from the wheel (pretrained=True, model_path=None); trunk random until loaded below
        with warnings.catch_warnings():  # torchvision's `pretrained=` deprecation notice, raised inside lpips
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        self._load_trunk(path)
        self.model.eval().to(self.device)

    def _load_trunk(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad input file
            raise InputError(path, f"not a readable torch checkpoint ({exc})", HOW) from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        trunk = self.model.net
        slot: dict[int, torch.nn.Module] = {}
        for s in range(1, trunk.N_slices + 1):
            for idx, mod in getattr(trunk, f"slice{s}").named_children():
                slot[int(idx)] = mod
        loaded = 0
        for idx, mod in slot.items():
            for pname, param in mod.named_parameters():
                key = f"features.{idx}.{pname}"
                if key not in state:
                    raise InputError(path, f"AlexNet weights lack `{key}` (torchvision alexnet format expected)", HOW)
                if tuple(state[key].shape) != tuple(param.shape):
                    raise InputError(path, f"`{key}` has shape {tuple(state[key].shape)}, AlexNet needs "
                                           f"{tuple(param.shape)}", HOW)
                with torch.no_grad():
                    param.copy_(state[key])
                loaded += 1
        if loaded != 10:
            raise InputError(path, f"loaded {loaded} of AlexNet's 10 conv tensors", HOW)

    @torch.no_grad()
    def __call__(self, pred: np.ndarray, gt: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Per-frame LPIPS. pred, gt: [B, H, W, 3] uint8 RGB -> [B]."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape or pred.ndim != 4:
            raise ValueError(f"expected two [B, H, W, 3] batches of equal shape, got {pred.shape} and {gt.shape}")
        out = []
        for s in range(0, len(pred), batch_size):
            a = torch.from_numpy(pred[s:s + batch_size]).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(self.device)
            b = torch.from_numpy(gt[s:s + batch_size]).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(self.device)
            out.append(self.model(a, b).flatten().cpu().numpy())  # inputs in [-1, 1]
        return np.concatenate(out).astype(np.float64)
