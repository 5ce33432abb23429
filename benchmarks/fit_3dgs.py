"""Fit 3D Gaussians to 16 views of the static procedural head (``tracking.head``) on the CPU.

    .venv/bin/python benchmarks/fit_3dgs.py                  # 96x96, 1500 steps, PSNR every 250 steps
    .venv/bin/python benchmarks/fit_3dgs.py --size 128 --steps 3000 --ply /tmp/head.ply

Ground truth: ``tracking.head.preview.render_head`` (open3d ray casting, 2x2 supersampling) of the
template head from 16 cameras on two rings around it, Lambertian shading with the light fixed in the
world (so the scene is static across views). Initialization: points sampled on the mesh surface
(area-weighted, seeded) with grey colour, 3DGS scales from nearest-neighbour distances. Training:
``avatars.gaussians.fit_gaussians`` (one random view per step, L1, Adam, gsplat DefaultStrategy rules
with a shortened schedule). Prints PSNR over all 16 views at checkpoints, the time and the backend.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

LIGHT_DIR_WORLD = np.array([0.3, -0.45, -1.0])  # light travelling down-left-backward onto the face
BACKGROUND = (0.55, 0.58, 0.62)


def head_views(size: int = 96, n_views: int = 16, seed: int = 0):
    """(images [V,H,W,3] float32 in [0,1], viewmats [V,4,4], Ks [V,3,3], points [M,3]) of the head."""
    from tracking.head import build_default_head
    from tracking.head.preview import intrinsics, orbit_camera, render_head

    head = build_default_head(seed=seed)
    K = intrinsics(size, size, fov_y_deg=34.0)
    target = (0.0, -0.02, 0.0)
    images, viewmats = [], []
    for i in range(n_views):
        yaw = -112.5 + 225.0 * i / (n_views - 1)
        pitch = 12.0 if i % 2 else -8.0
        world_to_cam = orbit_camera(yaw, pitch, distance=0.6, target=target)
        light_cam = world_to_cam[:3, :3] @ LIGHT_DIR_WORLD
        result = render_head(
            head, world_to_cam, K, size, size, background=BACKGROUND, light_dir_cam=tuple(light_cam)
        )
        images.append(result.image.astype(np.float32) / 255.0)
        viewmats.append(world_to_cam)
    rng = np.random.default_rng(seed)
    v, f = head.v_template, head.faces
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    faces = rng.choice(len(f), size=6000, p=area / area.sum())
    bary = rng.dirichlet(np.ones(3), size=len(faces))
    points = np.einsum("nk,nkc->nc", bary, tri[faces])
    as_tensor = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return (
        as_tensor(np.stack(images)),
        as_tensor(np.stack(viewmats)),
        as_tensor(np.stack([K] * n_views)),
        as_tensor(points),
    )


def main() -> None:
    from avatars.gaussians import FitConfig, GaussianModel, fit_gaussians

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=250, help="PSNR checkpoint interval")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--ply", help="write the fitted Gaussians as a 3DGS PLY here")
    args = parser.parse_args()

    start = time.perf_counter()
    images, viewmats, Ks, points = head_views(args.size)
    print(
        f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"ground truth: 16 views {args.size}x{args.size} in {time.perf_counter() - start:.1f} s"
    )
    model = GaussianModel.from_points(points, torch.full_like(points, 0.5), sh_degree=2)
    config = FitConfig(steps=args.steps, backend=args.backend)
    checkpoints = tuple(range(args.every, args.steps + 1, args.every))

    def report(entry: dict) -> None:
        print(
            f"step {entry['step']:>5}  loss {entry['loss']:.4f}  PSNR {entry['psnr']:6.2f} dB  "
            f"N {entry['n']:>6}  {entry['seconds']:7.1f} s",
            flush=True,
        )

    result = fit_gaussians(model, images, viewmats, Ks, torch.tensor(BACKGROUND), config, checkpoints, report)
    final = result.history[-1]
    print(
        f"final PSNR {final['psnr']:.2f} dB over 16 views, {final['n']} Gaussians, "
        f"{final['seconds']:.1f} s, backend {result.backend}"
    )
    if args.ply:
        result.model.save_ply(args.ply)
        print(f"wrote {args.ply}")


if __name__ == "__main__":
    main()
