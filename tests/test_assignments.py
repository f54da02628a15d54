"""Graded assignments: the conversion of lecture notebooks (fast), graded quiz answers (fast), and the
nbgrader round trip (slow: generate, validate, autograde three fabricated submissions, read the gradebook).
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import final_quiz, graded_quiz
from course_utils.quiz import Question, load_bank

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("assignments", ROOT / "scripts" / "assignments.py")
assignments = importlib.util.module_from_spec(spec)
sys.modules["assignments"] = assignments  # dataclasses look their module up there
spec.loader.exec_module(assignments)
nbspec = importlib.util.spec_from_file_location("nbtools", ROOT / "scripts" / "notebooks.py")
nbtools = importlib.util.module_from_spec(nbspec)
nbspec.loader.exec_module(nbtools)

QUIZ = ROOT / "notebooks" / "solved" / "14_final_quiz.ipynb"
LECTURES = assignments.lecture_notebooks()
# The lesson whose exercises the round trip grades (the quickest one with exercises); the first lesson
# with exercises stands in while it does not exist, and a small built-in lesson while none does.
ROUND_TRIP_LESSON = "02_boxes_and_iou"


# --- a small lecture notebook built here -------------------------------------------------------------


def md(text):
    return nbformat.v4.new_markdown_cell(text)


def code(text, **metadata):
    cell = nbformat.v4.new_code_cell(text)
    cell.metadata.update(metadata)
    return cell


SETUP = (
    nbtools.bootstrap(nbtools.repository_url())
    + "\nfrom course_utils.session import start_lesson\n\nlesson = start_lesson(seed=0)\n"
    + "import torch\nfrom torchvision.ops import box_area, box_iou"
)
AREA_SOLUTION = "    widths = b[:, 2] - b[:, 0]\n    return widths * (b[:, 3] - b[:, 1])"
HIDDEN_AREA = (
    "g = torch.Generator().manual_seed(1)\n"
    "xy = torch.rand(7, 2, generator=g) * 50\n"
    "random_boxes = torch.cat([xy, xy + 1 + torch.rand(7, 2, generator=g) * 20], dim=1)\n"
    "assert torch.allclose(area_from_scratch(random_boxes), box_area(random_boxes))"
)


def lecture(name="99_fixture"):
    """A lesson with two exercises, a dependency cell, an unrelated cell, and cells after the exercises."""
    url = nbtools.repository_url()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nb.cells = [
        md(
            f"# 99 · A small lesson\n\n{nbtools.badge(url, name + '.ipynb')}\n\nThe promise.\n\n*Time: 5 minutes.*"
        ),
        code(SETUP),
        md("## Boxes"),
        code("boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 25.0]])\nprint(boxes.shape)"),
        code("unrelated = boxes.sum() * 2\nprint(unrelated)"),
        md("## Exercise 1\n\nWrite the area of boxes."),
        code(
            'def area_from_scratch(b):\n    """Areas of boxes [N, 4] -> [N]."""\n    ### BEGIN SOLUTION\n'
            f"{AREA_SOLUTION}\n    ### END SOLUTION"
        ),
        code(
            "assert torch.allclose(area_from_scratch(boxes), box_area(boxes))\n"
            f"### BEGIN HIDDEN TESTS\n{HIDDEN_AREA}\n### END HIDDEN TESTS"
        ),
        md("More checks, on one box:"),
        code("torch.testing.assert_close(area_from_scratch(boxes[:1]), box_area(boxes[:1]))"),
        md("## Exercise 2"),
        code(
            "def iou_from_scratch(a, b):\n    ### BEGIN SOLUTION\n    return box_iou(a, b)\n    ### END SOLUTION"
        ),
        code("# points: 2\nassert torch.allclose(iou_from_scratch(boxes, boxes), box_iou(boxes, boxes))"),
        code("assert boxes.shape == (2, 4)  # a check of the lesson, not of an answer"),
        code("print(iou_from_scratch(boxes, boxes))"),
    ]
    return nb


def meta(cell):
    return cell.metadata.get("nbgrader", {})


def by_id(nb):
    return {meta(c)["grade_id"]: c for c in nb.cells if "grade_id" in meta(c)}


# --- graded answers, read from the bank when the tests run (its option texts may change) -------------


def answer_line(variable: str, value) -> str:
    """``answer_1 = "text"`` or ``answer_6 = ["text", "text"]`` (JSON strings are Python strings)."""
    return f"{variable} = {json.dumps(value, ensure_ascii=False)}"


def key_texts(question: Question) -> list[str]:
    return [question.options[i].text for i in sorted(question.correct_indices)]


def wrong_text(question: Question) -> str:
    return next(option.text for option in question.options if not option.correct)


def quiz_question(variable: str) -> Question:
    """The bank question that the final quiz's ``check_choice(variable, bank, id)`` checks."""
    cells = [c for c in nbformat.read(QUIZ, as_version=4).cells if c.cell_type == "code"]
    for cell in cells:
        for call in assignments._calls(ast.parse(cell.source), "check_choice"):
            if call.args[0].id == variable:
                return load_bank(call.args[1].value)[call.args[2].value]
    raise KeyError(f"no check_choice({variable}, ...) in {QUIZ.name}")


# --- the conversion ----------------------------------------------------------------------------------


def test_find_exercises_reads_answers_tests_and_points():
    exercises = assignments.find_exercises(lecture())
    assert [(e.name, e.solution, e.tests, e.points) for e in exercises] == [
        ("area_from_scratch", 6, [7, 9], [1.0, 1.0]),
        ("iou_from_scratch", 11, [12], [2.0]),
    ]


def test_source_has_nbgrader_metadata_and_every_other_cell_locked():
    source = assignments.to_source(lecture(), "99_fixture")
    cells = by_id(source)
    assert len(cells) == len(source.cells), "every cell needs a grade_id"
    answer = cells["area_from_scratch"]
    assert meta(answer)["solution"] and not meta(answer)["grade"] and not meta(answer)["locked"]
    test = cells["test_area_from_scratch"]
    assert meta(test)["grade"] and meta(test)["locked"] and meta(test)["points"] == 1.0
    assert "### BEGIN HIDDEN TESTS" in test.source, "hidden tests stay in the source; nbgrader removes them"
    assert meta(cells["test_iou_from_scratch"])["points"] == 2.0
    others = [c for c in source.cells if not (meta(c)["solution"] or meta(c)["grade"])]
    assert others and all(meta(c)["locked"] for c in others)
    assert all(meta(c)["schema_version"] == 3 for c in source.cells)
    assert all(c.outputs == [] and c.execution_count is None for c in source.cells if c.cell_type == "code")
    assert "colab.research.google.com" not in json.dumps(source), "the badge links to the lesson"
    assert "Points: 4, in 3 test cells" in source.cells[1].source
    assert "More checks, on one box:" in [c.source for c in source.cells], "prose between answer and tests"
    assert meta(cells["test_area_from_scratch_2"])["grade"]


def test_exercise_part_keeps_what_the_exercises_need():
    source = assignments.to_source(lecture(), "99_fixture")
    text = [c.source for c in source.cells]
    assert any(t.startswith("boxes = torch.tensor") for t in text), "a cell the tests read is kept"
    assert not any(t.startswith("unrelated =") for t in text), "a cell nothing reads is dropped"
    assert not any(t.startswith("print(iou_from_scratch") for t in text), (
        "cells after the exercises are dropped"
    )
    assert "## Exercise 1\n\nWrite the area of boxes." in text, "the instructions above an exercise are kept"
    assert any(assignments.BOOTSTRAP_END in t for t in text)


def test_full_mode_keeps_every_cell():
    nb = lecture()
    source = assignments.to_source(nb, "99_fixture", whole=True)
    assert [c.source for c in source.cells[2:]] == [c.source for c in nb.cells[1:]]
    assert "The promise." in source.cells[0].source and "Open In Colab" not in source.cells[0].source


def test_keep_tag_and_uncollapsed_answers():
    nb = lecture()
    nb.cells[4].metadata["tags"] = [assignments.KEEP_TAG]
    nb.cells[6].metadata["jupyter"] = {"source_hidden": True}
    source = assignments.to_source(nb, "99_fixture")
    assert any(c.source.startswith("unrelated =") for c in source.cells)
    assert "jupyter" not in by_id(source)["area_from_scratch"].metadata


def test_grade_ids_are_stable_when_the_lesson_changes_elsewhere():
    before = set(by_id(assignments.to_source(lecture(), "99_fixture")))
    nb = lecture()
    nb.cells.insert(3, md("A new paragraph."))
    after = set(by_id(assignments.to_source(nb, "99_fixture")))
    assert {i for i in before if not i.startswith("locked_")} == {
        i for i in after if not i.startswith("locked_")
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda nb: nb.cells.pop(12), "must be followed by a test cell"),
        (lambda nb: nb.cells.insert(2, md("Write between ### BEGIN SOLUTION and the end.")), "markdown cell"),
        (
            lambda nb: setattr(
                nb.cells[11], "source", nb.cells[11].source.replace("    ### END SOLUTION", "")
            ),
            "never closed",
        ),
        (
            lambda nb: nb.cells.insert(4, code("### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS")),
            "outside a test cell",
        ),
        (lambda nb: setattr(nb.cells[1], "source", "import torch"), "no setup cell"),
        (lambda nb: setattr(nb.cells[3], "source", "boxes = (\n"), "not valid Python"),
    ],
    ids=["no-test", "marker-in-markdown", "unclosed", "stray-hidden", "no-setup", "syntax"],
)
def test_convention_errors_name_the_cell(change, message):
    nb = lecture()
    change(nb)
    with pytest.raises(assignments.ConversionError, match=message) as err:
        assignments.to_source(nb, "99_fixture")
    assert "99_fixture.ipynb" in str(err.value)


def test_a_notebook_without_exercises_is_refused():
    nb = lecture()
    nb.cells = nb.cells[:6]
    with pytest.raises(assignments.ConversionError, match="no exercise"):
        assignments.to_source(nb, "99_fixture")


def nms_purpose() -> Question:
    return load_bank("14_final_quiz")["nms-purpose"]


def quiz_lecture(show_ids):
    nb = lecture()
    nb.cells[6:] = [
        code(f'show_quiz("14_final_quiz"{show_ids})'),
        code(f"### BEGIN SOLUTION\n{answer_line('answer_1', key_texts(nms_purpose())[0])}\n### END SOLUTION"),
        code(
            'check_choice(answer_1, "14_final_quiz", "nms-purpose")\n### BEGIN HIDDEN TESTS\n'
            'grade_choice(answer_1, "14_final_quiz", "nms-purpose")\n### END HIDDEN TESTS'
        ),
    ]
    return nb


@pytest.mark.parametrize("show_ids", ["", ', ids=["iou-range", "nms-purpose"]', ", ids=chosen"])
def test_a_widget_may_not_show_a_graded_question(show_ids):
    with pytest.raises(assignments.ConversionError, match="show_quiz"):
        assignments.to_source(quiz_lecture(show_ids), "99_fixture")


def test_graded_questions_and_their_explanations_are_secrets():
    nb = quiz_lecture(', ids=["iou-range"]')
    assert assignments.graded_questions(nb) == {"14_final_quiz": {"nms-purpose"}}
    hidden = assignments.secrets(nb)
    assert answer_line("answer_1", key_texts(nms_purpose())[0]) in hidden
    assert all(option.why in hidden for option in load_bank("14_final_quiz")["nms-purpose"].options)
    assert not any("iou-range" in s for s in hidden)


def test_secrets_skip_text_a_student_sees_anyway():
    hidden = assignments.secrets(lecture())
    assert "widths = b[:, 2] - b[:, 0]" in hidden
    assert "assert torch.allclose(area_from_scratch(random_boxes), box_area(random_boxes))" in hidden
    assert "return box_iou(a, b)" in hidden
    assert not any(len(s) < assignments.MIN_SECRET_LENGTH for s in hidden)
    nb = lecture()
    nb.cells[3].source += "\nwidths = b[:, 2] - b[:, 0]"
    assert "widths = b[:, 2] - b[:, 0]" not in assignments.secrets(nb)


def test_find_leaks_reports_file_and_text(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[code('x = "a secret answer"')])
    nbformat.write(nb, tmp_path / "a.ipynb")
    assert assignments.find_leaks(tmp_path, ['x = "a secret answer"']) == [
        "a.ipynb: 'x = \"a secret answer\"'"
    ]
    assert assignments.find_leaks(tmp_path, ["not there at all"]) == []


@pytest.mark.parametrize(
    ("source", "defined", "free"),
    [
        ("x = 1\nprint(x)", {"x"}, {"print"}),
        ("y = x + 1", {"y"}, {"x"}),
        ("def f(a):\n    b = a + c\n    return b", {"f"}, {"c"}),
        ("import torch.nn as nn\nfrom math import pi as PI", {"nn", "PI"}, set()),
        ("s = [i * k for i in range(n)]", {"s"}, {"k", "n", "range"}),
        ("for i in items:\n    total += i", {"i", "total"}, {"items", "total"}),
        ("def g():\n    return later\nlater = 1", {"g", "later"}, set()),
        ("%matplotlib inline\nz = w", {"z"}, {"w"}),
    ],
)
def test_defined_and_free_names(source, defined, free):
    tree = assignments.parse_code(source, "cell")
    assert assignments.defined_and_free(tree) == (defined, free)


def test_nbgrader_config_and_gitignore():
    config = (ROOT / "nbgrader" / "nbgrader_config.py").read_text()
    assert "OverwriteCells.add_missing_cells = True" in config
    ignored = ["source/a/a.ipynb", "release/a/a.ipynb", "submitted/s/a/a.ipynb", "autograded/s", "feedback/s"]
    ignored += ["gradebook.db", ".nbgrader.log"]
    done = subprocess.run(
        [
            "git",
            "check-ignore",
            "--no-index",
            *[f"nbgrader/{p}" for p in ignored],
            "nbgrader/nbgrader_config.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert sorted(done.stdout.split()) == sorted(f"nbgrader/{p}" for p in ignored)


def test_command_line_list_leaks_and_names(tmp_path, capsys):
    assert assignments.main(["list"]) == 0
    assert "14_final_quiz: 15 exercise(s), 15 point(s)" in capsys.readouterr().out
    folder = tmp_path / "release" / "14_final_quiz"
    folder.mkdir(parents=True)
    answer = answer_line("answer_4", key_texts(quiz_question("answer_4"))[0])  # the solved form's answer
    nbformat.write(nbformat.v4.new_notebook(cells=[code(answer)]), folder / "14_final_quiz.ipynb")
    assert assignments.main(["--course-root", str(tmp_path), "leaks"]) == 1
    assert "answer_4" in capsys.readouterr().out
    assert assignments.lecture_notebooks(["14"]) == [QUIZ]
    with pytest.raises(SystemExit, match="no notebook named 98"):
        assignments.lecture_notebooks(["98"])


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_every_lecture_notebook_converts(path):
    nb = nbformat.read(path, as_version=4)
    source = assignments.to_source(nb, path.stem)
    cells = by_id(source)
    assert len(cells) == len(source.cells)
    for exercise in assignments.find_exercises(nb, path.name):
        assert exercise.name in cells
        for grade_id in exercise.test_ids:
            visible, _ = assignments.split_marked(cells[grade_id].source)
            assert "\n".join(visible).strip(), f"{path.name}: {grade_id} shows the student no check at all"
    assert assignments.output_problems(nb, path.name) == []


def test_output_problems_are_found():
    nb = lecture()
    nb.cells[7].outputs = [nbformat.v4.new_output("stream", name="stderr", text="UserWarning: ...")]
    nb.cells[9].outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "0.5"}, execution_count=1)
    ]
    problems = assignments.output_problems(nb, "x.ipynb")
    assert len(problems) == 2
    assert "cell 8 (test_area_from_scratch): writes to stderr" in problems[0]
    assert "partial credit" in problems[1]


def test_final_quiz_uses_every_question_once():
    nb = nbformat.read(QUIZ, as_version=4)
    bank = load_bank("14_final_quiz")
    graded = assignments.graded_questions(nb)["14_final_quiz"]
    shown = set()
    for cell in nb.cells:
        for call in (
            assignments._calls(assignments.parse_code(cell.source, "quiz"), "show_quiz")
            if cell.cell_type == "code"
            else []
        ):
            ids = next(k.value for k in call.keywords if k.arg == "ids")
            shown |= {e.value for e in ids.elts}
    assert graded.isdisjoint(shown)
    assert graded | shown == {q.id for q in bank.questions}
    exercises = assignments.find_exercises(nb, QUIZ.name)
    assert len(exercises) == 15 and len(graded) == 8
    assert [e.name for e in exercises] == [f"answer_{n}" for n in range(1, 16)]


def test_final_quiz_shows_the_right_options_at_spread_positions():
    """No position shown (first, second, ...) holds the right option of more than two single-choice graded
    questions, so that guessing a position scores little; after a bank change, pick another
    ``graded_quiz.DISPLAY_SALT`` if this fails."""
    nb = nbformat.read(QUIZ, as_version=4)
    names = [e.name for e in assignments.find_exercises(nb, QUIZ.name)]
    questions = [quiz_question(n) for n in names if f"check_choice({n}," in json.dumps(nb.dict())]
    singles = [q for q in questions if q.kind == "single"]
    positions = [graded_quiz.display_order(q).index(min(q.correct_indices)) for q in singles]
    assert len(singles) == 7 and max(positions.count(p) for p in positions) <= 2, positions


def test_final_quiz_answers_are_the_banks_option_texts():
    """Each graded choice is answered by the exact text of the bank's right option(s), not by a letter;
    a failure here after the bank changed means: copy the new texts into the answer cells."""
    nb = nbformat.read(QUIZ, as_version=4)
    choices = 0
    for exercise in assignments.find_exercises(nb, QUIZ.name):
        answer, test = nb.cells[exercise.solution], nb.cells[exercise.tests[0]]
        shown, hidden = assignments.split_marked(test.source)
        [assignment] = ast.parse("\n".join(assignments.split_marked(answer.source)[1])).body
        value = ast.literal_eval(assignment.value)
        if "check_choice" not in test.source:
            # the value is computed in the hidden block, by one grader of course_utils.final_quiz
            grader = re.fullmatch(r"(grade_\w+)\(" + exercise.name + r", .*\)", "\n".join(hidden).strip())
            assert "check_number(" in "\n".join(shown) and grader, exercise.name
            assert callable(getattr(final_quiz, grader.group(1), None)), exercise.name
            assert isinstance(value, (int, float)), exercise.name
            continue
        choices += 1
        assert "check_choice(" in "\n".join(shown) and "grade_choice(" in "\n".join(hidden)
        question = quiz_question(exercise.name)
        expected = key_texts(question)
        if question.kind == "single":
            assert value == expected[0], f"{exercise.name}: copy the right option's text from the bank"
            assert "the text of the option you choose" in answer.source
        else:
            assert sorted(value) == sorted(expected), f"{exercise.name}: copy the right options' texts"
            assert "a list of the texts" in answer.source
        assert graded_quiz.parse_choice(value, question) == sorted(question.correct_indices)
    assert choices == 8


# --- the round trip (nbgrader) -----------------------------------------------------------------------


def round_trip_lesson(folder: Path) -> Path:
    lessons = [p for p in LECTURES if p != QUIZ]
    chosen = [p for p in lessons if p.stem == ROUND_TRIP_LESSON] or lessons[:1]
    if chosen:
        return chosen[0]
    path = folder / "99_fixture.ipynb"
    nbformat.write(lecture(), path)
    return path


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A copy of the course root with the release of every lecture notebook (and the built-in lesson)."""
    assert os.environ.get("COURSE_PROFILE") == "ci" and os.environ.get("COURSE_OFFLINE") == "1"
    root = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader" / "nbgrader_config.py", root)
    lesson = round_trip_lesson(tmp_path_factory.mktemp("lecture"))
    paths = sorted({*LECTURES, lesson, QUIZ})
    released = assignments.release(root, paths, everything=True)
    return {"root": root, "paths": paths, "released": released, "graded": [lesson, QUIZ]}


def marked_text(nb) -> set[str]:
    """Every answer body, hidden test body and graded quiz explanation of a lecture notebook."""
    found: set[str] = set()
    for cell in nb.cells:
        for begin, end in (
            ("### BEGIN SOLUTION", "### END SOLUTION"),
            ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
        ):
            for body in re.findall(re.escape(begin) + r"\n(.*?)\n\s*" + re.escape(end), cell.source, re.S):
                found.add(body)
                found |= {line.strip() for line in body.splitlines()}
        for bank, qid in re.findall(r'grade_choice\(\w+, "([^"]+)", "([^"]+)"\)', cell.source):
            found |= {option.why for option in load_bank(bank)[qid].options}
    visible = "\n".join(
        re.sub(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END \1", "", c.source, flags=re.S) for c in nb.cells
    )
    return {s for s in found if len(s.strip()) >= 8 and s.strip() not in visible}


@pytest.mark.slow
def test_release_holds_no_answer(course):
    release = course["root"] / "release"
    assert sorted(p.stem for p in course["paths"]) == sorted(p.name for p in release.iterdir())
    files = [p for p in release.rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".ipynb" for p in files), "only notebooks are shipped"
    texts = {}
    for path in files:
        raw = path.read_text()
        texts[path] = raw + "\n" + "\n".join(c.source for c in nbformat.reads(raw, as_version=4).cells)
    for lecture_path in course["paths"]:
        hidden = marked_text(nbformat.read(lecture_path, as_version=4))
        assert hidden
        # Compare with the notebook's own release: a generic line such as a seeded generator may
        # appear, visibly, in another lesson without leaking anything.
        for path, text in texts.items():
            if path.stem != lecture_path.stem:
                continue
            leaked = [s for s in hidden if s.strip() in text]
            assert leaked == [], f"{path.name} holds {leaked[:3]}"
    quiz = texts[release / "14_final_quiz" / "14_final_quiz.ipynb"]
    assert "grade_choice(" not in quiz.replace("import check_choice, check_number, grade_choice", "")
    assert "BEGIN HIDDEN TESTS" not in quiz and "BEGIN SOLUTION" not in quiz


def run_nbgrader(root, *args):
    done = assignments.nbgrader(root, *args, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def cells_by_id(nb):
    return {meta(c)["grade_id"]: c for c in nb.cells if "grade_id" in meta(c)}


def solved(release_nb, source_nb):
    """The release with every answer cell filled in from the source (a student who got all right)."""
    nb = copy.deepcopy(release_nb)
    answers = cells_by_id(source_nb)
    for cell in nb.cells:
        if meta(cell).get("solution"):
            cell.source = answers[meta(cell)["grade_id"]].source
    return nb


def broken(release_nb, source_nb, wrong: dict[str, str]):
    """A solved copy where answers in ``wrong`` are replaced, a crashing cell is added, a test cell deleted."""
    nb = solved(release_nb, source_nb)
    cells = cells_by_id(nb)
    for grade_id, text in wrong.items():
        cells[grade_id].source = text
    nb.cells.insert(
        3, nbformat.v4.new_code_cell("raise RuntimeError('a cell the student added, which crashes')")
    )
    return nb


def unique_start(question: Question) -> str:
    """The shortest start of the right option's text that names it alone (the whole text at worst)."""
    text = key_texts(question)[0]
    for end in range(graded_quiz.MIN_PREFIX, len(text)):
        try:
            if graded_quiz.parse_choice(text[:end], question) == sorted(question.correct_indices):
                return text[:end]
        except graded_quiz.AnswerError:
            continue
    return text


def expected_points(source_nb, failing: set[str]) -> tuple[float, float]:
    tests = [meta(c) for c in source_nb.cells if meta(c).get("grade")]
    total = sum(m["points"] for m in tests)
    return total, total - sum(m["points"] for m in tests if m["grade_id"] in failing)


@pytest.mark.slow
def test_round_trip_validate_and_autograde(course, monkeypatch):
    from nbgrader.api import Gradebook

    monkeypatch.setenv("PATH", assignments.tool_env()["PATH"])  # nbgrader's database layer runs `alembic`
    root = course["root"]
    lesson, quiz = course["graded"]
    sources = [root / "source" / p.stem / p.name for p in (lesson, quiz)]
    releases = [root / "release" / p.stem / p.name for p in (lesson, quiz)]

    out = run_nbgrader(root, "validate", *map(str, sources))
    assert out.count("Success! Your notebook passes all the tests.") == 2, out
    out = run_nbgrader(root, "validate", "--invert", *map(str, releases))
    assert out.count("Success! The notebook does not pass any tests.") == 2, out
    assert "PASSED ON" not in out, out

    # Three submissions per assignment: solved, untouched, and broken (exceptions + a deleted test cell).
    expected = {}
    for lecture_path, source_path, release_path in zip((lesson, quiz), sources, releases, strict=True):
        source_nb, release_nb = (nbformat.read(p, as_version=4) for p in (source_path, release_path))
        exercises = assignments.find_exercises(nbformat.read(lecture_path, as_version=4), lecture_path.name)
        if lecture_path == quiz:
            wrong = {
                # right form, wrong option: only the hidden test fails
                "answer_1": "# Graded Q1\n" + answer_line("answer_1", wrong_text(quiz_question("answer_1"))),
                "answer_2": "raise ValueError('the student gave up')",
                "answer_3": 'answer_3 = "0.36"',  # a string, not a number
                "answer_5": "answer_5 = 4",
                "answer_6": answer_line("answer_6", key_texts(quiz_question("answer_6"))[:1]),  # one of two
                "answer_7": "answer_7 = None",  # not answered: fails in a graded run
                "answer_9": 'answer_9 = "B"',  # a letter, not an option's text
                "answer_12": "answer_12 = None",
                # right answers written loosely: a start of the text, another case, quotes and a full stop
                "answer_11": answer_line("answer_11", unique_start(quiz_question("answer_11"))),
                "answer_14": answer_line(
                    "answer_14", f" '{key_texts(quiz_question('answer_14'))[0].upper()}.' "
                ),
            }
            failing = {f"test_answer_{n}" for n in (1, 2, 3, 5, 6, 7, 9, 12)}
            deleted = "test_answer_4"
        else:
            last = exercises[-1]
            wrong = {last.name: "raise RuntimeError('a bug in the student\\'s code')"}
            failing = set(last.test_ids)
            deleted = exercises[0].test_ids[0]
        broken_nb = broken(release_nb, source_nb, wrong)
        broken_nb.cells = [c for c in broken_nb.cells if meta(c).get("grade_id") != deleted]
        for student, nb in (
            ("solved", solved(release_nb, source_nb)),
            ("untouched", release_nb),
            ("broken", broken_nb),
        ):
            folder = root / "submitted" / student / lecture_path.stem
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / lecture_path.name)
        total, broken_score = expected_points(source_nb, failing)
        expected[lecture_path.stem] = {
            "solved": total,
            "untouched": 0.0,
            "broken": broken_score,
            "total": total,
        }
        expected[lecture_path.stem]["deleted"] = deleted

    out = run_nbgrader(root, "autograde", "*", "--force")
    assert "Traceback" not in out, out

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id="objdet-course") as gb:
        for assignment, want in expected.items():
            for student in ("solved", "untouched", "broken"):
                submission = gb.find_submission(assignment, student)
                assert submission.max_score == want["total"]
                assert submission.score == pytest.approx(want[student]), (assignment, student)

    for assignment, want in expected.items():
        graded = root / "autograded" / "broken" / assignment / f"{assignment}.ipynb"
        nb = nbformat.read(graded, as_version=4)
        restored = cells_by_id(nb)[want["deleted"]]
        assert "was missing from the submission" in restored.source
        setup = next(c for c in nb.cells if assignments.BOOTSTRAP_END in c.source)
        assert "profile: ci" in "".join(o.get("text", "") for o in setup.outputs), (
            "grading ran in the ci profile"
        )
