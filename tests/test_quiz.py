from pathlib import Path

import pytest

from course_utils.quiz import (
    CORRECT_TEXT,
    WRONG_TEXT,
    QuestionWidget,
    QuizBankError,
    grade,
    load_bank,
    show_quiz,
    shuffled_order,
    static_html,
)

BANKS = sorted((Path(__file__).resolve().parent.parent / "data" / "quizzes").glob("*.yaml"))

GOOD = """\
title: Test bank
questions:
  - id: q1
    prompt: Pick A
    kind: single
    options:
      - text: A
        correct: true
        why: because A
      - text: B
        why: not B
  - id: q2
    prompt: Pick A and C
    kind: multiple
    options:
      - {text: A, correct: true, why: "it is"}
      - {text: B, why: "it is not"}
      - {text: C, correct: true, why: "it is too"}
"""


MANY = """\
title: Many options
questions:
  - id: q
    prompt: Pick one
    options:
      - {text: one, correct: true, why: "w1"}
      - {text: two, why: "w2"}
      - {text: three, why: "w3"}
      - {text: four, why: "w4"}
      - {text: five, why: "w5"}
"""


def write(tmp_path, text, name="bank.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("bank", BANKS, ids=lambda p: p.name)
def test_every_committed_bank_is_valid(bank):
    loaded = load_bank(bank)
    assert loaded.questions
    for question in loaded.questions:
        assert all(option.why for option in question.options)


def test_lesson_banks_have_at_least_five_questions():
    for bank in BANKS:
        if bank.stem != "00_welcome":
            assert len(load_bank(bank).questions) >= 5, bank.name


def test_good_bank_loads(tmp_path):
    bank = load_bank(write(tmp_path, GOOD))
    assert [q.id for q in bank.questions] == ["q1", "q2"]
    assert bank["q2"].correct_indices == {0, 2}


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            GOOD.replace("        correct: true\n        why: because A", "        why: because A"),
            "q1.*no option",
        ),
        (
            GOOD.replace("        why: not B", "        why: not B\n        correct: true"),
            "q1.*2 options are marked correct",
        ),
        (GOOD.replace("    kind: single", "    kind: single\n    hint: x"), "q1.*unknown key.*'hint'"),
        (
            GOOD.replace('{text: B, why: "it is not"}', '{text: B, why: "it is not", points: 3}'),
            "q2.*option 2.*'points'",
        ),
        (GOOD.replace("title: Test bank", "title: Test bank\nauthor: me"), "unknown key.*'author'"),
        (GOOD.replace("        why: not B", "        why: ''"), "q1.*option 2.*why"),
        (GOOD.replace("id: q2", "id: q1"), "'q1'.*used twice"),
        (GOOD.replace("kind: multiple", "kind: essay"), "q2.*'kind'"),
        ("questions: []\ntitle: x", "non-empty list"),
        ("title: [", "not valid YAML"),
    ],
)
def test_malformed_banks_name_file_and_question(tmp_path, broken, message):
    path = write(tmp_path, broken, "broken_bank.yaml")
    with pytest.raises(QuizBankError, match=message) as err:
        load_bank(path)
    assert "broken_bank.yaml" in str(err.value)


@pytest.mark.parametrize(
    ("broken", "line", "key"),
    [
        # PyYAML would keep the last value: option A of q1 silently wrong, B right.
        (
            GOOD.replace("        why: because A", "        why: because A\n        correct: false").replace(
                "      - text: B\n", "      - text: B\n        correct: true\n"
            ),
            10,
            "correct",
        ),
        (GOOD.replace('{text: B, why: "it is not"}', '{text: B, text: D, why: "it is not"}'), 17, "text"),
        (GOOD.replace("    prompt: Pick A\n", "    prompt: Pick A\n    prompt: Pick B\n"), 5, "prompt"),
    ],
    ids=["correct-twice", "text-twice-in-flow-option", "prompt-twice"],
)
def test_duplicate_key_names_file_line_and_key(tmp_path, broken, line, key):
    path = write(tmp_path, broken, "dup_bank.yaml")
    with pytest.raises(QuizBankError, match=rf"dup_bank\.yaml, line {line}: key '{key}' appears twice"):
        load_bank(path)


def test_merge_keys_may_still_be_overridden(tmp_path):
    bank = GOOD.replace('- {text: B, why: "it is not"}', '- &b {text: B, why: "it is not"}').replace(
        '- {text: C, correct: true, why: "it is too"}', "- {<<: *b, text: C, correct: true}"
    )
    question = load_bank(write(tmp_path, bank))["q2"]
    assert [o.text for o in question.options] == ["A", "B", "C"] and question.correct_indices == {0, 2}


def test_missing_bank_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_bank("nope")


def test_grade_single(tmp_path):
    question = load_bank(write(tmp_path, GOOD))["q1"]
    right, wrong = grade(question, [0]), grade(question, [1])
    assert right.correct and right.headline == CORRECT_TEXT
    assert not wrong.correct and wrong.headline == WRONG_TEXT
    assert len(wrong.explanations) == 2
    assert "not B" in wrong.explanations[1] and "(your choice)" in wrong.explanations[1]
    assert not grade(question, []).correct


def test_grade_multiple_needs_exact_set(tmp_path):
    question = load_bank(write(tmp_path, GOOD))["q2"]
    assert grade(question, [0, 2]).correct
    assert not grade(question, [0]).correct
    assert not grade(question, [0, 1, 2]).correct


def test_grade_rejects_bad_selections(tmp_path):
    bank = load_bank(write(tmp_path, GOOD))
    with pytest.raises(ValueError, match="out of range"):
        grade(bank["q1"], [5])
    with pytest.raises(ValueError, match="single-choice"):
        grade(bank["q1"], [0, 1])


def test_widget_check_shows_feedback(tmp_path):
    question = load_bank(write(tmp_path, GOOD))["q1"]
    widget = QuestionWidget(question, 1)
    widget.choices.value = "B"
    widget.button.click()
    assert WRONG_TEXT in widget.feedback.value and "not B" in widget.feedback.value
    widget.choices.value = "A"
    widget.button.click()
    assert CORRECT_TEXT in widget.feedback.value


def test_multiple_choice_widget(tmp_path):
    widget = QuestionWidget(load_bank(write(tmp_path, GOOD))["q2"])
    for shown, box in enumerate(widget.choices.children):
        box.value = widget.order[shown] in (0, 2)  # tick A and C wherever they are shown
    assert widget.selected() == [0, 2] or widget.selected() == [2, 0]
    assert widget.check().correct


def test_options_are_shuffled_stably_per_kernel(tmp_path):
    question = load_bank(write(tmp_path, MANY))["q"]
    first = QuestionWidget(question).order
    assert QuestionWidget(question).order == first, "the order must not change while the kernel runs"
    orders = {tuple(shuffled_order(question, salt)) for salt in range(40)}
    assert len(orders) > 10, "other kernels (salts) must show other orders"
    assert sorted(first) == list(range(len(question.options)))
    widget = QuestionWidget(question, salt=3)
    correct_label = question.options[0].text
    widget.choices.value = correct_label
    assert widget.selected() == [0] and widget.check().correct
    shown = [o.text for o in (question.options[i] for i in widget.order)]
    assert list(widget.choices.options) == shown


def test_static_rendering_shows_keys_only_when_asked(tmp_path):
    items = [QuestionWidget(load_bank(write(tmp_path, GOOD))["q1"], 1)]
    hidden, shown = static_html("T", items, keys=False), static_html("T", items, keys=True)
    assert "because A" not in hidden and "&#10004;" not in hidden and "Pick A" in hidden
    assert "because A" in shown and "&#10004; A" in shown


def test_show_quiz_by_name_and_ids():
    items = show_quiz("00_welcome", ids=["label-zero"])
    assert len(items) == 1 and items[0].question.kind == "multiple"


def test_prompt_shows_backticks_as_code(tmp_path):
    bank = GOOD.replace("prompt: Pick A\n", "prompt: Pick `A` <b>\n", 1)
    widget = QuestionWidget(load_bank(write(tmp_path, bank))["q1"], 1)
    assert "Pick <code>A</code> &lt;b&gt;" in widget.prompt.value


@pytest.mark.parametrize("show_keys", ["1", None])
def test_show_quiz_leaves_a_static_rendering_beside_the_widget(monkeypatch, show_keys):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda data, raw=False: shown.append((data, raw)))
    if show_keys:
        monkeypatch.setenv("COURSE_SHOW_KEYS", show_keys)
    else:
        monkeypatch.delenv("COURSE_SHOW_KEYS", raising=False)
    show_quiz("00_welcome", ids=["label-zero"])
    ((data, raw),) = shown
    assert raw and "application/vnd.jupyter.widget-view+json" in data
    assert ("&#10004;" in data["text/html"]) == bool(show_keys), "the key only in the solved form's build"
