"""Moved: the adapted model's files are `emotag_core.render.adapted` (inference reads them there).

Kept only so that the adapt stage's `from emotag_core.train.adapted import save_adapted` keeps working
until it imports `emotag_core.render.adapted` itself.
"""
from emotag_core.render.adapted import GRMN_FILE, SCENE_FILE, save_adapted

__all__ = ["GRMN_FILE", "SCENE_FILE", "save_adapted"]
