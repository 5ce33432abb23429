"""GaussianSpeech Stage 2 (avatars.gaussian_speech_sequence) and the ``gaussianspeech`` method."""

from __future__ import annotations

import avatar_support as support
import numpy as np
import pytest
import torch

from avatars.gaussian_speech_avatar import AvatarConfig, GaussianSpeechAvatar, build_binding
from avatars.gaussian_speech_sequence import (
    GaussianSpeechSequenceModel,
    PhotoData,
    SequenceModelConfig,
    SequenceSample,
    lip_vertex_indices,
    rigid_to_world,
    train_sequence_model,
    wrinkle_feature_vector,
)
from avatars.methods.base import Camera, RenderRequest
from avatars.sequence import alignment_mask, binary_causal_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = SequenceModelConfig(encoder_dim=8, encoder_ffn=16, encoder_layers=1, latent_dim=8, dropout=0.0)


def small_model(config: SequenceModelConfig = SMALL, num_vertices: int = 5, seed: int = 0):
    torch.manual_seed(seed)
    return GaussianSpeechSequenceModel(
        config,
        audio_dim=6,
        lip_index=np.array([0, 1]),
        wrinkle_dim=4,
        expression_dim=3,
        template=torch.zeros(num_vertices, 3),
        period=25,
    ).eval()


def randomise_vertex_mapper(model) -> None:
    # The Vertex Mapper starts at zero (outputs the template); give it weights so outputs show dependence.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.decoder.output.out.weight.copy_(
            torch.randn(model.decoder.output.out.weight.shape, generator=generator)
        )


def test_eq10_mask_blocks_exactly_the_future():
    T = 7
    blocked = binary_causal_mask(T)
    expected = np.array([[j > i for j in range(T)] for i in range(T)])
    np.testing.assert_array_equal(blocked.numpy(), expected)
    # In the model: changing the decoder's input at frame j (the target of frame j - 1, teacher forcing)
    # changes no prediction before j.
    model = small_model()
    randomise_vertex_mapper(model)
    memory = torch.randn(1, T, 16)
    targets = torch.randn(1, T, 15)
    before = model.decoder(memory, targets)
    changed = targets.clone()
    changed[:, 3] += 5.0  # input of frame 4
    after = model.decoder(memory, changed)
    difference = (after - before).abs().amax(dim=-1)[0]
    assert float(difference[:4].detach().max()) == 0.0
    assert float(difference[4:].min()) > 1e-4


def test_eq11_alignment_is_the_identity_pattern_and_frame_i_sees_only_motion_feature_i():
    T = 6
    np.testing.assert_array_equal(alignment_mask(T, T, "diagonal").numpy(), ~np.eye(T, dtype=bool))
    model = small_model()
    assert model.decoder.config.alignment == "diagonal" and model.decoder.config.bias == "binary"
    randomise_vertex_mapper(model)
    memory = torch.randn(1, T, 16)
    targets = torch.randn(1, T, 15)
    before = model.decoder(memory, targets)
    changed = memory.clone()
    changed[:, 2] += 3.0
    difference = (model.decoder(changed, targets) - before).abs().amax(dim=-1)[0]
    # one decoder layer: m_2 reaches frame 2 only (cross-attention), never another frame
    assert float(difference[2]) > 1e-4
    assert float(torch.cat([difference[:2], difference[3:]]).max()) == 0.0
    # Table 4 "w/o alignment": every frame sees every motion feature
    ablated = small_model(SMALL.scaled(alignment="none"))
    randomise_vertex_mapper(ablated)
    spread = (ablated.decoder(changed, targets) - ablated.decoder(memory, targets)).abs().amax(dim=-1)[0]
    assert float(spread.min()) > 1e-6


def test_lip_indices_are_the_lip_region_and_wrinkle_vector_sees_a_crease():
    from tracking.head_model import REGIONS

    head = support.sphere_head()
    labelled = head.vertex_regions.copy()
    labelled[:3] = REGIONS["lips"]
    import dataclasses

    np.testing.assert_array_equal(
        lip_vertex_indices(dataclasses.replace(head, vertex_regions=labelled)), [0, 1, 2]
    )
    # without a lips label: the vertices of the triangles holding the iBUG mouth landmarks (48-67)
    expected = np.unique(head.faces[head.lmk_faces_idx[48:68]])
    np.testing.assert_array_equal(lip_vertex_indices(head), expected)
    flat = np.full((32, 32, 3), 180, np.uint8)
    creased = flat.copy()
    creased[20:22, 4:28] = 60  # a dark horizontal line in the lower half
    mask = np.ones((32, 32), bool)
    box = (0, 0, 32, 32)
    plain = wrinkle_feature_vector(flat, mask, box, (1.0,), 32, 4).reshape(4, 4)
    lined = wrinkle_feature_vector(creased, mask, box, (1.0,), 32, 4).reshape(4, 4)
    assert np.abs(plain).max() < 1e-6
    assert lined[2:].sum() > 10 * max(lined[:2].sum(), 1e-6)  # the response is where the crease is


def photo_setup(num_frames: int = 3):
    from test_gaussian_avatars import fit_data, multiview_data

    from tracking.flame import FlameLayer

    head = support.sphere_head()
    raw = multiview_data(head, num_frames=num_frames, num_cameras=2)
    data = fit_data(raw)
    config = AvatarConfig(init_colors_from_images=False, iterations=1)
    avatar = GaussianSpeechAvatar(
        build_binding(head.faces, head.num_vertices, head.vertex_regions, True),
        int(data.conditions.shape[1]),
        config,
        seed=0,
    )
    template = FlameLayer(head)().vertices[0]
    sample = SequenceSample(
        name="s",
        audio=torch.randn(num_frames, 6, generator=torch.Generator().manual_seed(0)),
        offsets=raw["vertices"] - template,
        expressions=data.conditions,
        wrinkles=torch.randn(num_frames, 4, generator=torch.Generator().manual_seed(1)),
        rotation=torch.eye(3).repeat(num_frames, 1, 1),
        translation=torch.zeros(num_frames, 3),
    )
    photo = PhotoData(fit=data, frame_sequence=[0] * num_frames, frame_time=list(range(num_frames)))
    model_config = SMALL.scaled(pretrain_epochs=0, decoder_epochs=0, alternating_rounds=3)
    torch.manual_seed(0)
    model = GaussianSpeechSequenceModel(
        model_config,
        audio_dim=6,
        lip_index=np.array([0, 1]),
        wrinkle_dim=4,
        expression_dim=int(data.conditions.shape[1]),
        template=template,
        period=25,
    )
    return avatar, model, sample, photo, model_config


@pytest.mark.parametrize("photo_finetune", [True, False])
def test_alternation_photo_step_updates_only_colour_mlp_and_latents(photo_finetune):
    avatar, model, sample, photo, config = photo_setup()
    config = config.scaled(photo_finetune=photo_finetune)
    avatar_before = {k: v.detach().clone() for k, v in avatar.state_dict().items()}
    model_before = {k: v.detach().clone() for k, v in model.named_parameters()}
    log = train_sequence_model(model, [sample], avatar, photo, torch.zeros(3), config, seed=0)
    assert len(log.vertices) == 3 and len(log.photo) == (3 if photo_finetune else 0)
    colour = {"rig.params.latent"} | {k for k in avatar_before if k.startswith("color_mlp.")}
    for name, value in avatar.state_dict().items():
        if name in colour and photo_finetune:
            assert not torch.equal(value, avatar_before[name]), name
        else:
            assert torch.equal(value, avatar_before[name]), name  # geometry/opacity: bitwise unchanged
    for name, value in model.named_parameters():
        moved = not torch.equal(value, model_before[name])
        # Eq. 14 trains ℰ and D; the (pretrained, here untrained) encoders stay frozen
        if name.startswith(("expression2latent.", "decoder.")) and "output" in name:
            assert moved, name
        if name.startswith(("lip_", "wrinkle_", "expression_")):
            assert not moved, name


def test_rigid_to_world_is_flames_global_transform():
    from tracking.flame import FlameLayer

    head = support.sphere_head()
    flame = FlameLayer(head)
    generator = torch.Generator().manual_seed(0)
    rotation = 0.3 * torch.randn(2, 3, generator=generator)
    translation = 0.05 * torch.randn(2, 3, generator=generator)
    jaw = torch.tensor([[0.2, 0.0, 0.0], [0.1, 0.0, 0.0]])
    posed = flame(rotation=rotation, translation=translation, jaw_pose=jaw).vertices
    canonical = flame(jaw_pose=jaw).vertices
    root = flame().joints[0, 0]
    from avatars.gaussian_speech_avatar import axis_angle_to_matrix

    world = rigid_to_world(canonical, axis_angle_to_matrix(rotation), translation, root)
    assert float((world - posed).abs().max()) < 1e-6


class AudioTrainView:
    """A one-subject multiview TrainData over in-memory sphere-head renders, with audio (two sequences)."""

    def __init__(self, head, raw, size):
        self.protocol = "multiview"
        self.subject = "s01"
        self.fps = 25.0
        self.image_size = (size, size)
        self.cameras = {
            f"cam{c:02d}": Camera(f"cam{c:02d}", raw["Ks"][c], raw["viewmats"][c], size, size)
            for c in range(len(raw["Ks"]))
        }
        self.sequences = ("s01_t00", "s01_t01")
        self._raw = raw
        self._frames = len(raw["expr"])

    def num_frames(self, sequence):
        return self._frames

    def load_audio(self, sequence):
        t = np.arange(int(16000 * self._frames / self.fps)) / 16000
        pitch = 180.0 if sequence.endswith("0") else 240.0
        return (0.3 * np.sin(2 * np.pi * pitch * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)

    def load_images(self, sequence, camera, frames=None):
        index = [i for i, c in enumerate(self._raw["camera_index"]) if c == int(camera[3:])]
        images = self._raw["images"][index]
        return images if frames is None else images[list(frames)]

    def load_masks(self, sequence, camera, frames=None):
        index = [i for i, c in enumerate(self._raw["camera_index"]) if c == int(camera[3:])]
        masks = self._raw["masks"][index]
        return masks if frames is None else masks[list(frames)]

    def load_landmarks(self, sequence, camera):
        raise AssertionError("gaussianspeech does not read landmarks")

    def load_flame(self, sequence):
        t = self._frames
        return {
            "expr": self._raw["expr"],
            "jaw_pose": self._raw["jaw_pose"],
            "shape": np.zeros(2, np.float32),
            "neck_pose": np.zeros((t, 3), np.float32),
            "eyes_pose": np.zeros((t, 6), np.float32),
            "rotation": np.zeros((t, 3), np.float32),
            "translation": np.zeros((t, 3), np.float32),
        }


def test_smoke_train_save_load_render_round_trip_is_identical(tmp_path):
    from test_gaussian_avatars import SIZE, multiview_data

    from avatars.methods.gaussianspeech import GaussianSpeechMethod

    head = support.sphere_head()
    raw = multiview_data(head, num_frames=4, num_cameras=3)
    view = AudioTrainView(head, raw, SIZE)
    camera = Camera("cam01", raw["Ks"][1], raw["viewmats"][1], SIZE, SIZE)
    request = RenderRequest(
        protocol="multiview",
        sequence="s01_t09",
        audio=view.load_audio("s01_t01")[: 16000 * 3 // 25],
        sample_rate=16000,
        fps=25.0,
        num_frames=3,
        rotation=np.zeros((3, 3), np.float32),
        translation=np.zeros((3, 3), np.float32),
        camera=camera,
    )
    outputs = []
    for _ in range(2):  # the same seed twice: the same bytes
        method = GaussianSpeechMethod(seed=0, head_model=head, overrides={"avatar.top_k": 600})
        stats = method.train(view, "smoke", tmp_path / "work")
        assert stats.num_gaussians == method.num_gaussians()
        outputs.append(method.render(request))
    output = outputs[0]
    output.validate(request)
    assert output.alpha.max() > 0.9 and output.alpha[:, 0, 0].max() < 0.05
    np.testing.assert_array_equal(outputs[1].rgb, output.rgb)
    info = method.info()
    assert info["audio_encoder"].startswith("logmel50") and "wav2vec2" in info["audio_encoder_fallback"]
    assert info["lip_vertices"] == len(lip_vertex_indices(head))
    method.save(tmp_path / "ckpt")
    loaded = GaussianSpeechMethod(seed=0)
    loaded.load(tmp_path / "ckpt")
    again = loaded.render(request)
    np.testing.assert_array_equal(again.rgb, output.rgb)
    np.testing.assert_array_equal(again.alpha, output.alpha)
    config = method.config("quick")
    assert config["sequence"]["alignment"] == "diagonal" and "canonical_targets" in config["assumptions"]


def test_registered_for_method_all_and_cross_id_trains_as_multiview():
    from avatars.methods.gaussian_avatars import GaussianAvatarsMethod
    from avatars.methods.gaussianspeech import GaussianSpeechMethod
    from benchmark.methods import get_method, resolve_methods
    from benchmark.protocols import own_protocol

    assert "gaussianspeech" in resolve_methods("all")
    assert get_method("gaussianspeech") is GaussianSpeechMethod
    assert not GaussianSpeechMethod.oracle
    assert own_protocol(GaussianSpeechMethod.protocols) == "multiview"
    assert own_protocol(("mono-front", "multiview", "cross-id")) == "mono-front"
    assert own_protocol(GaussianAvatarsMethod.protocols) == "multiview"  # its declared order
    assert own_protocol(("cross-id",)) is None
