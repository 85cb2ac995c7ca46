"""espeak-ng phoneme timings and the viseme mapping."""
from __future__ import annotations

import numpy as np
import pytest

from emotag_core.synth.speech import EV_END, EV_PHONEME, EV_WORD, Phoneme, phonemes_from_events, speak
from emotag_core.synth.visemes import VISEMES, mouth_track, viseme_class


def test_events_become_contiguous_phonemes():
    sr = 1000
    ev = [(EV_WORD, 0, ""), (EV_PHONEME, 10, "h"), (EV_PHONEME, 60, "@"), (EV_PHONEME, 60, "x"),
          (EV_PHONEME, 120, "oU"), (EV_END, 300, "")]
    ph = phonemes_from_events(ev, n_samples=320, sample_rate=sr)
    assert [p.symbol for p in ph] == ["h", "x", "oU"]      # "@" had zero length
    # every phoneme ends where the next starts; zero-length ones are gone; the last ends at the audio end
    assert all(a.end == pytest.approx(b.start) for a, b in zip(ph, ph[1:]))
    assert all(p.end > p.start for p in ph)
    assert ph[0].start == pytest.approx(0.010) and ph[-1].end == pytest.approx(0.320)
    assert len(ph) == 3


def test_espeak_reports_phonemes_spanning_the_audio():
    utt = speak("Mama opened a map.", "en")
    assert utt.sample_rate > 8000 and utt.duration > 0.5
    syms = [p.symbol for p in utt.phonemes]
    assert "m" in syms and any(viseme_class(s) == "open_vowel" for s in syms)
    starts = np.array([p.start for p in utt.phonemes])
    assert np.all(np.diff(starts) > 0)
    assert utt.phonemes[-1].end <= utt.duration + 1e-6
    # speech energy sits inside the non-pause phonemes, silence in the leading gap
    spoken = [p for p in utt.phonemes if viseme_class(p.symbol) != "pause"]
    assert spoken[0].start < 0.2 and spoken[-1].end > 0.5 * utt.duration
    # other voices and languages work and differ
    fr = speak("Bonjour tout le monde.", "fr")
    assert fr.phonemes and fr.audio.shape != utt.audio.shape


def test_visemes_open_vowels_open_the_jaw_more_than_bilabials():
    assert viseme_class("a") == "open_vowel" and viseme_class("aI") == "open_vowel"
    assert viseme_class("m") == viseme_class("p") == viseme_class("b") == "bilabial"
    assert viseme_class("f") == "labiodental" and viseme_class("u:") == "round_vowel"
    assert viseme_class("_:") == "pause"
    assert VISEMES["open_vowel"].jaw > VISEMES["mid_vowel"].jaw > VISEMES["bilabial"].jaw
    # a timeline "m a m a": jaw opens on the vowels, closes on the consonants (with coarticulation)
    seq = [Phoneme("m", 0.0, 0.12), Phoneme("a", 0.12, 0.32), Phoneme("m", 0.32, 0.44), Phoneme("a", 0.44, 0.64)]
    fps = 100.0
    mt = mouth_track(seq, 70, fps)
    at = lambda t: float(mt.jaw[int(t * fps)])  # noqa: E731
    assert at(0.22) > 3 * at(0.38) and at(0.54) > 3 * at(0.38)
    assert at(0.22) < VISEMES["open_vowel"].jaw + 1e-6          # blended, never beyond the target
    assert mt.viseme[int(0.22 * fps)] == "open_vowel" and mt.phoneme[int(0.38 * fps)] == "m"
    press = mt.lips[:, 2]
    assert press[int(0.38 * fps)] > press[int(0.22 * fps)]
    # amplitude (emotion intensity) scales the mouth
    big = mouth_track(seq, 70, fps, amplitude=1.5)
    np.testing.assert_allclose(big.jaw, 1.5 * mt.jaw, rtol=1e-5)


def test_speech_is_a_function_of_its_arguments():
    a = speak("Please put the blue box on the table.", "en", 160, 40)
    speak("Bonjour tout le monde.", "fr", 170, 60)
    b = speak("Please put the blue box on the table.", "en", 160, 40)
    assert np.array_equal(a.audio, b.audio) and a.phonemes == b.phonemes
    slow = speak("Please put the blue box on the table.", "en", 120, 40)
    assert slow.duration > 1.15 * a.duration                  # rate changes phoneme durations


def test_sentence_sets_split_each_language_disjointly():
    from emotag_core.config import SynthConfig
    from emotag_core.errors import ConfigError
    from emotag_core.synth.generator import plan_script
    from emotag_core.synth.speech import SENTENCES, sentences_for

    for lang, pool in SENTENCES.items():
        even, odd = sentences_for(lang, "even"), sentences_for(lang, "odd")
        assert even and odd and not set(even) & set(odd)
        assert set(even) | set(odd) == set(pool) == set(sentences_for(lang, "all"))
        ext = sentences_for(lang, "extended")  # more text for a corpus, never a held-out target's
        assert set(even) < set(ext) and not set(ext) & set(odd) and len(set(ext)) == len(ext)
    with pytest.raises(ConfigError, match="sentence_set"):
        sentences_for("es", "half")
    # a clip planned with one set never speaks the other set's text
    cfg = SynthConfig(seconds=6.0, voices=["es", "it"], sentence_set="odd", seed=3)
    texts = {s.text for s in plan_script(cfg, 0).segments}
    assert texts and texts <= set(sentences_for("es", "odd")) | set(sentences_for("it", "odd"))


def test_shuffled_text_is_new_word_sequences_from_the_extended_vocabulary():
    import numpy as np

    from emotag_core.synth.speech import WORDS_PER_SHUFFLED, pick_text, sentence_words, sentences_for

    vocab = set(sentence_words("es"))
    rng = np.random.default_rng(7)
    texts = [pick_text("es+m2", "shuffled", rng) for _ in range(40)]
    assert texts[0] == pick_text("es", "shuffled", np.random.default_rng(7))  # seeded: reproducible
    assert len(set(texts)) == 40 and not set(texts) & set(sentences_for("es", "all"))
    for t in texts:
        words = t.rstrip(".").split()
        assert WORDS_PER_SHUFFLED[0] <= len(words) < WORDS_PER_SHUFFLED[1] and set(words) <= vocab
    # the other sets draw a whole sentence of the set, as before
    assert pick_text("it", "odd", np.random.default_rng(0)) in sentences_for("it", "odd")
