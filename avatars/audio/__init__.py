"""Speech encoders behind one interface (DESIGN.md, "Audio encoders").

Every encoder maps 16 kHz mono audio to features at its native rate (50 Hz for all of ours) and
offers the two alignments of the field:

* :meth:`AudioEncoder.video_rate` (FaceFormer / GaussianSpeech): one ``[D]`` vector per video frame,
  the native features linearly interpolated to the video fps;
* :meth:`AudioEncoder.windows` (ER-NeRF / Audio-Plane): ``[T_video, 16, D]`` windows, 8 feature
  frames each side of the video frame, zero-padded beyond the signal.

Methods ask for an encoder by name with :func:`resolve_encoder`; when the pretrained one is not
usable the named offline default is returned together with the reason, which the method records in
``info()`` (and the leaderboard's ``audio_encoder`` column shows ``encoder.id``).

Method-facing API (kept stable; the pretrained encoders, the per-dataset cache and the CLI build on it)::

    encoder, reason = resolve_encoder("wav2vec2-base-960h", fallback="logmel50", weights=self.weights)
    feats = encoder.video_rate(audio, fps, num_frames, cache=self.audio_cache)   # [T, D]
    wins = encoder.windows(audio, fps, num_frames, cache=self.audio_cache)       # [T, 16, D]
"""

from avatars.audio.base import (
    OFFLINE_ENCODERS,
    AudioEncoder,
    interpolate_features,
    open_encoder,
    resolve_encoder,
    window_features,
)

__all__ = [
    "OFFLINE_ENCODERS",
    "AudioEncoder",
    "interpolate_features",
    "open_encoder",
    "resolve_encoder",
    "window_features",
]
