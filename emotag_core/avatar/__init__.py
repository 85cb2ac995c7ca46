"""FLAME-rigged Gaussian avatar: binding (Eq. 3, 7), mouth Gaussians (Eq. 8), rasterizers, fitting.

Importing this package needs only torch and numpy; gsplat is imported when its backend runs.
"""
from emotag_core.avatar.binding import MOUTH_OFFSET_DIM, GaussianAvatar, Gaussians, face_frames
from emotag_core.avatar.mouth import MOUTH_LANDMARKS, MouthRegionConfig, grow_mouth_region
from emotag_core.avatar.rasterize import RenderOutput, rasterize

__all__ = ["MOUTH_OFFSET_DIM", "GaussianAvatar", "Gaussians", "face_frames", "MOUTH_LANDMARKS",
           "MouthRegionConfig", "grow_mouth_region", "RenderOutput", "rasterize"]
