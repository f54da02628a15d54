"""Exercise check cells: one helper runs an exercise's checks, in every form of a lesson.

A lesson's exercise is an answer cell (the learner writes a function) followed by a check cell::

    with exercise_checks("pairwise_iou", fallbacks={"pairwise_iou": box_iou}):
        torch.testing.assert_close(pairwise_iou(boxes1, boxes2), box_iou(boxes1, boxes2))
        print("pairwise_iou agrees with torchvision.ops.box_iou")

What the block does depends on where it runs:

* the answer is right: the checks pass and the block prints what they print;
* the answer is wrong: the failing check raises, with its message (what differs);
* the answer is still the stub (it raises ``NotImplementedError``) in a learner's notebook: the block
  says what is missing and how to see the solution, puts the library's version (``fallbacks``) in
  place of the learner's functions so that later cells run on, makes ``show_solution`` available
  in the notebook, and does not raise, so *Run all* reaches the end;
* the answer is a stub in a graded run (nbgrader's ``autograde`` or ``validate``, which set
  ``NBGRADER_EXECUTION``): the block raises, so the stub scores 0 and ``validate --invert`` passes.

``show_solution("pairwise_iou")`` prints the solution on purpose, from the solved form of the lesson
(``notebooks/solved/``); it refuses in a graded run.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .lesson_forms import HIDDEN_WORDS, SOLUTION_BEGIN, SOLUTION_END, source_of
from .paths import repo_root


class ExerciseNotSolvedError(AssertionError):
    """An exercise's answer is still the stub in a graded run (an AssertionError, like a failed check)."""


def graded_run() -> bool:
    """True while nbgrader grades or validates a notebook (it sets ``NBGRADER_EXECUTION``)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


class exercise_checks:  # noqa: N801 - used as a context manager, named like one
    """Run an exercise's checks (see the module docstring); ``name`` is what ``show_solution`` takes.

    Args:
        name: the exercise's name: the function (or the first of the functions) the answer defines.
        fallbacks: name -> the library's version, installed in the notebook's namespace in place of
            the learner's stub so that later cells run on. Each must take the same arguments.
    """

    def __init__(self, name: str, fallbacks: Mapping[str, Callable[..., Any]] | None = None):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be the exercise's Python name, got {name!r}")
        fallbacks = dict(fallbacks or {})
        for key, fn in fallbacks.items():
            if not isinstance(key, str) or not key.isidentifier() or not callable(fn):
                raise ValueError(f"fallbacks must map names to callables, got {key!r}: {fn!r}")
        self.name = name
        self.fallbacks = fallbacks
        caller = inspect.currentframe().f_back  # type: ignore[union-attr]
        self.namespace: dict[str, Any] = caller.f_globals if caller is not None else {}

    def __enter__(self) -> exercise_checks:
        stand_ins = [key for key, fn in self.fallbacks.items() if self.namespace.get(key) is fn]
        if stand_ins and not graded_run():  # an earlier check found the stub and installed the library's
            names = ", ".join(f"`{key}`" for key in stand_ins)
            print(
                f"Note: {names} is still the library's version, put in place of your unsolved stub; the checks "
                "below test that version, not yours. Solve the exercise and run its cell to check your own."
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if kind is None or not issubclass(kind, NotImplementedError):
            return False  # passed, or failed with the check's own message
        if graded_run():
            raise ExerciseNotSolvedError(f"exercise {self.name!r} is not solved: {error or 'stub'}") from error
        self.namespace.update(self.fallbacks)
        self.namespace.setdefault("show_solution", show_solution)  # what the message tells to run
        print(unsolved_message(self.name, sorted(self.fallbacks), _raised_in(tb)))
        return True


def _raised_in(tb: TracebackType | None) -> str | None:
    """The name of the function that raised (the innermost frame of the traceback)."""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_name if tb is not None else None


def unsolved_message(name: str, replaced: list[str], stub: str | None = None) -> str:
    """What a learner reads under a check cell whose exercise is still a stub (``stub`` raised)."""
    where = f"{stub}() in the answer cell above" if stub and stub != "<module>" else "the answer cell above"
    lines = [f"Exercise {name!r} is not solved yet: {where} still raises NotImplementedError."]
    if replaced:
        lines.append(
            f"So that the lesson runs on, later cells use the library's version of {', '.join(replaced)}."
        )
    lines.append(
        "Write your answer in the cell above and run both cells again. Stuck? Run "
        f'show_solution("{name}") in a new cell to see the solution.'
    )
    return "\n".join(lines)


def solved_notebooks() -> list[Path]:
    """The solved forms of the lessons, in course order."""
    return sorted((repo_root() / "notebooks" / "solved").glob("[0-9][0-9]_*.ipynb"))


def _answer_cells(path: Path) -> Iterator[str]:
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = source_of(cell)
        if cell["cell_type"] == "code" and SOLUTION_BEGIN in source:
            yield source


def _defines(source: str, name: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


def find_solution(name: str) -> tuple[Path, str]:
    """(solved notebook, answer cell source without markers) of the exercise that defines ``name``."""
    for path in solved_notebooks():
        for source in _answer_cells(path):
            if _defines(source, name):
                kept = [line for line in source.splitlines() if not _is_marker(line)]
                return path, "\n".join(kept)
    raise KeyError(f"no exercise of the solved lessons defines {name!r}")


def _is_marker(line: str) -> bool:
    return any(word in line for word in (SOLUTION_BEGIN, SOLUTION_END, *HIDDEN_WORDS))


def show_solution(name: str) -> None:
    """Print the solution of the exercise that defines ``name`` (a function or an answer variable)."""
    if graded_run():
        raise RuntimeError("solutions are not shown in a graded run")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ValueError(f"name must be the Python name the exercise defines, got {name!r}")
    path, source = find_solution(name)
    print(f"Solution of {name!r}, from notebooks/solved/{path.name}:\n")
    print(source)
