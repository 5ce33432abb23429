"""Speech encoders behind one interface (DESIGN.md, "Audio encoders").

Every encoder maps 16 kHz mono audio to features at its native rate (50 Hz for all of ours) and
offers the two alignments of the field:

* :meth:`AudioEncoder.video_rate` (FaceFormer / GaussianSpeech): one ``[D]`` vector per video frame,
  the native features linearly interpolated to the video fps;
* :meth:`AudioEncoder.windows` (ER-NeRF / Audio-Plane): ``[T_video, 16, D]`` windows, 8 feature
  frames each side of the video frame, zero-padded beyond the signal.

Methods ask for an encoder by name with :func:`resolve_encoder`; when the pretrained one is *absent*
(not registered, no imported features) the named offline default is returned together with the
reason, which the method records in ``info()`` (the leaderboard's ``audio_encoder`` column shows
``encoder.id``). A *broken* registration (weights whose sha256 changed, another architecture, a stale
or partial import) raises instead: it is never silently replaced.

Encoders (``ENCODER_NAMES``):

* ``wav2vec2-base-960h``, ``hubert-large-ls960-ft``: Hugging Face ``transformers`` models from a folder
  registered with ``gsbench weights add NAME DIR`` (:mod:`avatars.audio.pretrained`); id
  ``name:<sha256 prefix>``; ``output="extract_features"`` gives the 512-d TCN output instead of the
  transformer's ``last_hidden_state``. ``video_rate`` interpolates the TCN output *before* the
  transformer (FaceFormer); ``encoder.trainable_copy()`` + ``encoder.transformer_from_tcn(tcn, fps,
  T, model=copy)`` is the differentiable path for fine-tuning (GaussianSpeech).
* ``deepspeech-0.1.0``: features imported per dataset (``gsbench audio import-features``;
  :mod:`avatars.audio.imported`), found through the dataset's cache: pass ``cache=``.
* ``logmel50`` (80-d) and ``filterbank29`` (29-d, DeepSpeech-shaped): offline, no weights.

Features are cached per dataset by audio content hash + encoder id (:mod:`avatars.audio.cache`); the
runner sets ``method.audio_cache`` to the dataset's cache before ``train``.

Method-facing API (kept stable)::

    encoder, reason = resolve_encoder("wav2vec2-base-960h", fallback="logmel50", weights=self.weights,
                                      cache=self.audio_cache)
    feats = encoder.video_rate(audio, fps, num_frames, cache=self.audio_cache)   # [T, D]
    wins = encoder.windows(audio, fps, num_frames, cache=self.audio_cache)       # [T, 16, D]
    pairs = encoder.pairs(audio, fps, num_frames, cache=self.audio_cache)        # [T, 2, D] at 25 fps

Audio is 16 kHz mono float32 (:func:`load_audio` / :func:`prepare_audio` read and resample other
files; multi-channel arrays are mixed down); empty or silent audio raises ``InputError`` naming it.
"""

from avatars.audio.base import (
    DEFAULT_FALLBACKS,
    ENCODER_NAMES,
    OFFLINE_ENCODERS,
    PRETRAINED_ENCODERS,
    AudioEncoder,
    EncoderStatus,
    EncoderUnavailable,
    check_audio,
    encoder_status,
    frame_pairs,
    interpolate_features,
    interpolate_features_torch,
    load_audio,
    open_encoder,
    prepare_audio,
    resolve_encoder,
    window_features,
)
from avatars.audio.cache import FeatureCache, audio_hash

__all__ = [
    "DEFAULT_FALLBACKS",
    "ENCODER_NAMES",
    "OFFLINE_ENCODERS",
    "PRETRAINED_ENCODERS",
    "AudioEncoder",
    "EncoderStatus",
    "EncoderUnavailable",
    "FeatureCache",
    "audio_hash",
    "check_audio",
    "encoder_status",
    "frame_pairs",
    "interpolate_features",
    "interpolate_features_torch",
    "load_audio",
    "open_encoder",
    "prepare_audio",
    "resolve_encoder",
    "window_features",
]
