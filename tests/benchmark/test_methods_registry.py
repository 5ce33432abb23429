"""Method registry: built-ins, ``gsbench.methods`` entry points, selection, ``gsbench methods``."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from avatars.methods.retrieval import RetrievalMethod
from benchmark.cli import main
from benchmark.methods import describe_methods, get_method, registry, resolve_methods
from gsbench.errors import MethodError


def test_builtin_retrieval_is_registered():
    assert registry()["retrieval"].source == "builtin"
    assert get_method("retrieval") is RetrievalMethod
    assert RetrievalMethod.protocols == ("mono-front", "cross-id") and not RetrievalMethod.oracle


def test_unknown_method_names_the_choices():
    with pytest.raises(MethodError, match="unknown method 'nope'.*retrieval"):
        get_method("nope")
    with pytest.raises(MethodError, match="unknown method"):
        resolve_methods("retrieval,nope")


def test_resolve_selection():
    assert resolve_methods("retrieval, retrieval") == ["retrieval"]
    assert "retrieval" in resolve_methods("all")


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    """A third-party distribution on sys.path declaring a method in the gsbench.methods entry-point group."""
    (tmp_path / "gsbench_demo_plugin.py").write_text(
        textwrap.dedent("""
        from avatars.methods.retrieval import RetrievalMethod

        class DemoMethod(RetrievalMethod):
            name = "demo-plugin"
            description = "third-party demo"
    """)
    )
    dist = tmp_path / "gsbench_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gsbench-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[gsbench.methods]\ndemo-plugin = gsbench_demo_plugin:DemoMethod\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("gsbench_demo_plugin", None)


def test_entry_point_methods_are_discovered(plugin_on_path):
    spec = registry()["demo-plugin"]
    assert "entry point" in spec.source and "gsbench-demo-plugin" in spec.source
    assert get_method("demo-plugin").description == "third-party demo"
    assert "demo-plugin" in resolve_methods("all")


def test_entry_point_cannot_shadow_a_builtin(tmp_path, monkeypatch):
    dist = tmp_path / "shadow-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gsbench.methods]\nretrieval = os:path\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MethodError, match="conflicts with builtin method 'retrieval'"):
        registry()


def test_gsbench_methods_lists_them(plugin_on_path, capsys):
    main(["methods", "--json"])
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["retrieval"]["protocols"] == ["mono-front", "cross-id"]
    assert rows["demo-plugin"]["description"] == "third-party demo"
    assert {row["name"] for row in describe_methods()} >= {"retrieval", "demo-plugin"}
