"""Weight registry: lookup order, sha256 checks, atomic add, CLI."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchvision

from benchmark.cli import main
from benchmark.metrics import syncnet
from benchmark.weights import REGISTRY, WeightRegistry
from gsbench.errors import InputError, WeightsError
from gsbench.io import sha256_file


@pytest.fixture()
def alexnet(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "src" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir()
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


def _pinned(path):
    """The lpips-alexnet entry pinned to this test file's full sha256 (its prefix cannot be 7be5be79)."""
    return {
        "lpips-alexnet": dataclasses.replace(
            REGISTRY["lpips-alexnet"], expected_sha256=sha256_file(path), sha256_prefix=None
        )
    }


def test_registry_rejects_wrong_sha256(alexnet, tmp_path):
    registry = WeightRegistry([tmp_path / "store"])
    # a random AlexNet is not torchvision's file: its sha256 lacks the published prefix 7be5be79
    with pytest.raises(WeightsError, match="7be5be79"):
        registry.add("lpips-alexnet", alexnet, tmp_path / "store")
    assert not (tmp_path / "store" / "alexnet-owt-7be5be79.pth").exists()
    pinned = dataclasses.replace(REGISTRY["lpips-alexnet"], expected_sha256="0" * 64, sha256_prefix=None)
    with pytest.raises(WeightsError, match="registered"):
        WeightRegistry([tmp_path], specs={"lpips-alexnet": pinned}).add(
            "lpips-alexnet", alexnet, tmp_path / "s"
        )


def test_add_copies_and_find_resolves(alexnet, tmp_path):
    store = tmp_path / "store"
    registry = WeightRegistry([store], specs=_pinned(alexnet))
    assert registry.status("lpips-alexnet")[0] == "missing"
    added = registry.add("lpips-alexnet", alexnet, store)
    assert added.path == store / "alexnet-owt-7be5be79.pth"
    assert sha256_file(added.path) == sha256_file(alexnet)
    assert [p.name for p in store.iterdir()] == ["alexnet-owt-7be5be79.pth"]  # no temp file left
    found = WeightRegistry([store], specs=_pinned(alexnet)).find("lpips-alexnet")
    assert found.weight_id == f"lpips-alexnet:{sha256_file(alexnet)[:12]}"
    state, resolved, _ = registry.status("lpips-alexnet")
    assert state == "ok" and resolved.path == added.path


def test_search_order_and_invalid_file(alexnet, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "alexnet-owt-7be5be79.pth").write_bytes(b"corrupt download")
    (second / "alexnet-owt-7be5be79.pth").write_bytes(alexnet.read_bytes())
    registry = WeightRegistry([first, second], specs=_pinned(alexnet))
    assert registry.find("lpips-alexnet").path == second / "alexnet-owt-7be5be79.pth"
    (second / "alexnet-owt-7be5be79.pth").unlink()
    state, resolved, reason = WeightRegistry([first, second], specs=_pinned(alexnet)).status("lpips-alexnet")
    assert state == "invalid" and resolved is None and "sha256" in reason

    monkeypatch.setenv("GSBENCH_WEIGHTS", str(first))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    paths = WeightRegistry().search_paths
    assert paths[0] == first and paths[-1] == tmp_path / "th" / "hub" / "checkpoints"


def test_syncnet_v2_structural_check(tmp_path):
    registry = WeightRegistry([tmp_path / "store"])
    wrong = tmp_path / "wrong.model"
    torch.save({"netcnnaud.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="keys differ"):
        registry.add("syncnet-v2", wrong, tmp_path / "store")
    good = tmp_path / "syncnet_v2.model"
    torch.save(syncnet.SyncNet().state_dict(), good)
    added = registry.add("syncnet-v2", good, tmp_path / "store")
    assert added.origin == "official"
    assert registry.find("syncnet-v2").sha256 == sha256_file(good)


def test_trained_syncnet_names_are_ours(tmp_path):
    path = tmp_path / "x.pt"
    syncnet.save_syncnet(syncnet.SyncNet(width=0.125, embedding_dim=32), path)
    digest = sha256_file(path)
    name = f"syncnet-gsbench-{digest[:8]}"
    path.rename(tmp_path / f"{name}.pt")
    registry = WeightRegistry([tmp_path])
    assert name in registry.names()
    found = registry.find(name)
    assert found.origin == "ours" and found.weight_id.startswith("syncnet-gsbench-")
    with pytest.raises(WeightsError, match="unknown weight name"):
        registry.find("syncnet-v3")


def test_add_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError):
        WeightRegistry([tmp_path]).add("syncnet-v2", tmp_path / "nope.model", tmp_path)


def test_cli_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GSBENCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("COLUMNS", "200")
    main(["weights", "list"])
    out = capsys.readouterr().out
    assert "lpips-alexnet" in out and "syncnet-v2" in out and "7be5be79" in out
    main(["weights", "status"])
    assert "missing" in capsys.readouterr().out
    good = tmp_path / "syncnet_v2.model"
    torch.save(syncnet.SyncNet().state_dict(), good)
    main(["weights", "add", "syncnet-v2", str(good)])
    stored = tmp_path / "home" / ".cache" / "gsbench" / "weights" / "syncnet_v2.model"
    assert stored.is_file() and f"syncnet-v2:{sha256_file(good)[:12]}" in capsys.readouterr().out
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"x")
    with pytest.raises(SystemExit) as exit_info:
        main(["weights", "add", "lpips-alexnet", str(bad)])
    assert exit_info.value.code == 1
    assert "rejected" in capsys.readouterr().err


def _vgg16_features_file(path):
    """A random VGG16 ``features.*`` state dict (the part of torchvision's file load_network uses)."""
    from avatars.perceptual import VGGFeatures

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(VGGFeatures("vgg16").state_dict(), path)
    return path


def _iresnet_file(path, depth):
    from avatars.perceptual import IResNet

    torch.manual_seed(0)
    model = IResNet(depth)
    for module in model.modules():  # non-trivial BatchNorm statistics, so that a wrong load would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)  # DataParallel-style keys
    return model.eval(), path


def test_perceptual_entries_are_registered_with_sources_and_networks():
    registry = WeightRegistry([])
    assert registry.spec("vgg16-imagenet").sha256_prefix == "397923af"
    assert registry.spec("vgg16-imagenet").network == "vgg16"
    assert registry.spec("vgg19-imagenet").sha256_prefix == "dcbb9e9d"
    for name, depth in (("arcface-iresnet100", 100), ("arcface-iresnet50", 50)):
        spec = registry.spec(name)
        assert spec.network == f"iresnet{depth}" and spec.expected_sha256 is None
        assert spec.checksum_note.startswith("user-supplied") and "insightface" in spec.url
    with pytest.raises(WeightsError, match="no network definition"):
        registry.load_network("syncnet-v2")


def test_missing_perceptual_weights_are_reported_missing_and_skipped(tmp_path):
    from avatars.gaussian_speech_avatar import load_perceptual_terms

    registry = WeightRegistry([tmp_path])
    with pytest.raises(WeightsError, match="not found"):
        registry.load_network("arcface-iresnet100")
    terms = load_perceptual_terms(registry)
    assert terms.networks == {} and set(terms.disabled) == {"global", "patch"}
    assert "arcface-iresnet100 missing" in terms.disabled["global"]
    assert "vgg16-imagenet missing" in terms.disabled["patch"]
    assert all("skipped" in reason for reason in terms.disabled.values())


def test_vgg16_entry_loads_the_registered_file_into_torchvision_features(tmp_path):
    path = _vgg16_features_file(tmp_path / "src" / "vgg16-397923af.pth")
    # a random file cannot carry torchvision's prefix 397923af: rejected as the official one
    with pytest.raises(WeightsError, match="397923af"):
        WeightRegistry([tmp_path / "store"]).add("vgg16-imagenet", path, tmp_path / "store")
    pinned = {
        "vgg16-imagenet": dataclasses.replace(
            REGISTRY["vgg16-imagenet"], expected_sha256=sha256_file(path), sha256_prefix=None
        )
    }
    registry = WeightRegistry([tmp_path / "store"], specs=pinned)
    registry.add("vgg16-imagenet", path, tmp_path / "store")
    network, resolved = registry.load_network("vgg16-imagenet")
    assert resolved.weight_id == f"vgg16-imagenet:{sha256_file(path)[:12]}"
    assert not any(p.requires_grad for p in network.parameters()) and not network.training
    reference = torchvision.models.vgg16().features.eval()
    reference.load_state_dict(
        {k.removeprefix("features."): v for k, v in torch.load(path).items()}, strict=False
    )
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(network(x)[-1], reference[:23]((x - network.mean) / network.std), atol=1e-5)


def test_arcface_entry_checks_the_structure_and_loads_the_state_dict(tmp_path):
    model, path = _iresnet_file(tmp_path / "src" / "backbone.pth", 18)
    # the registered names expect iresnet100 / iresnet50: an iresnet18 file is rejected by its keys
    with pytest.raises(WeightsError, match="missing key layer1.2.bn1.weight"):
        WeightRegistry([tmp_path / "store"]).add("arcface-iresnet100", path, tmp_path / "store")
    vgg = _vgg16_features_file(tmp_path / "src" / "vgg.pth")
    with pytest.raises(WeightsError, match="not a iresnet100 state dict"):
        WeightRegistry([tmp_path / "store"]).add("arcface-iresnet100", vgg, tmp_path / "store")
    # the same entry for a site that registers an iresnet18 ArcFace (structure and loading are the same code)
    small = {"arcface-iresnet100": dataclasses.replace(REGISTRY["arcface-iresnet100"], network="iresnet18")}
    registry = WeightRegistry([tmp_path / "store"], specs=small)
    added = registry.add("arcface-iresnet100", path, tmp_path / "store")
    assert added.path.name == "ms1mv3_arcface_r100_fp16.pth"
    network, resolved = registry.load_network("arcface-iresnet100")
    assert resolved.sha256 == sha256_file(path)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(network(x), model(x), atol=1e-4)


@pytest.mark.slow
def test_arcface_iresnet100_entry_loads_a_full_size_file(tmp_path):
    model, path = _iresnet_file(tmp_path / "src" / "backbone.pth", 100)
    registry = WeightRegistry([tmp_path / "store"])
    registry.add("arcface-iresnet100", path, tmp_path / "store")
    network, _ = registry.load_network("arcface-iresnet100")
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(network(x), model(x), atol=1e-3)
