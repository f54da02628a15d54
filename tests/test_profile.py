import pytest

from course_utils import profile as profile_mod
from course_utils.profile import PROFILES, Profile, get_profile


def test_env_var_names_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert get_profile().name == "cpu"
    monkeypatch.setenv("COURSE_PROFILE", " GPU ")
    assert get_profile().name == "gpu"


def test_default_follows_device(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(profile_mod, "_has_accelerator", lambda: False)
    assert get_profile().name == "cpu"
    monkeypatch.setattr(profile_mod, "_has_accelerator", lambda: True)
    assert get_profile().name == "gpu"


def test_invalid_env_profile_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError) as err:
        get_profile()
    message = str(err.value)
    assert "COURSE_PROFILE" in message and "'fast'" in message
    for name in PROFILES:
        assert name in message


def test_invalid_argument_profile(monkeypatch):
    with pytest.raises(ValueError, match="argument 'name'.*ci, cpu, gpu"):
        get_profile("huge")
    with pytest.raises(ValueError, match="valid profiles are: ci, cpu, gpu"):
        Profile("huge")


def test_pick_returns_the_profiles_value():
    assert Profile("ci").pick(ci=1, cpu=2, gpu=3) == 1
    assert Profile("cpu").pick(ci=1, cpu=2, gpu=3) == 2
    assert Profile("gpu").pick(ci=1, cpu=2, gpu=3) == 3
    assert Profile("ci").is_ci and not Profile("gpu").is_ci


def test_pick_requires_all_three():
    with pytest.raises(TypeError):
        Profile("ci").pick(ci=1, cpu=2)  # type: ignore[call-arg]


def test_test_run_uses_ci_profile():
    assert get_profile().name == "ci"
