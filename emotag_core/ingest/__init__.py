"""Ingest: raw talking-head videos -> 25 fps square crops + 16 kHz mono audio.

Two streaming passes per clip keep memory constant in video length:

1. `analyse_clip` (`clips`): decode, resample to the output rate, detect faces on a downscaled copy of
   every `detect_every`-th output frame, decode the audio to WAV; link detections into tracks, pick the
   largest persistent face, interpolate and Gaussian-smooth its box over time (`faces`), and with
   `ingest.crop: fixed` (default) turn the boxes into one crop box for the clip.
2. `write_clip` (`clips`): decode again, crop each output frame, JPEG-encode, append row groups to the
   frame store; under a fixed crop, measure the background's motion and warn when the camera moves.

Only per-frame numbers (a few floats per frame) are held between the passes, never images.
`ingest_folder` (`job`) runs both over every clip of an identity's raw folder.
"""
from emotag_core.ingest.clips import (SIDECAR_SUFFIXES, ClipPlan, analyse_clip, check_background_motion, clip_id_for,
                                      find_media, frames_meta, write_clip)
from emotag_core.ingest.faces import (FaceDetector, Track, background_motion, choose_track, crop_square, fixed_box,
                                      format_ranges, gaussian_smooth, iou, link_tracks, merge_fragments, merge_scales, nms,
                                      runs,
                                      smooth_track)
from emotag_core.ingest.job import ingest_folder, materialize

__all__ = ["SIDECAR_SUFFIXES", "ClipPlan", "FaceDetector", "Track", "analyse_clip", "background_motion",
           "check_background_motion", "choose_track", "clip_id_for", "crop_square", "find_media", "fixed_box",
           "format_ranges", "frames_meta", "gaussian_smooth", "ingest_folder", "iou", "link_tracks", "materialize",
           "merge_fragments", "merge_scales", "nms", "runs", "smooth_track", "write_clip"]
