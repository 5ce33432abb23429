"""The methods, one module each, behind the interface of :mod:`avatars.methods.base`.

``BUILTIN_METHODS`` maps a method name to ``"module:Class"``; modules are imported only when the
method is used, so listing methods does not import torch. Third-party methods register the same way
through the ``gsbench.methods`` entry-point group (see ``benchmark.methods``). To add a method, write
``avatars/methods/<name>.py`` and add one line here.
"""

BUILTIN_METHODS: dict[str, str] = {
    "retrieval": "avatars.methods.retrieval:RetrievalMethod",
    "gaussian-avatars": "avatars.methods.gaussian_avatars:GaussianAvatarsMethod",
    "gaussianspeech": "avatars.methods.gaussian_speech:GaussianSpeechMethod",
    "hicode": "avatars.methods.hicode:HiCoDeMethod",
    "audio-plane": "avatars.methods.audio_plane:AudioPlaneMethod",
}
