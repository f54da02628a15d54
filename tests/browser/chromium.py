"""Headless Chromium (Debian's package) driven by Playwright, kept off the network.

Playwright's own browser download does not work offline, so the test uses the system's
``/usr/bin/chromium`` (``scripts/install_browser.sh`` installs it where it can). Every request
that is not for this machine is aborted and recorded, on top of Chromium's own switches that
stop background traffic.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "scripts" / "install_browser.sh"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]

# Every URL that is not for this machine. Playwright matches a regular expression inside the
# browser driver, so local requests (all of JupyterLab) never wait for Python.
NOT_LOCAL = re.compile(
    r"^(?!(?:https?|wss?)://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?(?:[/?#]|$))"
    r"(?!(?:data|blob|about|chrome|chrome-extension):)"
)


def find_chromium(install: bool = True) -> tuple[str | None, str]:
    """The Chromium to use and, when there is none, why.

    ``$CHROMIUM`` overrides the default ``/usr/bin/chromium``. When it is missing and
    ``install`` is true, ``scripts/install_browser.sh`` is run first (it installs Debian's
    package when it runs as root with apt-get, and does nothing otherwise).
    """
    path = os.environ.get("CHROMIUM", DEFAULT_CHROMIUM)
    if not os.access(path, os.X_OK) and install and INSTALLER.exists():
        result = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True, timeout=900)
        if not os.access(path, os.X_OK):
            detail = (result.stderr or result.stdout).strip().splitlines()
            return None, f"{path} is missing and {INSTALLER.name} could not install it: " + (
                detail[-1] if detail else f"exit code {result.returncode}"
            )
    if not os.access(path, os.X_OK):
        return None, f"no Chromium at {path} (run scripts/install_browser.sh, or set CHROMIUM)"
    return path, ""


class OfflineBrowser:
    """A Playwright browser context whose pages reach only this machine.

    ``blocked`` lists the URLs the pages tried to load elsewhere (a Colab badge image in a
    markdown cell, for instance); they are aborted, not fatal.
    """

    def __init__(self, playwright, executable: str, user_data_dir: Path, viewport=(1280, 1000)):
        self.blocked: list[str] = []
        shutil.rmtree(user_data_dir, ignore_errors=True)
        user_data_dir.mkdir(parents=True)
        self.context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]},
            service_workers="block",
        )
        self.context.route(NOT_LOCAL, self._abort)

    def _abort(self, route) -> None:
        self.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    def new_page(self):
        return self.context.new_page()

    def close(self) -> None:
        self.context.close()
