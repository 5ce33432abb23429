"""HiCoDe's head: canonical 3D Gaussians (Eqs. 1-2) + the deformation network (Eqs. 7-8), placed in the world.

The head is modelled in FLAME's canonical frame (metres, y up, +z out of the face). A frame's Gaussians are
the canonical ones deformed by F_Δ (Eq. 8: r_t = r_cn + Δr, s_t = s_cn + Δs, l_t = l_cn + Δl; opacity and
colour stay canonical), then placed by the frame's rigid head pose about FLAME's root joint J0
(``x_world = R (x − J0) + J0 + t``), the only pose a :class:`~avatars.methods.base.RenderRequest` holds.

Conventions of Eq. 8 that the paper leaves open (ours, recorded in ``config()``): Δl is predicted in the
normalised location frame and multiplied by the box half-extent (metres); Δr is added to the normalised
canonical quaternion and the sum renormalised (Deformable 3DGS adds to the normalised rotation); Δs is added
to the log-scale so scales stay positive (Deformable 3DGS adds to the activated scale).
"""

from __future__ import annotations

import torch
from torch import Tensor

from avatars.gaussians import GaussianModel
from avatars.hicode.hfec import Controls, DeformationNetwork
from avatars.render import RenderOutput, rasterize
from avatars.rigged import matrix_to_quaternion, quaternion_multiply


class HiCoDeHead(torch.nn.Module):
    def __init__(
        self,
        gaussians: GaussianModel,
        deformation: DeformationNetwork,
        centre: Tensor,  # [3] of the normalisation box (metres, canonical)
        half_extent: float,  # metres
        root_joint: Tensor,  # [3] J0, canonical
    ):
        super().__init__()
        self.gaussians = gaussians
        self.deformation = deformation
        self.register_buffer("centre", centre.clone().float())
        self.register_buffer("half_extent", torch.tensor(float(half_extent)))
        self.register_buffer("root_joint", root_joint.clone().float())

    def normalise(self, points: Tensor) -> Tensor:
        """Canonical metres -> the [-1, 1] box the embeddings see."""
        return (points - self.centre) / self.half_extent

    def location_embedding(self) -> Tensor:
        """Q ``[N, C]`` of the canonical Gaussians (the same for every frame: computed once per sequence)."""
        return self.deformation.location(self.normalise(self.gaussians.means.detach()))

    def deformed(self, controls: Controls | None, q: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Canonical (means [N,3], quats [N,4] unit wxyz, scales [N,3]) at one frame; ``controls=None``:
        undeformed (the initialisation stage). ``q``: :meth:`location_embedding` when precomputed."""
        g = self.gaussians
        means, quats, log_scales = g.means, g.quats, g.params["scales"]
        if controls is None:
            return means, quats, torch.exp(log_scales)
        delta_l, delta_r, delta_s = self.deformation(self.normalise(means), controls, q)
        # Eq. 8 (HiCoDe): l_t = l_cn + Δl, r_t = r_cn + Δr, s_t = s_cn + Δs
        means = means + delta_l * self.half_extent
        quats = torch.nn.functional.normalize(quats + delta_r, dim=-1)
        scales = torch.exp(log_scales + delta_s)
        return means, quats, scales

    def place(
        self, means: Tensor, quats: Tensor, rotation: Tensor, translation: Tensor
    ) -> tuple[Tensor, Tensor]:
        """World means/quats for the rigid pose ``rotation [3,3]``, ``translation [3]`` about J0."""
        j0 = self.root_joint
        world = (means - j0) @ rotation.T + j0 + translation
        q_pose = matrix_to_quaternion(rotation[None])[0]
        return world, quaternion_multiply(q_pose.expand_as(quats), quats)

    def render(
        self,
        controls: Controls | None,
        rotation: Tensor,  # [3, 3]
        translation: Tensor,  # [3]
        world_to_cam: Tensor,  # [4, 4]
        K: Tensor,  # [3, 3]
        width: int,
        height: int,
        backend: str = "cpu",
        q: Tensor | None = None,
    ) -> tuple[RenderOutput, Tensor]:
        """(render on a black background, world means [N, 3] of the placed Gaussians)."""
        means, quats, scales = self.deformed(controls, q)
        world, world_quats = self.place(means, quats, rotation, translation)
        g = self.gaussians
        colors = g.colors(world_to_cam[None], sh_degree=0)  # Eq. 1: plain RGB (degree-0 SH = RGB)
        out = rasterize(
            world,
            world_quats,
            scales,
            g.opacities,
            colors,
            world_to_cam[None],
            K[None],
            width,
            height,
            background=torch.zeros(3),
            backend=backend,
        )
        return out, world
