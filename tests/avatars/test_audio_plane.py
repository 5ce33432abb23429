"""Audio-Plane (avatars.audio_plane, avatars.methods.audio_plane): Eqs. 4-9, stages, placement, round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from avatars.audio_plane.audio_net import AudioAttNet, AudioEncoderNet, neighbour_windows
from avatars.audio_plane.deformation import ATTRIBUTES, DeformationMLP, GaussianState, deform
from avatars.audio_plane.model import (
    AudioPlaneConfig,
    AudioPlaneHead,
    Placement,
    mask_hinge_loss,
    mouth_masks,
    render_head,
)
from avatars.audio_plane.planes import AudioPlane, PrototypeAttention, SpatialAudioConcat
from avatars.render import rasterize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_plane(**kwargs) -> AudioPlane:
    args = dict(dim_audio=6, resolution=4, dim=3, scales=(1, 2, 3, 4), seed=0)
    return AudioPlane(**{**args, **kwargs})


def test_eq6_feature_size_is_scales_times_pairs_times_d():
    points = torch.rand(17, 3) * 2 - 1
    audio = torch.randn(1, 6)
    plane = small_plane()
    assert plane(points, audio).shape == (17, 4 * 3 * 3)  # 4 scales x 3 (plane, grid) pairs x D
    paper = AudioPlane(dim_audio=32, resolution=64, dim=16, scales=(1, 2, 3, 4))
    assert paper.out_dim == 192  # method spec 2.2: 4 x 3 x 16 at the paper's D
    assert [tuple(p.shape) for p in paper.planes] == [(3, 16, 64 * s, 64 * s) for s in (1, 2, 3, 4)]
    assert [tuple(a.prototypes.shape) for a in paper.attention] == [(64 * s, 16) for s in (1, 2, 3, 4)]
    for fusion in ("multiply", "add"):  # Table 2: one D-vector per scale
        assert small_plane(fusion=fusion)(points, audio).shape == (17, 4 * 3)


def test_eq6_is_the_product_of_plane_grid_and_audio_feature_per_pair():
    """One pair of one scale recomputed by hand: bilinear P_ij(x_i, x_j) * linear L_k(x_k) * f_a."""
    plane = small_plane(scales=(1,))
    point = torch.tensor([[0.3, -0.5, 0.8]])
    audio = torch.randn(1, 6)
    f = plane(point, audio)
    f_a = plane.attention[0](audio)[0]
    resolution = 4

    def lerp_line(line, u):  # line [D, R], u in [-1, 1], align_corners
        x = (u + 1) / 2 * (resolution - 1)
        i = min(int(math.floor(x)), resolution - 2)
        w = x - i
        return line[:, i] * (1 - w) + line[:, i + 1] * w

    def bilerp(p, u, v):  # p [D, R(rows = v), R(cols = u)]
        rows = torch.stack([lerp_line(p[:, r, :], u) for r in range(resolution)], dim=1)
        return lerp_line(rows, v)

    x = point[0].tolist()
    pairs = ((0, 1, 2), (0, 2, 1), (1, 2, 0))
    expected = torch.cat(
        [
            bilerp(plane.planes[0][p], x[i], x[j]) * lerp_line(plane.lines[0][k], x[k]) * f_a
            for p, (i, j, k) in enumerate(pairs)
        ]
    )
    assert torch.allclose(f[0], expected, atol=1e-5)


@pytest.mark.parametrize("factor", ["space plane", "1D grid", "prototype grid"])
def test_each_factor_of_eq6_matters(factor):
    points = torch.rand(40, 3) * 2 - 1
    audio = torch.randn(1, 6)
    plane = small_plane()
    before = plane(points, audio).detach()
    with torch.no_grad():
        if factor == "space plane":
            plane.planes[2][0].zero_()  # P^3_XY
            changed = slice(2 * 9, 2 * 9 + 3)  # scale 3, pair (X, Y, Z)
        elif factor == "1D grid":
            plane.lines[1][2].zero_()  # L^2_Z, used by the (X, Y, Z) pair
            changed = slice(9, 9 + 3)
        else:
            plane.attention[0].prototypes.zero_()  # A^1: f^1_a = 0
            changed = slice(0, 9)
    after = plane(points, audio).detach()
    assert float((after[:, changed] - before[:, changed]).abs().min()) > 0 or factor == "prototype grid"
    assert float((after[:, changed] - before[:, changed]).abs().max()) > 1e-3
    assert float(after[:, changed].abs().max()) == 0.0  # the zeroed factor multiplies its whole pair
    untouched = torch.ones(36, dtype=torch.bool)
    untouched[changed] = False
    assert torch.equal(after[:, untouched], before[:, untouched])  # the other factors stay as they were


def test_eq4_cross_attention_matches_the_direct_formula():
    attention = PrototypeAttention(dim_audio=5, num_prototypes=7, dim=4)
    audio = torch.randn(3, 5)
    normed = (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(
        audio.var(-1, unbiased=False, keepdim=True) + 1e-5
    )
    q = normed @ attention.query.weight.T + attention.query.bias  # Q = a (pre-norm, projected to d_k)
    A = attention.prototypes  # K = V = A
    logits = q @ A.T / math.sqrt(4)
    expected = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True) @ A
    assert torch.allclose(attention(audio), expected, atol=1e-6)
    assert torch.allclose(attention.scores(audio) @ A, expected, atol=1e-6)
    # Table 2 "MLP" backbone: scores predicted by an MLP, still a convex combination of the prototypes
    mlp = PrototypeAttention(dim_audio=5, num_prototypes=7, dim=4, backbone="mlp")
    scores = mlp.scores(audio)
    assert torch.allclose(scores.sum(-1), torch.ones(3)) and torch.allclose(
        mlp(audio), scores @ mlp.prototypes
    )


def test_without_audio_plane_the_audio_is_concatenated_with_a_spatial_embedding():
    embed = SpatialAudioConcat(dim_audio=6, resolution=4, dim=3, scales=(1, 2))
    points = torch.rand(5, 3) * 2 - 1
    audio = torch.randn(1, 6)
    f = embed(points, audio)
    assert f.shape == (5, 2 * 3 * 3 + 6) == (5, embed.out_dim)
    assert torch.equal(f[:, -6:], audio.expand(5, -1))
    assert not any("prototypes" in name or "lines" in name for name, _ in embed.named_parameters())


def test_audio_att_net_weights_are_a_softmax_over_eight_neighbours():
    net = AudioAttNet(dim_aud=4)
    features = torch.randn(2, 8, 4)
    weights = net.weights(features)
    assert weights.shape == (2, 8) and torch.allclose(weights.sum(-1), torch.ones(2))
    assert torch.allclose(net(features), (weights[..., None] * features).sum(1))
    encoder = AudioEncoderNet(dim_in=29, dim_aud=4)
    assert encoder(torch.randn(3, 8, 16, 29)).shape == (3, 4)
    windows = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 16, 2), np.float32)
    stack = neighbour_windows(windows, np.array([0, 4]))
    assert stack[0, :, 0, 0].tolist() == [0, 0, 0, 0, 0, 1, 2, 3]  # frames -4..3, zero before the start
    assert stack[1, :, 0, 0].tolist() == [0, 1, 2, 3, 4, 0, 0, 0]  # and after the end


def test_eq7_deformation_is_scaled_by_the_dynamism():
    n = 4
    state = GaussianState(
        torch.randn(n, 3), torch.randn(n, 4), torch.randn(n, 3), torch.randn(n), torch.randn(n, 1, 3),
        torch.randn(n, 3, 3),
    )  # fmt: skip
    delta = {name: torch.randn(n, size) for name, size in ATTRIBUTES.items()}
    d = torch.tensor([0.0, 0.25, 0.5, 1.0])
    out = deform(state, delta, d)
    assert torch.allclose(out.means, state.means + d[:, None] * delta["means"])
    assert torch.allclose(out.opacities, state.opacities + d * delta["opacities"][:, 0])
    assert torch.allclose(out.sh0[:, 0], state.sh0[:, 0] + d[:, None] * delta["sh0"])
    assert torch.equal(out.means[0], state.means[0])  # d = 0: static
    full = deform(state, delta, None)  # w/o dynamic splatting: d = 1
    assert torch.allclose(full.scales, state.scales + delta["scales"])
    mlp = DeformationMLP(in_dim=6, width=8)
    assert all(float(v.detach().abs().max()) == 0 for v in mlp(torch.randn(5, 6)).values())  # zero-init heads


def test_eq9_hinge_is_zero_inside_the_margin_and_linear_outside():
    m = torch.zeros(4, 4)
    m[1:3, 1:3] = 1.0
    for offset in (0.0, 0.1, 0.19):
        g = (m - offset).clamp(0, 1) + offset * (m == 0)
        assert float(mask_hinge_loss(g, m, 0.2)) == 0.0
    g = m.clone()
    g[0, 0] = 0.5  # |m - g| = 0.5 at one of 16 pixels
    assert float(mask_hinge_loss(g, m, 0.2)) == pytest.approx((0.5 - 0.2) / 16)
    g[0, 0] = 0.7
    assert float(mask_hinge_loss(g, m, 0.2)) == pytest.approx((0.7 - 0.2) / 16)  # slope 1/16
    assert float(mask_hinge_loss(torch.zeros(4, 4), m, 0.2, norm="image")) == pytest.approx(0.25 - 0.2)
    assert float(mask_hinge_loss(0.8 * m, m, 0.2, norm="image")) == 0.0  # mean |m - g| = 0.05


def test_mouth_mask_is_the_dilated_lip_polygon():
    from tracking.landmarks import MEDIAPIPE_TO_IBUG68

    points = np.full((2, 478, 2), np.nan, np.float32)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lips = np.stack([32 + 8 * np.cos(angles), 40 + 3 * np.sin(angles)], -1)
    points[:, MEDIAPIPE_TO_IBUG68[48:60]] = lips
    masks, valid = mouth_masks(points, np.array([True, False]), 64, 64, dilation=0.25)
    assert valid.tolist() == [True, False] and not masks[1].any()
    assert masks[0, 40, 32] and masks[0, 40, 24 - 3] and not masks[0, 40, 24 - 6]  # radius 0.25 x 16 px
    assert not masks[0, 10, 32]


def tiny_head(config: AudioPlaneConfig) -> tuple[AudioPlaneHead, Placement]:
    head = AudioPlaneHead(config, audio_in=29, seed=0)
    head.init_random(-0.5 * torch.ones(3), 0.5 * torch.ones(3), torch.Generator().manual_seed(0))
    placement = Placement(centre=torch.zeros(3), half_size=0.1, root=torch.tensor([0.0, -0.05, 0.0]))
    return head, placement


SMALL = AudioPlaneConfig(
    plane_resolution=4, feature_dim=3, scales=(1, 2), audio_dim=6, d1_width=8, d2_hidden=4,
    num_init_gaussians=150, sh_degree=1,
)  # fmt: skip
CAMERA = (
    torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0.6], [0, 0, 0, 1]]),  # looks at -z from z=0.6
    torch.tensor([[60.0, 0, 16], [0, 60, 16], [0, 0, 1]]),
)


def test_dynamism_splat_receives_gradients_through_the_rasterizer():
    head, placement = tiny_head(SMALL)
    neighbours = torch.randn(1, 8, 16, 29)
    out, d = render_head(head, placement, neighbours, torch.zeros(3), torch.zeros(3), *CAMERA, 32, 32)
    assert out.features.shape[-1] == 4 and d is not None  # [RGB, g] (Eq. 8)
    d.retain_grad()
    m = torch.zeros(32, 32)
    m[12:20, 10:22] = 1.0
    mask_hinge_loss(out.features[0, ..., 3], m, margin=0.2).backward()
    assert d.grad is not None and float(d.grad.abs().sum()) > 0
    assert float(head.d2.net[0].weight.grad.abs().sum()) > 0  # through D2 to its weights


def test_coarse_stage_has_no_deformation():
    head, placement = tiny_head(SMALL)
    with torch.no_grad():
        for p in head.d1.parameters():
            p.normal_(0, 0.3)  # a trained-looking deformation
    args = (torch.zeros(3), torch.zeros(3), *CAMERA, 32, 32)
    coarse, d_coarse = render_head(head, placement, None, *args)
    static = head.state()
    g, _ = head.deformed(None)
    assert d_coarse is None and coarse.features.shape[-1] == 3
    assert all(torch.equal(getattr(g, k), getattr(static, k)) for k in ("means", "scales", "quats"))
    fine, d_fine = render_head(head, placement, torch.randn(1, 8, 16, 29), *args)
    assert (
        d_fine is not None
        and float((fine.features[0, ..., :3] - coarse.features[0]).detach().abs().max()) > 1e-3
    )


def test_placement_rotates_positions_and_orientations_about_the_root_joint():
    config = SMALL.replace(sh_degree=0)
    head, placement = tiny_head(config)
    with torch.no_grad():
        head.gaussians.params["scales"][:, 0] += 1.0  # anisotropic, so orientation shows in the image
        head.gaussians.params["quats"].copy_(torch.nn.functional.normalize(torch.randn(150, 4), dim=-1))
    rotation, translation = torch.tensor([0.1, 0.4, -0.2]), torch.tensor([0.01, -0.02, 0.03])
    out, _ = render_head(head, placement, None, rotation, translation, *CAMERA, 32, 32)
    # Independent placement with scipy's rotation: x_world = R (x - J0) + J0 + t, orientation R R_i.
    R = torch.tensor(Rotation.from_rotvec(rotation.numpy()).as_matrix(), dtype=torch.float32)
    g = head.state()
    means = (placement.centre + placement.half_size * g.means - placement.root) @ R.T + placement.root
    means = means + translation
    local = torch.tensor(
        Rotation.from_quat(head.gaussians.quats.detach().numpy()[:, [1, 2, 3, 0]]).as_matrix()
    )
    world = Rotation.from_matrix((R.double() @ local).numpy()).as_quat()[:, [3, 0, 1, 2]]
    scales = placement.half_size * torch.exp(g.scales)
    colours = torch.clamp_min(0.28209479177387814 * g.sh0[:, 0] + 0.5, 0.0)  # SH degree 0

    def draw(quats):
        return rasterize(
            means, quats, scales, torch.sigmoid(g.opacities), colours, CAMERA[0][None], CAMERA[1][None],
            32, 32, background=torch.zeros(3),
        ).features  # fmt: skip

    assert torch.allclose(draw(torch.tensor(world, dtype=torch.float32)), out.features, atol=1e-4)
    # orientations left unrotated give another image: rotating the Gaussians matters
    assert float((draw(head.gaussians.quats.detach()) - out.features).abs().max()) > 1e-2


def load_tiny_dataset_writer():
    """``write_tiny_dataset`` of tests/benchmark/conftest.py (loaded under another module name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "benchmark_conftest_for_audio_plane", Path(__file__).parents[1] / "benchmark" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_dataset


@pytest.fixture(scope="module")
def tiny_view(tmp_path_factory):
    from benchmark.dataset import load_dataset
    from benchmark.protocols import TrainView, eval_items

    root = load_tiny_dataset_writer()(tmp_path_factory.mktemp("audio_plane") / "tiny", subjects=("s01",))
    dataset = load_dataset(root)
    item = eval_items(dataset, "mono-front", "s01")[0]
    return TrainView(dataset, "mono-front", "s01"), item.request


@pytest.fixture(scope="module")
def head_model():
    from tracking.head import build_default_head

    return build_default_head(seed=0)


def test_smoke_train_save_load_render_round_trip(tiny_view, head_model, tmp_path):
    from avatars.methods.audio_plane import AudioPlaneMethod

    view, request = tiny_view
    method = AudioPlaneMethod(seed=3, head_model=head_model)
    stats = method.train(view, "smoke", tmp_path / "work")
    assert stats.iterations == 16 and stats.num_gaussians == method.num_gaussians() > 0
    assert method.info()["audio_encoder"].startswith("filterbank29")  # no DeepSpeech features here
    assert "deepspeech" in method.info()["audio_encoder_reason"]
    assert "lpips" in method.info()["disabled_losses"]  # no registry: skipped and said so
    first = method.render(request)
    first.validate(request)
    assert 0.0 < float(first.alpha.mean()) and np.isfinite(first.rgb).all()
    method.save(tmp_path / "checkpoint")
    loaded = AudioPlaneMethod(seed=99)
    loaded.load(tmp_path / "checkpoint")
    again = loaded.render(request)
    assert np.array_equal(first.rgb, again.rgb) and np.array_equal(first.alpha, again.alpha)
    same_seed = AudioPlaneMethod(seed=3, head_model=head_model)
    same_seed.train(view, "smoke", tmp_path / "work2")
    assert np.array_equal(same_seed.render(request).rgb, first.rgb)  # same seed, same bytes
    # Eq. 4 is not saturated: the attention spreads over prototypes and f_a changes from frame to frame
    with torch.no_grad():
        windows = loaded._windows(request.audio, request.fps, request.num_frames)
        a = loaded._head.audio(torch.as_tensor(neighbour_windows(windows, np.arange(request.num_frames))))
        attention = loaded._head.field.attention[0]
        assert float(attention.scores(a).max(-1).values.mean()) < 0.9
        assert float(attention(a).std(0).mean()) > 1e-6  # 0.0 exactly when saturated
    # the audio drives the render: the test audio played backwards gives other frames
    reversed_audio = type(request)(**{**request.__dict__, "audio": request.audio[::-1].copy()})
    assert float(np.abs(loaded.render(reversed_audio).rgb - again.rgb).max()) > 0


@pytest.mark.parametrize("ablation", ["wo-A&D", "mlp/add", "margin-0.05"])
def test_ablation_switches_build_and_train(tiny_view, head_model, tmp_path, ablation):
    from avatars.methods.audio_plane import ABLATIONS, AudioPlaneMethod

    view, request = tiny_view
    method = AudioPlaneMethod(seed=0, head_model=head_model, overrides=ABLATIONS[ablation])
    method.train(view, "smoke", tmp_path)
    config = method.config("smoke")["model"]
    for key, value in ABLATIONS[ablation].items():
        assert config[key] == value
    head = method._head
    if ablation == "wo-A&D":
        assert isinstance(head.field, SpatialAudioConcat) and head.d2 is None
    method.render(request).validate(request)


def test_method_is_registered_with_its_protocols_and_assumptions():
    from avatars.methods.audio_plane import AudioPlaneMethod
    from benchmark.methods import get_method, resolve_methods

    assert get_method("audio-plane") is AudioPlaneMethod
    assert "audio-plane" in resolve_methods("all")
    assert AudioPlaneMethod.protocols == ("mono-front", "cross-id") and not AudioPlaneMethod.oracle
    paper = AudioPlaneMethod().config("paper")
    model = paper["model"]
    assert (model["plane_resolution"], model["feature_dim"], tuple(model["scales"])) == (64, 16, (1, 2, 3, 4))
    assert (model["coarse_iterations"], model["fine_iterations"], model["num_init_gaussians"]) == (
        3000,
        100000,
        1000,
    )
    assert (model["lambda_lpips"], model["lambda_mask"], model["margin"]) == (0.05, 0.1, 0.2)
    assert "eq9 norm" in paper["assumptions"] and "attention" in paper["assumptions"]
    quick = AudioPlaneMethod().config("quick")["model"]
    assert (
        quick["plane_resolution"],
        quick["feature_dim"],
        quick["coarse_iterations"] + quick["fine_iterations"],
    ) == (
        32,
        8,
        1500,
    )
