"""Static 3D Gaussian model (3DGS): parameters with activations, optimizer, densification, PLY I/O.

Parameter names and storage are the shared ones of :mod:`avatars.gaussian_params` (gsplat's
simple trainer): ``means [N,3]``, ``scales [N,3]`` (log), ``quats [N,4]`` (wxyz, unnormalized),
``opacities [N]`` (logit), plus ``sh0 [N,1,3]`` and ``shN [N,K,3]`` (spherical-harmonics coefficients,
K = (degree+1)² - 1). The PLY layout is the one of the original 3DGS code
(``x y z nx ny nz f_dc_* f_rest_* opacity scale_* rot_*``) so common viewers
(SuperSplat, the SIBR viewer, antimatter15/splat) open our files.

``DensificationStrategy`` re-implements gsplat's ``DefaultStrategy`` (gsplat cannot be installed on a
CPU-only machine: it is a CUDA build) with the same rules and defaults: accumulate the screen-space
gradient norm of each Gaussian's centre (normalized to NDC as gsplat does) over visible views; every
``refine_every`` steps, Gaussians whose mean gradient exceeds ``grow_grad2d`` (2e-4) are cloned when
small (max scale <= ``grow_scale3d`` x scene scale) or split in two (samples from the Gaussian, scales
/ 1.6) when large; Gaussians with opacity < ``prune_opa`` (0.005), or too big after the first opacity
reset, are removed; every ``reset_every`` steps opacities are clamped to 2 x ``prune_opa``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avatars.gaussian_params import GaussianParameters
from avatars.render import RenderOutput, rasterize
from avatars.render.projection import quat_to_rotmat
from gsbench.errors import InputError
from gsbench.io import write_bytes

PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN")

# Real spherical-harmonics constants of the 3DGS / gsplat evaluation (degree <= 3).
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def rgb_to_sh(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh0: Tensor) -> Tensor:
    return sh0 * SH_C0 + 0.5


def eval_sh(degree: int, coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Colours from SH coefficients [..., (degree+1)², 3] along unit-or-not directions [..., 3]."""
    result = SH_C0 * coeffs[..., 0, :]
    if degree == 0:
        return result
    x, y, z = torch.nn.functional.normalize(dirs, dim=-1).unbind(-1)
    x, y, z = x[..., None], y[..., None], z[..., None]
    result = (
        result - SH_C1 * y * coeffs[..., 1, :] + SH_C1 * z * coeffs[..., 2, :] - SH_C1 * x * coeffs[..., 3, :]
    )
    if degree == 1:
        return result
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    result = (
        result
        + SH_C2[0] * xy * coeffs[..., 4, :]
        + SH_C2[1] * yz * coeffs[..., 5, :]
        + SH_C2[2] * (2.0 * zz - xx - yy) * coeffs[..., 6, :]
        + SH_C2[3] * xz * coeffs[..., 7, :]
        + SH_C2[4] * (xx - yy) * coeffs[..., 8, :]
    )
    if degree == 2:
        return result
    return (
        result
        + SH_C3[0] * y * (3 * xx - yy) * coeffs[..., 9, :]
        + SH_C3[1] * xy * z * coeffs[..., 10, :]
        + SH_C3[2] * y * (4 * zz - xx - yy) * coeffs[..., 11, :]
        + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * coeffs[..., 12, :]
        + SH_C3[4] * x * (4 * zz - xx - yy) * coeffs[..., 13, :]
        + SH_C3[5] * z * (xx - yy) * coeffs[..., 14, :]
        + SH_C3[6] * x * (xx - 3 * yy) * coeffs[..., 15, :]
    )


@dataclass(frozen=True)
class LearningRates:
    """Per-parameter Adam learning rates of gsplat's simple trainer (3DGS defaults, means x scene scale)."""

    means: float = 1.6e-4
    scales: float = 5e-3
    quats: float = 1e-3
    opacities: float = 5e-2
    sh0: float = 2.5e-3
    shN: float = 2.5e-3 / 20


class GaussianModel(GaussianParameters):
    """N 3D Gaussians in the world frame with view-dependent colour (spherical harmonics up to
    ``sh_degree``)."""

    def __init__(
        self, means: Tensor, scales: Tensor, quats: Tensor, opacities: Tensor, sh0: Tensor, shN: Tensor
    ):
        super().__init__(
            means=means,  # [N, 3]
            scales=scales,  # [N, 3] log of the standard deviations
            quats=quats,  # [N, 4] wxyz, unnormalized
            opacities=opacities,  # [N] logit
            sh0=sh0,  # [N, 1, 3]
            shN=shN,  # [N, K, 3]
        )

    @classmethod
    def from_points(
        cls,
        points: Tensor,  # [N, 3]
        colors: Tensor,  # [N, 3] in [0, 1]
        sh_degree: int = 3,
        init_opacity: float = 0.1,
        init_scale: float = 1.0,
    ) -> GaussianModel:
        """3DGS initialization: isotropic scales = mean distance to the 3 nearest neighbours."""
        n = points.shape[0]
        if n >= 2:
            dists = torch.cdist(points, points) if n <= 20_000 else _chunked_knn(points)
            k = min(4, n)
            nearest = dists.topk(k, largest=False).values[:, 1:]  # drop the point itself
            dist = nearest.mean(-1).clamp_min(1e-7)
        else:
            dist = torch.ones(n)
        scales = torch.log(dist * init_scale)[:, None].repeat(1, 3)
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        opacities = torch.logit(torch.full((n,), init_opacity))
        sh0 = rgb_to_sh(colors.float())[:, None, :]
        shN = torch.zeros(n, (sh_degree + 1) ** 2 - 1, 3)
        return cls(points.float().clone(), scales, quats, opacities, sh0, shN)

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.params["shN"].shape[1] + 1) - 1

    @property
    def means(self) -> Tensor:
        return self.params["means"]

    @property
    def scales(self) -> Tensor:
        return torch.exp(self.params["scales"])

    @property
    def quats(self) -> Tensor:
        return torch.nn.functional.normalize(self.params["quats"], dim=-1)

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.params["opacities"])

    def colors(self, viewmats: Tensor, sh_degree: int | None = None) -> Tensor:
        """[C, N, 3] view-dependent colours seen from the cameras ``viewmats`` [C, 4, 4] (world_to_cam)."""
        degree = self.sh_degree if sh_degree is None else min(sh_degree, self.sh_degree)
        coeffs = torch.cat([self.params["sh0"], self.params["shN"]], dim=1)[:, : (degree + 1) ** 2]
        if degree == 0:
            rgb = eval_sh(0, coeffs, self.means)[None].expand(viewmats.shape[0], -1, -1)
        else:
            centres = -(viewmats[:, :3, :3].transpose(-1, -2) @ viewmats[:, :3, 3:])[..., 0]  # [C, 3]
            dirs = self.means[None] - centres[:, None]
            rgb = eval_sh(degree, coeffs[None], dirs)
        return torch.clamp_min(rgb + 0.5, 0.0)

    def render(
        self,
        viewmats: Tensor,  # [C, 4, 4]
        Ks: Tensor,  # [C, 3, 3]
        width: int,
        height: int,
        background: Tensor | None = None,
        sh_degree: int | None = None,
        **kwargs,
    ) -> RenderOutput:
        return rasterize(
            self.means,
            self.quats,
            self.scales,
            self.opacities,
            self.colors(viewmats, sh_degree),
            viewmats,
            Ks,
            width,
            height,
            background=background,
            **kwargs,
        )

    def make_optimizer(
        self, lrs: LearningRates = LearningRates(), scene_scale: float = 1.0
    ) -> torch.optim.Adam:
        """One Adam with one named param group per parameter (eps 1e-15 as in 3DGS)."""
        groups = [
            {
                "params": [self.params[name]],
                "lr": getattr(lrs, name) * (scene_scale if name == "means" else 1.0),
                "name": name,
            }
            for name in PARAM_NAMES
        ]
        return torch.optim.Adam(groups, eps=1e-15)

    def state_tensors(self) -> dict[str, Tensor]:
        return {name: p.detach().clone() for name, p in self.params.items()}

    def save_ply(self, path: str | Path) -> None:
        """Write the standard 3DGS PLY (binary little endian), atomically."""
        n = len(self)
        p = {name: t.detach().cpu().float() for name, t in self.params.items()}
        f_rest = p["shN"].transpose(1, 2).reshape(n, -1)  # 3DGS stores f_rest channel-major
        columns = {
            **{axis: p["means"][:, i] for i, axis in enumerate("xyz")},
            **{f"n{axis}": torch.zeros(n) for axis in "xyz"},
            **{f"f_dc_{i}": p["sh0"][:, 0, i] for i in range(3)},
            **{f"f_rest_{i}": f_rest[:, i] for i in range(f_rest.shape[1])},
            "opacity": p["opacities"],
            **{f"scale_{i}": p["scales"][:, i] for i in range(3)},
            **{f"rot_{i}": p["quats"][:, i] for i in range(4)},
        }
        data = np.stack([c.numpy() for c in columns.values()], axis=1).astype("<f4")
        header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
        header += [f"property float {name}" for name in columns]
        header.append("end_header")
        write_bytes(path, ("\n".join(header) + "\n").encode("ascii") + data.tobytes())

    @classmethod
    def load_ply(cls, path: str | Path) -> GaussianModel:
        """Read a 3DGS PLY written by us, the original 3DGS code, gsplat or a viewer export."""
        path = Path(path)
        if not path.is_file():
            raise InputError("Gaussian PLY file not found", path=path, fix="check the path")
        raw = path.read_bytes()
        end = raw.find(b"end_header\n")
        if not raw.startswith(b"ply") or end < 0:
            raise InputError(
                "not a PLY file (no 'ply' magic / 'end_header')", path=path, fix="pass a 3DGS .ply file"
            )
        lines = raw[:end].decode("ascii", errors="replace").splitlines()
        if "format binary_little_endian 1.0" not in lines:
            raise InputError(
                "only binary little-endian PLY is supported",
                path=path,
                fix="re-export the splat as binary little endian",
            )
        count, props, in_vertex = 0, [], False
        types = {
            "float": "<f4",
            "float32": "<f4",
            "double": "<f8",
            "float64": "<f8",
            "uchar": "u1",
            "uint8": "u1",
            "int": "<i4",
            "int32": "<i4",
            "uint": "<u4",
            "short": "<i2",
            "ushort": "<u2",
        }
        for line in lines:
            words = line.split()
            if words[:1] == ["element"]:
                in_vertex = words[1] == "vertex"
                if in_vertex:
                    count = int(words[2])
                elif not props:
                    raise InputError(
                        f"element {words[1]!r} before 'vertex' is not supported",
                        path=path,
                        fix="export only the vertex element",
                    )
            elif words[:1] == ["property"] and in_vertex:
                if words[1] not in types:
                    raise InputError(
                        f"unsupported property type {words[1]!r}", path=path, fix="use float properties"
                    )
                props.append((words[2], types[words[1]]))
        names = [name for name, _ in props]
        needed = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"] + [f"scale_{i}" for i in range(3)]
        needed += [f"rot_{i}" for i in range(4)]
        missing = [name for name in needed if name not in names]
        if missing:
            raise InputError(
                f"not a 3DGS PLY: missing properties {missing}",
                path=path,
                fix="export with x,y,z,f_dc_*,opacity,scale_*,rot_*",
            )
        vertices = np.frombuffer(raw, dtype=np.dtype(props), count=count, offset=end + len(b"end_header\n"))

        def column(*keys: str) -> Tensor:
            return torch.from_numpy(np.stack([vertices[k].astype(np.float32) for k in keys], axis=-1))

        rest = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n.split("_")[-1]))
        k = len(rest) // 3
        if len(rest) % 3 or math.isqrt(k + 1) ** 2 != k + 1:
            raise InputError(
                f"{len(rest)} f_rest properties do not match a spherical-harmonics degree",
                path=path,
                fix="export 0, 9, 24 or 45 f_rest properties",
            )
        shN = column(*rest).reshape(count, 3, k).transpose(1, 2) if k else torch.zeros(count, 0, 3)
        return cls(
            column("x", "y", "z"),
            column("scale_0", "scale_1", "scale_2"),
            column("rot_0", "rot_1", "rot_2", "rot_3"),
            column("opacity")[:, 0],
            column("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :],
            shN.contiguous(),
        )


def _chunked_knn(points: Tensor, chunk: int = 4096) -> Tensor:
    """Distances to the 4 nearest points, chunked so memory stays O(chunk x N)."""
    out = torch.empty(points.shape[0], 4)
    for start in range(0, points.shape[0], chunk):
        out[start : start + chunk] = (
            torch.cdist(points[start : start + chunk], points).topk(4, largest=False).values
        )
    return out


@dataclass(frozen=True)
class StrategyConfig:
    """gsplat ``DefaultStrategy`` defaults (3DGS schedule)."""

    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    grow_scale2d: float = 0.05
    prune_scale3d: float = 0.1
    prune_scale2d: float = 0.15
    refine_scale2d_stop_iter: int = 0
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    reset_every: int = 3000
    refine_every: int = 100
    pause_refine_after_reset: int = 0
    absgrad: bool = False
    revised_opacity: bool = False


@dataclass
class DensificationStrategy:
    """gsplat's ``DefaultStrategy`` rules on our ``GaussianModel`` (see the module docstring).

    Call ``step_post_backward(model, optimizer, render_output, step)`` after ``loss.backward()`` and
    before ``optimizer.step()`` is fine too (gsplat calls it after the optimizer step; both work).
    """

    config: StrategyConfig = StrategyConfig()
    scene_scale: float = 1.0
    seed: int = 0
    grad2d: Tensor | None = None  # [N] accumulated normalized screen-space gradient norms
    count: Tensor | None = None  # [N] number of views each Gaussian was visible in
    radii: Tensor | None = None  # [N] max normalized 2D radius (only with refine_scale2d_stop_iter)
    generator: torch.Generator = field(init=False)
    log: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    def step_post_backward(
        self, model: GaussianModel, optimizer: torch.optim.Optimizer, out: RenderOutput, step: int
    ) -> dict[str, int]:
        cfg = self.config
        if step >= cfg.refine_stop_iter:
            return {}
        self._update_state(model, out)
        result: dict[str, int] = {}
        if (
            step > cfg.refine_start_iter
            and step % cfg.refine_every == 0
            and step % cfg.reset_every >= (cfg.pause_refine_after_reset)
        ):
            n_dupli, n_split = self._grow(model, optimizer, step)
            n_prune = self._prune(model, optimizer, step)
            result = {
                "step": step,
                "duplicated": n_dupli,
                "split": n_split,
                "pruned": n_prune,
                "total": len(model),
            }
            self.log.append(result)
            self.grad2d = self.count = self.radii = None
        if step % cfg.reset_every == 0 and step > 0:
            reset_opacities(model, optimizer, value=cfg.prune_opa * 2.0)
        return result

    def _update_state(self, model: GaussianModel, out: RenderOutput) -> None:
        n = len(model)
        if self.grad2d is None:
            self.grad2d, self.count = torch.zeros(n), torch.zeros(n)
            self.radii = torch.zeros(n)
        grads = out.means2d_absgrad if self.config.absgrad else out.means2d.grad
        if grads is None:
            raise RuntimeError("means2d has no gradient: call backward() before step_post_backward()")
        grads = grads.detach().clone()
        grads[..., 0] *= out.width / 2.0 * out.n_cameras  # to NDC units, as gsplat
        grads[..., 1] *= out.height / 2.0 * out.n_cameras
        visible = out.radii > 0  # [C, N]
        ids = torch.where(visible)[1]
        self.grad2d.index_add_(0, ids, grads[visible].norm(dim=-1).to(self.grad2d.dtype))
        self.count.index_add_(0, ids, torch.ones_like(ids, dtype=self.count.dtype))
        if self.config.refine_scale2d_stop_iter > 0:
            scaled = out.radii[visible].float() / float(max(out.width, out.height))
            self.radii[ids] = torch.maximum(self.radii[ids], scaled)

    def _grow(self, model: GaussianModel, optimizer: torch.optim.Optimizer, step: int) -> tuple[int, int]:
        cfg = self.config
        grads = self.grad2d / self.count.clamp_min(1)
        high = grads > cfg.grow_grad2d
        small = model.scales.detach().max(-1).values <= cfg.grow_scale3d * self.scene_scale
        duplicate_mask = high & small
        split_mask = high & ~small
        if step < cfg.refine_scale2d_stop_iter:
            split_mask |= self.radii > cfg.grow_scale2d
        n_dupli, n_split = int(duplicate_mask.sum()), int(split_mask.sum())
        if n_dupli:
            duplicate(model, optimizer, duplicate_mask)
            self._extend_state(duplicate_mask)
        split_mask = torch.cat([split_mask, torch.zeros(n_dupli, dtype=torch.bool)])  # clones are not split
        if n_split:
            split(model, optimizer, split_mask, self.generator, cfg.revised_opacity)
            keep = ~split_mask
            for name in ("grad2d", "count", "radii"):
                v = getattr(self, name)
                setattr(self, name, torch.cat([v[keep], v[split_mask].repeat(2)]))
        return n_dupli, n_split

    def _extend_state(self, mask: Tensor) -> None:
        for name in ("grad2d", "count", "radii"):
            v = getattr(self, name)
            setattr(self, name, torch.cat([v, v[mask]]))

    def _prune(self, model: GaussianModel, optimizer: torch.optim.Optimizer, step: int) -> int:
        cfg = self.config
        prune_mask = model.opacities.detach() < cfg.prune_opa
        if step > cfg.reset_every:
            too_big = model.scales.detach().max(-1).values > cfg.prune_scale3d * self.scene_scale
            if step < cfg.refine_scale2d_stop_iter:
                too_big |= self.radii > cfg.prune_scale2d
            prune_mask |= too_big
        n_prune = int(prune_mask.sum())
        if n_prune:
            remove(model, optimizer, prune_mask)
        return n_prune


def duplicate(model: GaussianModel, optimizer: torch.optim.Optimizer, mask: Tensor) -> None:
    """Clone the selected Gaussians (appended at the end); their Adam moments start at zero."""
    n = len(model)
    index = torch.cat([torch.arange(n), mask.nonzero()[:, 0]])
    new_rows = torch.arange(index.shape[0]) >= n
    model.select(index, optimizer, new_rows)


def split(
    model: GaussianModel,
    optimizer: torch.optim.Optimizer,
    mask: Tensor,
    generator: torch.Generator,
    revised_opacity: bool = False,
) -> None:
    """Replace each selected Gaussian by 2 sampled from it, scales / 1.6 (3DGS); appended at the end."""
    keep = ~mask
    scales = model.scales.detach()[mask]
    rotmats = quat_to_rotmat(model.quats.detach()[mask])
    noise = torch.randn(2, scales.shape[0], 3, generator=generator)
    samples = torch.einsum("nij,nj,bnj->bni", rotmats, scales, noise)  # [2, S, 3]
    keep_idx, split_idx = keep.nonzero()[:, 0], mask.nonzero()[:, 0]
    index = torch.cat([keep_idx, split_idx, split_idx])
    new_rows = torch.arange(index.shape[0]) >= keep_idx.shape[0]
    params = {name: p.detach() for name, p in model.params.items()}
    values = {
        "means": torch.cat([params["means"][keep], (params["means"][mask] + samples).reshape(-1, 3)]),
        "scales": torch.cat([params["scales"][keep], torch.log(scales / 1.6).repeat(2, 1)]),
    }
    if revised_opacity:
        opacity = params["opacities"]
        children = torch.logit(1.0 - torch.sqrt(1.0 - torch.sigmoid(opacity[mask]))).repeat(2)
        values["opacities"] = torch.cat([opacity[keep], children])
    model.select(index, optimizer, new_rows, values)


def remove(model: GaussianModel, optimizer: torch.optim.Optimizer, mask: Tensor) -> None:
    model.select((~mask).nonzero()[:, 0], optimizer)


def reset_opacities(model: GaussianModel, optimizer: torch.optim.Optimizer, value: float) -> None:
    """Clamp opacities to at most ``value`` and zero their Adam moments (3DGS opacity reset)."""
    limit = torch.logit(torch.tensor(value)).item()
    model.reset_param("opacities", torch.clamp(model.params["opacities"].detach(), max=limit), optimizer)


@dataclass(frozen=True)
class FitConfig:
    """A short static 3DGS fit (gsplat simple-trainer recipe, schedule shortened for a CPU)."""

    steps: int = 1500
    sh_degree: int = 2
    sh_degree_interval: int = 300  # one more SH band every this many steps, as 3DGS (1000 there)
    means_lr_final_ratio: float = 0.01  # exponential decay of the means' learning rate, as 3DGS
    lrs: LearningRates = LearningRates()
    strategy: StrategyConfig = StrategyConfig(refine_start_iter=100, refine_stop_iter=1000, refine_every=50)
    seed: int = 0
    backend: str = "cpu"


@dataclass
class FitResult:
    model: GaussianModel
    history: list[dict]  # {"step", "loss", "psnr" (all views, at checkpoints), "n", "seconds"}
    backend: str


def psnr(pred: Tensor, target: Tensor) -> float:
    mse = torch.mean((pred.clamp(0, 1) - target) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def fit_gaussians(
    model: GaussianModel,
    images: Tensor,  # [V, H, W, 3] in [0, 1]
    viewmats: Tensor,  # [V, 4, 4]
    Ks: Tensor,  # [V, 3, 3]
    background: Tensor,  # [3]
    config: FitConfig = FitConfig(),
    checkpoints: tuple[int, ...] = (),
    on_checkpoint=None,
) -> FitResult:
    """Fit ``model`` to V posed images: one random view per step, L1 loss, Adam, densification."""
    views, height, width = images.shape[:3]
    gen = torch.Generator().manual_seed(config.seed)
    centres = -(viewmats[:, :3, :3].transpose(-1, -2) @ viewmats[:, :3, 3:])[..., 0]
    scene_scale = 1.1 * (centres - centres.mean(0)).norm(dim=-1).max().item()
    optimizer = model.make_optimizer(config.lrs, scene_scale)
    strategy = DensificationStrategy(config.strategy, scene_scale=scene_scale, seed=config.seed)
    decay = config.means_lr_final_ratio ** (1.0 / max(1, config.steps))
    history: list[dict] = []
    start = time.perf_counter()
    backend = ""
    for step in range(1, config.steps + 1):
        view = int(torch.randint(views, (1,), generator=gen))
        degree = min(config.sh_degree, (step - 1) // config.sh_degree_interval)
        out = model.render(
            viewmats[view : view + 1],
            Ks[view : view + 1],
            width,
            height,
            background=background,
            sh_degree=degree,
            backend=config.backend,
        )
        backend = out.backend
        loss = (out.features[0] - images[view]).abs().mean()
        loss.backward()
        strategy.step_post_backward(model, optimizer, out, step)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for group in optimizer.param_groups:
            if group["name"] == "means":
                group["lr"] *= decay
        if step in checkpoints or step == config.steps:
            with torch.no_grad():
                rendered = model.render(
                    viewmats,
                    Ks,
                    width,
                    height,
                    background=background,
                    sh_degree=degree,
                    backend=config.backend,
                ).features
            entry = {
                "step": step,
                "loss": loss.item(),
                "psnr": psnr(rendered, images),
                "n": len(model),
                "seconds": time.perf_counter() - start,
            }
            history.append(entry)
            if on_checkpoint is not None:
                on_checkpoint(entry)
    return FitResult(model=model, history=history, backend=backend)
