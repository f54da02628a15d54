"""No quiz bank gives its answers away by the length or the position of the correct option.

Two rules, checked on every bank in ``data/quizzes/`` and only on single-choice questions:

* length: the correct option is the strictly longest option in at most half of the questions;
* position: no option position (1st, 2nd, ...) holds more than 60 % of the correct options.

The final quiz's graded answers may be typed by copying an option, so its options must also be
told apart by their first 20 characters, none may be a prefix of another, and none holds a backtick.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from course_utils.quiz import Bank, Question, load_bank

BANKS = sorted((Path(__file__).resolve().parent.parent / "data" / "quizzes").glob("*.yaml"))
TYPED_BANKS = ("14_final_quiz",)  # banks whose options learners may copy as typed answers

MAX_LONGEST_SHARE = 0.5
MAX_POSITION_SHARE = 0.6
DISTINCT_PREFIX = 20


def single_choice(bank: Bank) -> list[Question]:
    return [q for q in bank.questions if q.kind == "single"]


def key_index(question: Question) -> int:
    (index,) = question.correct_indices
    return index


def key_is_longest(question: Question) -> bool:
    """True when the correct option is longer than every other option (a tie is not a tell)."""
    key = key_index(question)
    lengths = [len(o.text) for o in question.options]
    return all(lengths[key] > length for i, length in enumerate(lengths) if i != key)


def length_tell(bank: Bank) -> str | None:
    """A message when the key is the strictly longest option in more than half of the single-choice questions."""
    questions = single_choice(bank)
    longest = [q.id for q in questions if key_is_longest(q)]
    if len(longest) > MAX_LONGEST_SHARE * len(questions):
        return (
            f"{bank.path.name}: the correct option is the strictly longest one in {len(longest)} of "
            f"{len(questions)} single-choice questions (at most half allowed): {', '.join(longest)}"
        )
    return None


def position_tell(bank: Bank) -> str | None:
    """A message when one option position holds more than 60 % of the single-choice keys."""
    questions = single_choice(bank)
    counts = Counter(key_index(q) + 1 for q in questions)
    if not counts:
        return None
    position, count = counts.most_common(1)[0]
    if count > MAX_POSITION_SHARE * len(questions):
        return (
            f"{bank.path.name}: option {position} is correct in {count} of {len(questions)} single-choice "
            f"questions (at most {MAX_POSITION_SHARE:.0%} allowed); keys per position: {dict(sorted(counts.items()))}"
        )
    return None


def typing_tell(bank: Bank) -> str | None:
    """A message naming the options that cannot be told apart when typed (copied) as an answer."""
    problems = []
    for question in bank.questions:
        texts = [o.text for o in question.options]
        for i, first in enumerate(texts):
            if "`" in first:
                problems.append(f"{question.id}: {first!r} holds a backtick")
            for second in texts[i + 1 :]:
                if first.startswith(second) or second.startswith(first):
                    problems.append(f"{question.id}: {first!r} and {second!r}: one is a prefix of the other")
                elif first[:DISTINCT_PREFIX].casefold() == second[:DISTINCT_PREFIX].casefold():
                    problems.append(
                        f"{question.id}: {first!r} and {second!r} share their first {DISTINCT_PREFIX} characters"
                    )
    return f"{bank.path.name}: " + "; ".join(problems) if problems else None


# --- the committed banks ---------------------------------------------------------------------------


def test_the_banks_are_found():
    assert len(BANKS) >= 9, [p.name for p in BANKS]
    assert all(single_choice(load_bank(path)) for path in BANKS), "every bank has single-choice questions"


@pytest.mark.parametrize("path", BANKS, ids=lambda p: p.stem)
def test_correct_option_is_not_told_by_its_length(path):
    assert length_tell(load_bank(path)) is None


@pytest.mark.parametrize("path", BANKS, ids=lambda p: p.stem)
def test_correct_option_is_not_told_by_its_position(path):
    assert position_tell(load_bank(path)) is None


@pytest.mark.parametrize("name", TYPED_BANKS)
def test_typed_options_are_told_apart(name):
    assert typing_tell(load_bank(name)) is None


# --- the rules on planted banks --------------------------------------------------------------------


def question(qid: str, key: int, lengths: list[int], kind: str = "single") -> dict:
    """A question whose option i has length lengths[i] (letters a, b, c... repeated); ``key`` is correct."""
    options = []
    for i, length in enumerate(lengths):
        option = {"text": chr(ord("a") + i) * length, "why": f"option {i + 1}"}
        if i == key or (kind == "multiple" and i < 2):
            option["correct"] = True
        options.append(option)
    return {"id": qid, "prompt": f"Question {qid}?", "kind": kind, "options": options}


def planted(tmp_path, questions: list[dict], name: str = "planted.yaml") -> Bank:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"title": "Planted", "questions": questions}, sort_keys=False))
    return load_bank(path)


def test_length_tell_flags_a_key_that_is_mostly_the_longest(tmp_path):
    bank = planted(
        tmp_path,
        [
            question("q1", 0, [30, 10, 12]),
            question("q2", 1, [10, 30, 12]),
            question("q3", 2, [20, 30, 12]),
        ],
    )
    message = length_tell(bank)
    assert message is not None
    assert "planted.yaml" in message and "2 of 3" in message and "q1, q2" in message


def test_length_tell_accepts_half_and_ignores_ties_and_multiple_choice(tmp_path):
    bank = planted(
        tmp_path,
        [
            question("q1", 0, [30, 10, 12]),
            question("q2", 1, [10, 30, 12]),
            question("q3", 2, [30, 20, 30]),  # tied with the longest: no tell
            question("q4", 0, [10, 30, 12]),
            question("m1", 0, [50, 40, 10], kind="multiple"),
            question("m2", 0, [50, 40, 10], kind="multiple"),
        ],
    )
    assert length_tell(bank) is None
    assert position_tell(bank) is None


def test_position_tell_flags_a_crowded_position(tmp_path):
    bank = planted(tmp_path, [question(f"q{n}", 0 if n < 4 else n - 3, [10, 11, 12]) for n in range(5)])
    message = position_tell(bank)
    assert message is not None
    assert "planted.yaml" in message and "option 1" in message and "4 of 5" in message
    assert "{1: 4, 2: 1}" in message


def test_position_tell_accepts_sixty_percent_and_ignores_multiple_choice(tmp_path):
    keys = [0, 0, 0, 1, 2]
    singles = [question(f"q{n}", key, [10, 11, 12]) for n, key in enumerate(keys)]
    multiples = [question(f"m{n}", 0, [10, 11, 12], kind="multiple") for n in range(5)]
    assert position_tell(planted(tmp_path, singles + multiples)) is None
    assert (
        position_tell(planted(tmp_path, [question(f"q{n}", n % 3, [10, 11, 12]) for n in range(6)])) is None
    )


def test_typing_tell_flags_prefixes_shared_starts_and_backticks(tmp_path):
    def bank(*texts: str) -> Bank:
        options = [
            {"text": t, "why": "w", **({"correct": True} if i == 0 else {})} for i, t in enumerate(texts)
        ]
        return planted(tmp_path, [{"id": "q", "prompt": "P?", "kind": "single", "options": options}])

    assert "prefix" in typing_tell(bank("Any value from 0 to 1", "Any value from 0 to 100"))
    assert "first 20" in typing_tell(
        bank("num_classes=3 and labels 1, 2, 3", "num_classes=3 and labels 0, 1, 2")
    )
    assert "backtick" in typing_tell(bank("Use `nms`", "Use batched_nms"))
    assert typing_tell(bank("From 0 to 1, both ends included", "From -1 to 1", "Between 0 and 100")) is None
