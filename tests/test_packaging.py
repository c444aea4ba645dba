"""The two install routes (pip via pyproject.toml, conda via environment.yml) pin the same versions."""

import tomllib
from importlib import metadata

import yaml
from conftest import REPO_ROOT


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        assert version, f"pyproject.toml: '{requirement}' is not pinned with =="
        pins[name.lower()] = version
    return pins


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {}
    for requirement in pip_section:
        if requirement.startswith("-e"):
            continue
        name, _, version = requirement.partition("==")
        pins[name.lower()] = version
    return pins


def test_environment_yml_agrees_with_pyproject():
    assert _environment_pins() == _pyproject_pins()


def test_installed_versions_match_the_pins():
    for name, version in _pyproject_pins().items():
        assert metadata.version(name) == version, f"{name}: installed {metadata.version(name)}, pinned {version}"


def test_torch_pair_is_the_documented_one():
    pins = _pyproject_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
