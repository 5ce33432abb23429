"""Where one training step of the ``gaussianspeech-avatar`` avatar spends its time (issue 22; the method
was called ``gaussian-avatars`` then).

    .venv/bin/python benchmarks/avatar_step.py --data DATA                  # quick budget, multiview
    .venv/bin/python benchmarks/avatar_step.py --data DATA --kernel 03d5dfd # same, kernel of a git ref

Builds the training set and the avatar exactly as ``GaussianSpeechAvatarMethod.train`` does
(``avatars.training_data``, ``flame_avatar.fit_data``, ``build_binding``, ``make_optimizer``), then runs
``fit_avatar``'s step (single image; its losses but the perceptual ones, whose weights are not on this
machine; no densification) in stages, each stage's inputs detached into leaves so that its forward and its
backward are timed on their own:

    data         target image and mask of the step (uint8 -> float, masked)
    LBS/binding  Gaussians in the world from the mesh's triangle frames (GaussianAvatars Eqs. 1-3)
    colour MLP   colours from (expression, latent, view direction)
    rasterize    projection + tile compositing (``avatars.render.rasterize``)
    losses       L1 + D-SSIM (separable Gaussian window), regularizers, wrinkle (ridge filter) and
                 silhouette terms when their weights are > 0
    optimizer    zero_grad + Adam step

The gradients reaching the parameters are the same as in one backward of the whole graph (the stages'
output gradients are handed to the next stage by ``torch.autograd.backward``). ``total`` is the same step
without stages, as ``fit_avatar`` runs it. Times are medians over ``--steps`` steps after ``--warmup``:
wall and CPU time of this process; the load average is printed (a shared machine inflates wall time).
With 2 threads on a loaded machine set ``OMP_WAIT_POLICY=PASSIVE``: torch's OpenMP threads otherwise spin
while waiting for a descheduled peer (measured at load ~13 on the tiny dataset: 5.1 s wall / 1.46 CPU-s
per step with the default policy, 0.24 s / 0.10 CPU-s with PASSIVE).

``--kernel GIT_REF`` swaps in the kernel (projection and compositing) of that git ref, built by
``benchmarks/rasterizer.py``'s ``build_reference``; ``--concat-color-mlp`` runs the colour MLP's first layer
on the concatenated input as before issue 22. With both, the step is the one before issue 22's changes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

STAGES = ("data", "LBS/binding", "colour MLP", "rasterize", "losses", "optimizer")


def use_concatenated_color_mlp() -> None:
    """``ColorMLP.forward`` as before issue 22: layer 1 on cat(psi expanded to N rows, z_i, v_i)."""
    from avatars.gaussian_speech_avatar import ColorMLP

    def forward(self, condition, latents, view_dirs):
        inputs = torch.cat([condition.expand(latents.shape[0], -1), latents, view_dirs], dim=-1)
        return torch.sigmoid(self.layer2(torch.relu(self.layer1(inputs))))

    ColorMLP.forward = forward


def use_reference_kernel(git_ref: str) -> None:
    """Make ``avatars.render.rasterize`` run the compositing kernel of ``git_ref`` (backend "cpu")."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rasterizer import _legacy_composite_class, build_reference

    import avatars.render._extension as extension
    import avatars.render.rasterization as rasterization

    ext = build_reference(git_ref)
    legacy = _legacy_composite_class()
    extension.load_extension = lambda: ext

    def composite(ext_, means2d, conics, opacities, features, extents, depths, width, height, tile, sink):
        return legacy.apply(
            means2d, conics, opacities, features, extents.detach(), depths.detach(), width, height, tile, ext_
        )

    rasterization.composite_cpp = composite


class Clock:
    """Accumulates wall and CPU seconds per (stage, direction) for one step."""

    def __init__(self):
        self.times: dict[tuple[str, str], tuple[float, float]] = {}
        self._start = (0.0, 0.0)

    def start(self) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def stop(self, stage: str, direction: str) -> None:
        wall, cpu = time.perf_counter() - self._start[0], time.process_time() - self._start[1]
        old = self.times.get((stage, direction), (0.0, 0.0))
        self.times[(stage, direction)] = (old[0] + wall, old[1] + cpu)


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().requires_grad_(t.requires_grad)


def staged_step(avatar, data, config, optimizer, i: int, background: torch.Tensor) -> Clock:
    clock = Clock()
    rig = avatar.rig
    clock.start()
    frame, camera = int(data.frame_index[i]), int(data.camera_index[i])
    target, mask = data.target(i)
    vertices, condition = data.vertices[frame], data.conditions[frame]
    rotation, world_to_cam, K = data.head_rotations[frame], data.world_to_cam[camera], data.Ks[camera]
    clock.stop("data", "forward")

    clock.start()
    world = rig.world(vertices)
    clock.stop("LBS/binding", "forward")

    clock.start()
    means_for_colour = leaf(world.means)
    centre = -world_to_cam[:3, :3].T @ world_to_cam[:3, 3]
    colors = avatar.colors(means_for_colour, condition, rotation, centre)
    clock.stop("colour MLP", "forward")

    clock.start()
    inputs = [leaf(t) for t in (world.means, world.quats, world.scales, world.opacities, colors)]
    out = avatar_rasterize(inputs, world_to_cam, K, data.width, data.height, background)
    clock.stop("rasterize", "forward")

    clock.start()
    pred, alpha = leaf(out.features[0]), leaf(out.alpha[0])
    loss = step_loss(avatar, config, pred, alpha, out.radii[0] > 0, target, mask)
    clock.stop("losses", "forward")

    clock.start()
    optimizer.zero_grad(set_to_none=True)
    clock.stop("optimizer", "forward")

    clock.start()
    loss.backward()
    clock.stop("losses", "backward")

    clock.start()
    outputs, grads = [out.features[0]], [pred.grad]
    if alpha.grad is not None:
        outputs, grads = outputs + [out.alpha[0]], grads + [alpha.grad]
    torch.autograd.backward(outputs, grads)
    clock.stop("rasterize", "backward")

    clock.start()
    if colors.requires_grad:
        torch.autograd.backward([colors], [inputs[4].grad])
    clock.stop("colour MLP", "backward")

    clock.start()
    means_grad = inputs[0].grad
    if means_for_colour.grad is not None:
        means_grad = means_grad + means_for_colour.grad
    torch.autograd.backward(
        [world.means, world.quats, world.scales, world.opacities],
        [means_grad, inputs[1].grad, inputs[2].grad, inputs[3].grad],
    )
    clock.stop("LBS/binding", "backward")

    clock.start()
    optimizer.step()
    clock.stop("optimizer", "backward")
    return clock


def avatar_rasterize(inputs, world_to_cam, K, width, height, background):
    from avatars.render import rasterize

    means, quats, scales, opacities, colors = inputs
    return rasterize(
        means, quats, scales, opacities, colors, world_to_cam[None], K[None], width, height,
        background=background,
    )  # fmt: skip


def step_loss(avatar, config, pred, alpha, visible, target, mask):
    """``fit_avatar``'s loss without the perceptual terms (their weights are not on this machine):
    L1 + D-SSIM, position and scaling regularizers, silhouette and wrinkle terms when weighted."""
    from avatars.gaussian_speech_avatar import photometric_loss, silhouette_loss, wrinkle_loss

    rgb = photometric_loss(pred, target, config.lambda_dssim)
    position_reg, scale_reg = avatar.rig.regularizers(visible, config.threshold_xyz, config.threshold_scale)
    loss = rgb + config.lambda_xyz * position_reg + config.lambda_scale * scale_reg
    if config.lambda_alpha > 0:
        loss = loss + config.lambda_alpha * silhouette_loss(alpha, mask)
    if config.lambda_wrinkle > 0:
        loss = loss + config.lambda_wrinkle * wrinkle_loss(pred, target, mask, config.wrinkle_sigmas)
    return loss


def whole_step(avatar, data, config, optimizer, i: int, background: torch.Tensor) -> None:
    """``fit_avatar``'s step (without its densification statistics and perceptual terms)."""
    frame, camera = int(data.frame_index[i]), int(data.camera_index[i])
    target, mask = data.target(i)
    out = avatar.render(
        data.vertices[frame], data.conditions[frame], data.head_rotations[frame],
        data.world_to_cam[camera], data.Ks[camera], data.width, data.height, background,
    )  # fmt: skip
    loss = step_loss(avatar, config, out.features[0], out.alpha[0], out.radii[0] > 0, target, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset folder (gsbench ingest output)")
    parser.add_argument("--budget", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--subject", default=None, help="default: the dataset's first subject")
    parser.add_argument("--steps", type=int, default=30, help="timed steps (medians)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument(
        "--kernel", metavar="GIT_REF", help="rasterize with the compositing kernel of GIT_REF"
    )
    parser.add_argument("--concat-color-mlp", action="store_true", help="the colour MLP as before issue 22")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.kernel:
        use_reference_kernel(args.kernel)
    if args.concat_color_mlp:
        use_concatenated_color_mlp()

    from avatars.gaussian_speech_avatar import (
        GaussianSpeechAvatar,
        build_binding,
        make_optimizer,
        scene_extent,
    )
    from avatars.methods.flame_avatar import fit_data
    from avatars.methods.gaussianspeech_avatar import GaussianSpeechAvatarMethod
    from benchmark.dataset import load_dataset
    from benchmark.protocols import TrainView

    dataset = load_dataset(args.data)
    subject = args.subject or dataset.subjects[0]
    method = GaussianSpeechAvatarMethod(seed=0)
    budget_config = method.budget_config(args.budget)
    config = budget_config.avatar
    head = method.head_model
    start = time.perf_counter()
    training = method._avatar_training_data(TrainView(dataset, "multiview", subject), budget_config)
    data = fit_data(training, method._flame_layer(), config.condition_on_jaw)
    assemble_s = time.perf_counter() - start
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, config.mouth_subdivision)
    avatar = GaussianSpeechAvatar(binding, int(data.conditions.shape[1]), config, seed=0)
    optimizer = make_optimizer(avatar, config, scene_extent(data.world_to_cam))
    background = torch.zeros(3)
    generator = torch.Generator().manual_seed(0)
    order = torch.randint(data.images.shape[0], (args.warmup + args.steps,), generator=generator)

    clocks, totals = [], []
    for n, i in enumerate(order.tolist()):
        clock = staged_step(avatar, data, config, optimizer, i, background)
        wall, cpu = time.perf_counter(), time.process_time()
        whole_step(avatar, data, config, optimizer, i, background)
        if n >= args.warmup:
            clocks.append(clock)
            totals.append((time.perf_counter() - wall, time.process_time() - cpu))

    load = os.getloadavg()
    print(
        f"# {args.budget}, multiview, {data.images.shape[0]} training images of {data.width}x{data.height}, "
        f"{avatar.num_gaussians} Gaussians, torch threads {torch.get_num_threads()}, "
        f"kernel {args.kernel or 'working tree'}, "
        f"colour MLP {'concatenated' if args.concat_color_mlp else 'shared psi'}"
    )
    print(
        f"# load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; training set built in {assemble_s:.1f} s"
    )
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"# medians over {len(clocks)} steps, ms: wall (CPU of this process); OMP_WAIT_POLICY {policy}")
    print(f"{'stage':<12} {'forward':>17} {'backward':>17}")

    def med(values):
        return statistics.median(values) * 1e3

    for stage in STAGES:
        cells = []
        for direction in ("forward", "backward"):
            if (stage, direction) not in clocks[0].times:
                cells.append(f"{'-':>17}")
                continue
            wall = med([c.times[(stage, direction)][0] for c in clocks])
            cpu = med([c.times[(stage, direction)][1] for c in clocks])
            cells.append(f"{wall:>8.1f} ({cpu:>6.1f})")
        print(f"{stage:<12} {cells[0]} {cells[1]}")
    staged = [sum(t[0] for t in c.times.values()) for c in clocks]
    staged_cpu = [sum(t[1] for t in c.times.values()) for c in clocks]
    print(f"{'sum':<12} {med(staged):>8.1f} ({med(staged_cpu):>6.1f})   (stages, forward + backward)")
    print(
        f"{'total':<12} {med([t[0] for t in totals]):>8.1f} ({med([t[1] for t in totals]):>6.1f})"
        "   (one step without stages, as fit_avatar)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
