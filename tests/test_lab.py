"""`make lab` starts JupyterLab whose course kernel imports course_utils."""

import subprocess

import pytest
from browser.lab import lab_server


@pytest.mark.slow
def test_make_lab_serves_notebooks_with_course_kernel(tmp_path):
    with lab_server(None, tmp_path) as server:
        assert b"JupyterLab" in server.page("lab")
        names = {item["name"] for item in server.api("contents")["content"]}
        assert "00_welcome.ipynb" in names, "the server must be rooted at notebooks/"
        specs = server.api("kernelspecs")
    kernel = specs["kernelspecs"][specs["default"]]["spec"]
    assert "object detection course" in kernel["display_name"]
    python = kernel["argv"][0]
    probe = subprocess.run(
        [python, "-c", "import course_utils.session, torchvision; print('ok')"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.strip() == "ok", probe.stderr
