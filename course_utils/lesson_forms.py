"""The two forms of a lesson, and the checks on what a reader of each form sees.

``notebooks/solved/NN_name.ipynb`` is the source: solutions in, executed, every figure.
``learner_form`` turns it into ``notebooks/NN_name.ipynb``, the learner's form:

* no outputs, no execution counts, no widget state;
* every solution region (the lines between nbgrader's ``### BEGIN SOLUTION`` and ``### END
  SOLUTION`` markers) becomes a stub: ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` in a
  function body, ``name = None  # YOUR ANSWER HERE`` for a top-level answer variable;
* hidden-test markers are removed (the checks themselves stay: the learner's form checks fully);
* test-machinery tags (``nbval-*``, ``points:N``, ``assignment-keep``) are dropped.

Notebooks are handled as plain JSON-like mappings (``nbformat`` nodes work too).
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

SOLUTION_BEGIN, SOLUTION_END = "BEGIN SOLUTION", "END SOLUTION"
HIDDEN_WORDS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
MACHINERY_TAG = re.compile(r"^(nbval-.*|points:.*|assignment-keep)$")
FUNCTION_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
ANSWER_STUB = "{name} = None  # YOUR ANSWER HERE"

# Text a learner must never read, with the reason (checked in both forms' sources and outputs).
HARNESS_TEXT = {
    "offline test run": "the offline guard's message",
    "network access is blocked": "the offline guard's message",
    "<course>/": "a file path of the course",
    "<python>/": "a file path of the Python installation",
    "site-packages": "a file path of an installed package",
    "load average": "the machine's load average",
    "getloadavg": "the machine's load average",
    "NBVAL_": "an nbval marker (use the cell tag nbval-check-output)",
    "# points:": "a points marker (use the cell tag points:N)",
}
# Only the learner's form must also be free of these (the solved form holds nbgrader's markers).
LEARNER_ONLY_TEXT = {
    SOLUTION_BEGIN: "a solution marker",
    SOLUTION_END: "a solution marker",
    HIDDEN_WORDS[0]: "a hidden-test marker",
    HIDDEN_WORDS[1]: "a hidden-test marker",
}
# A code cell whose source matches draws a figure, so its solved form must hold a picture.
DRAWS = re.compile(r"plt\.show\(|\bplot_\w+\(|\bshow_samples\(|\b(IoUPlayground|NMSExplorer|AnchorExplorer)\(")
LOW_DPI = re.compile(r"\bdpi\s*=\s*([0-9]+)")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
# Readable cells: a code cell holds at most MAX_CODE_LINES non-blank lines (nbgrader's marker lines
# not counted; in the setup cell, the lines below BOOTSTRAP_END), a markdown cell MAX_WORDS words.
BOOTSTRAP_END = "# --- end of bootstrap ---"
MAX_CODE_LINES = 15
MAX_WORDS = 200
_MARKER_LINE = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")


def source_of(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def stub_solutions(source: str) -> str:
    """``source`` with each solution region replaced by its stub (markers removed)."""
    out: list[str] = []
    region: list[str] | None = None
    indent = ""
    for line in source.splitlines():
        if SOLUTION_BEGIN in line:
            region, indent = [], line[: len(line) - len(line.lstrip())]
        elif SOLUTION_END in line and region is not None:
            out.extend(_stub(region, indent))
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError(f"a {SOLUTION_BEGIN!r} region is never closed by {SOLUTION_END!r}")
    return "\n".join(out)


def _stub(region: list[str], indent: str) -> list[str]:
    """The stub for one region: answer variables keep their names, code becomes NotImplementedError."""
    if not indent:
        try:
            tree = ast.parse("\n".join(region))
        except SyntaxError:
            tree = None
        names = [
            s.targets[0].id
            for s in (tree.body if tree else [])
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
        ]
        if tree is not None and tree.body and len(names) == len(tree.body):
            return [ANSWER_STUB.format(name=name) for name in names]
    return [indent + line for line in FUNCTION_STUB]


def learner_form(solved: Mapping[str, Any]) -> dict[str, Any]:
    """The learner's form of a solved lesson (see the module docstring); ``solved`` is not changed."""
    nb = copy.deepcopy(dict(solved))
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in ("kernelspec", "language_info")}
    for cell in nb["cells"]:
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if not MACHINERY_TAG.match(t)]
        cell["metadata"] = {"tags": tags} if tags else {}
        if cell["cell_type"] != "code":
            continue
        source = stub_solutions(source_of(cell))
        lines = [line for line in source.splitlines() if not any(w in line for w in HIDDEN_WORDS)]
        cell["source"] = "\n".join(lines)
        cell["outputs"] = []
        cell["execution_count"] = None
    return nb


def _output_texts(cell: Mapping[str, Any]) -> Iterable[str]:
    for out in cell.get("outputs", []):
        text = out.get("text", "")
        yield "".join(text) if isinstance(text, list) else text
        for key, value in out.get("data", {}).items():
            if key.startswith("text/"):
                yield "".join(value) if isinstance(value, list) else str(value)
        yield "\n".join(out.get("traceback", []))


def harness_problems(nb: Mapping[str, Any], learner: bool) -> list[str]:
    """Test-harness text in a lesson's sources and outputs: one message per finding."""
    banned = {**HARNESS_TEXT, **(LEARNER_ONLY_TEXT if learner else {})}
    problems = []
    for number, cell in enumerate(nb["cells"], start=1):
        for text in [source_of(cell), *_output_texts(cell)]:
            for needle, what in banned.items():
                if needle in text:
                    problems.append(f"cell {number}: shows {what} ({needle!r})")
    return list(dict.fromkeys(problems))  # in cell order, each once


def solved_problems(nb: Mapping[str, Any]) -> list[str]:
    """What an executed solved lesson must not hold: harness text, and a prediction's answer left
    waiting for a commit (the solved form is built with ``COURSE_SHOW_KEYS=1`` and shows answers)."""
    from .prompts import WAITING

    problems = harness_problems(nb, learner=False)
    for number, cell in enumerate(nb["cells"], start=1):
        if any(WAITING in text for text in _output_texts(cell)):
            problems.append(f"cell {number}: a prediction's answer is missing (rebuild with `make notebooks`)")
    return problems


def figure_problems(nb: Mapping[str, Any]) -> list[str]:
    """Cells of an executed solved lesson that draw but hold no picture, and figures below 100 dpi."""
    problems = []
    for number, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        source = source_of(cell)
        for match in LOW_DPI.finditer(source):
            if int(match.group(1)) < 100:
                problems.append(f"cell {number}: dpi={match.group(1)} is below 100 (unreadable on a laptop)")
        has_image = any(
            kind in out.get("data", {}) for out in cell.get("outputs", []) for kind in IMAGE_TYPES
        )
        if DRAWS.search(source) and not has_image:
            problems.append(f"cell {number}: draws a figure but its output holds no picture")
    return problems


def code_lines(source: str) -> int:
    """Non-blank lines of a code cell that a reader reads: nbgrader's marker lines are not counted,
    and in the setup cell only the lines below the bootstrap block (which ``make sync`` writes)."""
    if BOOTSTRAP_END in source:
        source = source.split(BOOTSTRAP_END, 1)[1]
    return sum(1 for line in source.splitlines() if line.strip() and not _MARKER_LINE.match(line))


def size_problems(nb: Mapping[str, Any]) -> list[str]:
    """Cells too long to read in one glance: code over MAX_CODE_LINES lines, prose over MAX_WORDS words."""
    problems = []
    for number, cell in enumerate(nb["cells"], start=1):
        source = source_of(cell)
        if cell["cell_type"] == "code" and (lines := code_lines(source)) > MAX_CODE_LINES:
            problems.append(f"cell {number}: {lines} lines of code (at most {MAX_CODE_LINES}; split it)")
        if cell["cell_type"] == "markdown" and (words := len(source.split())) > MAX_WORDS:
            problems.append(f"cell {number}: {words} words of prose (at most {MAX_WORDS}; split it)")
    return problems


def learner_problems(nb: Mapping[str, Any]) -> list[str]:
    """What must not be in a committed learner form: outputs, execution counts, harness text."""
    problems = []
    for number, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"cell {number}: has outputs or an execution count")
    return problems + harness_problems(nb, learner=True)
