"""The FaceFormer core (avatars/sequence.py): masks against FaceFormer's construction, causality,
alignment, zero-initialised head, and agreement of teacher forcing with autoregressive rollout."""

import math

import pytest
import torch

from avatars.sequence import (
    CausalTransformerEncoder,
    PeriodicPositionalEncoding,
    SequenceConfig,
    SequenceDecoder,
    alibi_causal_mask,
    alibi_slopes,
    alignment_mask,
    binary_causal_mask,
)


def faceformer_biased_mask(n_head: int, max_seq_len: int, period: int) -> torch.Tensor:
    """FaceFormer's init_biased_mask, re-derived step by step (flip of a stepped ramp, copied row by row)."""
    slopes = torch.tensor([0.25, 0.0625, 0.015625, 0.00390625][:n_head])
    ramp = torch.arange(0, max_seq_len, period).unsqueeze(1).repeat(1, period).view(-1) // period
    ramp = -torch.flip(ramp, dims=[0])
    alibi = torch.zeros(max_seq_len, max_seq_len)
    for i in range(max_seq_len):
        alibi[i, : i + 1] = ramp[-(i + 1) :]
    alibi = slopes[:, None, None] * alibi[None]
    causal = (torch.triu(torch.ones(max_seq_len, max_seq_len)) == 1).transpose(0, 1)
    causal = causal.float().masked_fill(~causal, float("-inf")).masked_fill(causal, 0.0)
    return causal[None] + alibi


def test_alibi_slopes_for_four_heads():
    assert alibi_slopes(4).tolist() == [0.25, 0.0625, 0.015625, 0.00390625]


@pytest.mark.parametrize("period", [3, 25])
def test_alibi_mask_equals_faceformer_construction(period):
    length = 2 * period + 3  # a multiple of the period plus a remainder
    ours = alibi_causal_mask(4, length, period)
    theirs = faceformer_biased_mask(4, length, period)
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    finite = torch.isfinite(theirs)
    assert torch.allclose(ours[finite], theirs[finite])
    # one value by hand: head 0, i = period + 1, j = 0 -> -0.25 * floor((period + 1) / period) = -0.25
    assert ours[0, period + 1, 0].item() == pytest.approx(-0.25)


def test_binary_mask_blocks_exactly_the_future():
    mask = binary_causal_mask(5)
    for i in range(5):
        for j in range(5):
            assert mask[i, j].item() == (j > i)


def test_alignment_masks():
    pairs = alignment_mask(4, 8, "pairs")
    for i in range(4):
        assert set(torch.nonzero(~pairs[i]).flatten().tolist()) == {2 * i, 2 * i + 1}
    diagonal = alignment_mask(4, 4, "diagonal")
    assert torch.equal(~diagonal, torch.eye(4, dtype=torch.bool))  # Eq. 11: M_ij = delta_ij
    assert not alignment_mask(3, 5, "none").any()
    # a frame past the audio's end sees the last token rather than nothing (no NaN softmax)
    short = alignment_mask(3, 4, "pairs")
    assert (~short[2]).sum() == 1 and not short[2, -1]


def test_periodic_encoding_repeats_every_period():
    encoding = PeriodicPositionalEncoding(8, period=5, max_len=20, dropout=0.0)
    table = encoding(torch.zeros(1, 20, 8))[0]
    assert torch.allclose(table[3], table[8]) and torch.allclose(table[3], table[18])
    assert not torch.allclose(table[3], table[4])
    assert table[0, 1].item() == pytest.approx(math.cos(0.0))


def make_decoder(bias: str, alignment: str, style_dim: int = 0) -> SequenceDecoder:
    torch.manual_seed(0)
    config = SequenceConfig(d_model=16, num_heads=4, ffn_dim=32, period=5, bias=bias, alignment=alignment)
    decoder = SequenceDecoder(config, audio_dim=6, out_dim=3, style_dim=style_dim)
    torch.nn.init.normal_(decoder.output.weight, std=0.5)  # trained-looking head: zero-init hides everything
    return decoder.eval()


def test_output_head_starts_at_zero():
    decoder = SequenceDecoder(SequenceConfig(d_model=16, ffn_dim=32), audio_dim=6, out_dim=3).eval()
    assert torch.count_nonzero(decoder(torch.randn(1, 8, 6), torch.randn(1, 4, 3))) == 0


@pytest.mark.parametrize("bias", ["alibi", "binary"])
def test_teacher_forcing_is_causal(bias):
    decoder = make_decoder(bias, "pairs")
    memory, targets = torch.randn(1, 12, 6), torch.randn(1, 6, 3)
    with torch.no_grad():
        base = decoder(memory, targets)
        changed = targets.clone()
        changed[:, 3] += 1.0  # frame 3's target is the input of frame 4 onwards
        out = decoder(memory, changed)
    assert torch.allclose(out[:, :4], base[:, :4])
    assert not torch.allclose(out[:, 4:], base[:, 4:])


@pytest.mark.parametrize(("alignment", "tokens_of_frame"), [("pairs", (4, 5)), ("diagonal", (2,))])
def test_cross_attention_sees_only_aligned_tokens(alignment, tokens_of_frame):
    decoder = make_decoder("binary", alignment)  # one layer: frame i's memory path is its aligned tokens only
    frames = 5
    memory = torch.randn(1, 2 * frames if alignment == "pairs" else frames, 6)
    targets = torch.randn(1, frames, 3)
    with torch.no_grad():
        base = decoder(memory, targets)
        changed = memory.clone()
        changed[:, tokens_of_frame[0]] += 2.0
        out = decoder(memory=changed, targets=targets)
    moved = (out - base).abs().amax(dim=2)[0]
    assert moved[2] > 1e-4
    assert torch.all(moved[[0, 1, 3, 4]] < 1e-6)


@pytest.mark.parametrize(("bias", "style_dim"), [("alibi", 0), ("binary", 4)])
def test_rollout_equals_teacher_forcing_on_its_own_outputs(bias, style_dim):
    decoder = make_decoder(bias, "pairs", style_dim)
    memory = torch.randn(2, 14, 6)
    style = torch.randn(2, style_dim) if style_dim else None
    with torch.no_grad():
        rolled = decoder.rollout(memory, 7, style)
        forced = decoder(memory, rolled, style)
    assert rolled.shape == (2, 7, 3)
    assert torch.allclose(rolled, forced, atol=1e-5)


def test_causal_encoder_ignores_the_future():
    torch.manual_seed(0)
    encoder = CausalTransformerEncoder(
        SequenceConfig(d_model=16, ffn_dim=32, bias="binary"), input_dim=5
    ).eval()
    x = torch.randn(1, 6, 5)
    with torch.no_grad():
        base = encoder(x)
        changed = x.clone()
        changed[:, 4] += 1.0
        out = encoder(changed)
    assert torch.allclose(out[:, :4], base[:, :4], atol=1e-6)
    assert not torch.allclose(out[:, 4], base[:, 4])
