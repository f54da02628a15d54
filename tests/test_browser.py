"""The course in a real browser: JupyterLab, started like `make lab`, driven by headless Chromium.

nbval checks what a kernel prints; learners look at what JupyterLab draws. These tests open the
lessons in JupyterLab as a learner does (Run > Run All Cells, on copies of the notebooks with
their outputs cleared, so the committed files are never opened) and check the page:

* every code cell ran (it has an execution count) and none shows an error;
* a matplotlib figure is an image with a real size;
* the lessons are the learner's forms: a prediction shows no answer until the learner commits,
  and committing shows it; an unsolved exercise reports itself and *Run all* goes on;
* the quiz answers: a wrong option and *Check* give "Not quite." with that option's explanation,
  the right option gives "Correct!" (the options come from the quiz bank), and the feedback lists
  the options in the shuffled order the learner sees;
* a playground redraws when its slider moves (driven with the keyboard);
* and the checker itself notices a cell that raises and a widget that cannot be drawn (a copy of
  a lesson with both planted in it).

A screenshot of each notebook after its run is kept under ``artifacts/browser/``.
Chromium is Debian's package (``scripts/install_browser.sh``); without it the tests skip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from browser.chromium import NOT_LOCAL, OfflineBrowser, find_chromium
from browser.lab import NOTEBOOKS, ROOT, copy_notebook, lab_server
from browser.notebook import CellView, NotebookPage, problems

from course_utils.prompts import WAITING
from course_utils.quiz import CORRECT_TEXT, WRONG_TEXT, load_bank

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the Python package playwright (test extra) is not installed"
)
expect = sync_api.expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = ROOT / "artifacts" / "browser"
WELCOME = "00_welcome.ipynb"
PLANTED = "planted_error.ipynb"
PLANTED_CODE = 'raise RuntimeError("planted")'
# A widget whose JavaScript does not exist: the kernel is happy, the browser cannot draw it.
PLANTED_WIDGET = """import ipywidgets
import traitlets


class Planted(ipywidgets.DOMWidget):
    _model_module = traitlets.Unicode("no-such-widget-package").tag(sync=True)
    _view_module = traitlets.Unicode("no-such-widget-package").tag(sync=True)
    _model_name = traitlets.Unicode("PlantedModel").tag(sync=True)
    _view_name = traitlets.Unicode("PlantedView").tag(sync=True)


Planted()"""
WIDGET_TIMEOUT = 60_000  # ms; widgets render after their kernel message arrives, on a busy machine


@dataclass(frozen=True)
class Playground:
    """Where a playground is shown, which slider to move, and the text that reports its result."""

    notebook: str
    class_name: str
    slider: str  # the slider's description
    result_text: str  # a piece of the result label, to find it


# The lessons that show a playground, in order of preference; when none has arrived yet, a small
# notebook that shows the IoU playground stands in for them.
LESSON_PLAYGROUNDS = (
    Playground("02_boxes_and_iou.ipynb", "IoUPlayground", "B x", "IoU ="),
    Playground("03_nms_and_postprocessing.ipynb", "NMSExplorer", "score thr.", "kept"),
)
STAND_IN = Playground("iou_playground.ipynb", "IoUPlayground", "B x", "IoU =")


def shows(notebook: Path, class_name: str) -> bool:
    """True when a code cell of ``notebook`` builds ``class_name``."""
    nb = nbformat.read(notebook, as_version=4)
    return any(cell.cell_type == "code" and f"{class_name}(" in cell.source for cell in nb.cells)


def stand_in_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# IoU playground\n\nMove the sliders: the IoU and the picture follow."
        ),
        nbformat.v4.new_code_cell(
            "from course_utils.playgrounds import IoUPlayground\n\n"
            "playground = IoUPlayground(box_a=(24, 24, 72, 72), box_b=(48, 40, 104, 96))\n"
            "playground"
        ),
    ]
    nbformat.write(nb, path)


def plant_errors(source: Path, dest: Path) -> tuple[int, int]:
    """Copy a lesson with two planted faults right after its setup cell: a widget the browser
    cannot draw, then ``raise RuntimeError("planted")``.

    Returns:
        the indices of the two planted cells (widget, raise).
    """
    copy_notebook(source, dest.parent, dest.name)
    nb = nbformat.read(dest, as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "start_lesson" in c.source)
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(PLANTED_WIDGET))
    nb.cells.insert(setup + 2, nbformat.v4.new_code_cell(PLANTED_CODE))
    nbformat.write(nb, dest)
    return setup + 1, setup + 2


def assert_no_problems(run: Run) -> None:
    found = problems(run.cells)
    console = "".join(f"\n  {line[:300]}" for line in run.notebook.console_errors())
    assert not found, (
        f"{run.notebook.name} shows problems after Run All Cells:\n  "
        + "\n  ".join(found)
        + (f"\nbrowser console errors:{console}" if console else "")
    )


# --------------------------------------------------------------------------------------------
# Fixtures: Chromium, the served folder, JupyterLab, the browser
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    path, reason = find_chromium(install=True)
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict:
    """The folder JupyterLab serves: output-free copies of the lessons the tests open."""
    root = tmp_path_factory.mktemp("lab-root")
    copy_notebook(NOTEBOOKS / WELCOME, root)
    planted = plant_errors(NOTEBOOKS / WELCOME, root / PLANTED)
    lessons = [p for p in LESSON_PLAYGROUNDS if (NOTEBOOKS / p.notebook).exists()]
    playground = next((p for p in lessons if shows(NOTEBOOKS / p.notebook, p.class_name)), None)
    if playground is None:
        playground = STAND_IN
        stand_in_notebook(root / STAND_IN.notebook)
    else:
        copy_notebook(NOTEBOOKS / playground.notebook, root)
    return {"root": root, "planted": planted, "playground": playground}


@pytest.fixture(scope="module")
def lab(chromium, served, tmp_path_factory):  # noqa: ARG001 - skip before starting the server
    with lab_server(served["root"], tmp_path_factory.mktemp("lab-work")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory) -> Iterator[OfflineBrowser]:
    with sync_api.sync_playwright() as playwright:
        chrome = OfflineBrowser(playwright, chromium, tmp_path_factory.mktemp("chromium") / "profile")
        try:
            yield chrome
        finally:
            chrome.close()


@dataclass
class Run:
    notebook: NotebookPage
    cells: list[CellView]

    @property
    def page(self):
        return self.notebook.page


@contextmanager
def run_notebook(browser: OfflineBrowser, lab, name: str) -> Iterator[Run]:
    """Open ``name`` in JupyterLab, Run All Cells, hand over the page; then keep a screenshot
    (``artifacts/browser/<name>.png``) and stop the notebook's kernel."""
    notebook = NotebookPage(browser, lab, name)
    passed = False
    try:
        notebook.open()
        yield Run(notebook, notebook.run_all())
        passed = True
    finally:
        try:  # a screenshot also when the test failed, to see why
            notebook.screenshot(ARTIFACTS / f"{Path(name).stem}.png")
        except Exception:
            if passed:
                raise
        finally:
            notebook.close()


@pytest.fixture(scope="module")
def welcome(browser, lab) -> Iterator[Run]:
    with run_notebook(browser, lab, WELCOME) as run:
        yield run


# --------------------------------------------------------------------------------------------
# The welcome lesson: runs, plots, quiz, prediction
# --------------------------------------------------------------------------------------------


def test_server_serves_copies_not_the_committed_notebooks(lab):
    listed = {item["name"] for item in lab.api("contents")["content"]}
    assert PLANTED in listed, "the server must serve the temporary copies"
    assert not (NOTEBOOKS / PLANTED).exists()
    assert lab.root_dir.resolve() != NOTEBOOKS.resolve()


def test_every_cell_runs_without_an_error(welcome):
    code = [c for c in welcome.cells if c.kind == "code"]
    assert code, "no code cell was found in the page"
    assert_no_problems(welcome)
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"cells ran out of order: {counts}"


def test_matplotlib_figure_is_shown_as_an_image(welcome):
    figures = [
        (cell, image)
        for cell in welcome.cells
        for image in cell.images
        if not image["widget"] and image["mime"].startswith("image/")
    ]
    assert figures, "no figure image in any output area"
    sizes = [(image["width"], image["height"]) for _, image in figures]
    assert all(w > 0 and h > 0 for w, h in sizes), f"a figure did not load: natural sizes {sizes}"


def test_quiz_explains_a_wrong_answer_and_accepts_the_right_one(welcome):
    bank = load_bank("00_welcome")
    number, question = next((n, q) for n, q in enumerate(bank.questions, 1) if q.kind == "single")
    right = next(o for o in question.options if o.correct)
    wrong = next(o for o in question.options if not o.correct)
    page = welcome.page
    box = (
        welcome.notebook.locator(".widget-vbox")
        .filter(has=page.locator(".widget-html", has_text=f"Q{number}. {question.prompt}"))
        .filter(has=page.get_by_role("button", name="Check"))
        .last
    )
    expect(box).to_be_visible(timeout=WIDGET_TIMEOUT)
    feedback = box.locator(".quiz-feedback")

    box.get_by_role("radio", name=wrong.text, exact=True).check()
    box.get_by_role("button", name="Check").click()
    expect(feedback).to_contain_text(WRONG_TEXT, timeout=WIDGET_TIMEOUT)
    expect(feedback).to_contain_text(f"{wrong.text} (your choice): {wrong.why}")
    expect(feedback).not_to_contain_text(CORRECT_TEXT)

    box.get_by_role("radio", name=right.text, exact=True).check()
    box.get_by_role("button", name="Check").click()
    expect(feedback).to_contain_text(CORRECT_TEXT, timeout=WIDGET_TIMEOUT)
    expect(feedback).to_contain_text(f"{right.text} (your choice): {right.why}")
    expect(feedback).not_to_contain_text(WRONG_TEXT)

    shown = [radio.evaluate("(input) => input.closest('label').innerText.trim()") for radio in
             box.get_by_role("radio").all()]
    assert sorted(shown) == sorted(o.text for o in question.options), shown
    explained = feedback.locator("li").all_inner_texts()
    assert [line[2:].split(" (your choice)")[0].split(": ")[0] for line in explained] == shown, (
        "the feedback must list the options in the order the learner sees them"
    )


def test_prediction_shows_its_answer_only_after_the_commit(welcome):
    page = welcome.page
    waiting = welcome.notebook.locator(".widget-html").filter(has_text=WAITING)
    expect(waiting.first).to_be_visible(timeout=WIDGET_TIMEOUT)
    answers = [handle for handle in waiting.element_handles()]  # the reveals, still waiting
    assert answers, "Run All must leave the reveal waiting for a commit"
    assert not any("The answer:" in c for cell in welcome.cells for c in cell.outputs), (
        "an answer is shown before the learner committed"
    )
    box = (
        welcome.notebook.locator(".widget-vbox")
        .filter(has=page.locator(".widget-html", has_text="Predict before you run"))
        .filter(has=page.get_by_role("button", name="Commit"))
        .first
    )
    expect(box).to_be_visible(timeout=WIDGET_TIMEOUT)
    choice = box.get_by_role("radio").first
    label = choice.evaluate("(input) => input.closest('label').innerText.trim()")
    choice.check()
    box.get_by_role("button", name="Commit").click()
    expect(box).to_contain_text(f"Committed: {label}", timeout=WIDGET_TIMEOUT)
    expect(box).to_contain_text("The answer:", timeout=WIDGET_TIMEOUT)
    expect(box.get_by_role("button", name="Commit")).to_be_disabled()
    revealed = [handle.inner_text() for handle in answers]
    assert any(f"You predicted: {label}. The answer:" in text for text in revealed), revealed


# --------------------------------------------------------------------------------------------
# A playground follows its slider
# --------------------------------------------------------------------------------------------


def test_playground_redraws_when_its_slider_moves(browser, lab, served):
    spec: Playground = served["playground"]
    with run_notebook(browser, lab, spec.notebook) as run:
        assert_no_problems(run)  # Run all reached the end, unsolved exercises included
        if spec is not STAND_IN:
            reported = [c for c in run.cells if any("is not solved yet" in t for t in c.outputs)]
            assert reported, "an unsolved exercise of the learner's form must report itself"
        page = run.page
        panel = (
            run.notebook.locator(".widget-hbox")
            .filter(has=page.locator("img.widget-image"))
            .filter(has=page.locator(".widget-slider .widget-label", has_text=spec.slider))
            .first
        )
        expect(panel).to_be_visible(timeout=WIDGET_TIMEOUT)
        slider = panel.locator(".widget-slider").filter(
            has=page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(spec.slider)}\s*$"))
        )
        readout = slider.locator(".widget-readout")
        result = panel.locator(".widget-html", has_text=spec.result_text).last
        picture = panel.locator("img.widget-image").first
        expect(result).to_be_visible(timeout=WIDGET_TIMEOUT)
        before = (readout.inner_text(), result.inner_text(), picture.get_attribute("src"))

        handle = slider.locator(".noUi-handle")
        handle.focus()
        for _ in range(5):
            handle.press("ArrowRight")
        expect(readout).not_to_have_text(before[0], timeout=WIDGET_TIMEOUT)
        expect(result).not_to_have_text(before[1], timeout=WIDGET_TIMEOUT)
        expect(picture).not_to_have_attribute("src", before[2] or "", timeout=WIDGET_TIMEOUT)
        natural = picture.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
        assert min(natural) > 0, f"the redrawn picture did not load: {natural}"


# --------------------------------------------------------------------------------------------
# The checker notices errors
# --------------------------------------------------------------------------------------------


def test_planted_faults_are_reported(browser, lab, served):
    widget_index, raise_index = served["planted"]
    with run_notebook(browser, lab, PLANTED) as run:
        found = problems(run.cells)
    widget, raised = run.cells[widget_index], run.cells[raise_index]
    assert raised.first_line == PLANTED_CODE
    assert any("RuntimeError: planted" in text for text in raised.tracebacks), raised
    assert any(line.startswith(raised.describe()) and "RuntimeError: planted" in line for line in found), (
        found
    )
    assert widget.execution_count is not None and widget.widget_errors, widget
    assert any(line.startswith(widget.describe()) and "widget" in line for line in found), found
    later = [c for c in run.cells[raise_index + 1 :] if c.kind == "code"]
    assert later and all(c.execution_count is None for c in later), "Run All must stop at the error"
    assert all(any(line.startswith(c.describe()) for line in found) for c in later), found


def test_remote_addresses_are_refused_and_local_ones_pass():
    for url in (
        "https://colab.research.google.com/assets/colab-badge.svg",
        "https://pypi.org/simple/",
        "http://127.0.0.1.example.com/",
        "wss://example.com/socket",
    ):
        assert NOT_LOCAL.match(url), url
    for url in (
        "http://127.0.0.1:8888/lab/tree/00_welcome.ipynb",
        "ws://127.0.0.1:8888/api/kernels/1/channels",
        "http://localhost:8888/static/x.js",
        "http://[::1]:8888/api",
        "data:image/png;base64,AAAA",
        "blob:http://127.0.0.1:8888/1234",
    ):
        assert not NOT_LOCAL.match(url), url
