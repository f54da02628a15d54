"""A JupyterLab server for the browser test, started the way learners start it: `make lab`.

The server is rooted at a temporary folder that holds copies of the notebooks with their outputs
cleared, so what the browser shows comes from this run, and the committed notebooks are never
opened (JupyterLab saves and checkpoints the files it opens). The kernel is the course's kernel
from the venv; it imports ``course_utils`` through the editable install, and ``COURSE_ROOT``
points it at the repository, so data files are found although the kernel's working directory is
the temporary folder.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

# JupyterLab settings for the test (a private settings folder, so a learner's own settings and
# workspaces neither leak in nor get changed): every cell stays in the page (the default
# windowing drops cells outside the viewport, which would hide outputs from the checks), and
# nothing asks for or fetches news.
USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab: its address, token and the folder it serves."""

    base: str
    token: str
    root_dir: Path
    log: Path

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(self.url(f"api/{path}"), method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def page(self, path: str) -> bytes:
        """The body of a (non-API) page; urllib raises ``HTTPError`` unless the answer is 2xx."""
        with urllib.request.urlopen(self.url(path), timeout=10) as response:
            return response.read()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebook(source: Path, dest_dir: Path, name: str | None = None) -> Path:
    """Copy a notebook into ``dest_dir`` with every output and execution count cleared."""
    nb = nbformat.read(source, as_version=4)
    clear_outputs(nb)
    dest = dest_dir / (name or source.name)
    nbformat.write(nb, dest)
    return dest


def clear_outputs(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)


def write_settings(folder: Path) -> None:
    for relative, values in USER_SETTINGS.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2), encoding="utf-8")


@contextmanager
def lab_server(root_dir: Path | None, work_dir: Path, timeout: float = 120) -> Iterator[LabServer]:
    """Start `make lab` (the venv running this test) serving ``root_dir``; stop it afterwards.

    ``root_dir=None`` keeps what `make lab` serves by itself (``notebooks/``).
    ``work_dir`` receives the server's log and its private settings and workspace folders.
    """
    port, token = free_port(), secrets.token_hex(16)
    settings, workspaces = work_dir / "user-settings", work_dir / "workspaces"
    write_settings(settings)
    workspaces.mkdir(parents=True, exist_ok=True)
    args = " ".join(
        [
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
    )
    if root_dir is not None:
        # `make lab` sets the server's root to notebooks/ (a second root_dir is refused), so
        # the folders of the two parts that read files are set instead: the contents (what
        # the browser opens and saves) and the kernels' working directory.
        args += f" --FileContentsManager.root_dir={root_dir} --MappingKernelManager.root_dir={root_dir}"
    env = dict(os.environ)
    # The test run sets MPLBACKEND=Agg for its own processes; a learner's kernel has the inline
    # backend, which is what puts figures into the page.
    env.pop("MPLBACKEND", None)
    env["COURSE_ROOT"] = str(ROOT)
    log = work_dir / "jupyterlab.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            ["make", "-s", "lab", f"VENV={sys.prefix}", f"LAB_ARGS={args}"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root_dir or NOTEBOOKS, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"make lab exited early (code {proc.returncode}):\n{server.log_tail()}")
            try:
                server.api("status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"JupyterLab did not answer within {timeout:.0f} s:\n{server.log_tail()}"
                    ) from None
                time.sleep(0.5)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
