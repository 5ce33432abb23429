"""HiCoDe (avatars.hicode, avatars.methods.hicode): HFEC equations, deformation, geometry, losses, method."""

from __future__ import annotations

import dataclasses
import math

import avatar_support as support
import numpy as np
import pytest
import torch

from avatars.hicode import geometry
from avatars.hicode.compositor import Compositor, CompositorConfig, composition_losses, fit_compositor
from avatars.hicode.hfec import (
    VARIANTS,
    Controls,
    DeformationConfig,
    DeformationNetwork,
    ThreeDMMStatistics,
    adain,
    landmark_attention,
)
from avatars.hicode.losses import wing_loss
from avatars.hicode.model import HiCoDeHead
from avatars.methods.base import Camera, RenderRequest
from gsbench.errors import ConfigError, MethodError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS = 1e-5


# --- Eqs. 9-12 against loops written from the paper's formulas ---------------------------------------------


def loop_attention(q, k, v, eps=EPS):
    """W_μ = V softmax(QᵀK)ᵀ, W_σ = sqrt((V∘V) softmax(QᵀK)ᵀ − W_μ∘W_μ), element by element."""
    n, c = q.shape
    num_l = k.shape[0]
    w_mu = np.zeros((n, c))
    w_sigma = np.zeros((n, c))
    for i in range(n):
        logits = [sum(q[i, ch] * k[j, ch] for ch in range(c)) for j in range(num_l)]
        top = max(logits)
        weights = [math.exp(x - top) for x in logits]
        total = sum(weights)
        weights = [w / total for w in weights]
        for ch in range(c):
            mean = sum(weights[j] * v[j, ch] for j in range(num_l))
            second = sum(weights[j] * v[j, ch] ** 2 for j in range(num_l))
            w_mu[i, ch] = mean
            w_sigma[i, ch] = math.sqrt(max(second - mean * mean, 0.0) + eps)
    return w_mu, w_sigma


def loop_adain(x, mean, std, eps=EPS):
    """std (x − μ(x)) / σ(x) + mean with μ, σ per channel over the N rows (σ = sqrt(var + ε))."""
    n, c = x.shape
    out = np.zeros((n, c))
    for ch in range(c):
        mu = sum(x[i, ch] for i in range(n)) / n
        sigma = math.sqrt(sum((x[i, ch] - mu) ** 2 for i in range(n)) / n + eps)
        for i in range(n):
            m = mean[i, ch] if np.ndim(mean) == 2 else mean[ch]
            s = std[i, ch] if np.ndim(std) == 2 else std[ch]
            out[i, ch] = s * (x[i, ch] - mu) / sigma + m
    return out


def test_landmark_attention_mean_and_std_match_eqs_9_10():
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((7, 5)), rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    w_mu, w_sigma = landmark_attention(*(torch.tensor(a) for a in (q, k, v)), eps=EPS)
    expected_mu, expected_sigma = loop_attention(q, k, v)
    np.testing.assert_allclose(w_mu.numpy(), expected_mu, atol=1e-12)
    np.testing.assert_allclose(w_sigma.numpy(), expected_sigma, atol=1e-12)
    # One dominant key: the mean is that landmark's value and the spread vanishes (up to ε).
    k_sharp = np.zeros((4, 5))
    k_sharp[2] = 100.0 * np.sign(q.sum(0))
    q_pos = np.abs(q) * np.sign(q.sum(0))
    w_mu, w_sigma = landmark_attention(*(torch.tensor(a) for a in (q_pos, k_sharp, v)), eps=0.0)
    np.testing.assert_allclose(w_mu.numpy(), np.broadcast_to(v[2], (7, 5)), atol=1e-6)
    assert float(w_sigma.max()) < 1e-3


def test_adain_matches_eqs_11_12():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3)) * 2 + 1
    per_gaussian_mean, per_gaussian_std = rng.standard_normal((6, 3)), rng.random((6, 3)) + 0.5
    out = adain(torch.tensor(x), torch.tensor(per_gaussian_mean), torch.tensor(per_gaussian_std), EPS)
    np.testing.assert_allclose(out.numpy(), loop_adain(x, per_gaussian_mean, per_gaussian_std), atol=1e-12)
    channel_mean, channel_std = rng.standard_normal(3), rng.random(3) + 0.5
    out = adain(torch.tensor(x), torch.tensor(channel_mean), torch.tensor(channel_std), EPS)
    np.testing.assert_allclose(out.numpy(), loop_adain(x, channel_mean, channel_std), atol=1e-12)
    # Eq. 12 with per-channel statistics: the result has exactly those statistics over the Gaussians.
    np.testing.assert_allclose(out.numpy().mean(0), channel_mean, atol=1e-12)
    np.testing.assert_allclose(out.numpy().std(0), channel_std, rtol=1e-4)


def _network(variant="full", channels=6, num_landmarks=5, num_coefficients=4, seed=0):
    torch.manual_seed(seed)
    config = DeformationConfig(
        channels=channels, pe_frequencies=2, embed_hidden=8, head_hidden=8, variant=variant
    )
    net = DeformationNetwork(
        config, num_coefficients, num_landmarks, torch.zeros(num_landmarks, 3), 0.1, audio_dim=3
    ).double()
    # Non-zero head so that the output depends on M (a trained network).
    torch.nn.init.normal_(net.head[-1].weight, std=0.5)
    return net


def _controls(num_landmarks=5, num_coefficients=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Controls(
        threedmm=torch.randn(num_coefficients, generator=g, dtype=torch.float64),
        landmarks=0.3 * torch.randn(num_landmarks, 3, generator=g, dtype=torch.float64),
        audio=torch.randn(3, generator=g, dtype=torch.float64),
    )


def test_hfec_is_landmark_adain_then_3dmm_adain():
    net = _network()
    controls = _controls()
    locations = torch.rand(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    q = net.location(locations).detach().numpy()
    embedded = net.location(controls.landmarks)
    keys, values = net.landmark_tokens(
        embedded, (controls.landmarks - net.landmark_mean) / net.landmark_scale
    )
    w_mu, w_sigma = loop_attention(q, keys.detach().numpy(), values.detach().numpy(), EPS)
    y = loop_adain(q, w_mu, w_sigma)  # Eq. 11
    tokens = (controls.threedmm[:, None] * net.threedmm.scale + net.threedmm.bias).detach().numpy()
    z_mu = tokens.mean(0)
    z_sigma = np.sqrt(tokens.var(0) + EPS)
    expected = loop_adain(y, z_mu, z_sigma)  # Eq. 12 after Eq. 11
    np.testing.assert_allclose(net.modulated(locations, controls).detach().numpy(), expected, atol=1e-9)


def test_threedmm_statistics_are_per_channel_over_coefficient_tokens():
    stats = ThreeDMMStatistics(4, DeformationConfig(channels=3))
    z = torch.tensor([0.5, -1.0, 2.0, 0.0])
    mean, std = stats(z)
    tokens = [
        [float(z[k] * stats.scale[k, c].detach() + stats.bias[k, c].detach()) for c in range(3)]
        for k in range(4)
    ]
    expected_mean = np.mean(tokens, axis=0)
    np.testing.assert_allclose(mean.detach().numpy(), expected_mean, atol=1e-6)
    np.testing.assert_allclose(std.detach().numpy(), np.sqrt(np.var(tokens, axis=0) + 1e-5), atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ablation_variants_use_only_their_signals(variant):
    net = _network(variant)
    locations = torch.rand(8, 3, dtype=torch.float64) * 2 - 1
    base = _controls(seed=1)
    other = _controls(seed=2)
    out = net(locations, base)
    assert all(o.shape == (8, n) for o, n in zip(out, (3, 4, 3), strict=True))

    def changed(**swap):
        moved = net(locations, dataclasses.replace(base, **swap))
        return max(float((a - b).abs().max()) for a, b in zip(moved, out, strict=True)) > 1e-9

    uses_3dmm = variant not in ("no_3dmm", "none")
    uses_landmarks = variant not in ("no_landmarks", "none")
    assert changed(threedmm=other.threedmm) == uses_3dmm
    assert changed(landmarks=other.landmarks) == uses_landmarks
    assert changed(audio=other.audio) == (variant == "none")


def _head(num=30, variant="full"):
    gen = torch.Generator().manual_seed(3)
    from avatars.methods.hicode import initial_gaussians

    points = (torch.rand(num, 3, generator=gen) - 0.5) * 0.2
    gaussians = initial_gaussians(points.numpy(), torch.rand(num, 3, generator=gen).numpy())
    config = DeformationConfig(channels=8, pe_frequencies=2, embed_hidden=8, head_hidden=8, variant=variant)
    net = DeformationNetwork(config, 4, 5, torch.zeros(5, 3), 0.1, audio_dim=3)
    return HiCoDeHead(gaussians, net, torch.zeros(3), 0.1, torch.tensor([0.0, -0.02, -0.01]))


def test_deformation_starts_at_identity():
    head = _head()
    controls = _controls()
    controls = Controls(
        *(None if t is None else t.float() for t in (controls.threedmm, controls.landmarks, controls.audio))
    )
    for a, b in zip(head.deformed(controls), head.deformed(None), strict=True):
        assert torch.equal(a, b)
    delta = head.deformation(head.normalise(head.gaussians.means), controls)
    assert all(float(d.abs().max()) == 0.0 for d in delta)


def test_eq8_adds_the_offsets_to_location_rotation_and_log_scale():
    head = _head()
    last = head.deformation.head[-1]
    with torch.no_grad():
        last.bias.copy_(torch.tensor([0.1, 0.0, -0.2, 0.0, 0.3, 0.0, 0.0, 0.5, 0.5, 0.5]))
    controls = Controls(torch.zeros(4), torch.zeros(5, 3), torch.zeros(3))
    means, quats, scales = head.deformed(controls)
    g = head.gaussians
    np.testing.assert_allclose(
        means.detach(), g.means.detach() + torch.tensor([0.1, 0.0, -0.2]) * 0.1, atol=1e-7
    )
    expected_q = torch.nn.functional.normalize(g.quats.detach() + torch.tensor([0.0, 0.3, 0.0, 0.0]), dim=-1)
    np.testing.assert_allclose(quats.detach(), expected_q, atol=1e-7)
    np.testing.assert_allclose(scales.detach(), g.scales.detach() * math.exp(0.5), rtol=1e-6)
    # Opacity and colour stay canonical: they are not outputs of F_Δ at all.
    assert last.out_features == 10


def test_placement_is_flames_rigid_transform_about_the_root_joint():
    from tracking.flame import FlameLayer

    head_model = support.sphere_head()
    flame = FlameLayer(head_model, dtype=torch.float64)
    canonical = flame()
    rotation = torch.tensor([[0.2, -0.4, 0.1]], dtype=torch.float64)
    translation = torch.tensor([[0.01, -0.03, 0.05]], dtype=torch.float64)
    posed = flame(rotation=rotation, translation=translation).vertices[0]
    head = _head().double()
    head.root_joint.copy_(canonical.joints[0, 0])
    matrix = torch.as_tensor(geometry.axis_angle_matrix(rotation.numpy())[0])
    quats = torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64).expand(len(posed), 4)
    world, world_quats = head.place(canonical.vertices[0], quats, matrix, translation[0])
    np.testing.assert_allclose(world.numpy(), posed.numpy(), atol=1e-10)
    back = geometry.world_to_canonical(
        world.numpy(), matrix.numpy(), translation[0].numpy(), head.root_joint.numpy()
    )
    np.testing.assert_allclose(back, canonical.vertices[0].numpy(), atol=1e-10)
    from avatars.rigged import quaternion_to_matrix

    np.testing.assert_allclose(quaternion_to_matrix(world_quats[:1])[0].numpy(), matrix.numpy(), atol=1e-10)


# --- geometry -----------------------------------------------------------------------------------------------


def _posed_sphere(rotation=(0.1, 0.3, 0.0), translation=(0.0, 0.01, 0.0)):
    from tracking.flame import FlameLayer

    head_model = support.sphere_head()
    flame = FlameLayer(head_model, dtype=torch.float64)
    canonical = flame()
    posed = flame(
        rotation=torch.tensor([rotation], dtype=torch.float64),
        translation=torch.tensor([translation], dtype=torch.float64),
    )
    viewmats, Ks = support.cameras(3, 48)
    return head_model, canonical, posed, viewmats[1], Ks[1]


def test_pose_free_landmarks_recover_the_canonical_points():
    head_model, canonical, posed, world_to_cam, K = _posed_sphere()
    vertices_world = posed.vertices[0].numpy()
    front = np.flatnonzero(head_model.v_template[:, 2] > 0.07)  # visible from the front cameras
    cam = vertices_world[front] @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    pixels = (cam @ K.T)[:, :2] / (cam @ K.T)[:, 2:3]
    pixels = np.concatenate([pixels, [[np.nan, np.nan], [-50.0, -50.0]]])  # undetected, off the mesh
    rotation = geometry.axis_angle_matrix(np.array([[0.1, 0.3, 0.0]]))
    canon, valid = geometry.pose_free_landmarks(
        pixels[None], np.array([True]), vertices_world[None], head_model.faces, K, world_to_cam,
        rotation, np.array([[0.0, 0.01, 0.0]]), canonical.joints[0, 0].numpy(),
    )  # fmt: skip
    assert valid[0, : len(front)].all() and not valid[0, len(front) :].any()
    np.testing.assert_allclose(canon[0, : len(front)], canonical.vertices[0].numpy()[front], atol=2e-5)


def test_depth_point_cloud_is_one_point_per_head_pixel_on_the_mesh():
    from tracking.head.preview import render_mesh

    head_model, _, posed, world_to_cam, K = _posed_sphere()
    vertices = posed.vertices[0].numpy()
    coverage = render_mesh(
        vertices,
        head_model.faces,
        K,
        world_to_cam,
        48,
        48,
        vertex_colors=np.ones((len(vertices), 3)),
        supersample=1,
    )
    mask = coverage.depth < np.inf
    image = np.full((48, 48, 3), 128, np.uint8)
    points, colours = geometry.depth_point_cloud(vertices, head_model.faces, K, world_to_cam, mask, image, 1)
    assert len(points) == mask.sum() and np.allclose(colours, 128 / 255)
    # Each point is where its pixel's ray meets the mesh: re-projected depth = rendered depth, on the sphere.
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    np.testing.assert_allclose(np.sort(cam[:, 2]), np.sort(coverage.depth[mask]), atol=1e-6)
    centre = posed.joints[0, 0].numpy()
    radius = np.linalg.norm(points - centre, axis=1)
    assert np.abs(radius - support.RADIUS).max() < 0.01  # a faceted sphere of radius 0.1 m
    strided, _ = geometry.depth_point_cloud(vertices, head_model.faces, K, world_to_cam, mask, image, 2)
    assert len(strided) == mask[::2, ::2].sum()


# --- losses -------------------------------------------------------------------------------------------------


def test_wing_loss_values():
    w, eps = 10.0, 2.0
    c = w - w * math.log(1 + w / eps)
    pred = torch.tensor([[1.0, 0.0], [15.0, 0.0], [0.0, -3.0], [10.0, 0.0]])
    values = wing_loss(pred, torch.zeros_like(pred), w, eps)
    expected = [w * math.log(1 + 1 / eps), 15 - c, w * math.log(1 + 3 / eps), 10 - c]
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-6)
    # Continuous at |x| = w (C is chosen for that).
    assert w * math.log(1 + w / eps) == pytest.approx(w - c)


# --- compositor ---------------------------------------------------------------------------------------------


def test_compositor_shapes_feature_matching_and_training():
    torch.manual_seed(0)
    config = CompositorConfig(levels=3, ngf=4, ndf=4, n_layers=2, steps=40, size=16, lr=2e-3)
    model = Compositor(config)
    face = torch.zeros(1, 3, 16, 16)
    face[..., 4:12, 4:12] = 0.8
    background = torch.full((1, 3, 16, 16), 0.3)
    background[..., 4:12, 4:12] = 0.0
    target = background + face
    assert model(face, background).shape == (1, 3, 16, 16)
    # Feature matching is zero when the output equals the ground truth: D sees identical pairs.
    feats = model.discriminator(torch.cat([face, background, target], 1))
    again = model.discriminator(torch.cat([face, background, target], 1))
    assert sum(float((a - b).abs().mean()) for a, b in zip(feats[:-1], again[:-1], strict=True)) == 0.0
    before = float(((model(face, background) - target) ** 2).mean())
    history = fit_compositor(model, face, background, target, None, seed=0)
    after = float(((model(face, background) - target) ** 2).mean())
    assert len(history) == 40 and after < 0.5 * before
    _, d_loss, terms = composition_losses(model, face, background, target, None)
    assert set(terms) >= {"l2", "matching", "adversarial", "discriminator"} and torch.isfinite(d_loss)


# --- the method ---------------------------------------------------------------------------------------------

SIZE = 32
NUM_FRAMES = 6


class SphereTrainView:
    """Two training sequences of the sphere head seen by one camera, with 478 'MediaPipe' landmarks
    (projections of points on the mesh) and speech-like audio whose loudness follows the jaw."""

    def __init__(self):
        from tracking.flame import FlameLayer
        from tracking.head.preview import render_mesh

        self.protocol, self.subject, self.fps = "mono-front", "s01", 25.0
        self.image_size = (SIZE, SIZE)
        viewmats, Ks = support.cameras(3, SIZE)
        self.camera = Camera("cam01", Ks[1], viewmats[1], SIZE, SIZE)
        self.cameras = {"cam01": self.camera}
        self.sequences = ("s01_t00", "s01_t01")
        self.head = support.sphere_head()
        flame = FlameLayer(self.head)
        rng = np.random.default_rng(0)
        front = np.flatnonzero(self.head.v_template[:, 2] > 0.06)
        landmark_vertices = front[rng.integers(0, len(front), 478)]
        self.data = {}
        for index, sequence in enumerate(self.sequences):
            jaw = np.zeros((NUM_FRAMES, 3), np.float32)
            jaw[:, 0] = 0.2 * (np.arange(NUM_FRAMES) % 3) / 2
            expr = np.zeros((NUM_FRAMES, self.head.num_expr), np.float32)
            expr[:, 0] = np.linspace(0, 1, NUM_FRAMES) * (index + 1)
            rotation = np.zeros((NUM_FRAMES, 3), np.float32)
            rotation[:, 1] = 0.05 * np.arange(NUM_FRAMES)
            translation = np.zeros((NUM_FRAMES, 3), np.float32)
            images, masks, points = [], [], []
            for t in range(NUM_FRAMES):
                out = flame(
                    expr=torch.tensor(expr[t : t + 1]),
                    jaw_pose=torch.tensor(jaw[t : t + 1]),
                    rotation=torch.tensor(rotation[t : t + 1]),
                )
                vertices = out.vertices[0].numpy()
                result = render_mesh(
                    vertices, self.head.faces, self.camera.K, self.camera.world_to_cam, SIZE, SIZE,
                    vertex_colors=support.vertex_colors(self.head, expr[t]), background=(0.0, 0.0, 0.0),
                )  # fmt: skip
                images.append(result.image)
                masks.append(result.mask > 0.5)
                points.append(self.camera.project(vertices[landmark_vertices]))
            envelope = np.repeat(jaw[:, 0] * 5 + 0.1, 640)
            audio = (envelope * np.sin(np.arange(NUM_FRAMES * 640) * 0.3)).astype(np.float32)
            self.data[sequence] = {
                "images": np.stack(images),
                "masks": np.stack(masks),
                "landmarks": np.stack(points).astype(np.float32),
                "audio": audio,
                "flame": {
                    "expr": expr,
                    "jaw_pose": jaw,
                    "neck_pose": np.zeros((NUM_FRAMES, 3), np.float32),
                    "eyes_pose": np.zeros((NUM_FRAMES, 6), np.float32),
                    "rotation": rotation,
                    "translation": translation,
                    "shape": np.zeros(2, np.float32),
                },
            }

    def num_frames(self, sequence):
        return NUM_FRAMES

    def load_audio(self, sequence):
        return self.data[sequence]["audio"]

    def load_images(self, sequence, camera, frames=None):
        images = self.data[sequence]["images"]
        return images if frames is None else images[list(frames)]

    def load_masks(self, sequence, camera, frames=None):
        masks = self.data[sequence]["masks"]
        return masks if frames is None else masks[list(frames)]

    def load_landmarks(self, sequence, camera):
        return self.data[sequence]["landmarks"], np.ones(NUM_FRAMES, bool)

    def load_flame(self, sequence):
        return self.data[sequence]["flame"]


@pytest.fixture(scope="module")
def sphere_view():
    return SphereTrainView()


def _request(view, num_frames=3):
    return RenderRequest(
        protocol="mono-front",
        sequence="s01_t09",
        audio=view.data["s01_t00"]["audio"][: num_frames * 640],
        sample_rate=16000,
        fps=25.0,
        num_frames=num_frames,
        rotation=np.tile([0.0, 0.1, 0.0], (num_frames, 1)).astype(np.float32),
        translation=np.zeros((num_frames, 3), np.float32),
        camera=view.camera,
    )


def test_method_trains_renders_and_round_trips(sphere_view, tmp_path):
    from avatars.methods.hicode import HiCoDeMethod
    from benchmark.methods import get_method, resolve_methods

    assert get_method("hicode") is HiCoDeMethod and "hicode" in resolve_methods("all")
    assert not HiCoDeMethod.oracle and HiCoDeMethod.protocols == ("mono-front", "cross-id")
    method = HiCoDeMethod(seed=0, head_model=sphere_view.head)
    stats = method.train(sphere_view, "smoke", tmp_path / "work")
    info = method.info()
    assert info["audio_encoder"].startswith("logmel50") and info["audio_encoder_fallback_reason"]
    assert "vgg" in info["disabled_losses"] and "not used for ranked rows" in info["compositor"]
    assert stats.extra["landmark_valid_fraction"] > 0.9  # the landmarks lie on the mesh
    # Densification added Gaussians in the first two stages and none in refinement.
    gaussians = info["stage_gaussians"]
    assert gaussians["initialization"] > info["initial_gaussians"]
    assert gaussians["refinement"] == gaussians["deformation"] == method.num_gaussians()
    request = _request(sphere_view)
    output = method.render(request)
    output.validate(request)
    assert output.alpha.max() > 0.5 and output.alpha[:, 0, 0].max() < 0.05
    method.save(tmp_path / "ckpt")
    loaded = HiCoDeMethod(seed=0)
    loaded.load(tmp_path / "ckpt")
    again = loaded.render(request)
    np.testing.assert_array_equal(again.rgb, output.rgb)
    np.testing.assert_array_equal(again.alpha, output.alpha)
    # Same seed, same frames.
    twin = HiCoDeMethod(seed=0, head_model=sphere_view.head)
    twin.train(sphere_view, "smoke", tmp_path / "work2")
    np.testing.assert_array_equal(twin.render(request).rgb, output.rgb)
    with pytest.raises(MethodError, match="before train"):
        HiCoDeMethod().render(request)


def test_config_records_the_assumptions_and_budgets():
    from avatars.methods.hicode import HiCoDeMethod

    method = HiCoDeMethod()
    paper = method.config("paper")
    assert (paper["head"]["init_steps"], paper["head"]["deform_steps"], paper["head"]["refine_steps"]) == (
        3000,
        2000,
        15000,
    )
    quick = method.config("quick")
    assert quick["head"]["init_steps"] + quick["head"]["deform_steps"] + quick["head"]["refine_steps"] == 1000
    assert {"hfec", "init", "losses", "landmarks", "3dmm", "compositor"} <= set(quick["assumptions"])
    ablation = HiCoDeMethod(overrides={"deformation.variant": "no_3dmm", "init": "random"}).config("quick")
    assert ablation["deformation"]["variant"] == "no_3dmm" and ablation["init"] == "random"
    with pytest.raises(ConfigError, match="'variant'.*did you mean 'deformation.variant'"):
        HiCoDeMethod(overrides={"variant": "no_3dmm"})  # a key names its section
    with pytest.raises(ConfigError, match="variant 'bogus'"):
        HiCoDeMethod(overrides={"deformation.variant": "bogus"})


def test_trainer_stages_densify_only_before_refinement_and_respect_the_cap():
    from avatars.hicode.trainer import HeadData, HeadTrainConfig, stage_of, train_head

    def data():
        gen = torch.Generator().manual_seed(5)
        world_to_cam = torch.tensor(support.cameras(3, 16)[0][1], dtype=torch.float32)
        return HeadData(
            images=(torch.rand(3, 16, 16, 3, generator=gen) * 255).to(torch.uint8),
            masks=torch.ones(3, 16, 16, dtype=torch.bool),
            rotations=torch.eye(3).expand(3, 3, 3).clone(),
            translations=torch.zeros(3, 3),
            threedmm=torch.randn(3, 4, generator=gen),
            landmarks=0.3 * torch.randn(3, 5, 3, generator=gen),
            landmarks2d=torch.rand(3, 5, 2, generator=gen) * 16,
            landmarks2d_valid=torch.ones(3, 5, dtype=torch.bool),
            mouth_boxes=[None, (2, 10, 2, 10), None],
            world_to_cam=world_to_cam,
            K=torch.tensor(support.cameras(3, 16)[1][1], dtype=torch.float32),
        )

    config = HeadTrainConfig(
        init_steps=3, deform_steps=3, refine_steps=3, densify_every=1, densify_from=0, grow_grad2d=0.0
    )
    assert [stage_of(s, config) for s in (1, 3, 4, 6, 7, 9)] == [
        "initialization",
        "initialization",
        "deformation",
        "deformation",
        "refinement",
        "refinement",
    ]
    head = _head()
    start = len(head.gaussians)
    log = train_head(head, data(), config, landmark_anchor_points=torch.zeros(5, 3), densify_scale=0.1)
    assert log.stage_gaussians["initialization"] > start  # every Gaussian has gradient: all grow
    assert log.stage_gaussians["refinement"] == log.stage_gaussians["deformation"]
    assert {event["stage"] for event in log.densification} == {"initialization", "deformation"}
    capped = _head()
    config = dataclasses.replace(config, max_gaussians=start)
    log = train_head(capped, data(), config, landmark_anchor_points=torch.zeros(5, 3), densify_scale=0.1)
    assert not log.densification and len(capped.gaussians) == start
