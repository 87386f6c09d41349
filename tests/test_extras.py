"""The ``ue[inspect]`` extra installs what Inspect's OpenAI-compatible providers need (issue 22, item 22).

Inspect imports ``openai`` lazily when a model string names ``openai-api/...`` or ``openai/...`` and refuses an
``openai`` older than the minimum its provider code names; ``pip install 'ue[inspect]'`` must bring a version that
passes that check, or ``inspect eval ue/utility_core --model openai-api/...`` stops before it starts.
"""

from __future__ import annotations

import ast
import inspect as pyinspect
import sys
from importlib import metadata
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _extra(name: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["optional-dependencies"][name]]


def _inspect_openai_minimum() -> Version:
    """The ``MIN_VERSION`` of ``openai`` that the installed inspect_ai's ``validate_openai_client`` requires."""
    providers = pytest.importorskip("inspect_ai.model._providers.providers")
    source = pyinspect.getsource(providers.validate_openai_client)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MIN_VERSION" for t in node.targets):
            return Version(ast.literal_eval(node.value))
    pytest.fail("inspect_ai's validate_openai_client names no MIN_VERSION; read its openai check again and update this test")


def _lowest_allowed(spec: SpecifierSet) -> Version | None:
    """The lowest release the specifier's lower bounds (``>=``, ``>``, ``==``, ``~=``) admit; None without one."""
    lows = [Version(s.version) for s in spec if s.operator in (">=", "~=", "==", ">")]
    return max(lows) if lows else None


def test_inspect_extra_names_openai_at_the_version_inspects_provider_requires():
    minimum = _inspect_openai_minimum()
    (openai,) = [r for r in _extra("inspect") if r.name == "openai"] or [None]
    assert openai is not None, "the inspect extra must list openai (Inspect's openai-api provider imports it)"
    low = _lowest_allowed(openai.specifier)
    assert low is not None and low >= minimum, (
        f"ue[inspect] allows openai{openai.specifier}, but the installed inspect_ai requires openai>={minimum}"
    )


def test_installed_openai_passes_inspects_own_check():
    pytest.importorskip("openai")
    providers = pytest.importorskip("inspect_ai.model._providers.providers")
    providers.validate_openai_client("OpenAI Compatible API")  # raises when openai is missing or too old
    (openai,) = [r for r in _extra("inspect") if r.name == "openai"]
    assert Version(metadata.version("openai")) in openai.specifier
