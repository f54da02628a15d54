"""Run a notebook in JupyterLab as a learner does (Run > Run All Cells) and read the result.

``NotebookPage.run_all`` returns one ``CellView`` per cell, read from the page itself: the input
prompt (``[3]:`` once run), the text of its outputs, the error outputs, the stderr text, widgets that failed to render,
the headings of rendered markdown and the images. ``problems`` turns them into readable
complaints: a lesson without a title, a cell that raised, a widget that shows an error instead
of itself, a cell that never ran.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .lab import LabServer

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
ERROR_MIME = "application/vnd.jupyter.error"
STDERR_MIME = "application/vnd.jupyter.stderr"
# A traceback, or the "SomeError: message" line an error output ends with.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*\w+(Error|Exception)\b.*:", re.MULTILINE)
PROMPT_NUMBER = re.compile(r"^\[(\d+)\]:?$")

READ_CELLS_JS = """
([panel, errorMime, stderrMime]) => {
  const root = document.querySelector(panel);
  if (!root) return [];
  return Array.from(root.querySelectorAll('.jp-Notebook .jp-Cell')).map((cell, index) => {
    const kind = cell.classList.contains('jp-CodeCell') ? 'code'
      : cell.classList.contains('jp-MarkdownCell') ? 'markdown' : 'raw';
    const prompt = cell.querySelector('.jp-InputArea-prompt');
    const line = cell.querySelector('.jp-InputArea-editor .cm-line');
    const text = (sel) => Array.from(cell.querySelectorAll(sel)).map((e) => e.innerText);
    return {
      index,
      kind,
      prompt: prompt ? prompt.innerText.trim() : '',
      first_line: line ? line.innerText : '',
      outputs: text('.jp-OutputArea-output'),
      errors: text(`.jp-OutputArea-output[data-mime-type="${errorMime}"]`),
      stderr: text(`.jp-OutputArea-output[data-mime-type="${stderrMime}"]`),
      widget_errors: Array.from(cell.querySelectorAll('.jp-OutputArea-output'))
        .filter((e) => e.querySelector('.jupyter-widgets-error-widget')
          || e.innerText.trim().startsWith('Error displaying widget'))
        .map((e) => e.querySelector('.jupyter-widgets-error-widget')
          ? 'its view raised an error in the browser' : e.innerText.trim()),
      headings: Array.from(cell.querySelectorAll('.jp-RenderedMarkdown :is(h1, h2, h3, h4, h5, h6)'))
        .map((h) => h.tagName.toLowerCase() + ' ' + h.innerText.trim()),
      widgets_loading: Array.from(cell.querySelectorAll('.jp-OutputArea-output'))
        .filter((e) => e.innerText.trim() === 'Loading widget...').length,
      images: Array.from(cell.querySelectorAll('.jp-OutputArea-output img')).map((img) => ({
        widget: img.classList.contains('widget-image'),
        mime: (img.closest('[data-mime-type]') || {getAttribute: () => ''}).getAttribute('data-mime-type'),
        width: img.naturalWidth,
        height: img.naturalHeight,
      })),
    };
  });
}
"""


@dataclass
class CellView:
    """One cell as the page shows it after a run."""

    index: int
    kind: str
    prompt: str
    first_line: str
    outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    widget_errors: list[str] = field(default_factory=list)
    widgets_loading: int = 0
    headings: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)

    @property
    def execution_count(self) -> int | None:
        match = PROMPT_NUMBER.match(self.prompt)
        return int(match.group(1)) if match else None

    @property
    def running(self) -> bool:
        return self.prompt.startswith("[*]")

    @property
    def tracebacks(self) -> list[str]:
        """Error outputs, and stderr outputs that hold a traceback (plain warnings do not count)."""
        return self.errors + [text for text in self.stderr if TRACEBACK.search(text)]

    def describe(self) -> str:
        return f"cell {self.index} ({self.first_line.strip()[:60]!r})"


def problems(cells: list[CellView]) -> list[str]:
    """What went wrong in a run: a first cell without a title, cells that raised, widgets that
    failed to render or never loaded, and code cells that have no execution count."""
    found = []
    if cells and not any(h.startswith("h1 ") for h in cells[0].headings):
        found.append(
            f"{cells[0].describe()} shows no title (an h1 heading); a lesson starts with its title "
            "(markdown indented by 4 spaces renders as a code block)"
        )
    for cell in cells:
        if cell.kind != "code":
            continue
        for text in cell.tracebacks:
            last = [line for line in text.strip().splitlines() if line.strip()][-3:]
            found.append(f"{cell.describe()} shows an error: " + " | ".join(last))
        for text in cell.widget_errors:
            found.append(
                f"{cell.describe()} shows a widget that failed to render: {' '.join(text.split())[:200]}"
            )
        if cell.widgets_loading:
            found.append(
                f"{cell.describe()} has {cell.widgets_loading} widget(s) that never finished loading"
            )
        if cell.execution_count is None:
            found.append(f"{cell.describe()} has no execution count (prompt {cell.prompt!r})")
    return found


class NotebookPage:
    """One notebook open in its own JupyterLab tab of the browser."""

    def __init__(self, browser, server: LabServer, name: str):
        self.server = server
        self.name = name
        self.page = browser.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"error: {e}"))

    def console_errors(self) -> list[str]:
        """The page's console errors, less the refused requests for remote addresses."""
        return [m for m in self.console if m.startswith("error:") and "ERR_BLOCKED_BY_CLIENT" not in m]

    # -- opening and running -----------------------------------------------------------------

    def open(self, timeout: float = 120) -> None:
        """Load JupyterLab on this notebook (a fresh workspace) and wait for its kernel."""
        self.page.goto(self.server.url(f"lab/tree/{self.name}?reset"), timeout=timeout * 1000)
        self.page.locator(f"{PANEL} .jp-Notebook .jp-Cell").first.wait_for(timeout=timeout * 1000)
        self.wait_for_kernel("idle", timeout)

    def kernel_state(self) -> str:
        for session in self.server.api("sessions"):  # type: ignore[union-attr]
            if session.get("path") == self.name and session.get("kernel"):
                return session["kernel"].get("execution_state", "")
        return "no kernel"

    def wait_for_kernel(self, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (now := self.kernel_state()) != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: kernel is {now!r}, not {state!r}, after {timeout:.0f} s")
            self.page.wait_for_timeout(500)  # not time.sleep: the page's events keep flowing

    def menu(self, menu: str, item: str) -> None:
        """Click a menu bar entry, then one of its items (both by their exact label)."""
        self.page.locator(".lm-MenuBar-itemLabel").get_by_text(menu, exact=True).click()
        self.page.locator(".lm-Menu .lm-Menu-itemLabel").get_by_text(item, exact=True).click()

    def cells(self) -> list[CellView]:
        raw = self.page.evaluate(READ_CELLS_JS, [PANEL, ERROR_MIME, STDERR_MIME])
        return [CellView(**cell) for cell in raw]

    def run_all(self, timeout: float = 300, widget_timeout: float = 30) -> list[CellView]:
        """Run > Run All Cells, then wait until the kernel is idle and no cell is queued.

        The run is over when no prompt shows ``[*]``, the kernel is idle, and either every code
        cell has an execution count or an error stopped the run, for three polls in a row. Then
        widgets get up to ``widget_timeout`` seconds more to leave their "Loading widget..." state.
        """
        self.page.locator(f"{PANEL} .jp-Notebook").click(position={"x": 5, "y": 5})
        self.menu("Run", "Run All Cells")
        deadline = time.monotonic() + timeout
        settled = 0
        while settled < 3:
            if time.monotonic() > deadline:
                state = "\n".join(f"  {c.describe()}: {c.prompt}" for c in self.cells() if c.kind == "code")
                raise AssertionError(f"{self.name}: Run All did not finish within {timeout:.0f} s:\n{state}")
            self.page.wait_for_timeout(500)
            cells = self.cells()
            code = [c for c in cells if c.kind == "code"]
            finished = all(c.execution_count is not None for c in code) or any(c.tracebacks for c in code)
            quiet = not any(c.running for c in code) and self.kernel_state() == "idle"
            settled = settled + 1 if finished and quiet else 0
        widgets_deadline = time.monotonic() + widget_timeout
        while any(c.widgets_loading for c in cells) and time.monotonic() < widgets_deadline:
            self.page.wait_for_timeout(500)
            cells = self.cells()
        return cells

    # -- looking at it -----------------------------------------------------------------------

    def locator(self, selector: str):
        """Elements inside this notebook's panel."""
        return self.page.locator(f"{PANEL} {selector}")

    def screenshot(self, path: Path, max_height: int = 16000) -> Path:
        """A picture of the whole notebook, from its top: the left sidebar is closed and the
        window is made as tall as the notebook first."""
        open_tab = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if open_tab.count():
            open_tab.first.click()
        height = self.page.evaluate(
            """(panel) => {
                const outer = document.querySelector(panel + ' .jp-WindowedPanel-outer');
                return outer ? outer.getBoundingClientRect().top + outer.scrollHeight + 60 : 1000;
            }""",
            PANEL,
        )
        width = self.page.viewport_size["width"] if self.page.viewport_size else 1280
        self.page.set_viewport_size({"width": width, "height": min(int(height), max_height)})
        self.page.wait_for_timeout(300)
        self.page.evaluate(
            "(panel) => { const o = document.querySelector(panel + ' .jp-WindowedPanel-outer'); if (o) o.scrollTop = 0; }",
            PANEL,
        )
        self.page.wait_for_timeout(300)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        """Close the tab and stop this notebook's kernel."""
        self.page.close()
        for session in self.server.api("sessions"):  # type: ignore[union-attr]
            if session.get("path") == self.name:
                self.server.api(f"sessions/{session['id']}", method="DELETE")
