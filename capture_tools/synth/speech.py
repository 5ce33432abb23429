"""Source-filter formant speech synthesis with a phoneme timeline (Klatt-style, cascade resonators).

The synthesizer is ours and deliberately simple: a glottal pulse train (impulses at the pitch
period through a -12 dB/octave glottal low-pass, then lip radiation) drives a cascade of four
second-order formant resonators whose frequencies glide between phoneme targets; band-passed
noise makes fricatives, stop bursts and aspiration; stop closures are silent (voiceless) or carry
a faint voice bar (voiced). Every phoneme also carries a viseme target (jaw opening, lip rounding,
spreading, closure, lower-lip tuck) that :mod:`capture_tools.synth.motion` turns into FLAME
parameters, so the audio really determines the mouth.

Reference: D. H. Klatt, "Software for a cascade/parallel formant synthesizer", JASA 67(3), 1980.
Formant targets are adult-male means (Peterson & Barney 1952); a speaker's ``formant_scale`` shifts
them (about 1.15 for an adult female voice).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000
CONTROL_HOP = 80  # samples between control frames (5 ms)


@dataclasses.dataclass(frozen=True)
class Phoneme:
    """One phoneme: acoustic targets and the viseme target it imposes on the mouth."""

    symbol: str
    kind: str  # vowel | stop | fricative | nasal | approximant | silence
    formants: tuple[float, float, float]  # F1, F2, F3 in Hz (adult male); loci for consonants
    voiced: bool
    duration_ms: float
    noise: str = ""  # frication / burst noise band (key of _NOISE_BANDS)
    frication: float = 0.0  # frication amplitude relative to a vowel
    # viseme target: jaw opening (rad), lip rounding, lip spreading, lip closure, lower-lip tuck (0..1)
    jaw: float = 0.0
    round: float = 0.0
    spread: float = 0.0
    close: float = 0.0
    tuck: float = 0.0
    # coarticulation dominance of this phoneme over the jaw and over the lips (Cohen & Massaro 1993)
    jaw_dominance: float = 1.0
    lip_dominance: float = 1.0

    @property
    def bilabial(self) -> bool:
        return self.symbol in BILABIALS


BILABIALS = ("m", "b", "p")

_V = "vowel"
PHONEMES: dict[str, Phoneme] = {
    p.symbol: p
    for p in [
        # open, mid and close vowels; spread (front) and rounded (back)
        Phoneme("aa", _V, (730, 1090, 2440), True, 120, jaw=0.25, spread=0.15, jaw_dominance=1.5),
        Phoneme("ae", _V, (660, 1720, 2410), True, 120, jaw=0.21, spread=0.5, jaw_dominance=1.5),
        Phoneme("ah", _V, (640, 1190, 2390), True, 100, jaw=0.17, spread=0.2),
        Phoneme("eh", _V, (530, 1840, 2480), True, 105, jaw=0.15, spread=0.5),
        Phoneme("ih", _V, (390, 1990, 2550), True, 90, jaw=0.13, spread=0.45),
        Phoneme("iy", _V, (270, 2290, 3010), True, 115, jaw=0.11, spread=0.7, lip_dominance=1.5),
        Phoneme("uh", _V, (440, 1020, 2240), True, 95, jaw=0.11, round=0.5),
        Phoneme("uw", _V, (300, 870, 2240), True, 120, jaw=0.07, round=1.0, lip_dominance=2.0),
        Phoneme("ow", _V, (500, 850, 2400), True, 125, jaw=0.13, round=0.85, lip_dominance=1.8),
        Phoneme("ao", _V, (590, 880, 2540), True, 120, jaw=0.19, round=0.6, lip_dominance=1.5),
        # bilabials: the lips close whatever the neighbours do (high lip dominance), but only over
        # about one frame either side of the closure: the next vowel opens the mouth again
        Phoneme("m", "nasal", (250, 1000, 2200), True, 80, close=1.0, jaw_dominance=4, lip_dominance=6),
        Phoneme(
            "b",
            "stop",
            (200, 900, 2100),
            True,
            85,
            noise="labial",
            frication=0.25,
            close=1.0,
            jaw_dominance=4,
            lip_dominance=6,
        ),
        Phoneme(
            "p",
            "stop",
            (200, 900, 2100),
            False,
            95,
            noise="labial",
            frication=0.35,
            close=1.0,
            jaw_dominance=4,
            lip_dominance=6,
        ),
        # labiodentals: lower lip under the upper teeth, the lips themselves apart (a near-closure, not
        # a lip closure: the teeth show between them). Every non-bilabial keeps the lips parted at its
        # core (inner-lip gap >= ~0.15 mouth widths: jaw >= 0.06 rad, or rounding for w), as in real
        # speech; a smaller gap reads as closed lips in the frontal video.
        Phoneme(
            "f",
            "fricative",
            (300, 1100, 2300),
            False,
            100,
            noise="broad",
            frication=0.18,
            jaw=0.09,
            tuck=1.0,
            jaw_dominance=3,
            lip_dominance=12,
        ),
        Phoneme(
            "v",
            "fricative",
            (300, 1100, 2300),
            True,
            80,
            noise="broad",
            frication=0.12,
            jaw=0.09,
            tuck=1.0,
            jaw_dominance=3,
            lip_dominance=12,
        ),
        # sibilants
        Phoneme(
            "s",
            "fricative",
            (300, 1700, 2700),
            False,
            105,
            noise="alveolar_fric",
            frication=0.55,
            jaw=0.08,
            spread=0.4,
            jaw_dominance=3,
            lip_dominance=0.6,
        ),
        Phoneme(
            "z",
            "fricative",
            (300, 1700, 2700),
            True,
            85,
            noise="alveolar_fric",
            frication=0.4,
            jaw=0.08,
            spread=0.4,
            jaw_dominance=3,
            lip_dominance=0.6,
        ),
        Phoneme(
            "sh",
            "fricative",
            (300, 1800, 2500),
            False,
            110,
            noise="postalveolar",
            frication=0.55,
            jaw=0.06,
            round=0.6,
            jaw_dominance=3,
            lip_dominance=2,
        ),
        # alveolar and velar stops: the lips follow the neighbouring vowels (low lip dominance)
        Phoneme(
            "t",
            "stop",
            (200, 1700, 2600),
            False,
            85,
            noise="alveolar",
            frication=0.45,
            jaw=0.08,
            jaw_dominance=1.5,
            lip_dominance=0.2,
        ),
        Phoneme(
            "d",
            "stop",
            (200, 1700, 2600),
            True,
            75,
            noise="alveolar",
            frication=0.3,
            jaw=0.08,
            jaw_dominance=1.5,
            lip_dominance=0.2,
        ),
        Phoneme(
            "k",
            "stop",
            (250, 2000, 2500),
            False,
            90,
            noise="velar",
            frication=0.4,
            jaw=0.09,
            jaw_dominance=1.0,
            lip_dominance=0.2,
        ),
        Phoneme(
            "g",
            "stop",
            (250, 2000, 2500),
            True,
            75,
            noise="velar",
            frication=0.3,
            jaw=0.09,
            jaw_dominance=1.0,
            lip_dominance=0.2,
        ),
        # nasals
        Phoneme("n", "nasal", (250, 1700, 2600), True, 70, jaw=0.08, jaw_dominance=1.2, lip_dominance=0.2),
        Phoneme("ng", "nasal", (250, 2000, 2600), True, 75, jaw=0.09, jaw_dominance=1.0, lip_dominance=0.2),
        # approximants
        Phoneme("l", "approximant", (360, 1300, 2700), True, 65, jaw=0.09, lip_dominance=0.3),
        Phoneme("r", "approximant", (420, 1300, 1600), True, 65, jaw=0.06, round=0.45, lip_dominance=1.0),
        Phoneme("w", "approximant", (300, 700, 2200), True, 60, jaw=0.04, round=1.0, lip_dominance=3.0),
        Phoneme("y", "approximant", (270, 2200, 3000), True, 55, jaw=0.08, spread=0.6, lip_dominance=1.5),
        Phoneme("sil", "silence", (500, 1500, 2500), False, 200, jaw_dominance=0.7, lip_dominance=0.7),
    ]
}

VOWELS = tuple(s for s, p in PHONEMES.items() if p.kind == _V)
# onset consonants, weighted so every sentence has several bilabial closures
_ONSETS = ("m", "b", "p", "f", "v", "s", "z", "sh", "t", "d", "k", "g", "n", "l", "r", "w", "y")
_ONSET_WEIGHTS = (3, 3, 3, 1.5, 1, 1.5, 1, 1, 1.5, 1.5, 1.5, 1, 1.5, 1.5, 1, 1, 0.7)
_CODAS = ("m", "p", "n", "ng", "t", "k", "s", "z", "l", "r", "f")
_CODA_WEIGHTS = (2, 1.5, 2, 0.7, 1.5, 1, 1.5, 0.7, 1, 0.7, 0.7)

# noise bands (Hz) for frication and stop bursts, by place of articulation
_NOISE_BANDS: dict[str, tuple[float, float]] = {
    "labial": (300.0, 2500.0),
    "broad": (1200.0, 7500.0),
    "alveolar_fric": (3800.0, 7500.0),
    "postalveolar": (1900.0, 4800.0),
    "alveolar": (2800.0, 6500.0),
    "velar": (1300.0, 3200.0),
}


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A voice: mean pitch (Hz), formant scale (vocal-tract length), speaking rate (1 = normal)."""

    f0_hz: float = 115.0
    formant_scale: float = 1.0
    rate: float = 1.0
    breathiness: float = 0.03


@dataclasses.dataclass(frozen=True)
class TimedPhoneme:
    symbol: str
    start_s: float
    end_s: float
    stressed: bool = False

    @property
    def phoneme(self) -> Phoneme:
        return PHONEMES[self.symbol]

    @property
    def closure_s(self) -> tuple[float, float] | None:
        """Interval in which the lips are shut: a bilabial stop's closure or a whole /m/."""
        if self.symbol == "m":
            return (self.start_s, self.end_s)
        if self.symbol in ("b", "p"):
            return (self.start_s, self.start_s + _CLOSURE_FRACTION * (self.end_s - self.start_s))
        return None

    def to_json(self) -> dict[str, Any]:
        p = self.phoneme
        entry: dict[str, Any] = {
            "phoneme": self.symbol,
            "start_s": round(self.start_s, 6),
            "end_s": round(self.end_s, 6),
            "kind": p.kind,
            "voiced": p.voiced,
            "stressed": self.stressed,
            "viseme": {"jaw": p.jaw, "round": p.round, "spread": p.spread, "close": p.close, "tuck": p.tuck},
        }
        if self.closure_s is not None:
            entry["lip_closure_s"] = [round(self.closure_s[0], 6), round(self.closure_s[1], 6)]
        return entry


_CLOSURE_FRACTION = 0.7  # stops: closure, then burst + aspiration in the last 30 %


def random_sentence(
    rng: np.random.Generator, speaker: Speaker, target_duration_s: float
) -> list[TimedPhoneme]:
    """A word-like syllable string with pauses, about ``target_duration_s`` long (silence included).

    Words have 1-3 syllables (C)V(C); the first syllable of each word is stressed; about one word
    in four is followed by a pause.
    """
    timeline: list[TimedPhoneme] = []
    t = float(rng.uniform(0.18, 0.3))
    timeline.append(TimedPhoneme("sil", 0.0, t))
    onset_p = np.asarray(_ONSET_WEIGHTS) / np.sum(_ONSET_WEIGHTS)
    coda_p = np.asarray(_CODA_WEIGHTS) / np.sum(_CODA_WEIGHTS)
    end_speech = target_duration_s - float(rng.uniform(0.25, 0.35))
    while True:
        syllables = int(rng.integers(1, 4))
        word: list[tuple[str, bool]] = []
        for index in range(syllables):
            stressed = index == 0
            if rng.random() < 0.85 or not word:
                word.append((str(rng.choice(_ONSETS, p=onset_p)), stressed))
            word.append((str(rng.choice(VOWELS)), stressed))
            if rng.random() < 0.3:
                word.append((str(rng.choice(_CODAS, p=coda_p)), stressed))
        durations = [
            PHONEMES[s].duration_ms
            / 1000.0
            / speaker.rate
            * float(rng.uniform(0.85, 1.15))
            * (1.25 if stressed and PHONEMES[s].kind == _V else 1.0)
            for s, stressed in word
        ]
        if timeline[-1].symbol != "sil" and t + sum(durations) > end_speech:
            break
        if t + sum(durations) > end_speech + 0.15:
            break
        for (symbol, stressed), duration in zip(word, durations, strict=True):
            timeline.append(TimedPhoneme(symbol, t, t + duration, stressed))
            t += duration
        if rng.random() < 0.25:
            pause = float(rng.uniform(0.12, 0.25))
            timeline.append(TimedPhoneme("sil", t, t + pause))
            t += pause
    if timeline[-1].symbol == "sil":
        timeline[-1] = TimedPhoneme("sil", timeline[-1].start_s, target_duration_s)
    else:
        timeline.append(TimedPhoneme("sil", t, max(target_duration_s, t + 0.2)))
    return timeline


def _resonator_coefficients(freq: float, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """Klatt's digital resonator, unity gain at DC: y[n] = A x[n] + B y[n-1] + C y[n-2]."""
    c = -np.exp(-2.0 * np.pi * bandwidth / SAMPLE_RATE)
    b = 2.0 * np.exp(-np.pi * bandwidth / SAMPLE_RATE) * np.cos(2.0 * np.pi * freq / SAMPLE_RATE)
    a = 1.0 - b - c
    return np.array([a]), np.array([1.0, -b, -c])


def _smooth(track: np.ndarray, frames: int) -> np.ndarray:
    if frames <= 1:
        return track
    kernel = np.hanning(frames + 2)[1:-1]
    kernel /= kernel.sum()
    pad = frames // 2
    padded = np.pad(track, [(pad, frames - 1 - pad)] + [(0, 0)] * (track.ndim - 1), mode="edge")
    if track.ndim == 1:
        return np.convolve(padded, kernel, mode="valid")
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(track.shape[1])], axis=1)


def synthesize(
    timeline: list[TimedPhoneme], speaker: Speaker, rng: np.random.Generator, duration_s: float | None = None
) -> np.ndarray:
    """Render ``timeline`` as 16 kHz mono float32 audio (peak about 0.5)."""
    duration_s = timeline[-1].end_s if duration_s is None else duration_s
    num_samples = int(round(duration_s * SAMPLE_RATE))
    num_control = num_samples // CONTROL_HOP + 2
    control_t = np.arange(num_control) * CONTROL_HOP / SAMPLE_RATE

    formants = np.zeros((num_control, 3))
    voicing = np.zeros(num_control)
    aspiration = np.zeros(num_control)
    frication = {band: np.zeros(num_control) for band in _NOISE_BANDS}
    nasal = np.zeros(num_control)
    accents = np.zeros(num_control)
    for item in timeline:
        p = item.phoneme
        sel = (control_t >= item.start_s) & (control_t < item.end_s)
        formants[sel] = p.formants
        if p.kind == _V:
            voicing[sel] = 1.0
            if item.stressed:
                centre = 0.5 * (item.start_s + item.end_s)
                accents += np.exp(-0.5 * ((control_t - centre) / 0.08) ** 2)
        elif p.kind == "approximant":
            voicing[sel] = 0.65
        elif p.kind == "nasal":
            voicing[sel] = 0.4
            nasal[sel] = 1.0
        elif p.kind == "fricative":
            voicing[sel] = 0.3 if p.voiced else 0.0
            frication[p.noise][sel] = p.frication
        elif p.kind == "stop":
            release = item.start_s + _CLOSURE_FRACTION * (item.end_s - item.start_s)
            closure = sel & (control_t < release)
            burst = sel & (control_t >= release) & (control_t < release + 0.012)
            after = sel & (control_t >= release + 0.012)
            voicing[closure] = 0.07 if p.voiced else 0.0
            frication[p.noise][burst] = 2.0 * p.frication
            if p.voiced:
                voicing[after] = 0.5
            else:
                aspiration[after] = 0.35
    formants = _smooth(formants, 7) * speaker.formant_scale  # ~35 ms formant transitions
    voicing = _smooth(voicing, 3)
    aspiration = _smooth(aspiration, 2)
    nasal = _smooth(nasal, 3)
    frication = {band: _smooth(track, 2) for band, track in frication.items()}

    # pitch: declination over the phrase, accents on stressed vowels, slow random jitter
    progress = control_t / max(duration_s, 1e-6)
    jitter = _smooth(rng.normal(0.0, 0.015, num_control), 9)
    f0_control = speaker.f0_hz * (1.12 - 0.22 * progress) * (1.0 + 0.18 * accents + jitter)

    sample_t = np.arange(num_samples)
    control_index = sample_t / CONTROL_HOP

    def per_sample(track: np.ndarray) -> np.ndarray:
        return np.interp(control_index, np.arange(num_control), track)

    f0 = per_sample(f0_control)
    phase = np.cumsum(f0 / SAMPLE_RATE)
    pulses = np.zeros(num_samples)
    pulse_at = np.nonzero(np.diff(np.floor(phase), prepend=0.0) > 0)[0]
    pulses[pulse_at] = 1.0 + rng.normal(0.0, 0.04, len(pulse_at))  # shimmer
    glottal_b, glottal_a = _resonator_coefficients(0.0, 100.0)  # -12 dB/oct glottal spectrum
    voice = signal.lfilter(glottal_b, glottal_a, signal.lfilter(glottal_b, glottal_a, pulses))
    voice = np.diff(voice, prepend=0.0)  # lip radiation, +6 dB/oct
    voice /= np.max(np.abs(voice)) + 1e-12
    white = rng.normal(0.0, 1.0, num_samples)
    breath = speaker.breathiness * per_sample(voicing) * white
    source = per_sample(voicing) * voice + per_sample(aspiration) * 0.3 * white + breath

    # cascade formant resonators F1..F4, coefficients updated every control frame (state carried)
    output = source
    f4 = 3400.0 * speaker.formant_scale
    for k in range(4):
        result = np.zeros(num_samples)
        state = np.zeros(2)
        for frame in range(num_control):
            lo, hi = frame * CONTROL_HOP, min((frame + 1) * CONTROL_HOP, num_samples)
            if lo >= hi:
                break
            if k < 3:
                freq = min(formants[frame, k], 0.45 * SAMPLE_RATE)
                bandwidth = (60.0, 90.0, 150.0)[k] * (1.0 + 2.5 * nasal[frame] * (k > 0))
            else:
                freq, bandwidth = f4, 250.0
            b, a = _resonator_coefficients(freq, bandwidth)
            result[lo:hi], state = signal.lfilter(b, a, output[lo:hi], zi=state)
        output = result
    # nasal murmur: damp the higher frequencies
    nasal_lp = signal.sosfilt(signal.butter(2, 700, fs=SAMPLE_RATE, output="sos"), output)
    nasal_s = per_sample(nasal)
    output = (1.0 - nasal_s) * output + nasal_s * 1.5 * nasal_lp

    for band, (lo_hz, hi_hz) in _NOISE_BANDS.items():
        amplitude = per_sample(frication[band])
        if not np.any(amplitude):
            continue
        sos = signal.butter(
            4, [lo_hz, min(hi_hz, 0.49 * SAMPLE_RATE)], btype="bandpass", fs=SAMPLE_RATE, output="sos"
        )
        output = output + amplitude * 0.35 * signal.sosfilt(sos, rng.normal(0.0, 1.0, num_samples))

    peak = np.percentile(np.abs(output), 99.9) + 1e-9
    return (0.4 * output / peak).clip(-0.99, 0.99).astype(np.float32)


def timeline_to_json(timeline: list[TimedPhoneme], speaker: Speaker, words: str = "") -> dict[str, Any]:
    return {
        "sample_rate": SAMPLE_RATE,
        "speaker": dataclasses.asdict(speaker),
        "transcript": " ".join(t.symbol for t in timeline),
        "phonemes": [t.to_json() for t in timeline],
        "bilabial_closures_s": [list(t.closure_s) for t in timeline if t.closure_s is not None],
    }
