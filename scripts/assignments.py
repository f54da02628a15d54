"""Graded assignments (nbgrader), generated from the lecture notebooks.

    python scripts/assignments.py release [NAME ...] [--full]   # what `make assignments` runs
    python scripts/assignments.py source  [NAME ...] [--full]   # only the source assignments
    python scripts/assignments.py list                          # exercises and points per notebook
    python scripts/assignments.py leaks                         # exit 1 if the release holds an answer

The solved lessons in notebooks/solved/ are the only copy of every exercise. ``source`` turns each
notebook that has exercises into an nbgrader source assignment,
``nbgrader/source/<NN_name>/<NN_name>.ipynb``; ``release`` then runs ``nbgrader
generate_assignment`` on each, which writes the student version to ``nbgrader/release/`` (answers
replaced by stubs, hidden tests removed, outputs cleared), and checks that no answer leaked into
it. Both folders are generated (git-ignored): without NAME they are emptied and rebuilt, with NAME
(``02_boxes_and_iou`` or ``02``) only those assignments are. ``--course-root`` points at another
nbgrader course folder (default: nbgrader/). ``release`` also warns about test cells whose stored
outputs would cost points under nbgrader (see ``output_problems``).

What the conversion does (the conventions lesson authors follow are in docs/instructors.md):

* a code cell holding ``### BEGIN SOLUTION`` / ``### END SOLUTION`` becomes an autograded answer
  cell (``solution``; its ``grade_id`` is the name the cell defines, e.g. ``iou_from_scratch``);
* the code cells after it (markdown in between is fine) that read a name the answer cell defines and
  hold an ``assert`` statement or ``assert...`` call, or a hidden test block, become graded, locked
  test cells (``grade``, ``points``: 1, or the cell tag ``points:N``; ``grade_id`` ``test_<name>``,
  ``test_<name>_2``, ...); the first other code cell ends the exercise. ``### BEGIN HIDDEN TESTS`` /
  ``### END HIDDEN TESTS`` blocks in a test cell run in the lesson and at grading, and are removed
  from the release;
* every other cell is locked (read-only); the Colab badge is dropped (it links to the lesson) and a
  short "how to hand in" cell is added after the title;
* by default a lesson's assignment holds only its exercise part: the setup cell, each exercise's
  instructions (the markdown just above it), its answer and test cells (and the markdown between
  them), and the earlier code cells
  that define a name they use (found by reading the code; a cell tagged ``assignment-keep`` is always
  kept). ``--full`` keeps the whole lesson instead. The final quiz is always kept whole;
* graded quiz questions (``grade_choice(...)`` from course_utils.graded_quiz in a hidden block) must
  not also be shown by a ``show_quiz`` widget, whose "Check" button would reveal the key: the
  conversion stops with an error when they are.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks" / "solved"
COURSE_ROOT = ROOT / "nbgrader"
BOOTSTRAP_END = "# --- end of bootstrap ---"
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\s*")

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# nbgrader finds its markers anywhere in a line; so do we, to agree with it.
SOLUTION_WORDS, HIDDEN_WORDS = ("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
POINTS_RE = re.compile(r"^\s*#\s*points\s*[:=]\s*([0-9]+(?:\.[0-9]+)?)\s*$", re.IGNORECASE | re.MULTILINE)
POINTS_TAG = re.compile(r"^points:([0-9]+(?:\.[0-9]+)?)$")
KEEP_TAG = "assignment-keep"
# Notebooks handed out whole: every cell is part of the assignment.
WHOLE_NOTEBOOKS = ("14_final_quiz",)
# A line shorter than this is too generic to count as a leaked answer ("return x").
MIN_SECRET_LENGTH = 8


class ConversionError(ValueError):
    """A lecture notebook does not follow the exercise conventions; the message names the cell."""


@dataclass
class Exercise:
    """One exercise: its answer cell and the test cells that follow it (cell indices)."""

    name: str
    solution: int
    tests: list[int] = field(default_factory=list)
    points: list[float] = field(default_factory=list)

    @property
    def test_ids(self) -> list[str]:
        return [
            f"test_{self.name}" if k == 0 else f"test_{self.name}_{k + 1}" for k in range(len(self.tests))
        ]


# --- reading cells ---------------------------------------------------------------------------------


def _has(source: str, words: Iterable[str]) -> bool:
    return any(word in line for line in source.splitlines() for word in words)


def has_solution(cell) -> bool:
    return _has(cell.source, SOLUTION_WORDS)


def has_hidden_tests(cell) -> bool:
    return _has(cell.source, HIDDEN_WORDS)


def parse_code(source: str, where: str) -> ast.Module:
    """Parse a code cell (IPython magics and shell lines are blanked out first)."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError as err:
        raise ConversionError(f"{where}: not valid Python ({err.msg}, line {err.lineno})") from err


def marked_blocks(source: str, begin: str, end: str, where: str) -> list[list[str]]:
    """The lines between each ``begin`` / ``end`` marker pair (checks they pair up, unnested)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in source.splitlines():
        if begin in line:
            if current is not None:
                raise ConversionError(f"{where}: {begin!r} inside another {begin!r} block")
            current = []
        elif end in line:
            if current is None:
                raise ConversionError(f"{where}: {end!r} without a {begin!r} above it")
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        raise ConversionError(f"{where}: {begin!r} is never closed by {end!r}")
    return blocks


def _is_check(node: ast.AST) -> bool:
    """An ``assert`` statement, or a call of an ``assert...`` function (``torch.testing.assert_close``)."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name.startswith("assert")
    return False


def is_test_cell(cell, answer_names: set[str], where: str) -> bool:
    """A code cell that checks an answer: it holds a hidden test block, or it reads a name the
    answer cell defines and holds an ``assert`` (statement or ``assert...`` call)."""
    if cell.cell_type != "code" or has_solution(cell):
        return False
    if has_hidden_tests(cell):
        return True
    tree = parse_code(cell.source, where)
    return bool(defined_and_free(tree)[1] & answer_names) and any(_is_check(n) for n in ast.walk(tree))


def exercise_name(source: str, number: int, where: str) -> str:
    """The name an answer cell defines (first function or class, else first assigned variable)."""
    tree = parse_code(source, where)
    names = [
        n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    if not names:
        names = sorted(defined_and_free(tree)[0], key=lambda n: source.find(n))
    name = names[0] if names else f"exercise_{number}"
    return re.sub(r"[^A-Za-z0-9_]", "_", name).lower()


def points_of(cell) -> float:
    """A test cell's points: its tag ``points:N`` (or an old ``# points: N`` line); 1 by default."""
    for tag in cell.metadata.get("tags", []):
        if match := POINTS_TAG.match(tag):
            return float(match.group(1))
    match = POINTS_RE.search(cell.source)
    return float(match.group(1)) if match else 1.0


def find_exercises(nb, where: str = "notebook") -> list[Exercise]:
    """Every exercise of a lecture notebook, checked against the conventions.

    Raises:
        ConversionError: a solution marker sits in a markdown cell, markers do not pair up, a hidden
            test block is outside a test cell, or an answer cell has no test cell after it.
    """
    exercises: list[Exercise] = []
    tests_of: set[int] = set()
    for index, cell in enumerate(nb.cells):
        here = f"{where}, cell {index + 1}"
        if cell.cell_type != "code":
            if has_solution(cell) or has_hidden_tests(cell):
                raise ConversionError(
                    f"{here}: solution or hidden-test markers in a {cell.cell_type} cell; only code cells "
                    "can be answer or test cells (write about the markers without the words in capitals)"
                )
            continue
        if has_solution(cell):
            if has_hidden_tests(cell):
                raise ConversionError(f"{here}: an answer cell cannot also hold hidden tests")
            if not marked_blocks(cell.source, *SOLUTION_WORDS, here):
                raise ConversionError(f"{here}: no {BEGIN_SOLUTION!r} / {END_SOLUTION!r} pair")
            exercise = Exercise(exercise_name(cell.source, len(exercises) + 1, here), index)
            answer_names = defined_and_free(parse_code(cell.source, here))[0]
            for later in range(index + 1, len(nb.cells)):
                if nb.cells[later].cell_type != "code":
                    continue  # prose between an answer and its tests
                if not is_test_cell(nb.cells[later], answer_names, f"{where}, cell {later + 1}"):
                    break
                exercise.tests.append(later)
                exercise.points.append(points_of(nb.cells[later]))
            if not exercise.tests:
                raise ConversionError(
                    f"{here}: the answer cell (defines {exercise.name!r}) must be followed by a test cell: "
                    "a code cell that uses what the answer defines and holds assert statements"
                )
            tests_of.update(exercise.tests)
            exercises.append(exercise)
        elif has_hidden_tests(cell):
            marked_blocks(cell.source, *HIDDEN_WORDS, here)
            if index not in tests_of:
                raise ConversionError(
                    f"{here}: a hidden test block outside a test cell (one right after an answer)"
                )
    names = [e.name for e in exercises]
    for exercise in exercises:
        if names.count(exercise.name) > 1:
            exercise.name = f"{exercise.name}_{exercise.solution + 1}"
    return exercises


def output_problems(nb, where: str = "notebook") -> list[str]:
    """Test cells whose stored outputs (the lesson's last run) would cost points under nbgrader.

    nbgrader gives a test cell zero points when it writes to stderr (a warning, a tqdm bar) or fails,
    and reads a number shown as the cell's result as partial credit.
    """
    problems = []
    for exercise in find_exercises(nb, where):
        for index, grade_id in zip(exercise.tests, exercise.test_ids, strict=True):
            for output in nb.cells[index].get("outputs", []):
                kind = output.get("output_type")
                if kind == "stream" and output.get("name") == "stderr":
                    problems.append(
                        f"{where}, cell {index + 1} ({grade_id}): writes to stderr, which scores 0"
                    )
                elif kind == "error":
                    problems.append(
                        f"{where}, cell {index + 1} ({grade_id}): failed in the lesson's last run"
                    )
                elif kind == "execute_result":
                    problems.append(
                        f"{where}, cell {index + 1} ({grade_id}): ends with a value, which nbgrader reads as "
                        "partial credit; end with print(...) or an assert"
                    )
    return problems


# --- which cells an exercise needs -----------------------------------------------------------------

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _bound_here(nodes: Iterable[ast.AST]) -> set[str]:
    """Names bound in a scope's own body (nested functions and comprehensions not entered)."""
    names: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _loads(node: ast.AST, bound: set[str], out: set[str]) -> None:
    """Add to ``out`` the names ``node`` reads that are not bound in an enclosing scope."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = node.args
        params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                _loads(default, bound, out)
        body = node.body if isinstance(node.body, list) else [node.body]
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                _loads(decorator, bound, out)
        inner = bound | params | _bound_here(body)
        for stmt in body:
            _loads(stmt, inner, out)
        return
    if isinstance(node, ast.ClassDef):
        for part in [*node.bases, *node.decorator_list]:
            _loads(part, bound, out)
        inner = bound | _bound_here(node.body)
        for stmt in node.body:
            _loads(stmt, inner, out)
        return
    if isinstance(node, _COMPREHENSIONS):
        targets = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        _loads(node.generators[0].iter, bound, out)
        inner = bound | targets
        for number, generator in enumerate(node.generators):
            if number:
                _loads(generator.iter, inner, out)
            for condition in generator.ifs:
                _loads(condition, inner, out)
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                _loads(getattr(node, part), inner, out)
        return
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
        out.add(node.id)
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id not in bound:
        out.add(node.target.id)
    for child in ast.iter_child_nodes(node):
        _loads(child, bound, out)


def defined_and_free(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names a cell defines at top level, names it reads before defining them itself).

    Statement order counts at top level, also inside loops, ``if``, ``with`` and ``try`` blocks
    (``x = 1`` then ``print(x)`` reads nothing from outside); inside functions and classes, any name
    the cell defines counts as its own.
    """
    defined: set[str] = set()
    free: set[str] = set()
    late: set[str] = set()

    def reads_of(*nodes: ast.AST | None) -> set[str]:
        out: set[str] = set()
        for node in nodes:
            if node is not None:
                _loads(node, set(), out)
        return out

    def run(statements: Iterable[ast.stmt]) -> None:
        nonlocal free
        for stmt in statements:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                late.update(reads_of(stmt))
                defined.add(stmt.name)
            elif isinstance(stmt, (ast.For, ast.AsyncFor)):
                free |= reads_of(stmt.iter) - defined
                defined.update(_bound_here([stmt.target]))
                run(stmt.body + stmt.orelse)
            elif isinstance(stmt, (ast.If, ast.While)):
                free |= reads_of(stmt.test) - defined
                run(stmt.body + stmt.orelse)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                for item in stmt.items:
                    free |= reads_of(item.context_expr) - defined
                    defined.update(_bound_here([item.optional_vars] if item.optional_vars else []))
                run(stmt.body)
            elif isinstance(stmt, ast.Try):
                run(stmt.body)
                for handler in stmt.handlers:
                    free |= reads_of(handler.type) - defined
                    defined.update({handler.name} if handler.name else set())
                    run(handler.body)
                run(stmt.orelse + stmt.finalbody)
            else:
                free |= reads_of(stmt) - defined
                defined.update(_bound_here([stmt]))

    run(tree.body)
    return defined, free | (late - defined)


def needed_cells(nb, required: set[int], where: str = "notebook") -> set[int]:
    """``required`` plus every earlier code cell that defines a name they (transitively) read.

    Reads the code backwards: a cell is kept when it defines a name that a kept cell after it
    reads and that no kept cell in between defines again.
    """
    keep = set(required)
    needed: set[str] = set()
    for index in reversed(range(len(nb.cells))):
        cell = nb.cells[index]
        if cell.cell_type != "code":
            continue
        defined, free = defined_and_free(parse_code(cell.source, f"{where}, cell {index + 1}"))
        if index in keep or defined & needed or KEEP_TAG in cell.metadata.get("tags", []):
            keep.add(index)
            needed = (needed - defined) | free
    return keep


def instructions_of(nb, index: int, keep: set[int]) -> list[int]:
    """The markdown cells just above a cell (skipping kept code cells): an exercise's instructions."""
    found: list[int] = []
    cursor = index - 1
    while cursor >= 0:
        cell = nb.cells[cursor]
        if cell.cell_type == "markdown":
            found.append(cursor)
        elif found or cursor not in keep:
            break
        cursor -= 1
    return sorted(found)


# --- graded quiz questions -------------------------------------------------------------------------


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    def called(node: ast.Call) -> str | None:
        func = node.func
        return (
            func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        )

    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and called(n) == name]


def _constant(node: ast.AST | None):
    return node.value if isinstance(node, ast.Constant) else None


def graded_questions(nb, where: str = "notebook") -> dict[str, set[str]]:
    """Bank name -> ids of the questions scored by ``grade_choice(answer, bank, id)`` calls."""
    graded: dict[str, set[str]] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "grade_choice" not in cell.source:
            continue
        for call in _calls(parse_code(cell.source, f"{where}, cell {index + 1}"), "grade_choice"):
            bank, qid = (_constant(a) for a in (call.args + [None, None, None])[1:3])
            if not (isinstance(bank, str) and isinstance(qid, str)):
                raise ConversionError(
                    f"{where}, cell {index + 1}: grade_choice needs the bank and the question id as literal strings"
                )
            graded.setdefault(bank, set()).add(qid)
    return graded


def check_no_widget_reveals(nb, graded: dict[str, set[str]], where: str = "notebook") -> None:
    """Fail when a ``show_quiz`` widget would show a graded question (its Check button tells the key)."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "show_quiz" not in cell.source:
            continue
        here = f"{where}, cell {index + 1}"
        for call in _calls(parse_code(cell.source, here), "show_quiz"):
            bank = _constant(call.args[0]) if call.args else None
            if bank not in graded:
                continue
            ids_node = (
                call.args[1]
                if len(call.args) > 1
                else next((k.value for k in call.keywords if k.arg == "ids"), None)
            )
            if not isinstance(ids_node, (ast.List, ast.Tuple)) or not all(
                _constant(e) for e in ids_node.elts
            ):
                raise ConversionError(
                    f"{here}: show_quiz({bank!r}) must list its question ids literally, because questions "
                    f"{sorted(graded[bank])} of that bank are graded"
                )
            shown = {_constant(e) for e in ids_node.elts} & graded[bank]
            if shown:
                raise ConversionError(
                    f"{here}: graded question(s) {sorted(shown)} also shown by a show_quiz widget"
                )


# --- building the source assignment -----------------------------------------------------------------


def nbgrader_metadata(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    return meta


def title_of(nb) -> str:
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "markdown":
        for line in first.source.splitlines():
            if line.strip().startswith("# "):
                return line.strip()[2:].strip()
    return "Assignment"


def instructions(stem: str, exercises: list[Exercise], hidden: bool, whole: bool) -> str:
    n_tests = sum(len(e.tests) for e in exercises)
    points = sum(sum(e.points) for e in exercises)
    scope = "the whole lesson" if whole else "the exercises of the lesson"
    lines = [
        f"**Graded assignment.** This notebook holds {scope} `{stem}.ipynb`.",
        "",
        "- Run the cells from the top. Where a cell says `# YOUR CODE HERE`, replace "
        "`raise NotImplementedError()` with your answer.",
        "- The test cells after each answer check your work"
        + ("; more checks are hidden and run when your work is graded." if hidden else "."),
        "- The other cells are read-only; add cells of your own to experiment.",
        "- Before you hand in: restart the kernel and run all cells, and check that your answers run. "
        "Hand in this notebook under its original file name.",
        "",
        f"*Points: {points:g}, in {n_tests} test cell{'s' if n_tests != 1 else ''}.*",
    ]
    return "\n".join(lines)


def _cell_id(cell, fallback: str) -> str:
    return cell.get("id") or fallback


def to_source(nb, stem: str, whole: bool | None = None) -> nbformat.NotebookNode:
    """The nbgrader source assignment made from a lecture notebook (the lecture notebook is not changed).

    Args:
        nb: the lecture notebook.
        stem: its name without ``.ipynb``, e.g. ``"02_boxes_and_iou"``.
        whole: keep every cell (True), or only the exercise part (False); None: whole for
            ``WHOLE_NOTEBOOKS``, the exercise part for the lessons.

    Raises:
        ConversionError: the notebook has no exercises or breaks a convention (see ``find_exercises``).
    """
    where = f"{stem}.ipynb"
    exercises = find_exercises(nb, where)
    if not exercises:
        raise ConversionError(f"{where}: no exercise (a code cell with {BEGIN_SOLUTION!r})")
    check_no_widget_reveals(nb, graded_questions(nb, where), where)
    whole = stem in WHOLE_NOTEBOOKS if whole is None else whole
    setup = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "code" and BOOTSTRAP_END in c.source), None
    )
    if setup is None:
        raise ConversionError(f"{where}: no setup cell (a code cell with {BOOTSTRAP_END!r})")

    roles: dict[int, tuple[str, dict]] = {}
    for exercise in exercises:
        roles[exercise.solution] = ("solution", nbgrader_metadata(exercise.name, solution=True))
        for index, grade_id, points in zip(exercise.tests, exercise.test_ids, exercise.points, strict=True):
            roles[index] = ("test", nbgrader_metadata(grade_id, grade=True, locked=True, points=points))

    if whole:
        chosen = list(range(1, len(nb.cells)))
    else:
        keep = needed_cells(nb, {setup, *roles}, where)
        for exercise in exercises:
            keep.update(instructions_of(nb, exercise.solution, keep))
            between = range(exercise.solution + 1, exercise.tests[-1])
            keep.update(i for i in between if nb.cells[i].cell_type == "markdown")
        chosen = sorted(i for i in keep if i > 0)

    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    out.nbformat_minor = max(nb.get("nbformat_minor", 5), 5)
    first = nb.cells[0]
    if whole and first.cell_type == "markdown":
        title = nbformat.v4.new_markdown_cell(BADGE_RE.sub("", first.source).strip())
    else:
        title = nbformat.v4.new_markdown_cell(f"# {title_of(nb)}")
    hidden = any(has_hidden_tests(nb.cells[i]) for i in roles)
    header = nbformat.v4.new_markdown_cell(instructions(stem, exercises, hidden, whole))
    title.id, header.id = "assignment-title", "assignment-instructions"
    cells = [title, header]
    for index in chosen:
        cell = copy.deepcopy(nb.cells[index])
        cell.id = _cell_id(cell, f"cell-{index + 1}")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("nbgrader", None)
        cell.metadata.pop("execution", None)
        cells.append(cell)
        role = roles.get(index)
        if role is not None:
            cell.metadata["nbgrader"] = role[1]
        if role is not None and role[0] == "solution":  # a collapsed answer cell opens for the student
            cell.metadata.get("jupyter", {}).pop("source_hidden", None)
            if cell.metadata.get("jupyter") == {}:
                del cell.metadata["jupyter"]
    used: set[str] = {m[1]["grade_id"] for m in roles.values()}
    for cell in cells:
        if "nbgrader" in cell.metadata:
            continue
        digest = hashlib.sha1(cell.source.encode()).hexdigest()[:8]
        grade_id, n = f"locked_{digest}", 2
        while grade_id in used:
            grade_id, n = f"locked_{digest}_{n}", n + 1
        used.add(grade_id)
        cell.metadata["nbgrader"] = nbgrader_metadata(grade_id, locked=True)
    out.cells = cells
    nbformat.validate(out)
    return out


# --- secrets: what must never reach the release ------------------------------------------------------


def split_marked(source: str) -> tuple[list[str], list[str]]:
    """(lines a student sees, lines inside solution or hidden-test blocks); marker lines are in neither."""
    shown: list[str] = []
    inside: list[str] = []
    depth = 0
    for line in source.splitlines():
        if any(word in line for word in (SOLUTION_WORDS[0], HIDDEN_WORDS[0])):
            depth += 1
        elif any(word in line for word in (SOLUTION_WORDS[1], HIDDEN_WORDS[1])):
            depth = max(depth - 1, 0)
        else:
            (inside if depth else shown).append(line)
    return shown, inside


def secrets(nb, where: str = "notebook") -> set[str]:
    """Text the release must not hold: answer lines, hidden test lines and graded questions' explanations.

    A line counts when it has at least ``MIN_SECRET_LENGTH`` characters and is not part of any text a
    student sees anyway (a line elsewhere in the lecture notebook, outside the marked blocks).
    """
    from course_utils.quiz import load_bank

    hidden: set[str] = set()
    seen: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            marked_blocks(cell.source, *SOLUTION_WORDS, f"{where}, cell {index + 1}")
            marked_blocks(cell.source, *HIDDEN_WORDS, f"{where}, cell {index + 1}")
            shown, inside = split_marked(cell.source)
        else:
            shown, inside = cell.source.splitlines(), []
        hidden |= {line.strip() for line in inside}
        seen += shown
    visible = "\n".join(seen)
    found = {line for line in hidden if len(line) >= MIN_SECRET_LENGTH and line not in visible}
    for bank, ids in graded_questions(nb, where).items():
        loaded = load_bank(bank)
        for qid in ids:
            found |= {option.why for option in loaded[qid].options}
    return found


def find_leaks(folder: Path, hidden: Iterable[str]) -> list[str]:
    """``file: text`` for every secret found in any file under ``folder``."""
    hidden = sorted(hidden)
    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".ipynb":  # compare with the sources as written, not JSON-escaped
            text = "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells) + "\n" + text
        problems += [f"{path.relative_to(folder)}: {s!r}" for s in hidden if s in text]
    return problems


# --- the commands -----------------------------------------------------------------------------------


def lecture_notebooks(names: Sequence[str] = ()) -> list[Path]:
    """Lecture notebooks (all, or those matching NAME / its number) that hold exercises."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        unknown = [n for n in names if not any(p.stem == n or p.stem.startswith(f"{n}_") for p in paths)]
        if unknown:
            raise SystemExit(f"no notebook named {', '.join(unknown)} in {NOTEBOOKS.name}/")
        paths = [p for p in paths if any(p.stem == n or p.stem.startswith(f"{n}_") for n in names)]
    return [p for p in paths if any(has_solution(c) for c in nbformat.read(p, as_version=4).cells)]


def build_sources(course_root: Path, paths: Sequence[Path], whole: bool | None = None) -> list[Path]:
    """Write ``<course_root>/source/<stem>/<stem>.ipynb`` for each lecture notebook; return them."""
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        folder = course_root / "source" / path.stem
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        target = folder / path.name
        nbformat.write(to_source(nb, path.stem, whole), target)
        written.append(target)
    return written


def tool_env() -> dict[str, str]:
    """The environment with this Python's scripts folder first on PATH (nbgrader runs ``alembic`` from it)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def nbgrader(course_root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in the course root (where its nbgrader_config.py is read)."""
    command = [sys.executable, "-m", "nbgrader", *args]
    done = subprocess.run(command, cwd=course_root, capture_output=True, text=True, env=tool_env())
    if check and done.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def release(
    course_root: Path, paths: Sequence[Path], whole: bool | None = None, everything: bool = False
) -> list[Path]:
    """Build the source assignments, run ``nbgrader generate_assignment``, check the release for leaks.

    ``everything``: ``paths`` are all the assignments; source/ and release/ are emptied first (so
    nothing stale stays) and one nbgrader run generates them all. Otherwise only the given
    assignments are rebuilt, one nbgrader run each.
    """
    if everything:
        for name in ("source", "release"):
            if (course_root / name).exists():
                shutil.rmtree(course_root / name)
    sources = build_sources(course_root, paths, whole)
    for batch in ["*"] if everything else [source.parent.name for source in sources]:
        nbgrader(course_root, "generate_assignment", batch, "--force")
    released = []
    for lecture, source in zip(paths, sources, strict=True):
        folder = course_root / "release" / source.parent.name
        if not (folder / source.name).is_file():
            raise RuntimeError(f"nbgrader generate_assignment wrote no {folder / source.name}")
        leaks = find_leaks(folder, secrets(nbformat.read(lecture, as_version=4), lecture.name))
        if leaks:
            raise RuntimeError("the release holds answers:\n" + "\n".join(leaks))
        released.append(folder / source.name)
    return released


def describe(paths: Sequence[Path]) -> str:
    lines = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        exercises = find_exercises(nb, path.name)
        total = sum(sum(e.points) for e in exercises)
        lines.append(f"{path.stem}: {len(exercises)} exercise(s), {total:g} point(s)")
        for e in exercises:
            lines.append(f"  {e.name}: answer cell {e.solution + 1}, test cells {[i + 1 for i in e.tests]}")
    return "\n".join(lines) or "no lecture notebook has exercises yet"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--course-root", type=Path, default=COURSE_ROOT, help="nbgrader course folder")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("source", "release"):
        command = sub.add_parser(name)
        command.add_argument("names", nargs="*", help="notebooks (default: every one with exercises)")
        command.add_argument("--full", action="store_true", help="hand out whole lessons, not only exercises")
    sub.add_parser("list")
    sub.add_parser("leaks")
    args = parser.parse_args(argv)
    root = args.course_root.resolve()
    if args.command == "list":
        print(describe(lecture_notebooks()))
        return 0
    if args.command == "leaks":
        problems = []
        for folder in sorted((root / "release").glob("*/")):
            path = NOTEBOOKS / f"{folder.name}.ipynb"
            if path.is_file():
                problems += find_leaks(folder, secrets(nbformat.read(path, as_version=4), path.name))
        print("\n".join(problems) or "no answer found in the release")
        return 1 if problems else 0
    paths = lecture_notebooks(args.names)
    if not paths:
        print("no lecture notebook has exercises yet")
        return 0
    whole = True if args.full else None
    if args.command == "source":
        for target in build_sources(root, paths, whole):
            print(f"source: {target.relative_to(root)}")
        return 0
    for path in paths:
        for problem in output_problems(nbformat.read(path, as_version=4), path.name):
            print(f"warning: {problem}", file=sys.stderr)
    for target in release(root, paths, whole, everything=not args.names):
        print(f"release: {target.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
