import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import paths

ROOT = Path(__file__).resolve().parent.parent


def test_repo_root_holds_the_course():
    root = paths.repo_root()
    assert root == ROOT
    assert (root / "notebooks").is_dir() and (root / "data" / "quizzes").is_dir()
    assert paths.data_dir() == root / "data"


def test_paths_do_not_depend_on_working_directory(tmp_path):
    code = "from course_utils import paths; print(paths.data_dir())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(out) == ROOT / "data"


def test_cache_dir_is_created_and_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    sub = paths.cache_dir("pennfudan", "raw")
    assert sub == tmp_path / "cache" / "pennfudan" / "raw" and sub.is_dir()


def test_default_cache_is_ignored_by_git(monkeypatch):
    monkeypatch.delenv("COURSE_CACHE", raising=False)
    cache = paths.cache_dir()
    assert cache == ROOT / ".cache"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(cache)], cwd=ROOT)
    assert ignored.returncode == 0, ".cache/ must be git-ignored"


def test_torch_home_defaults_to_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    assert paths.torch_home() == tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert paths.torch_home() == tmp_path / "th"


def test_course_root_override(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    assert paths.repo_root() == tmp_path
    assert paths.data_dir() == tmp_path / "data"


def test_bad_course_root_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="COURSE_ROOT=.*data/"):
        paths.repo_root()


def test_package_without_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_ROOT", raising=False)
    monkeypatch.setattr(paths, "_PACKAGE_DIR", tmp_path / "site-packages" / "course_utils")
    with pytest.raises(FileNotFoundError, match="COURSE_ROOT"):
        paths.repo_root()


def test_not_in_colab_here():
    assert paths.in_colab() is ("google.colab" in sys.modules)
    assert os.environ.get("COURSE_PROFILE") == "ci"
