"""`make lab` starts JupyterLab whose course kernel imports course_utils."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


@pytest.fixture()
def lab_server():
    port, token = free_port(), secrets.token_hex(16)
    venv = Path(sys.prefix)
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    proc = subprocess.Popen(
        ["make", "-s", "lab", f"VENV={venv}", f"LAB_ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"make lab exited early:\n{proc.stdout.read().decode()}")
            try:
                if get(f"{base}/api/status?token={token}")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("JupyterLab did not answer within 120 s")
        yield base, token
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_make_lab_serves_notebooks_with_course_kernel(lab_server):
    base, token = lab_server
    status, page = get(f"{base}/lab?token={token}")
    assert status == 200 and b"JupyterLab" in page
    _, body = get(f"{base}/api/contents?token={token}")
    names = {item["name"] for item in json.loads(body)["content"]}
    assert "00_welcome.ipynb" in names, "the server must be rooted at notebooks/"
    _, body = get(f"{base}/api/kernelspecs?token={token}")
    specs = json.loads(body)
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
