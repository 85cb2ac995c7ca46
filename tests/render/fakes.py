"""A tiny real GRMN and a cheap stand-in scene whose image shows the motion it was given."""
import numpy as np
import torch

from emotag_core.motion.grmn import GRMN, GRMNSpec
from emotag_core.render.driver import Animator, CueTrack, GateControl


class ToyScene:
    """Renders a grey frame with a mouth bar whose height follows |jaw| and brightness follows expr[0]."""

    n_mouth = 2

    def render(self, expr, jaw, rot, trans, mouth, size):
        B = expr.shape[0]
        img = torch.full((B, 3, size, size), 0.3)
        h = (jaw.norm(dim=-1) * 4000).clamp(0, size // 2 - 1).long()
        for b in range(B):
            img[b, :, size // 2: size // 2 + 1 + h[b], size // 4: 3 * size // 4] = (0.5 + 50 * expr[b, 0]).clamp(0, 1)
        img[:, 0, :2, :2] = (rot[:, 0].view(B, 1, 1) + 1) / 2  # pose leaves a mark
        return {"image": img}


def tiny_animator(control=None, size=32, seed=0, audio_dim=320):
    torch.manual_seed(seed)
    spec = GRMNSpec(audio_dim=audio_dim, n_aus=6, identity_dim=8, n_expr=5, n_mouth=2, window=16,
                    d_model=32, d_expr=16, n_layers=1, n_heads=2, hidden=32)
    grmn = GRMN(spec)
    with torch.no_grad():  # make the branches big enough to see in a 32 px frame
        grmn.decoder.base[-1].weight.mul_(30)
        grmn.decoder.emo_decoder[-1].weight.mul_(30)
    return Animator(grmn, ToyScene(), torch.randn(8), size=size, control=control or GateControl())


def cues(n=10, mode="pingpong"):
    rng = np.random.default_rng(0)
    return CueTrack(rot=rng.normal(0, 0.1, (n, 3)), trans=np.tile([0, 0, 0.5], (n, 1)),
                    aus=rng.uniform(0, 3, (n, 6)), mode=mode, source=f"test clip ({n})")
