"""Deformation field of Audio-Plane (Sec. 3.3-3.4, Eqs. 3 and 7): ``ΔG = D1(f)``, ``d = D2(f)``,
``G' = G + d · ΔG``.

* **D1** ("an MLP network"; width, depth and the deformed attributes are open): 4D Gaussian Splatting's
  deformation heads (Wu et al. 2024, the HexPlane-based field the paper builds on [38]): a shared
  ``Linear(f -> W)`` and, per attribute, ``ReLU-Linear(W, W)-ReLU-Linear(W, out)``. Sec. 3.2 says "the
  positions, colors, and other attributes" are adjusted, so D1 predicts Δμ (3), Δr (4, quaternion), Δs (3,
  log scale), Δα (1, logit opacity) and ΔSH-DC (3). The last layer of every head starts at zero (the
  small-gain initialisation of GaussianTalker), so the fine stage starts from the coarse stage's static
  head (ours).
* **D2** ("a tiny MLP"): ``f -> hidden -> 1`` with a sigmoid, since ``d`` is supervised against a 0-1
  mask (ours).
* **Eq. 7**: ``G' = G + D · ΔG`` per Gaussian, on the stored (pre-activation) parameters; with dynamic
  splatting off (Table 1 "w/o D") ``d ≡ 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

ATTRIBUTES = {"means": 3, "quats": 4, "scales": 3, "opacities": 1, "sh0": 3}


class DeformationMLP(nn.Module):
    """D1: ``f [N, F] -> {attribute: Δ [N, k]}`` (4DGS-style heads)."""

    def __init__(self, in_dim: int, width: int = 64, zero_init: bool = True):
        super().__init__()
        self.feature_out = nn.Linear(in_dim, width)
        self.heads = nn.ModuleDict(
            {
                name: nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, size))
                for name, size in ATTRIBUTES.items()
            }
        )
        if zero_init:
            for head in self.heads.values():
                nn.init.zeros_(head[-1].weight)
                nn.init.zeros_(head[-1].bias)

    def forward(self, f: Tensor) -> dict[str, Tensor]:
        hidden = self.feature_out(f)
        return {name: head(hidden) for name, head in self.heads.items()}


class DynamismMLP(nn.Module):
    """D2: the per-Gaussian dynamism ``d = D2(f) ∈ (0, 1)`` (Sec. 3.4)."""

    def __init__(self, in_dim: int, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, f: Tensor) -> Tensor:
        return torch.sigmoid(self.net(f))[:, 0]


@dataclass
class GaussianState:
    """Stored (pre-activation) Gaussian parameters: means [N,3] (normalised canonical frame), quats [N,4],
    scales [N,3] (log), opacities [N] (logit), sh0 [N,1,3], shN [N,K,3]."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh0: Tensor
    shN: Tensor


def deform(gaussians: GaussianState, delta: dict[str, Tensor], dynamism: Tensor | None) -> GaussianState:
    """Eq. 7: ``G' = G + d · ΔG`` (``dynamism`` None: ``d ≡ 1``, Eq. 3)."""
    d = torch.ones_like(gaussians.opacities) if dynamism is None else dynamism
    w = d[:, None]
    return GaussianState(
        means=gaussians.means + w * delta["means"],
        quats=gaussians.quats + w * delta["quats"],
        scales=gaussians.scales + w * delta["scales"],
        opacities=gaussians.opacities + d * delta["opacities"][:, 0],
        sh0=gaussians.sh0 + (w * delta["sh0"])[:, None, :],
        shN=gaussians.shN,
    )
