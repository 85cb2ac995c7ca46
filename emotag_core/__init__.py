"""EmoTaG core library: pure functions and modules for emotion-aware talking heads.

Nothing in this package knows about DVC, Prefect or the `data/` layout; stages pass paths,
arrays and typed configs in. Heavy optional packages (mediapipe, deepface, transformers, dvc,
prefect) are imported inside the functions that use them, so the package imports with only
torch, numpy and pyarrow installed.
"""

__version__ = "0.1.0"
