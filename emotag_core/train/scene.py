"""Moved to `emotag_core.avatar.scene` (issue 16: one scene pipeline). This alias stays only until the
last importer of the old path (the committed `train/adapted.py`, being moved to `render/adapted.py`) is gone."""
from emotag_core.avatar.scene import (IdentityScene, Scene, Splats, build_scene, camera_K, camera_view,  # noqa: F401
                                      maps, rasterize_splats, render_maps, splat_inputs)
