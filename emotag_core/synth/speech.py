"""Speech with phoneme timings from espeak-ng (its library's phoneme events, via ctypes).

espeak-ng reports, for every phoneme it speaks, the audio sample at which that phoneme starts.
A phoneme lasts until the next phoneme event (or the end of the utterance), which gives the
per-phoneme durations that drive the mouth (see `visemes`). Nothing here reads the audio
envelope.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import pickle
import threading
from dataclasses import dataclass

import numpy as np

from emotag_core.errors import ConfigError, EmotagError

# espeak_EVENT_TYPE values (speak_lib.h)
EV_LIST_TERMINATED = 0
EV_WORD = 1
EV_SENTENCE = 2
EV_END = 5
EV_MSG_TERMINATED = 6
EV_PHONEME = 7
EV_SAMPLERATE = 8
PAUSE_SYMBOLS = frozenset({"_", "_:", "_!", "_|", "||", "|"})

# A few sentences per language (written for this project) that espeak-ng reads.
SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The morning train was late again, so we walked along the river.",
        "Please put the blue box on the table by the window.",
        "I never thought the old bridge would open before summer.",
        "My brother bought a map of the mountains and a warm coat.",
        "Why would anyone paint the whole house purple?",
        "We should meet at five and share a pot of tea.",
        "She opened the letter and laughed at the photo inside.",
        "All of the papers were moved to the office upstairs.",
    ),
    "de": (
        "Am Morgen fahren wir mit dem Zug an die See.",
        "Bitte bring mir das blaue Buch aus der Küche.",
        "Der Hund schläft ruhig unter dem alten Baum.",
        "Warum ist das Fenster schon wieder offen?",
        "Meine Mutter kocht heute eine warme Suppe.",
    ),
    "fr": (
        "Nous avons pris le bateau pour traverser la mer.",
        "Le petit chat dort sur le banc du jardin.",
        "Pourquoi as tu ouvert la porte si tôt ce matin?",
        "Mon ami a acheté du pain et du fromage.",
        "La musique du soir était douce et belle.",
    ),
    "es": (
        "Mañana vamos a caminar por la playa con mis amigos.",
        "El perro duerme debajo de la mesa de madera.",
        "Por favor abre la ventana, hace mucho calor.",
        "Mi hermana trabaja en una tienda de zapatos.",
        "Los niños juegan en el parque hasta la noche.",
        "Hoy el cielo está gris y parece que va a llover.",
        "Compramos pan, queso y naranjas en el mercado.",
        "¿Dónde dejaste las llaves del coche ayer?",
    ),
    "it": (
        "Domani andiamo al mercato a comprare la frutta.",
        "La casa della nonna è piena di libri vecchi.",
        "Perché non mangiamo insieme questa sera?",
        "Il treno per Roma parte alle otto di mattina.",
        "Mio fratello suona la chitarra ogni domenica.",
        "Oggi il mare è calmo e il sole è caldo.",
        "Abbiamo dimenticato l'ombrello a casa di Marco.",
        "Quanto costa questo libro di cucina?",
    ),
}


# More sentences per language (also written for this project), spoken only with `synth.sentence_set: extended`
# (the `even` sentences plus these): more text for a pretraining corpus, none of the `odd` sentences.
EXTRA_SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The children painted a yellow boat on the garden wall.",
        "Could you bring the chairs in before the rain starts?",
        "He keeps his bicycle in the shed behind the kitchen.",
        "Our teacher read a story about a fox and a clever crow.",
        "The shop on the corner sells fresh bread every morning.",
        "I lost my umbrella somewhere between the bank and the park.",
        "Turn left at the church and follow the road to the farm.",
        "They cooked rice with beans and onions for the whole family.",
    ),
    "de": (
        "Im Sommer schwimmen die Kinder jeden Tag im See.",
        "Kannst du mir bitte den Schlüssel vom Tisch geben?",
        "Unser Nachbar baut ein kleines Haus aus Holz.",
        "Die Straßenbahn hält direkt vor dem Museum.",
        "Gestern habe ich einen langen Brief geschrieben.",
        "Wir trinken Kaffee und essen dazu ein Stück Kuchen.",
        "Der Lehrer erklärt die Aufgabe noch einmal ganz langsam.",
        "Am Abend leuchten die Lichter über der ganzen Stadt.",
    ),
    "fr": (
        "Les enfants jouent au ballon derrière l'école.",
        "Peux tu fermer la fenêtre avant de partir?",
        "Ma grand mère prépare une tarte aux pommes.",
        "Le train de Lyon arrive avec dix minutes de retard.",
        "Nous irons à la montagne au début du mois d'août.",
        "Il a oublié son parapluie chez le boulanger.",
        "La rivière coule doucement sous le vieux pont.",
        "Elle chante une chanson en marchant dans la rue.",
    ),
    "es": (
        "El autobús llega a la plaza a las nueve y media.",
        "Mi abuelo cuenta historias de cuando era marinero.",
        "Necesitamos comprar leche, huevos y un poco de arroz.",
        "La biblioteca cierra temprano los domingos.",
        "Ayer pintamos la cocina de color verde claro.",
        "Mi primo toca el piano en una banda de jazz.",
        "El gato saltó por la ventana y corrió al jardín.",
        "Vamos a viajar al norte en el tren de la tarde.",
    ),
    "it": (
        "La biblioteca apre alle nove e chiude a mezzogiorno.",
        "Mia zia prepara la pasta fresca ogni venerdì.",
        "Il gatto dorme sul divano vicino alla finestra.",
        "Abbiamo visto un film molto lungo ieri sera.",
        "Il ponte vecchio è chiuso per lavori fino a maggio.",
        "Mio padre legge il giornale mentre beve il caffè.",
        "I bambini corrono sulla spiaggia dopo la scuola.",
        "Domenica andiamo in montagna con la bicicletta.",
    ),
}


@dataclass(frozen=True)
class Phoneme:
    """One phoneme as espeak-ng spoke it: its mnemonic and its time span in the utterance."""

    symbol: str
    """espeak-ng phoneme mnemonic (e.g. `a`, `oU`, `m`, `_:` for a pause)."""
    start: float
    """Start, seconds from the utterance start."""
    end: float
    """End, seconds from the utterance start."""


@dataclass
class Utterance:
    """Synthesised speech with its phoneme timeline."""

    audio: np.ndarray
    """[N] float32 in [-1, 1]."""
    sample_rate: int
    phonemes: list[Phoneme]
    voice: str
    text: str

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def phonemes_from_events(events: list[tuple[int, int, str]], n_samples: int, sample_rate: int) -> list[Phoneme]:
    """Turn espeak-ng events `(type, sample, phoneme)` into phonemes with start/end times.

    A phoneme ends where the next phoneme starts; the last one ends at the end event or at
    `n_samples`. Zero-length phonemes are dropped.
    """
    starts: list[tuple[int, str]] = []
    end_sample = n_samples
    for etype, sample, sym in events:
        if etype == EV_PHONEME:
            starts.append((int(sample), sym))
        elif etype in (EV_END, EV_MSG_TERMINATED):
            end_sample = max(end_sample, int(sample)) if starts else end_sample
    starts.sort(key=lambda s: s[0])
    out: list[Phoneme] = []
    for i, (s, sym) in enumerate(starts):
        e = starts[i + 1][0] if i + 1 < len(starts) else max(end_sample, s)
        e = min(e, max(end_sample, s))
        if e > s:
            out.append(Phoneme(sym, s / sample_rate, e / sample_rate))
    return out


class _Espeak:
    """The process-wide libespeak-ng handle (the library keeps global state)."""

    _lock = threading.Lock()
    _inst: "_Espeak | None" = None

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as exc:
            raise EmotagError(
                f"espeak-ng: cannot load the library ({name}: {exc}); install it "
                "(Debian: `apt-get install espeak-ng libespeak-ng1`)") from exc

        class _Id(ctypes.Union):
            _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

        class _Event(ctypes.Structure):
            _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                        ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                        ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                        ("user_data", ctypes.c_void_p), ("id", _Id)]

        self._cbtype = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                        ctypes.POINTER(_Event))
        # AUDIO_OUTPUT_SYNCHRONOUS, phoneme events, don't exit on error
        self.sample_rate = int(self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x8000))
        if self.sample_rate <= 0:
            raise EmotagError("espeak-ng: initialisation failed (no espeak-ng-data?); reinstall espeak-ng")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []

        def _callback(wav, n, ev):  # type: ignore[no-untyped-def]
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            i = 0
            while ev[i].type != EV_LIST_TERMINATED:
                e = ev[i]
                sym = e.id.string.decode("ascii", "replace") if e.type == EV_PHONEME else ""
                self._events.append((int(e.type), int(e.sample), sym))
                i += 1
            return 0

        self._callback = self._cbtype(_callback)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> "_Espeak":
        with cls._lock:
            if cls._inst is None:
                cls._inst = _Espeak()
            return cls._inst

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> Utterance:
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ConfigError(f"synth.voices: espeak-ng has no voice `{voice}`; see `espeak-ng --voices`")
            self.lib.espeak_SetParameter(1, int(rate), 0)   # espeakRATE (words per minute)
            self.lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH (0-100)
            self._chunks, self._events = [], []
            data = text.encode("utf-8")
            err = self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)
            self.lib.espeak_Synchronize()
            if err != 0:
                raise EmotagError(f"espeak-ng: synthesis of {text!r} with voice `{voice}` failed (code {err})")
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            events = list(self._events)
        audio = pcm.astype(np.float32) / 32768.0
        return Utterance(audio, self.sample_rate, phonemes_from_events(events, len(audio), self.sample_rate),
                         voice, text)


def speak(text: str, voice: str = "en", rate: int = 165, pitch: int = 50) -> Utterance:
    """Synthesise `text` with espeak-ng voice `voice`; returns audio and phoneme timings.

    libespeak-ng carries state from one utterance to the next (the same text comes out a few
    samples different the second time), so each utterance is spoken by a freshly forked child
    holding a fresh library instance: the result depends only on the arguments.
    """
    if not hasattr(os, "fork"):
        return _Espeak.get().speak(text, voice, rate, pitch)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: fresh library state, speak, send the result, exit without cleanup
        code = 0
        try:
            os.close(r)
            try:
                payload = ("ok", _Espeak().speak(text, voice, rate, pitch))
            except EmotagError as exc:
                payload = (type(exc).__name__, str(exc))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                payload = ("EmotagError", f"espeak-ng: {type(exc).__name__}: {exc}")
            with os.fdopen(w, "wb") as fh:
                pickle.dump(payload, fh)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    if not data:
        raise EmotagError(f"espeak-ng: the synthesis child for voice `{voice}` died without a result")
    kind, value = pickle.loads(data)
    if kind == "ok":
        return value
    raise (ConfigError if kind == "ConfigError" else EmotagError)(value)


def language_of(voice: str) -> str:
    """The sentence-list language of an espeak-ng voice name (`en-us` -> `en`)."""
    lang = voice.split("-")[0].split("+")[0]
    if lang not in SENTENCES:
        raise ConfigError(f"synth.voices: no sentences for language `{lang}` (voice `{voice}`); "
                          f"use one of {sorted(SENTENCES)}")
    return lang


SENTENCE_SETS = ("all", "even", "odd", "extended", "shuffled")
WORDS_PER_SHUFFLED = (5, 11)  # words per `shuffled` utterance: uniform in [5, 11)


def sentences_for(voice: str, sentence_set: str = "all") -> tuple[str, ...]:
    """The sentences an identity with `synth.sentence_set` may speak in `voice`'s language."""
    if sentence_set not in SENTENCE_SETS:
        raise ConfigError(f"synth.sentence_set: `{sentence_set}` is not one of {list(SENTENCE_SETS)}")
    lang = language_of(voice)
    pool = SENTENCES[lang]
    if sentence_set in ("extended", "shuffled"):
        return pool[0::2] + EXTRA_SENTENCES[lang]
    return pool if sentence_set == "all" else pool[(0 if sentence_set == "even" else 1)::2]


def sentence_words(voice: str) -> tuple[str, ...]:
    """The distinct words of the `extended` sentences of `voice`'s language (punctuation stripped, lower case)."""
    return _vocabulary(language_of(voice))


@functools.lru_cache(maxsize=None)
def _vocabulary(lang: str) -> tuple[str, ...]:  # once per language, not per utterance
    words = (w.strip(".,;:!?¿¡").lower() for t in sentences_for(lang, "extended") for w in t.split())
    return tuple(sorted({w for w in words if w}))


def pick_text(voice: str, sentence_set: str, rng: np.random.Generator) -> str:
    """One utterance's text: a sentence of the set, or with `shuffled` a new random sequence of the
    `extended` sentences' words (unlimited distinct text in the language's phonotactics; none of the
    `odd` sentences, though words they share with the others can occur)."""
    if sentence_set == "shuffled":
        words = sentence_words(voice)
        n = int(rng.integers(*WORDS_PER_SHUFFLED))
        return " ".join(words[int(i)] for i in rng.integers(len(words), size=n)) + "."
    sentences = sentences_for(voice, sentence_set)
    return sentences[int(rng.integers(len(sentences)))]
