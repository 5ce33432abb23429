"""HiCoDe (Wu et al., AAAI 2025): the model modules behind ``avatars.methods.hicode``.

``hfec`` (F_Δ and HFEC, Eqs. 7-12), ``model`` (canonical Gaussians, Eq. 8, rigid placement), ``geometry``
(depth-based initialisation, pose-free landmarks), ``audio_models`` (audio-to-3DMM and audio-to-landmark
FaceFormers, Eqs. 13-14), ``losses`` (Eqs. 15-16 with the Wing proxy), ``trainer`` (the three stages),
``compositor`` (Eqs. 17-18).
"""
