"""Graded quiz questions: options shown without letters in a fixed shuffled order, answers by option text,
and the two kinds of run (a learner's run reports a missing or malformed answer in one line and never
fails on a wrong one; a graded run fails on all three)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from course_utils import graded_quiz, quiz
from course_utils.graded_quiz import AnswerError
from course_utils.quiz import load_bank

BANK = """\
title: A fabricated bank
questions:
  - id: pick-one
    prompt: Which anchors are positive?
    kind: single
    options:
      - text: Anchors whose IoU with a box is at least 0.7
        correct: true
        why: WHY-AT-LEAST.
      - text: Anchors whose IoU with every box is below 0.3
        why: WHY-BELOW.
      - text: "0.25"
        why: WHY-QUARTER.
      - text: "0.25 of all the anchors, picked at random."
        why: WHY-RANDOM.
      - text: "Boxes with *stars*, [brackets], `ticks` and $5"
        why: WHY-MARKDOWN.
  - id: pick-many
    prompt: Which of these are losses?
    kind: multiple
    options:
      - text: Smooth L1
        correct: true
        why: WHY-SMOOTH.
      - text: Cross-entropy with a background class
        correct: true
        why: WHY-CE.
      - text: Non-maximum suppression
        why: WHY-NMS.
      - text: A learning-rate warm-up
        why: WHY-WARMUP.
"""
WHYS = ("WHY-AT-LEAST", "WHY-BELOW", "WHY-QUARTER", "WHY-RANDOM", "WHY-MARKDOWN", "WHY-SMOOTH", "WHY-CE")


@pytest.fixture
def bank(tmp_path) -> str:
    path = tmp_path / "fabricated.yaml"
    path.write_text(BANK)
    return str(path)


@pytest.fixture
def one(bank):
    return load_bank(bank)["pick-one"]


@pytest.fixture
def many(bank):
    return load_bank(bank)["pick-many"]


@pytest.fixture(params=["learner", "graded"])
def either_run(request):
    request.getfixturevalue(request.param)  # the fixtures of tests/conftest.py
    return request.param


def texts(question, indices):
    return [question.options[i].text for i in indices]


# --- what the learner sees -----------------------------------------------------------------------


def test_display_order_is_a_fixed_shuffle_of_the_bank(bank, monkeypatch):
    questions = load_bank(bank).questions
    orders = [graded_quiz.display_order(q) for q in questions]
    assert all(sorted(o) == list(range(len(q.options))) for o, q in zip(orders, questions, strict=True))
    assert any(o != sorted(o) for o in orders), "the bank's order is not the order shown"
    assert orders == [quiz.shuffled_order(q, graded_quiz.DISPLAY_SALT) for q in questions]
    monkeypatch.setattr(quiz, "SESSION_SALT", quiz.SESSION_SALT + 1)  # another kernel, e.g. at grading
    assert [graded_quiz.display_order(q) for q in questions] == orders


def test_question_lists_options_without_letters_in_the_shown_order(one):
    text = graded_quiz.question_text(one, "Graded Q1.", "answer_1")
    bullets = [line[2:] for line in text.splitlines() if line.startswith("- ")]
    assert bullets == texts(one, graded_quiz.display_order(one))
    assert text.startswith("Graded Q1. Which anchors are positive?")
    assert not re.search(r"^- \(?[A-E][.)]", text, re.M), "no option letters"
    assert 'answer_1 = "<copy the text of the option you choose>"' in text
    assert not any(why in text for why in WHYS), "no explanation, so no key"


def test_markdown_escapes_the_options_so_a_copy_matches(one):
    markdown = graded_quiz.question_markdown(one, "Graded Q1.", "answer_1")
    assert markdown.startswith("**Graded Q1.** Which anchors")
    assert r"- Boxes with \*stars\*, \[brackets\], \`ticks\` and \$5" in markdown
    assert '`answer_1 = "<copy the text of the option you choose>"`' in markdown


def test_multiple_choice_asks_for_a_list_of_texts(many):
    text = graded_quiz.question_text(many, variable="answer_6")
    assert 'answer_6 = ["<text of one option you choose>", "<text of another>"]' in text
    assert "every option that applies" in text


def test_show_question_displays_markdown_and_plain_text(bank, one, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda data, raw: shown.append((data, raw)))
    question = graded_quiz.show_question(bank, "pick-one", label="Graded Q1.", variable="answer_1")
    assert question == one
    [(data, raw)] = shown
    assert raw and data["text/markdown"] == graded_quiz.question_markdown(one, "Graded Q1.", "answer_1")
    assert data["text/plain"] == graded_quiz.question_text(one, "Graded Q1.", "answer_1")


# --- reading an answer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "index"),
    [
        ("Anchors whose IoU with a box is at least 0.7", 0),
        ('  "anchors   WHOSE iou with a box\nis at least 0.7."  ', 0),
        ("`Anchors whose IoU with every box is below 0.3`", 1),
        ("Anchors whose IoU with every", 1),  # an unambiguous start
        ("0.25", 2),  # exactly an option, although it starts another one
        ("'0.25.'", 2),
        ("0.25 of all the", 3),
        ("Boxes with *stars*, [brackets], `ticks` and $5", 4),
        (["anchors whose iou with a box is at least 0.7"], 0),
    ],
)
def test_parse_choice_reads_option_text(one, answer, index):
    assert graded_quiz.parse_choice(answer, one) == [index]


@pytest.mark.parametrize(
    ("answer", "indices"),
    [
        (["Smooth L1", "cross-entropy with a background class"], [0, 1]),
        (("Non-maximum suppression",), [2]),
        ({"A learning-rate warm-up", "Smooth L1"}, [0, 3]),
        (["Smooth L1", " smooth l1. "], [0]),
        ("Smooth L1", [0]),  # one text without a list
    ],
)
def test_parse_choice_reads_lists_of_texts(many, answer, indices):
    assert graded_quiz.parse_choice(answer, many) == indices


@pytest.mark.parametrize(
    ("answer", "qid", "message"),
    [
        (None, "pick-one", "no answer yet; expected the text of one option"),
        (..., "pick-many", "no answer yet; expected a list of the texts"),
        (2, "pick-one", "expected the text of one option.*got int 2"),
        ([1, 2], "pick-many", "expected a list of the texts.*got list"),
        ("", "pick-one", "empty text"),
        ([], "pick-many", "the list is empty"),
        ("Anchors whose IoU", "pick-one", "matches several options"),
        ("Anchors", "pick-one", "'Anchors' matches no option"),  # a start shorter than MIN_PREFIX
        ("Anchors inside a box", "pick-one", "matches no option"),
        (["0.25", "Boxes with *stars*, [brackets], `ticks` and $5"], "pick-one", "takes one option, got 2"),
    ],
)
def test_parse_choice_rejects_bad_answers(bank, answer, qid, message):
    with pytest.raises(AnswerError, match=message) as err:
        graded_quiz.parse_choice(answer, load_bank(bank)[qid])
    assert f"question {qid!r}" in str(err.value), "the message names the question"


def test_no_match_lists_the_options_in_the_shown_order(one):
    with pytest.raises(AnswerError) as err:
        graded_quiz.parse_choice("Anchors inside a box", one)
    listed = [line[4:] for line in str(err.value).splitlines() if line.startswith("  - ")]
    assert listed == texts(one, graded_quiz.display_order(one))
    assert not any(why in str(err.value) for why in WHYS)


@pytest.mark.parametrize(
    ("answer", "qid"), [("B", "pick-one"), ("b.", "pick-one"), (["A", "C"], "pick-many")]
)
def test_a_letter_is_not_an_option(bank, answer, qid):
    with pytest.raises(
        AnswerError, match="looks like a letter: options are not lettered, they are answered by"
    ):
        graded_quiz.parse_choice(answer, load_bank(bank)[qid])


def test_a_start_counts_from_min_prefix_characters(one):
    text = one.options[4].text  # "Boxes with *stars*...": no other option starts the same way
    assert graded_quiz.parse_choice(text[: graded_quiz.MIN_PREFIX], one) == [4]
    with pytest.raises(AnswerError, match="matches no option"):
        graded_quiz.parse_choice(text[: graded_quiz.MIN_PREFIX - 1], one)


def test_every_final_quiz_option_is_answerable_by_its_text():
    for question in load_bank("14_final_quiz").questions:
        normalised = [graded_quiz.normalise(o.text) for o in question.options]
        assert len(set(normalised)) == len(normalised), question.id
        for index, option in enumerate(question.options):
            assert graded_quiz.parse_choice(option.text, question) == [index], question.id


# --- the checks, in a learner's run and in a graded run ---------------------------------------------


def test_check_choice_returns_the_chosen_texts(bank, many, either_run):
    chosen = graded_quiz.check_choice(["a learning-rate warm-up", "Smooth L1"], bank, "pick-many")
    assert chosen == [t for t in texts(many, graded_quiz.display_order(many)) if t in chosen]
    assert sorted(chosen) == ["A learning-rate warm-up", "Smooth L1"]


def test_missing_choice_is_reported_in_one_line_in_a_learner_run(bank, learner, capsys):
    assert graded_quiz.check_choice(None, bank, "pick-one") is None
    assert graded_quiz.grade_choice(..., bank, "pick-one") is None  # the check cell: check, then grade
    out = capsys.readouterr().out
    assert out == (
        "Question 'pick-one' not answered yet: in the answer cell above, replace None with the text of the "
        "option you choose, then run both cells again.\n"
    )
    assert graded_quiz.grade_choice(None, bank, "pick-one") is None  # alone, it reports the answer itself
    assert capsys.readouterr().out.count("not answered yet") == 1
    graded_quiz.check_choice(None, bank, "pick-many")
    graded_quiz.grade_choice(None, bank, "pick-one")  # another question: reported as well
    out = capsys.readouterr().out
    assert "'pick-many' not answered" in out and "'pick-one' not answered" in out
    assert not any(why in out for why in WHYS) and "Correct" not in out and "✔" not in out


@pytest.mark.parametrize("check", [graded_quiz.check_choice, graded_quiz.grade_choice])
def test_missing_choice_fails_in_a_graded_run(bank, graded, check, capsys):
    with pytest.raises(AnswerError, match="question 'pick-one': no answer yet"):
        check(None, bank, "pick-one")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("check", [graded_quiz.check_choice, graded_quiz.grade_choice])
@pytest.mark.parametrize("answer", ["B", 3, "not an option at all", []])
def test_malformed_choice_fails_in_a_graded_run(bank, graded, check, answer):
    with pytest.raises(AnswerError, match="question 'pick-one'"):
        check(answer, bank, "pick-one")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("B", "'B' looks like a letter"),
        (3, "expected the text of one option"),
        ("not an option at all", "matches no option"),
        ([], "the list is empty"),
    ],
)
def test_malformed_choice_is_reported_once_in_a_learner_run(bank, learner, answer, message, capsys):
    """Run all goes on: the check prints why it cannot read the answer, the grading after it stays silent."""
    assert graded_quiz.check_choice(answer, bank, "pick-one") is None
    assert graded_quiz.grade_choice(answer, bank, "pick-one") is None
    out = capsys.readouterr().out
    assert out.startswith("Cannot read your answer: question 'pick-one'") and message in out
    assert out.count("Cannot read your answer") == 1 and "Correct" not in out and "Not quite" not in out
    assert not any(why in out for why in WHYS)
    assert graded_quiz.grade_choice(answer, bank, "pick-one") is None  # alone, it reports the answer itself
    assert capsys.readouterr().out.startswith("Cannot read your answer: question 'pick-one'")


def test_a_letter_in_a_multiple_choice_question_asks_for_a_list_of_texts(many):
    with pytest.raises(AnswerError, match="looks like a letter") as err:
        graded_quiz.parse_choice(["A", "C"], many)
    assert "copy the texts of the options you choose into a list" in str(err.value)
    assert '["<text of one option you choose>", "<text of another>"]' in str(err.value)


@pytest.mark.parametrize(
    ("answer", "qid", "key"),
    [
        ("[24,8,40,44]", "coco-to-xyxy", "[24, 8, 40, 44]"),
        ([24, 8, 40, 44], "coco-to-xyxy", "[24, 8, 40, 44]"),  # a list of numbers, without quotes
        ((24.0, 8, 40, 44.0), "coco-to-xyxy", "[24, 8, 40, 44]"),
        ("[ 16 , -10, 32, 26 ]", "coco-to-xyxy", "[16, -10, 32, 26]"),
        ("boxes overlapping a better scored kept box", "nms-purpose", "Boxes overlapping a better-scored"),
        ("It  scales each example's loss down the more-confident", "focal-loss", "It scales each example's loss"),
    ],
)
def test_punctuation_spacing_and_hyphens_do_not_count(answer, qid, key):
    question = load_bank("14_final_quiz")[qid]
    [index] = graded_quiz.parse_choice(answer, question)
    assert question.options[index].text.startswith(key)


def test_the_format_note_says_how_long_a_start_must_be(one):
    assert f"(at least {graded_quiz.MIN_PREFIX} characters)" in graded_quiz.question_text(one)


def explanation_lines(out):
    return [line.strip() for line in out.splitlines() if line.startswith("  ")]


def test_right_choice_is_graded_with_every_explanation_in_the_shown_order(bank, many, either_run, capsys):
    graded_quiz.grade_choice(["cross-entropy with a background class", "smooth l1"], bank, "pick-many")
    out = capsys.readouterr().out
    assert out.startswith("Correct!")
    lines = explanation_lines(out)
    assert [next(o.text for o in many.options if o.text in line) for line in lines] == texts(
        many, graded_quiz.display_order(many)
    )
    assert all(f"WHY-{w}" in out for w in ("SMOOTH", "CE", "NMS", "WARMUP"))


def test_wrong_choice_is_explained_but_does_not_fail_in_a_learner_run(bank, learner, capsys):
    assert graded_quiz.grade_choice("Anchors whose IoU with every box is below 0.3", bank, "pick-one") is None
    out = capsys.readouterr().out
    assert out.startswith("Not quite.") and all(why in out for why in WHYS[:5])
    assert "(your choice)" in out


def test_wrong_choice_fails_in_a_graded_run_after_the_explanations(bank, graded, capsys):
    with pytest.raises(AnswerError, match="'Smooth L1' is not the right answer"):
        graded_quiz.grade_choice(["Smooth L1"], bank, "pick-many")  # one of the two right options
    out = capsys.readouterr().out
    assert out.startswith("Not quite.") and "WHY-CE" in out


@pytest.mark.parametrize("answer", [0.36, 3, np.float32(0.5), torch.tensor(1.5), np.int64(7)])
def test_check_number_accepts_numbers(answer, either_run):
    assert graded_quiz.check_number(answer) == pytest.approx(float(answer))


MALFORMED_NUMBERS = [
    ("0.36", "expected one number"),
    (True, "expected one number"),
    (math.nan, "expected a finite number"),
    (torch.ones(2), "expected one number"),
]


@pytest.mark.parametrize(("answer", "message"), MALFORMED_NUMBERS)
def test_malformed_number_fails_in_a_graded_run(answer, message, graded):
    with pytest.raises(AnswerError, match=f"answer_3: {message}"):
        graded_quiz.check_number(answer, "answer_3")
    with pytest.raises(AnswerError, match=f"answer_3: {message}"):
        graded_quiz.grade_number(answer, 0.36, name="answer_3")


@pytest.mark.parametrize(("answer", "message"), MALFORMED_NUMBERS)
def test_malformed_number_is_reported_once_in_a_learner_run(answer, message, learner, capsys):
    assert graded_quiz.check_number(answer, "answer_3") is None
    assert graded_quiz.grade_number(answer, 0.3559, abs_tol=0.01, why="WHY", name="answer_3") is None
    out = capsys.readouterr().out
    assert out.startswith(f"Cannot read your answer: answer_3: {message}") and out.count("\n") == 1
    assert "0.3559" not in out and "WHY" not in out and "computed" not in out


def test_missing_number_is_reported_once_without_the_value_in_a_learner_run(learner, capsys):
    assert graded_quiz.check_number(None, "answer_3") is None
    assert (
        graded_quiz.grade_number(..., torch.tensor(0.3559), abs_tol=0.01, why="WHY", name="answer_3") is None
    )
    out = capsys.readouterr().out
    assert out == (
        "answer_3 not answered yet: in the answer cell above, replace None with a number, "
        "then run both cells again.\n"
    )
    assert graded_quiz.grade_number(None, 0.3559, name="answer_3") is None  # alone: reported
    out += capsys.readouterr().out
    assert out.count("answer_3 not answered yet") == 2
    assert "0.3559" not in out and "0.356" not in out and "WHY" not in out and "computed" not in out


def test_missing_number_fails_in_a_graded_run(graded):
    with pytest.raises(AnswerError, match="answer_3: no answer yet"):
        graded_quiz.check_number(None, "answer_3")
    with pytest.raises(AnswerError, match="answer_3: no answer yet"):
        graded_quiz.grade_number(..., 0.3559, abs_tol=0.01, name="answer_3")


def test_grade_number_uses_the_tolerance(either_run, capsys):
    graded_quiz.grade_number(0.36, torch.tensor(0.3559), abs_tol=0.01, why="because")
    out = capsys.readouterr().out
    assert "Correct!" in out and "computed: 0.3559" in out and "why: because" in out
    graded_quiz.grade_number(9300, 9216, rel_tol=0.01)
    assert capsys.readouterr().out.startswith("Correct!")
    with pytest.raises(ValueError, match="tolerances"):
        graded_quiz.grade_number(1, 1, abs_tol=-1)


def test_wrong_number_is_explained_but_does_not_fail_in_a_learner_run(learner, capsys):
    graded_quiz.grade_number(0.4, 0.3559, abs_tol=0.01, why="because", name="answer_3")
    out = capsys.readouterr().out
    assert out.startswith("Not quite.") and "computed: 0.3559" in out and "why: because" in out


def test_wrong_number_fails_in_a_graded_run(graded, capsys):
    with pytest.raises(AnswerError, match="answer_3: 0.4 is not within"):
        graded_quiz.grade_number(0.4, 0.3559, abs_tol=0.01, name="answer_3")
    assert "Not quite." in capsys.readouterr().out, "the explanation comes before the failure"
    with pytest.raises(AnswerError):
        graded_quiz.grade_number(9217, 9216)
