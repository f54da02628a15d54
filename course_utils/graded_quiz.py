"""Quiz questions that can be graded automatically: the answer lives in a variable, as option text.

The lessons' quizzes are widgets (``course_utils.quiz.show_quiz``). A widget's state is not
saved in the notebook, so an autograder cannot read it. A graded question therefore keeps
the learner's answer in a plain variable, and two checks score it::

    show_question("14_final_quiz", "nms-purpose", label="Graded Q4.", variable="answer_4")
    answer_4 = "<the text of the option you choose>"            # the learner's answer cell
    check_choice(answer_4, "14_final_quiz", "nms-purpose")      # the answer's form (visible test)
    grade_choice(answer_4, "14_final_quiz", "nms-purpose")      # the key and every option's why

An option is answered by its text, not by a letter or a position: ``show_question`` lists the
options without letters, in an order shuffled by the question id with a fixed salt
(``display_order``), so the order shown is not the bank's and is the same at hand-out and at
grading. ``parse_choice`` accepts an option's text after normalising both (case, runs of
whitespace, spaces around punctuation, hyphens between words, surrounding quotes, backticks and full
stops do not count), or an unambiguous start of it (at least ``MIN_PREFIX`` characters); a
multiple-choice answer is a list of such texts. A list of numbers written without quotes, such as
``[10, 20, 40, 60]``, is read as its text ``"[10, 20, 40, 60]"``.

Numeric questions are computed live: the notebook computes the expected value with
torchvision, the learner types a number, and ``grade_number`` compares them within a tolerance::

    check_number(answer_3, "answer_3")
    grade_number(answer_3, box_iou(a, b)[0, 0], abs_tol=0.01, name="answer_3", why="intersection / union")

Two kinds of run (``course_utils.exercises.graded_run``):

* a learner's run: an answer still ``None`` (or ``...``) is reported in one line as not answered
  yet, and a malformed one (not text, no matching option, not a number) as ``Cannot read your
  answer: ...``; the checks then return, so *Run all* reaches the end. ``grade_*`` print the
  verdict and the explanations and do not raise on a wrong answer;
* a graded run (nbgrader sets ``NBGRADER_EXECUTION``): a missing, malformed or wrong answer raises
  ``AnswerError``, so it scores 0 and ``nbgrader validate --invert`` passes on the release.

``show_question``
and the ``check_*`` functions never reveal the key; in the graded version of a notebook
(``scripts/assignments.py``) the ``grade_*`` calls sit in hidden test blocks, so the student
release holds neither the key nor the explanations.
"""

from __future__ import annotations

import math
import re
from numbers import Real
from typing import Any

from .exercises import graded_run
from .quiz import Question, grade, load_bank, shuffled_order

# The salt of the shown order: fixed, so that hand-out, learner's runs and grading agree. Any value
# shuffles; this one spreads the final quiz's right options over the positions shown (a test checks it).
DISPLAY_SALT = 5
# The shortest start of an option's text that counts as that option (when only one option starts so).
MIN_PREFIX = 12
# Stripped from both ends of an answer and of an option's text before they are compared.
SURROUNDING = " \"'`.\u201c\u201d\u2018\u2019"
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$#])")
SINGLE_FORMAT = '"<copy the text of the option you choose>"'
MULTIPLE_FORMAT = '["<text of one option you choose>", "<text of another>"]'
# What a learner's run prints under a question not answered yet.
NOT_ANSWERED = "in the answer cell above, replace None with {what}, then run both cells again."
# What a learner's run prints under an answer it cannot read (followed by the reason).
CANNOT_READ = "Cannot read your answer: "
# Spaces around punctuation, and a hyphen between two word characters (compared as a space).
AROUND_PUNCTUATION = re.compile(r"\s*([^\w\s])\s*")
WORD_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")
# The question (or number) whose missing or unreadable answer ``check_*`` reported last in a learner's
# run: the ``grade_*`` call that follows it in the same cell then stays silent (one line per question).
_reported: str | None = None


class AnswerError(AssertionError):
    """An answer is missing, malformed or wrong; the message says what was expected.

    A subclass of AssertionError, so a test cell fails the way a failed ``assert`` does.
    """


def display_order(question: Question) -> list[int]:
    """The bank indices of ``question``'s options in the order ``show_question`` lists them."""
    return shuffled_order(question, DISPLAY_SALT)


def answer_format(question: Question, variable: str = "answer") -> str:
    """The line a learner writes, e.g. ``answer_1 = "<copy the text of the option you choose>"``."""
    return f"{variable} = {SINGLE_FORMAT if question.kind == 'single' else MULTIPLE_FORMAT}"


def _escape(text: str) -> str:
    """``text`` as Markdown that renders as the text itself (so that a copy of it matches)."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _render(question: Question, label: str | None, variable: str | None, markdown: bool) -> str:
    bold = "**" if markdown else ""
    title = f"{bold}{label}{bold} " if label else ""
    lines = [f"{title}{question.prompt}", ""]
    for index in display_order(question):
        text = question.options[index].text
        lines.append(f"- {_escape(text) if markdown else text}")
    target = answer_format(question, variable or "answer")
    target = f"`{target}`" if markdown else target
    if question.kind == "single":
        how = f"Copy the text of the option you choose into the answer cell: {target}."
    else:
        how = f"Pick every option that applies (one or more) and copy their texts into a list: {target}."
    note = (
        "Case and spacing do not matter, and the start of a text (at least "
        f"{MIN_PREFIX} characters) is enough if it fits one option only."
    )
    italic = "*" if markdown else ""
    lines += ["", f"{italic}{how} {note}{italic}"]
    return "\n".join(lines)


def question_markdown(question: Question, label: str | None = None, variable: str | None = None) -> str:
    """The prompt and the shuffled options (no letters) as Markdown, with the answer format (no key).

    ``label`` is written in bold before the prompt (e.g. ``"Graded Q1."``); ``variable`` names the
    variable the answer cell assigns.
    """
    return _render(question, label, variable, markdown=True)


def question_text(question: Question, label: str | None = None, variable: str | None = None) -> str:
    """The same as ``question_markdown``, as plain text (where Markdown is not rendered)."""
    return _render(question, label, variable, markdown=False)


def show_question(
    bank: str, question_id: str, label: str | None = None, variable: str | None = None
) -> Question:
    """Display one question of a bank for a graded answer: prompt, options in the shown order, format.

    Nothing about the key is shown. ``label`` is written before the prompt; ``variable`` names the
    variable the answer cell assigns.
    """
    from IPython.display import display

    question = load_bank(bank)[question_id]
    markdown = question_markdown(question, label, variable)
    display({"text/markdown": markdown, "text/plain": question_text(question, label, variable)}, raw=True)
    return question


def normalise(text: str) -> str:
    """``text`` as answers are compared: lower case, no spaces around punctuation, a hyphen between
    two words read as a space, whitespace collapsed, surrounding quotes, backticks and full stops
    stripped (``"Better - scored"`` and ``"better scored"`` compare equal, as do ``"[10,20]"`` and
    ``"[10, 20]"``)."""
    text = AROUND_PUNCTUATION.sub(r"\1", " ".join(text.casefold().split()))
    return " ".join(WORD_HYPHEN.sub(" ", text).split()).strip(SURROUNDING)


def _options_listed(question: Question) -> str:
    return "\n".join(f"  - {question.options[i].text}" for i in display_order(question))


def _expected(question: Question) -> str:
    if question.kind == "single":
        return f"the text of one option, in quotes: {answer_format(question)}"
    return f"a list of the texts of the options you choose: {answer_format(question)}"


def _looks_like_letters(text: str, question: Question) -> bool:
    """``"b"``, ``"a, c"``: letters of the options, as answers were written before."""
    letters = re.sub(r"[\s,;/]", "", text)
    last = chr(ord("a") + len(question.options) - 1)
    return 0 < len(letters) <= len(question.options) and all("a" <= c <= last for c in letters)


def match_option(text: str, question: Question) -> int:
    """The bank index of the option ``text`` names (its text, or an unambiguous start of it).

    Raises:
        AnswerError: the text is empty, names no option, or starts several options.
    """
    wanted = normalise(text)
    where = f"question {question.id!r}"
    if not wanted:
        raise AnswerError(f"{where}: the answer is empty text; expected {_expected(question)}")
    texts = [normalise(option.text) for option in question.options]
    found = [i for i, option in enumerate(texts) if option == wanted]
    typed = " ".join(text.split()).strip(SURROUNDING)  # its length as typed, spaces and punctuation included
    if not found and len(typed) >= MIN_PREFIX:
        found = [i for i, option in enumerate(texts) if option.startswith(wanted)]
    if len(found) == 1:
        return found[0]
    if found:
        names = "; ".join(repr(question.options[i].text) for i in found)
        raise AnswerError(f"{where}: {text!r} matches several options ({names}); copy more of the text")
    hint = ""
    if _looks_like_letters(wanted, question):
        how = (
            "copy the text of the option you choose"
            if question.kind == "single"
            else "copy the texts of the options you choose into a list"
        )
        hint = (
            f" {text!r} looks like a letter: options are not lettered, they are answered by their text;"
            f" {how}: {answer_format(question)}."
        )
    raise AnswerError(
        f"{where}: {text!r} matches no option.{hint} The options are:\n{_options_listed(question)}"
    )


def parse_choice(answer: Any, question: Question) -> list[int]:
    """Turn an answer (an option's text, or a list of texts) into sorted bank indices of options.

    Raises:
        AnswerError: the answer is missing, is not text (or a list, tuple or set of texts), is empty,
            matches no option or several, or picks several options in a single-choice question.
    """
    where = f"question {question.id!r}"
    if answer is None or answer is Ellipsis:
        raise AnswerError(f"{where}: no answer yet; expected {_expected(question)}")
    if question.kind == "single" and _numbers(answer):
        items = ["[" + ", ".join(f"{float(v):g}" for v in answer) + "]"]  # [10, 20] typed without quotes
    elif isinstance(answer, str):
        items = [answer]
    elif isinstance(answer, (list, tuple, set, frozenset)) and all(isinstance(a, str) for a in answer):
        items = list(answer)
    else:
        raise AnswerError(f"{where}: expected {_expected(question)}; got {type(answer).__name__} {answer!r}")
    if not items:
        raise AnswerError(f"{where}: the list is empty; expected {_expected(question)}")
    chosen = sorted({match_option(item, question) for item in items})
    if question.kind == "single" and len(chosen) > 1:
        raise AnswerError(f"{where} takes one option, got {len(chosen)}; expected {_expected(question)}")
    return chosen


def _numbers(answer: Any) -> bool:
    """True for a non-empty list or tuple of plain numbers (not booleans)."""
    return (
        isinstance(answer, (list, tuple))
        and len(answer) > 0
        and all(isinstance(v, Real) and not isinstance(v, bool) for v in answer)
    )


def _unanswered(answer: Any) -> bool:
    return answer is None or answer is Ellipsis


def _report(key: str, message: str) -> None:
    """Print one line about an answer in a learner's run and remember that it was said."""
    global _reported
    print(message)
    _reported = key


def _already_reported(key: str) -> bool:
    """True (once) when ``check_*`` reported ``key``'s answer just before; resets the memory."""
    global _reported
    said, _reported = _reported == key, None
    return said


def _read_choice(answer: Any, question: Question, quiet: bool) -> list[int] | None:
    """The chosen bank indices, or ``None`` after reporting a missing or unreadable answer.

    In a graded run a missing or malformed answer raises ``AnswerError``. In a learner's run it is
    reported in one line (nothing at all when ``quiet``) and ``None`` returned.
    """
    key = f"question {question.id}"
    if graded_run():
        return parse_choice(answer, question)
    if _unanswered(answer):
        if not quiet:
            what = (
                "the text of the option you choose" if question.kind == "single" else "a list of option texts"
            )
            _report(key, f"Question {question.id!r} not answered yet: {NOT_ANSWERED.format(what=what)}")
        return None
    try:
        return parse_choice(answer, question)
    except AnswerError as error:
        if not quiet:
            _report(key, f"{CANNOT_READ}{error}")
        return None


def check_choice(answer: Any, bank: str, question_id: str) -> list[str] | None:
    """Check an answer's form (not whether it is right); return the chosen options' texts.

    In a learner's run a missing or malformed answer is reported in one line and ``None`` returned;
    in a graded run ``parse_choice`` raises ``AnswerError`` for it.
    """
    question = load_bank(bank)[question_id]
    chosen = _read_choice(answer, question, quiet=False)
    if chosen is None:
        return None
    return [question.options[i].text for i in display_order(question) if i in chosen]


def grade_choice(answer: Any, bank: str, question_id: str) -> None:
    """Score an answer against the bank's key: print the verdict and every option's explanation.

    In a learner's run a missing or malformed answer is reported (unless the ``check_choice`` just
    before reported it already) and nothing is graded.

    Raises:
        AnswerError: in a graded run, when the answer is missing, malformed (see ``parse_choice``) or
            wrong (the explanations are printed first, so the learner sees why).
    """
    question = load_bank(bank)[question_id]
    quiet = _already_reported(f"question {question.id}")
    chosen = _read_choice(answer, question, quiet=quiet)
    if chosen is None:
        return
    feedback = grade(question, chosen)
    print(feedback.headline)
    for index in display_order(question):
        print(f"  {feedback.explanations[index]}")
    if not feedback.correct and graded_run():
        picked = "; ".join(repr(question.options[i].text) for i in chosen)
        raise AnswerError(f"question {question.id!r}: {picked} is not the right answer")


def _read_number(answer: Any, name: str) -> float:
    """``answer`` as a finite float. Raises ``AnswerError`` when it is missing or not one number."""
    if _unanswered(answer):
        raise AnswerError(f"{name}: no answer yet; assign a number")
    if hasattr(answer, "item") and getattr(answer, "ndim", 0) == 0 and not isinstance(answer, Real):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, Real):
        raise AnswerError(f"{name}: expected one number, got {type(answer).__name__} {answer!r}")
    value = float(answer)
    if not math.isfinite(value):
        raise AnswerError(f"{name}: expected a finite number, got {value}")
    return value


def _checked_number(answer: Any, name: str, quiet: bool) -> float | None:
    """``_read_number``, except that a learner's run reports a problem (unless ``quiet``) and returns None."""
    if graded_run():
        return _read_number(answer, name)
    if _unanswered(answer):
        if not quiet:
            _report(f"number {name}", f"{name} not answered yet: {NOT_ANSWERED.format(what='a number')}")
        return None
    try:
        return _read_number(answer, name)
    except AnswerError as error:
        if not quiet:
            _report(f"number {name}", f"{CANNOT_READ}{error}")
        return None


def check_number(answer: Any, name: str = "answer") -> float | None:
    """Check that an answer is one finite number (int, float, NumPy or 0-d tensor); return it.

    In a learner's run a missing or malformed answer is reported in one line and ``None`` returned;
    in a graded run it raises ``AnswerError``.
    """
    return _checked_number(answer, name, quiet=False)


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
    ``expected`` may be a Python number or a one-element tensor. In a learner's run a missing or
    malformed answer is reported (without the computed value, and not again when the
    ``check_number`` just before reported it) and a wrong one does not raise.

    Raises:
        ValueError: a tolerance is negative.
        AnswerError: in a graded run, when the answer is missing, not a number, or not close enough
            (the explanation is printed first).
    """
    if abs_tol < 0 or rel_tol < 0:
        raise ValueError(f"tolerances must be >= 0, got abs_tol={abs_tol}, rel_tol={rel_tol}")
    value = _checked_number(answer, name, quiet=_already_reported(f"number {name}"))
    if value is None:
        return
    target = float(expected.item() if hasattr(expected, "item") else expected)
    right = math.isclose(value, target, rel_tol=rel_tol, abs_tol=abs_tol)
    parts = [f"±{abs_tol:g}"] if abs_tol else []
    parts += [f"±{rel_tol:.1%}"] if rel_tol else []
    print("Correct!" if right else "Not quite.")
    print(f"  your answer: {value:.6g}; computed: {target:.6g} (tolerance: {' or '.join(parts) or 'exact'})")
    if why:
        print(f"  why: {why}")
    if not right and graded_run():
        raise AnswerError(f"{name}: {value:.6g} is not within the tolerance of the computed value")
