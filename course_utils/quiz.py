"""Multiple-choice quizzes read from bank files under ``data/quizzes/``.

A bank is a YAML file::

    title: Boxes and IoU
    questions:
      - id: iou-range              # unique within the file
        prompt: What values can IoU take?
        kind: single               # 'single' (radio buttons) or 'multiple' (checkboxes)
        options:
          - text: Any value from 0 to 1
            correct: true
            why: Intersection is never larger than the union, and never negative.
          - text: -1 to 1
            why: An area is never negative, so neither is the ratio of two areas.

Every option carries ``why``, the explanation shown after the learner checks an answer, so
each option is explained, right or wrong. ``load_bank`` validates a file and raises
``QuizBankError`` naming the file and the question for any mistake. ``show_quiz`` renders a
bank with standard ipywidgets (they work in JupyterLab and Colab); ``grade`` is the pure
logic behind the "Check" button.

The options are shown shuffled, in an order that stays the same while the kernel runs (a salt
drawn when the module is imported, plus the question id), so the position of an option says
nothing. Where widgets cannot run (a notebook read on GitHub or nbviewer), the quiz leaves a static
rendering: the questions and their options, and the key only when ``COURSE_SHOW_KEYS=1`` is set (the
build of the solved lessons sets it; a learner's kernel does not).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .paths import data_dir
from .yaml_files import DuplicateKeyError, load_unique_yaml

BANK_KEYS = {"title", "questions"}
QUESTION_KEYS = {"id", "prompt", "kind", "options"}
OPTION_KEYS = {"text", "correct", "why"}
KINDS = ("single", "multiple")

# Drawn once per kernel: the shuffled order of a question's options is stable while the kernel runs.
SESSION_SALT = random.SystemRandom().getrandbits(64)

CORRECT_TEXT = "Correct!"
WRONG_TEXT = "Not quite."


class QuizBankError(ValueError):
    """A quiz bank file is malformed; the message names the file and the question."""


@dataclass(frozen=True)
class Option:
    text: str
    correct: bool
    why: str


@dataclass(frozen=True)
class Question:
    id: str
    prompt: str
    kind: str
    options: tuple[Option, ...]

    @property
    def correct_indices(self) -> frozenset[int]:
        return frozenset(i for i, o in enumerate(self.options) if o.correct)


@dataclass(frozen=True)
class Bank:
    title: str
    questions: tuple[Question, ...]
    path: Path

    def __getitem__(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(f"{self.path.name} has no question {question_id!r}")


@dataclass(frozen=True)
class Feedback:
    """The result of checking an answer: right or not, and one explanation per option."""

    correct: bool
    headline: str
    explanations: tuple[str, ...]


def bank_path(name: str) -> Path:
    """``bank_path("01_classification")`` -> ``data/quizzes/01_classification.yaml``."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = data_dir() / "quizzes" / f"{name}.yaml"
    return path


def load_bank(name_or_path: str | Path) -> Bank:
    """Read and validate a quiz bank (a name under ``data/quizzes/`` or a path to a YAML file)."""
    path = bank_path(str(name_or_path))
    if not path.is_file():
        raise FileNotFoundError(f"quiz bank {path} does not exist")
    where = path.name
    try:
        raw = load_unique_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as err:
        raise QuizBankError(err.explained(where)) from None
    except yaml.YAMLError as err:
        raise QuizBankError(f"{where}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise QuizBankError(f"{where}: expected a mapping with 'title' and 'questions'")
    _no_unknown_keys(raw, BANK_KEYS, where)
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        raise QuizBankError(f"{where}: 'title' must be a non-empty string")
    items = raw.get("questions")
    if not isinstance(items, list) or not items:
        raise QuizBankError(f"{where}: 'questions' must be a non-empty list")
    questions: list[Question] = []
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        question = _parse_question(item, number, where)
        if question.id in seen:
            raise QuizBankError(f"{where}: question {question.id!r}: the id is used twice")
        seen.add(question.id)
        questions.append(question)
    return Bank(title=title, questions=tuple(questions), path=path)


def _no_unknown_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise QuizBankError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )


def _parse_question(item: Any, number: int, file: str) -> Question:
    if not isinstance(item, dict):
        raise QuizBankError(f"{file}: question #{number}: expected a mapping")
    qid = item.get("id")
    label = f"question {qid!r}" if isinstance(qid, str) and qid else f"question #{number}"
    where = f"{file}: {label}"
    _no_unknown_keys(item, QUESTION_KEYS, where)
    if not isinstance(qid, str) or not qid.strip():
        raise QuizBankError(f"{where}: 'id' must be a non-empty string")
    prompt = item.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise QuizBankError(f"{where}: 'prompt' must be a non-empty string")
    kind = item.get("kind", "single")
    if kind not in KINDS:
        raise QuizBankError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    raw_options = item.get("options")
    if not isinstance(raw_options, list) or len(raw_options) < 2:
        raise QuizBankError(f"{where}: 'options' must be a list of at least two options")
    options = tuple(_parse_option(o, i, where) for i, o in enumerate(raw_options, start=1))
    n_correct = sum(o.correct for o in options)
    if n_correct == 0:
        raise QuizBankError(f"{where}: no option is marked 'correct: true'")
    if kind == "single" and n_correct > 1:
        raise QuizBankError(
            f"{where}: {n_correct} options are marked correct in a single-choice question; "
            "mark one, or use kind: multiple"
        )
    texts = [o.text for o in options]
    if len(set(texts)) != len(texts):
        raise QuizBankError(f"{where}: two options have the same text")
    return Question(id=qid, prompt=prompt, kind=kind, options=options)


def _parse_option(raw: Any, number: int, where: str) -> Option:
    here = f"{where}, option {number}"
    if not isinstance(raw, dict):
        raise QuizBankError(f"{here}: expected a mapping with 'text' and 'why'")
    _no_unknown_keys(raw, OPTION_KEYS, here)
    text, why, correct = raw.get("text"), raw.get("why"), raw.get("correct", False)
    if not isinstance(text, (str, int, float)) or str(text).strip() == "":
        raise QuizBankError(f"{here}: 'text' must be a non-empty string")
    if not isinstance(why, str) or not why.strip():
        raise QuizBankError(f"{here}: 'why' (the explanation) must be a non-empty string")
    if not isinstance(correct, bool):
        raise QuizBankError(f"{here}: 'correct' must be true or false, got {correct!r}")
    return Option(text=str(text), correct=correct, why=why.strip())


def grade(question: Question, selected: Sequence[int]) -> Feedback:
    """Check an answer: ``selected`` holds the chosen option indices (0-based).

    Raises:
        ValueError: an index is out of range, or a single-choice question got several.
    """
    chosen = set(int(i) for i in selected)
    bad = [i for i in chosen if not 0 <= i < len(question.options)]
    if bad:
        raise ValueError(
            f"selected indices {sorted(bad)} are out of range for question {question.id!r} "
            f"with {len(question.options)} options"
        )
    if question.kind == "single" and len(chosen) > 1:
        raise ValueError(f"question {question.id!r} is single-choice; got {len(chosen)} selections")
    correct = bool(chosen) and chosen == set(question.correct_indices)
    lines = []
    for i, option in enumerate(question.options):
        mark = "✔" if option.correct else "✘"
        picked = " (your choice)" if i in chosen else ""
        lines.append(f"{mark} {option.text}{picked}: {option.why}")
    headline = CORRECT_TEXT if correct else WRONG_TEXT
    if not chosen:
        headline = "Pick an option first. " + WRONG_TEXT
    return Feedback(correct=correct, headline=headline, explanations=tuple(lines))


def shuffled_order(question: Question, salt: int | None = None) -> list[int]:
    """The order in which ``question``'s options are shown: a permutation of the bank's indices,
    fixed by (``salt``, question id); ``salt`` defaults to this kernel's ``SESSION_SALT``."""
    order = list(range(len(question.options)))
    random.Random(f"{SESSION_SALT if salt is None else salt}:{question.id}").shuffle(order)
    return order


class QuestionWidget:
    """One question as widgets: the prompt, the options (shuffled), a Check button and the feedback.

    ``order[k]`` is the bank index of the k-th option shown.
    """

    def __init__(self, question: Question, number: int | None = None, salt: int | None = None):
        import ipywidgets as widgets

        self.question = question
        self.order = shuffled_order(question, salt)
        labels = [question.options[i].text for i in self.order]
        title = f"Q{number}. " if number is not None else ""
        self.prompt = widgets.HTML(f"<b>{title}{_prompt_html(question.prompt)}</b>")
        if question.kind == "single":
            self.choices: Any = widgets.RadioButtons(options=labels, value=None, layout={"width": "auto"})
        else:
            self.choices = widgets.VBox([widgets.Checkbox(description=t, indent=False) for t in labels])
        self.button = widgets.Button(description="Check", button_style="primary")
        self.feedback = widgets.HTML()
        self.button.on_click(lambda _: self.check())
        self.box = widgets.VBox(
            [self.prompt, self.choices, self.button, self.feedback],
            layout={"border": "1px solid #ccc", "padding": "6px", "margin": "4px 0"},
        )

    def selected(self) -> list[int]:
        """The bank indices of the chosen options."""
        if self.question.kind == "single":
            value = self.choices.value
            return [] if value is None else [self.order[self.choices.options.index(value)]]
        return [self.order[k] for k, box in enumerate(self.choices.children) if box.value]

    def check(self) -> Feedback:
        result = grade(self.question, self.selected())
        colour = "#1a7f37" if result.correct else "#b35900"
        shown = [result.explanations[i] for i in self.order]  # in the order the learner sees
        items = "".join(f"<li>{_escape(line)}</li>" for line in shown)
        self.feedback.value = (
            f"<div class='quiz-feedback'><b style='color:{colour}'>{_escape(result.headline)}</b>"
            f"<ul>{items}</ul></div>"
        )
        return result


def static_html(title: str, items: Sequence[QuestionWidget], keys: bool) -> str:
    """The quiz as plain HTML, for readers where widgets do not run; with the key when ``keys``."""
    parts = [f"<h3>Quiz: {_escape(title)}</h3>"]
    for number, item in enumerate(items, start=1):
        parts.append(f"<p><b>Q{number}. {_prompt_html(item.question.prompt)}</b></p><ul>")
        for index in item.order:
            option = item.question.options[index]
            mark = ("&#10004; " if option.correct else "&#10008; ") if keys else ""
            why = f"<br><i>{_escape(option.why)}</i>" if keys else ""
            parts.append(f"<li>{mark}{_escape(option.text)}{why}</li>")
        parts.append("</ul>")
    if not keys:
        parts.append("<p><i>Run the notebook to answer these questions and see the explanations.</i></p>")
    return "".join(parts)


def show_quiz(name: str | Path, ids: Sequence[str] | None = None) -> list[QuestionWidget]:
    """Display the questions of a bank (all, or those with the given ids) and return their widgets."""
    import ipywidgets as widgets

    from .widget_display import display_with_fallback

    bank = load_bank(name)
    questions = bank.questions if ids is None else tuple(bank[i] for i in ids)
    items = [QuestionWidget(q, n) for n, q in enumerate(questions, start=1)]
    view = widgets.VBox([widgets.HTML(f"<h3>Quiz: {_escape(bank.title)}</h3>")] + [w.box for w in items])
    keys = os.environ.get("COURSE_SHOW_KEYS") == "1"
    display_with_fallback(view, {
        "text/html": static_html(bank.title, items, keys),
        "text/plain": f"Quiz: {bank.title} ({len(items)} questions; run the notebook to answer)",
    })
    return items


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _prompt_html(text: str) -> str:
    """A prompt as HTML: escaped, with `code` in backticks shown as code."""
    import re

    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _escape(text))
