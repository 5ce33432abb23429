"""The FLAME-rigged avatar (avatars.gaussian_speech_avatar) and its two oracles: ``gaussian-avatars`` (plain
GaussianAvatars) and ``gaussianspeech-avatar`` (GaussianSpeech's avatar initialisation)."""

from __future__ import annotations

import dataclasses

import avatar_support as support
import numpy as np
import pytest
import torch

from avatars.gaussian_speech_avatar import (
    AvatarConfig,
    ColorMLP,
    FitData,
    GaussianSpeechAvatar,
    build_binding,
    fit_avatar,
    initial_colors,
    mouth_faces,
    resolve_perceptual_terms,
    ridge_features,
    silhouette_loss,
    ssim,
    subdivide_faces,
)
from avatars.methods.base import Camera, RenderRequest
from gsbench.errors import ConfigError, MethodError

SIZE = 40


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mouth_subdivision_is_four_way_and_follows_the_mesh():
    from tracking.flame import FlameLayer

    head = support.sphere_head()
    selected = mouth_faces(head.faces, head.vertex_regions)
    assert 0 < selected.sum() < len(head.faces)
    binding = subdivide_faces(head.faces, selected, head.num_vertices)
    assert binding.num_faces == len(head.faces) + 3 * int(selected.sum())
    # Shared edges get one midpoint: V + E_selected new vertices, E counted once.
    edges = {
        tuple(sorted(e)) for f in head.faces[selected] for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))
    }
    assert len(binding.midpoint_edges) == len(edges)
    rest = torch.tensor(head.v_template, dtype=torch.float64)
    original_area = _areas(rest, torch.tensor(head.faces))[torch.tensor(selected)].sum()
    new_faces = torch.tensor(binding.faces[len(head.faces) - int(selected.sum()) :])
    assert float(_areas(binding.extend(rest), new_faces).sum()) == pytest.approx(
        float(original_area), rel=1e-9
    )
    # After a jaw opening, each midpoint is still the midpoint of its deformed edge.
    opened = FlameLayer(head, dtype=torch.float64)(
        jaw_pose=torch.tensor([[0.3, 0.0, 0.0]], dtype=torch.float64)
    )
    extended = binding.extend(opened.vertices[0])
    a, b = binding.midpoint_edges[:, 0], binding.midpoint_edges[:, 1]
    mids = extended[head.num_vertices :]
    assert torch.allclose(mids, 0.5 * (opened.vertices[0][a] + opened.vertices[0][b]))
    assert build_binding(head.faces, head.num_vertices, head.vertex_regions, False).num_faces == len(
        head.faces
    )


def _areas(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    return 0.5 * torch.cross(v1 - v0, v2 - v0, dim=-1).norm(dim=-1)


def test_color_mlp_is_two_layers_and_depends_on_expression_latent_and_view():
    torch.manual_seed(0)
    mlp = ColorMLP(condition_dim=7, latent_dim=8, hidden=16)
    assert [type(m).__name__ for m in mlp.children()] == ["Linear", "Linear"]
    latents = torch.randn(50, 8)
    views = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    neutral = mlp(torch.zeros(7), latents, views)
    smiling = mlp(torch.tensor([1.5, 0, 0, 0, 0, 0, 0.0]), latents, views)
    assert neutral.shape == (50, 3) and bool(((neutral > 0) & (neutral < 1)).all())
    assert float((smiling - neutral).abs().max()) > 1e-3
    assert float((mlp(torch.zeros(7), latents, -views) - neutral).abs().max()) > 1e-3
    assert float((mlp(torch.zeros(7), latents.flip(0), views) - neutral).abs().max()) > 1e-3


def test_avatar_colours_change_with_expression():
    head = support.sphere_head()
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, True)
    avatar = GaussianSpeechAvatar(binding, condition_dim=7, config=AvatarConfig())
    means = avatar.rig.world(torch.tensor(head.v_template, dtype=torch.float32)).means
    centre = torch.tensor([0.0, 0.0, 0.5])
    a = avatar.colors(means, torch.zeros(7), torch.eye(3), centre)
    b = avatar.colors(means, torch.tensor([2.0, 0, 0, 0, 0, 0, 0]), torch.eye(3), centre)
    assert float((a - b).abs().mean()) > 1e-3
    plain = GaussianSpeechAvatar(binding, 7, AvatarConfig(use_color_mlp=False))
    c = plain.colors(means, torch.zeros(7), torch.eye(3), centre)
    assert torch.equal(c, plain.colors(means, torch.ones(7), torch.eye(3), centre))  # ablation: no expression


def test_ridge_filter_finds_a_dark_crease_like_skimage_sato():
    from skimage.filters import sato

    image = np.full((48, 48), 0.8)
    image[:, 23:25] = 0.3  # a vertical dark crease
    image[10, :] -= 0.2  # and a faint horizontal one
    rgb = torch.tensor(np.repeat(image[..., None], 3, axis=2))
    ours = ridge_features(rgb, None, (1.0, 2.0)).amax(0).numpy()
    reference = sato(image, sigmas=(1.0, 2.0), black_ridges=True, mode="reflect")
    assert ours[:, 23:25].mean() > 5 * ours[:, :15].mean()
    inner = (slice(4, -4), slice(4, -4))
    assert np.corrcoef(ours[inner].ravel(), reference[inner].ravel())[0, 1] > 0.8
    mask = torch.zeros(48, 48, dtype=torch.bool)
    assert float(ridge_features(rgb, mask, (1.0,)).abs().max()) == 0.0


def test_ssim_is_one_for_equal_images_and_lower_for_noise():
    image = torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0))
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-6)
    assert float(ssim(image, (image + 0.2 * torch.randn(32, 32, 3)).clamp(0, 1))) < 0.9


def test_perceptual_terms_are_skipped_with_a_reason_when_weights_are_not_registered(tmp_path):
    from benchmark.weights import WeightRegistry

    disabled = resolve_perceptual_terms(WeightRegistry(search_paths=[tmp_path]))
    assert set(disabled) == {"global", "patch"}
    assert all("skipped" in reason for reason in disabled.values())
    assert "arcface" in disabled["global"] and "vgg" in disabled["patch"]


def multiview_data(head, num_frames: int = 4, num_cameras: int = 4, size: int = SIZE):
    """Ray-cast images of the sphere head with expression-dependent albedo, its tracked meshes and cameras."""
    from tracking.flame import FlameLayer
    from tracking.head.preview import render_mesh

    flame = FlameLayer(head)
    expr = np.zeros((num_frames, head.num_expr), np.float32)
    expr[:, 0] = np.linspace(0.0, 2.0, num_frames)
    jaw = np.zeros((num_frames, 3), np.float32)
    jaw[:, 0] = np.linspace(0.0, 0.25, num_frames)
    vertices = torch.cat(
        [
            flame(expr=torch.tensor(expr[t : t + 1]), jaw_pose=torch.tensor(jaw[t : t + 1])).vertices
            for t in range(num_frames)
        ]
    )
    viewmats, Ks = support.cameras(num_cameras, size)
    images, masks, frame_index, camera_index = [], [], [], []
    for t in range(num_frames):
        colours = support.vertex_colors(head, expr[t])
        for c in range(num_cameras):
            result = render_mesh(
                vertices[t].numpy(),
                head.faces,
                Ks[c],
                viewmats[c],
                size,
                size,
                vertex_colors=colours,
                background=(0.0, 0.0, 0.0),
            )
            images.append(result.image)
            masks.append(result.mask > 0.5)
            frame_index.append(t)
            camera_index.append(c)
    return {
        "expr": expr,
        "jaw_pose": jaw,
        "vertices": vertices,
        "viewmats": viewmats,
        "Ks": Ks,
        "images": np.stack(images),
        "masks": np.stack(masks),
        "frame_index": frame_index,
        "camera_index": camera_index,
    }


def fit_data(raw) -> FitData:
    return FitData(
        vertices=raw["vertices"],
        conditions=torch.tensor(np.concatenate([raw["expr"], raw["jaw_pose"]], 1)),
        head_rotations=torch.eye(3).repeat(len(raw["expr"]), 1, 1),
        world_to_cam=torch.tensor(raw["viewmats"], dtype=torch.float32),
        Ks=torch.tensor(raw["Ks"], dtype=torch.float32),
        images=torch.tensor(raw["images"]),
        masks=torch.tensor(raw["masks"]),
        frame_index=torch.tensor(raw["frame_index"]),
        camera_index=torch.tensor(raw["camera_index"]),
    )


def test_smoke_fit_lowers_the_photometric_loss():
    head = support.sphere_head()
    data = fit_data(multiview_data(head))
    config = AvatarConfig(
        init_colors_from_images=False,  # start grey: the fit alone must lower the loss
        iterations=64,
        densify_from=16,
        densify_until=50,
        densify_interval=16,
        opacity_reset_interval=10**9,
        top_k=700,
    )
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, True)
    avatar = GaussianSpeechAvatar(binding, data.conditions.shape[1], config, seed=0)
    fit_log = fit_avatar(avatar, data, config, seed=0)
    first, last = np.mean(fit_log.rgb_losses[:8]), np.mean(fit_log.rgb_losses[-8:])
    assert last < 0.6 * first, (first, last)
    assert any("split" in e for e in fit_log.events)
    assert avatar.num_gaussians <= 700
    avatar.rig.check_binding()


@pytest.mark.parametrize("use_color_mlp", [False, True])
def test_colours_initialised_from_the_images_start_the_fit_lower(use_color_mlp):
    head = support.sphere_head()
    data = fit_data(multiview_data(head))
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, False)
    first = {}
    for init in (False, True):
        config = AvatarConfig(
            use_color_mlp=use_color_mlp,
            init_colors_from_images=init,
            iterations=8,
            densify_from=10**9,
            opacity_reset_interval=10**9,
            top_k=10**6,
        )
        avatar = GaussianSpeechAvatar(binding, data.conditions.shape[1], config, seed=0)
        first[init] = float(np.mean(fit_avatar(avatar, data, config, seed=0).rgb_losses[:4]))
    assert first[True] < 0.8 * first[False], first


def test_silhouette_loss_pushes_opacity_down_outside_the_mask_and_up_inside():
    head = support.sphere_head()
    data = fit_data(multiview_data(head, num_frames=1, num_cameras=1))
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, False)
    avatar = GaussianSpeechAvatar(binding, data.conditions.shape[1], AvatarConfig(use_color_mlp=False))
    out = avatar.render(
        data.vertices[0], data.conditions[0], data.head_rotations[0], data.world_to_cam[0], data.Ks[0],
        SIZE, SIZE,
    )  # fmt: skip
    alpha = out.alpha[0]
    drawn = out.radii[0] > 0
    x = out.means2d[0, :, 0].detach()
    grads = {}
    for name, columns in (("none", slice(0, 0)), ("all", slice(0, SIZE)), ("left", slice(0, SIZE // 2))):
        mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        mask[:, columns] = True
        (grads[name],) = torch.autograd.grad(
            silhouette_loss(alpha, mask), avatar.rig.params["opacities"], retain_graph=True
        )
    assert drawn.sum() > 50
    assert (grads["none"][drawn] > 0).all()  # empty mask: gradient descent lowers every opacity
    assert (grads["all"][drawn] < 0).all()  # full mask: raises every one (alpha < 1 at opacity 0.1)
    left, right = drawn & (x < SIZE // 2 - 4), drawn & (x > SIZE // 2 + 4)
    assert grads["left"][right].mean() > 0 > grads["left"][left].mean()


def test_silhouette_term_reduces_the_opacity_spilled_outside_the_mask():
    head = support.sphere_head()
    data = fit_data(multiview_data(head, num_frames=2, num_cameras=2))
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, False)
    spill = {}
    for lambda_alpha in (0.0, 1.0):
        config = AvatarConfig(
            use_color_mlp=False,
            init_scale=2.0,  # start with a halo around the head
            lambda_alpha=lambda_alpha,
            iterations=24,
            densify_from=10**9,
            opacity_reset_interval=10**9,
            top_k=10**6,
        )
        avatar = GaussianSpeechAvatar(binding, data.conditions.shape[1], config, seed=0)
        fit_avatar(avatar, data, config, seed=0)
        with torch.no_grad():
            outside = []
            for i in range(data.images.shape[0]):
                frame, camera = int(data.frame_index[i]), int(data.camera_index[i])
                out = avatar.render(
                    data.vertices[frame], data.conditions[frame], data.head_rotations[frame],
                    data.world_to_cam[camera], data.Ks[camera], SIZE, SIZE,
                )  # fmt: skip
                outside.append(out.alpha[0, ..., 0][~data.masks[i]].sum())
        spill[lambda_alpha] = float(sum(outside))
    assert spill[1.0] < 0.85 * spill[0.0], spill


def test_initial_colors_are_the_pixel_colours_of_visible_gaussians():
    head = support.sphere_head()
    data = fit_data(multiview_data(head, num_frames=1, num_cameras=2))
    data.images[:] = torch.tensor([200, 40, 90], dtype=torch.uint8)  # one colour wherever the head is
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, False)
    avatar = GaussianSpeechAvatar(binding, data.conditions.shape[1], AvatarConfig(use_color_mlp=False))
    colors, seen = initial_colors(avatar, data, num_images=2)
    assert 0.2 < float(seen.float().mean()) < 1.0  # the back of the head faces away from both cameras
    expected = torch.tensor([200, 40, 90]) / 255.0
    assert torch.allclose(colors, expected.expand_as(colors), atol=1e-5)


def test_ssim_separable_window_equals_the_2d_window():
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 24, 20, 3, generator=generator)
    x, y = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    coords = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] @ g[None, :]).expand(3, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, window, padding=5, groups=3)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    reference = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    assert float(ssim(a, b)) == pytest.approx(float(reference.mean()), abs=1e-6)


class TinyTrainView:
    """The TrainData protocol over in-memory arrays (one sequence)."""

    def __init__(self, head, raw):
        self.protocol = "multiview"
        self.subject = "s01"
        self.fps = 25.0
        self.image_size = (SIZE, SIZE)
        self.cameras = {
            f"cam{c:02d}": Camera(f"cam{c:02d}", raw["Ks"][c], raw["viewmats"][c], SIZE, SIZE)
            for c in range(len(raw["Ks"]))
        }
        self.sequences = ("s01_t00",)
        self._raw = raw
        self._num_frames = len(raw["expr"])

    def num_frames(self, sequence):
        return self._num_frames

    def load_images(self, sequence, camera, frames=None):
        index = [i for i, c in enumerate(self._raw["camera_index"]) if c == int(camera[3:])]
        images = self._raw["images"][index]
        return images if frames is None else images[list(frames)]

    def load_masks(self, sequence, camera, frames=None):
        index = [i for i, c in enumerate(self._raw["camera_index"]) if c == int(camera[3:])]
        masks = self._raw["masks"][index]
        return masks if frames is None else masks[list(frames)]

    def load_flame(self, sequence):
        t = self._num_frames
        return {
            "expr": self._raw["expr"],
            "jaw_pose": self._raw["jaw_pose"],
            "shape": np.zeros(2, np.float32),
            "neck_pose": np.zeros((t, 3), np.float32),
            "eyes_pose": np.zeros((t, 6), np.float32),
            "rotation": np.zeros((t, 3), np.float32),
            "translation": np.zeros((t, 3), np.float32),
        }


@pytest.mark.parametrize(
    ("name", "overrides", "corner"),
    # plain GaussianAvatars keeps the 3DGS clones without a top-k cap: after 40 smoke steps some spill
    [("gaussian-avatars", {}, 0.1), ("gaussianspeech-avatar", {"avatar.top_k": 600}, 0.05)],
)
def test_oracle_trains_renders_and_round_trips_through_save_load(tmp_path, name, overrides, corner):
    from benchmark.methods import get_method

    cls = get_method(name)
    assert cls.oracle and set(cls.protocols) == {"multiview", "mono-front"}
    head = support.sphere_head()
    raw = multiview_data(head, num_frames=3, num_cameras=3)
    method = cls(seed=0, head_model=head, overrides=overrides)
    stats = method.train(TinyTrainView(head, raw), "smoke", tmp_path / "work")
    assert stats.num_gaussians == method.num_gaussians()
    if overrides:
        assert method.num_gaussians() <= 600
    camera = Camera("cam01", raw["Ks"][1], raw["viewmats"][1], SIZE, SIZE)
    oracle = {
        "expr": raw["expr"][:2],
        "jaw_pose": raw["jaw_pose"][:2],
        "neck_pose": np.zeros((2, 3), np.float32),
        "eyes_pose": np.zeros((2, 6), np.float32),
    }
    request = RenderRequest(
        protocol="multiview",
        sequence="s01_t09",
        audio=np.zeros(1280, np.float32),
        sample_rate=16000,
        fps=25.0,
        num_frames=2,
        rotation=np.zeros((2, 3), np.float32),
        translation=np.zeros((2, 3), np.float32),
        camera=camera,
        oracle_flame=oracle,
    )
    output = method.render(request)
    output.validate(request)
    assert output.alpha.max() > 0.9 and output.alpha[:, 0, 0].max() < corner  # the head, not the corner
    method.save(tmp_path / "ckpt")
    loaded = cls(seed=0)
    loaded.load(tmp_path / "ckpt")
    again = loaded.render(request)
    assert loaded.num_gaussians() == method.num_gaussians()
    np.testing.assert_allclose(
        again.rgb * again.alpha[..., None], output.rgb * output.alpha[..., None], atol=1e-6
    )
    np.testing.assert_allclose(again.alpha, output.alpha, atol=1e-6)
    with pytest.raises(MethodError, match="oracle"):
        method.render(dataclasses.replace(request, oracle_flame=None))


def test_gaussian_avatars_is_plain_gaussian_avatars():
    from avatars.methods.gaussian_avatars import GaussianAvatarsMethod
    from avatars.methods.gaussianspeech_avatar import GaussianSpeechAvatarMethod

    plain = GaussianAvatarsMethod().config("paper")
    # GaussianAvatars' code: SH degree 3, opacity pruning at 0.005, 0.2 D-SSIM, its regularizers, schedule
    assert plain["avatar"]["use_color_mlp"] is False and plain["avatar"]["sh_degree"] == 3
    assert plain["avatar"]["mouth_subdivision"] is False and plain["avatar"]["pruning"] == "opacity"
    assert plain["avatar"]["min_opacity"] == 0.005 and plain["avatar"]["lambda_dssim"] == 0.2
    assert plain["avatar"]["lambda_wrinkle"] == plain["avatar"]["lambda_global"] == 0
    assert plain["avatar"]["lambda_patch"] == 0 and plain["avatar"]["init_colors_from_images"] is False
    assert (plain["avatar"]["lambda_xyz"], plain["avatar"]["lambda_scale"]) == (1e-2, 1.0)
    assert (plain["avatar"]["iterations"], plain["avatar"]["densify_interval"]) == (600_000, 2_000)
    assert GaussianAvatarsMethod.pretrained_networks == ()
    assert "gaussianspeech-avatar" in plain["name_history"]
    speech = GaussianSpeechAvatarMethod().config("paper")["avatar"]
    assert speech["use_color_mlp"] and speech["mouth_subdivision"] and speech["pruning"] == "top_k"
    assert set(GaussianSpeechAvatarMethod.pretrained_networks) == {"arcface-iresnet100", "vgg16-imagenet"}


def test_sh_colour_is_the_3dgs_evaluation_along_the_world_view_direction():
    from avatars.gaussian_speech_avatar import GAUSSIAN_AVATARS
    from avatars.gaussians import SH_C0, SH_C1

    head = support.sphere_head()
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, False)
    config = AvatarConfig(**{**GAUSSIAN_AVATARS, "sh_degree": 1})
    avatar = GaussianSpeechAvatar(binding, 2, config, seed=0)
    assert set(avatar.rig.params) == {"means", "scales", "quats", "opacities", "sh0", "shN"}
    n = avatar.num_gaussians
    with torch.no_grad():
        avatar.rig.params["sh0"].fill_(0.0)
        avatar.rig.params["shN"].zero_()
        avatar.rig.params["shN"][:, 1, :] = 0.5  # coefficient 2, the z band (+C1 z in 3DGS eval_sh)
    means = torch.zeros(n, 3)
    means[:, 2] = 2.0
    camera = torch.tensor([0.0, 0.0, 1.0])  # direction (0, 0, 1) from the camera to every Gaussian
    avatar.active_sh_degree.fill_(1)
    colors = avatar.colors(means, torch.zeros(2), torch.eye(3), camera)
    assert torch.allclose(colors, torch.full((n, 3), 0.5 + SH_C1 * 0.5), atol=1e-6)
    avatar.active_sh_degree.fill_(0)  # band 1 not active yet: the DC term alone (0 -> grey 0.5)
    assert torch.allclose(avatar.colors(means, torch.zeros(2), torch.eye(3), camera), torch.full((n, 3), 0.5))
    assert SH_C0 > 0


def test_opacity_pruning_drops_transparent_gaussians_but_no_triangle():
    from avatars.gaussian_speech_avatar import GAUSSIAN_AVATARS

    head = support.sphere_head()
    raw = multiview_data(head, num_frames=2, num_cameras=2)
    data = fit_data(raw)
    binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, False)
    config = AvatarConfig(
        **{
            **GAUSSIAN_AVATARS,
            "iterations": 4,
            "densify_from": 2,
            "densify_until": 4,
            "densify_interval": 2,
            "grad_threshold": 0.0,  # every Gaussian is cloned or split at step 2
            "min_opacity": 0.2,  # above the initial 0.1: every Gaussian is a pruning candidate
            "color_warmup_steps": 0,
        }
    )
    avatar = GaussianSpeechAvatar(binding, data.conditions.shape[1], config, seed=0)
    log = fit_avatar(avatar, data, config, seed=0)
    # everything was transparent enough to prune, but each triangle keeps its last Gaussian
    assert avatar.num_gaussians == binding.num_faces
    avatar.rig.check_binding()
    assert any("pruned" in event and "top-k" not in event for event in log.events)


def test_old_checkpoint_parameter_names_still_load(tmp_path):
    from avatars.methods.gaussianspeech_avatar import GaussianSpeechAvatarMethod

    head = support.sphere_head()
    raw = multiview_data(head, num_frames=2, num_cameras=2)
    method = GaussianSpeechAvatarMethod(seed=0, head_model=head, overrides={"avatar.top_k": 600})
    method.train(TinyTrainView(head, raw), "smoke", tmp_path / "work")
    method.save(tmp_path / "ckpt")
    checkpoint = torch.load(tmp_path / "ckpt" / "avatar.pt", weights_only=True)
    old_names = {"means": "xyz", "scales": "scale", "quats": "rotation", "opacities": "opacity"}
    checkpoint["state"] = {  # as written before the names were shared (issue 15)
        (f"rig.params.{old_names[k.split('.')[-1]]}" if k.split(".")[-1] in old_names else k): v
        for k, v in checkpoint["state"].items()
    }
    torch.save(checkpoint, tmp_path / "ckpt" / "avatar.pt")
    loaded = GaussianSpeechAvatarMethod(seed=0)
    loaded.load(tmp_path / "ckpt")
    for name, value in method._avatar.rig.params.items():
        assert torch.equal(loaded._avatar.rig.params[name], value.detach()), name


def test_budgets_resolve_and_scale_top_k():
    from avatars.methods.gaussianspeech_avatar import BUDGET_CONFIGS, GaussianSpeechAvatarMethod

    method = GaussianSpeechAvatarMethod()
    assert method.config("paper")["avatar"]["top_k"] == 25_000
    assert method.config("paper")["avatar"]["iterations"] == 600_000
    assert BUDGET_CONFIGS["quick"].avatar.iterations < BUDGET_CONFIGS["paper"].avatar.iterations
    for budget in ("smoke", "quick", "paper"):  # k is the paper's 25,000 (Sec. 4.1) at every budget
        assert method.config(budget)["avatar"]["top_k"] == 25_000
    ablation = GaussianSpeechAvatarMethod(overrides={"avatar.use_color_mlp": False})
    assert ablation.config("quick")["avatar"]["use_color_mlp"] is False
    assert ablation.config("quick")["overrides"] == {"avatar.use_color_mlp": False}
    # an override changes its own field and nothing else of the budget's schedule
    scaled = GaussianSpeechAvatarMethod(overrides={"avatar.top_k": 5_000}).config("quick")
    quick = method.config("quick")
    assert scaled["avatar"]["top_k"] == 5_000
    assert {k: v for k, v in scaled["avatar"].items() if k != "top_k"} == {
        k: v for k, v in quick["avatar"].items() if k != "top_k"
    }
    assert scaled["max_train_frames"] == quick["max_train_frames"] == 60
    assert quick["avatar"]["iterations"] == 1_000 and quick["avatar"]["densify_interval"] == 100
    with pytest.raises(ConfigError, match="'top_k'"):  # the old flat key is refused, naming it
        GaussianSpeechAvatarMethod(overrides={"top_k": 5_000})
    with pytest.raises(ConfigError, match="pruning"):
        GaussianSpeechAvatarMethod(overrides={"avatar.pruning": "volume"})
    with pytest.raises(MethodError):
        method.config("huge")
