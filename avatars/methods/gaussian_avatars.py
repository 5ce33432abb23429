"""``gaussian-avatars``: plain GaussianAvatars (Qian et al., CVPR 2024), an oracle reference avatar.

3D Gaussians bound to the triangles of the tracked FLAME mesh (``avatars.rigged``), each with its own colour
as spherical harmonics (degree 3), densified by 3DGS's clone/split rules and pruned by opacity, trained with
L1 + D-SSIM and GaussianAvatars' position and scaling regularizers: no colour MLP, no top-k pruning, no mouth
subdivision, no wrinkle or perceptual losses. It is the GaussianSpeech avatar code with the switches
:data:`avatars.gaussian_speech_avatar.GAUSSIAN_AVATARS`, every value from GaussianAvatars' code (named in
``config()["reference"]``). Like every :class:`~avatars.methods.flame_avatar.FlameAvatarMethod` it is an
**oracle**: test sequences are rendered from their tracked FLAME expressions, rows are marked, never ranked.

Name history: before issue 15, ``gaussian-avatars`` trained the GaussianSpeech avatar (top-k, mouth
subdivision, colour MLP, wrinkle loss); that method is now ``gaussianspeech-avatar``
(``avatars/methods/gaussianspeech_avatar.py``). Older results.json rows named ``gaussian-avatars`` are
GaussianSpeech-avatar rows.

Budgets: ``paper`` is GaussianAvatars' schedule (600k iterations, densify every 2k from 10k, opacity reset
every 60k); ``quick`` and ``smoke`` are the CPU schedules of every FLAME avatar here
(:data:`avatars.methods.flame_avatar.SCHEDULES`), with two CPU changes written in
``config()["cpu_schedule"]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from avatars.gaussian_speech_avatar import GAUSSIAN_AVATARS, AvatarConfig
from avatars.methods.flame_avatar import BudgetConfig, FlameAvatarMethod, budget_configs

# CPU changes (ours): colours start from the projected training images, as gaussianspeech-avatar's (random
# colours cannot be corrected in 1,000 steps at GaussianAvatars' feature learning rate); SH bands are added
# every 1/4 of the run instead of every 1,000 of 600,000 iterations.
BUDGET_CONFIGS: dict[str, BudgetConfig] = budget_configs(
    AvatarConfig(**GAUSSIAN_AVATARS),
    {
        "smoke": {"init_colors_from_images": True, "sh_degree_interval": 10},
        "quick": {"init_colors_from_images": True, "sh_degree_interval": 250},
    },
)

REFERENCE: dict[str, str] = {
    "code": "ShenhanQian/GaussianAvatars (arguments/__init__.py, train.py, scene/flame_gaussian_model.py, "
    "3DGS scene/gaussian_model.py)",
    "binding": "one Gaussian per FLAME triangle at its centre, local scale 1, opacity 0.1; mu = k R mu' + T, "
    "s = k exp(s'), q = q(R) x q' (avatars.rigged)",
    "colour": "sh_degree 3, random initial colours (RGB2SH(rand)), one more band every 1,000 iterations; "
    "feature_lr 2.5e-3 (features_rest / 20)",
    "schedule": "600,000 iterations; densify every 2,000 from 10,000 to 600,000 (grad 2e-4, percent_dense "
    "0.01); opacity reset every 60,000",
    "pruning": "opacity < 0.005; after the first reset also world scale > 0.1 x extent; never a triangle's "
    "last Gaussian",
    "losses": "0.8 L1 + 0.2 D-SSIM; lambda_xyz 1e-2 (threshold 1), lambda_scale 1 (threshold 0.6)",
    "learning_rates": "position 5e-3 -> 5e-5 x extent, scaling 0.017, rotation 1e-3, opacity 0.05",
    "not_included": "GaussianAvatars' FLAME-parameter fine-tuning during training (the tracked FLAME is kept "
    "fixed, as every method here gets it)",
}


class GaussianAvatarsMethod(FlameAvatarMethod):
    name: ClassVar[str] = "gaussian-avatars"
    description: ClassVar[str] = (
        "oracle: FLAME-rigged 3D Gaussians (GaussianAvatars: per-Gaussian SH colour, 3DGS densification and "
        "opacity pruning, L1 + D-SSIM), driven by the test sequences' tracked FLAME expressions, not by audio"
    )
    paper: ClassVar[str] = (
        "GaussianAvatars: Photorealistic Head Avatars with Rigged 3D Gaussians (Qian et al. 2024)"
    )
    budget_configs: ClassVar[dict[str, BudgetConfig]] = BUDGET_CONFIGS

    def config(self, budget: str) -> dict[str, Any]:
        return {
            **super().config(budget),
            "reference": REFERENCE,
            "cpu_schedule": "quick/smoke: colours initialised from the projected training images; SH "
            "bands every 1/4 of the run (GaussianAvatars: random colours, a band every 1,000 of 600,000 "
            "iterations)",
            "name_history": "before issue 15 'gaussian-avatars' trained the GaussianSpeech avatar, now "
            "'gaussianspeech-avatar'; older results named 'gaussian-avatars' are that avatar's",
        }
