"""The methods, one module each, behind the interface of :mod:`avatars.methods.base`.

``BUILTIN_METHODS`` maps a method name to ``"module:Class"``; modules are imported only when the
method is used, so listing methods does not import torch. Third-party methods register the same way
through the ``gsbench.methods`` entry-point group (see ``benchmark.methods``). To add a method, write
``avatars/methods/<name>.py`` (the method name with ``-`` as ``_``) and add one line here
(docs/extending.md, "Add a method"). ``base.py`` (the interface) and ``flame_avatar.py`` (the shared
FLAME-rigged avatar of the oracles and GaussianSpeech's Stage 1) are not methods.
"""

BUILTIN_METHODS: dict[str, str] = {
    "retrieval": "avatars.methods.retrieval:RetrievalMethod",
    # oracles (driven by the tracked test expressions; marked, never ranked)
    "gaussian-avatars": "avatars.methods.gaussian_avatars:GaussianAvatarsMethod",
    "gaussianspeech-avatar": "avatars.methods.gaussianspeech_avatar:GaussianSpeechAvatarMethod",
    # audio-driven
    "gaussianspeech": "avatars.methods.gaussianspeech:GaussianSpeechMethod",
    "hicode": "avatars.methods.hicode:HiCoDeMethod",
    "audio-plane": "avatars.methods.audio_plane:AudioPlaneMethod",
}
