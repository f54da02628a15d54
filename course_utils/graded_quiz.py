"""Quiz questions that can be graded automatically: the answer lives in a variable.

The lessons' quizzes are widgets (``course_utils.quiz.show_quiz``). A widget's state is not
saved in the notebook, so an autograder cannot read it. A graded question therefore keeps
the learner's answer in a plain variable, and two checks score it::

    show_question("14_final_quiz", "nms-purpose", variable="answer_nms")  # prompt + lettered options
    answer_nms = "B"                                  # the learner's answer cell
    check_choice(answer_nms, "14_final_quiz", "nms-purpose")   # the answer's form (visible test)
    grade_choice(answer_nms, "14_final_quiz", "nms-purpose")   # the key and every option's why

Numeric questions are computed live: the notebook computes the expected value with
torchvision, the learner types a number, and ``grade_number`` compares them within a tolerance::

    check_number(answer_iou, "answer_iou")
    grade_number(answer_iou, box_iou(a, b).item(), abs_tol=0.01, why="intersection / union")

``show_question`` and the ``check_*`` functions never reveal the key; in the graded version of a
notebook (``scripts/assignments.py``) the ``grade_*`` calls sit in hidden test blocks, so the
student release holds neither the key nor the explanations.
"""

from __future__ import annotations

import math
import string
from numbers import Real
from typing import Any

from .quiz import Question, grade, load_bank

LETTERS = string.ascii_uppercase


class AnswerError(AssertionError):
    """An answer is missing, malformed or wrong; the message says what was expected.

    A subclass of AssertionError, so a test cell fails the way a failed ``assert`` does.
    """


def letters(question: Question) -> str:
    """The letters of a question's options: ``"ABCD"`` for four options."""
    if len(question.options) > len(LETTERS):
        raise ValueError(f"question {question.id!r} has more than {len(LETTERS)} options")
    return LETTERS[: len(question.options)]


def question_markdown(question: Question, label: str | None = None, variable: str | None = None) -> str:
    """The prompt and the lettered options as Markdown, with the expected answer format (no key).

    ``label`` is written in bold before the prompt (e.g. ``"Graded Q1."``); ``variable`` names the
    variable the answer cell assigns.
    """
    title = f"**{label}** " if label else ""
    lines = [f"{title}{question.prompt}", ""]
    lines += [
        f"- **{letter}.** {option.text}"
        for letter, option in zip(letters(question), question.options, strict=True)
    ]
    if question.kind == "single":
        how, example = "one letter", '"<letter>"'
    else:
        how, example = "every letter that applies, written together (one or more)", '"<letters>"'
    target = f"`{variable} = {example}`" if variable else f"a string `{example}`"
    lines += ["", f"*Answer with {how}, as {target}.*"]
    return "\n".join(lines)


def show_question(
    bank: str, question_id: str, label: str | None = None, variable: str | None = None
) -> Question:
    """Display one question of a bank for a graded answer (prompt, lettered options, format).

    Nothing about the key is shown. ``label`` is written before the prompt; ``variable`` names the
    variable the answer cell assigns.
    """
    from IPython.display import display

    question = load_bank(bank)[question_id]
    markdown = question_markdown(question, label, variable)
    display({"text/markdown": markdown, "text/plain": markdown.replace("**", "")}, raw=True)
    return question


def parse_choice(answer: Any, question: Question) -> list[int]:
    """Turn an answer (``"B"``, ``"a, c"``, ``["A", "C"]``) into sorted option indices.

    Raises:
        AnswerError: the answer is missing, holds something other than option letters, names a
            letter the question does not have, or picks several options in a single-choice question.
    """
    valid = letters(question)
    if answer is None or answer is Ellipsis:
        raise AnswerError(f"question {question.id!r}: no answer yet; write the letter(s) of your choice")
    if isinstance(answer, str):
        items = [c for c in answer.upper() if not c.isspace() and c not in ",;/"]
    elif isinstance(answer, (list, tuple, set, frozenset)) and all(isinstance(a, str) for a in answer):
        items = [a.strip().upper() for a in answer]
    else:
        raise AnswerError(
            f"question {question.id!r}: expected option letters as a string such as 'A' or 'AC', "
            f"got {type(answer).__name__} {answer!r}"
        )
    unknown = sorted({item for item in items if item not in valid})
    if unknown:
        raise AnswerError(
            f"question {question.id!r}: {', '.join(map(repr, unknown))} is not an option; "
            f"the options are {', '.join(valid)}"
        )
    chosen = sorted({valid.index(item) for item in items})
    if not chosen:
        raise AnswerError(
            f"question {question.id!r}: the answer is empty; write the letter(s) of your choice"
        )
    if question.kind == "single" and len(chosen) > 1:
        raise AnswerError(f"question {question.id!r} takes one letter, got {len(chosen)}")
    return chosen


def check_choice(answer: Any, bank: str, question_id: str) -> str:
    """Check an answer's form (not whether it is right); return it as letters, e.g. ``"AC"``."""
    question = load_bank(bank)[question_id]
    chosen = parse_choice(answer, question)
    return "".join(letters(question)[i] for i in chosen)


def grade_choice(answer: Any, bank: str, question_id: str) -> None:
    """Score an answer against the bank's key: print the verdict and every option's explanation.

    Raises:
        AnswerError: the answer is malformed (see ``parse_choice``) or wrong; the explanations are
            printed first, so the learner sees why.
    """
    question = load_bank(bank)[question_id]
    chosen = parse_choice(answer, question)
    feedback = grade(question, chosen)
    tags = letters(question)
    print(feedback.headline)
    for tag, line in zip(tags, feedback.explanations, strict=True):
        print(f"  {tag}. {line}")
    if not feedback.correct:
        picked = "".join(tags[i] for i in chosen)
        raise AnswerError(f"question {question.id!r}: {picked} is not the right answer")


def check_number(answer: Any, name: str = "answer") -> float:
    """Check that an answer is one finite number (int, float, NumPy or 0-d tensor); return it."""
    if answer is None or answer is Ellipsis:
        raise AnswerError(f"{name}: no answer yet; assign a number")
    if hasattr(answer, "item") and getattr(answer, "ndim", 0) == 0 and not isinstance(answer, Real):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, Real):
        raise AnswerError(f"{name}: expected one number, got {type(answer).__name__} {answer!r}")
    value = float(answer)
    if not math.isfinite(value):
        raise AnswerError(f"{name}: expected a finite number, got {value}")
    return value


def grade_number(
    answer: Any,
    expected: Any,
    *,
    abs_tol: float = 0.0,
    rel_tol: float = 0.0,
    why: str = "",
    name: str = "answer",
) -> None:
    """Compare a typed number with the value computed live, within a tolerance, and explain it.

    The answer is right when ``math.isclose(answer, expected, rel_tol=rel_tol, abs_tol=abs_tol)``;
    ``expected`` may be a Python number or a one-element tensor.

    Raises:
        ValueError: a tolerance is negative.
        AnswerError: the answer is not a number or not close enough; the explanation is printed first.
    """
    if abs_tol < 0 or rel_tol < 0:
        raise ValueError(f"tolerances must be >= 0, got abs_tol={abs_tol}, rel_tol={rel_tol}")
    value = check_number(answer, name)
    target = float(expected.item() if hasattr(expected, "item") else expected)
    right = math.isclose(value, target, rel_tol=rel_tol, abs_tol=abs_tol)
    parts = [f"±{abs_tol:g}"] if abs_tol else []
    parts += [f"±{rel_tol:.1%}"] if rel_tol else []
    print("Correct!" if right else "Not quite.")
    print(f"  your answer: {value:.6g}; computed: {target:.6g} (tolerance: {' or '.join(parts) or 'exact'})")
    if why:
        print(f"  why: {why}")
    if not right:
        raise AnswerError(f"{name}: {value:.6g} is not within the tolerance of the computed value")
