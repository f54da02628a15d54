"""pyproject.toml, environment.yml and constraints.txt describe one package set; the README's
test command is what CI runs."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return [Requirement(r) for r in reqs]


def environment_requirements() -> list[Requirement]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [Requirement(line) for line in pip_section if not line.startswith("-")]


def lock() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_environment_yml_names_the_same_packages_as_pyproject():
    py = {canonicalize_name(r.name): r.specifier for r in pyproject_requirements()}
    env = {canonicalize_name(r.name): r.specifier for r in environment_requirements()}
    assert env == py


def test_lock_pins_every_package_within_its_range():
    pins = lock()
    for req in pyproject_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's range {req.specifier}"
        )


def test_environment_yml_uses_the_lock_and_installs_the_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-c constraints.txt" in pip_section and "-e ." in pip_section


def test_locked_torch_and_torchvision_are_a_matched_pair():
    pins = lock()
    torch_v, vision_v = pins["torch"], pins["torchvision"]
    # torchvision 0.(N+15) is built for torch 2.N (0.17 <-> 2.2, ..., 0.29 <-> 2.14).
    assert torch_v.major == 2 and vision_v.major == 0
    assert vision_v.minor == torch_v.minor + 15, f"torch {torch_v} does not match torchvision {vision_v}"


def _installed(name: str) -> Version:
    from importlib.metadata import version

    return Version(Version(version(name)).base_version)  # 2.14.1+cu130 -> 2.14.1


def test_installed_torch_pair_is_supported_and_its_operators_load():
    """Holds in every environment the ranges admit (a learner's, Colab's, `make compat`'s), not only
    in the pinned one: the installed pair is inside pyproject's ranges, matched, and nms runs."""
    import torch
    import torchvision

    ranges = {canonicalize_name(r.name): r.specifier for r in pyproject_requirements()}
    torch_v, vision_v = _installed("torch"), _installed("torchvision")
    assert ranges["torch"].contains(torch_v), f"torch {torch_v} is outside pyproject's range {ranges['torch']}"
    assert ranges["torchvision"].contains(vision_v), f"torchvision {vision_v} is outside {ranges['torchvision']}"
    assert vision_v.minor == torch_v.minor + 15, f"torch {torch_v} and torchvision {vision_v} are not a pair"
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


def test_pinned_environment_has_the_pinned_pair():
    """Where the pinned torch is installed (the course's own environment), torchvision is the pinned one too."""
    pins = lock()
    if _installed("torch") != pins["torch"]:
        pytest.skip(f"torch {_installed('torch')} is not the pinned {pins['torch']}: not the pinned environment")
    assert _installed("torchvision") == pins["torchvision"]


def test_oldest_supported_pair_is_what_make_compat_installs():
    ranges = {canonicalize_name(r.name): str(r.specifier) for r in pyproject_requirements()}
    assert ranges["torch"] == ">=2.3" and ranges["torchvision"] == ">=0.18", (
        "the oldest pair changed: run `make compat` with it and update this test and the README"
    )
    makefile = (ROOT / "Makefile").read_text()
    assert "compat:" in makefile and "scripts/compat.sh" in makefile


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", readme, flags=re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert "make test" in commands and "make lab" in commands
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci[-1] == "make test", ".ci/run must end by calling the README's test command"
