"""The two forms of every lesson: the learner's form is generated from the solved form, shows no
answer, no output and no test machinery; the solved form holds every figure and no harness text.
Each check is also shown to fail on a planted bad notebook."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

from course_utils import lesson_forms

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("nbtools", ROOT / "scripts" / "notebooks.py")
nbtools = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbtools)

SOLVED = nbtools.notebook_paths()
ANSWER = '''def area(box):
    """[4] xyxy -> its area."""
    ### BEGIN SOLUTION
    return (box[2] - box[0]) * (box[3] - box[1])
    ### END SOLUTION
'''


def code(source, outputs=(), tags=(), count=1):
    cell = nbformat.v4.new_code_cell(source, execution_count=count)
    cell.outputs = list(outputs)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def image_output():
    return nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})


def test_every_solved_lesson_has_a_learner_form_in_step():
    assert [p.name for p in SOLVED] == [p.name for p in nbtools.learner_paths()]
    assert nbtools.form_problems() == []


def test_sync_check_fails_on_a_hand_edited_learner_form(tmp_path, monkeypatch):
    solved = tmp_path / "solved"
    solved.mkdir()
    nb = nbformat.v4.new_notebook(cells=[code(ANSWER)])
    nbformat.write(nb, solved / "01_x.ipynb")
    monkeypatch.setattr(nbtools, "SOLVED", solved)
    monkeypatch.setattr(nbtools, "NOTEBOOKS", tmp_path)
    assert nbtools.write_learner_forms() == ["01_x.ipynb"]
    assert nbtools.form_problems() == []
    edited = (tmp_path / "01_x.ipynb").read_text().replace("NotImplementedError", "ValueError")
    (tmp_path / "01_x.ipynb").write_text(edited)
    assert any("out of step" in p for p in nbtools.form_problems())


def test_learner_form_stubs_answers_and_drops_outputs_and_machinery():
    cells = [
        code(ANSWER, outputs=[nbformat.v4.new_output("stream", text="x")], tags=["solution"]),
        code('answer_1 = "the RPN"\n', tags=["points:2"]),
        code("### BEGIN SOLUTION\nanswer_2 = 3\n### END SOLUTION", tags=["nbval-check-output"]),
        code("check(1)\n### BEGIN HIDDEN TESTS\ngrade(answer_2)\n### END HIDDEN TESTS", count=4),
    ]
    learner = lesson_forms.learner_form(nbformat.v4.new_notebook(cells=cells))
    first, second, third, fourth = (c["source"] for c in learner["cells"])
    assert "return" not in first and "raise NotImplementedError()" in first and '"""[4] xyxy' in first
    assert second == 'answer_1 = "the RPN"\n'.rstrip("\n")  # not a solution region: unchanged
    assert third == "answer_2 = None  # YOUR ANSWER HERE"
    assert fourth == "check(1)\ngrade(answer_2)"
    for cell in learner["cells"]:
        assert cell["outputs"] == [] and cell["execution_count"] is None
    assert learner["cells"][0]["metadata"] == {"tags": ["solution"]}
    assert learner["cells"][1]["metadata"] == {} and learner["cells"][2]["metadata"] == {}
    assert lesson_forms.learner_problems(learner) == []


def test_an_unclosed_solution_region_is_an_error():
    with pytest.raises(ValueError, match="never closed"):
        lesson_forms.stub_solutions("### BEGIN SOLUTION\nx = 1\n")


@pytest.mark.parametrize(
    "source",
    ["fig, ax = plt.subplots()\nax.plot([1, 2])\nplt.show()", "plot_history(history)", "IoUPlayground(box_a=a)"],
)
def test_figure_check_catches_a_drawing_cell_without_a_picture(source):
    assert lesson_forms.figure_problems(nbformat.v4.new_notebook(cells=[code(source)]))
    with_picture = nbformat.v4.new_notebook(cells=[code(source, outputs=[image_output()])])
    assert lesson_forms.figure_problems(with_picture) == []


def test_figure_check_catches_a_low_dpi():
    nb = nbformat.v4.new_notebook(cells=[code("fig = plt.figure(dpi=72)\nplt.show()", outputs=[image_output()])])
    assert any("dpi=72" in p for p in lesson_forms.figure_problems(nb))


@pytest.mark.parametrize(
    "text",
    [
        "NetworkBlockedError: network access is blocked in the course's offline test run",
        "<course>/course_utils/train.py:120: UserWarning: clipped",
        "load average 1.2 before training",
    ],
)
def test_harness_check_catches_test_harness_text(text):
    nb = nbformat.v4.new_notebook(cells=[code("x = 1", outputs=[nbformat.v4.new_output("stream", text=text)])])
    assert lesson_forms.harness_problems(nb, learner=False)


def test_harness_check_of_the_learner_form_catches_markers():
    nb = nbformat.v4.new_notebook(cells=[code(ANSWER, count=None)])
    assert lesson_forms.harness_problems(nb, learner=False) == []
    assert any("solution marker" in p for p in lesson_forms.learner_problems(nb))
    nb = nbformat.v4.new_notebook(cells=[code("# NBVAL_CHECK_OUTPUT\nprint(1)", count=None)])
    assert any("nbval marker" in p for p in lesson_forms.learner_problems(nb))


def test_run_does_not_pass_a_non_interactive_backend_to_kernels(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    env = nbtools.kernel_environment("/somewhere")
    assert "MPLBACKEND" not in env
    assert env["COURSE_CACHE"] == "/somewhere" and env["COURSE_SHOW_KEYS"] == "1"


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.name)
def test_solved_lesson_draws_every_figure(path):
    assert lesson_forms.figure_problems(nbformat.read(path, as_version=4)) == []


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.name)
def test_solved_lesson_shows_no_harness_text_and_every_answer(path):
    assert lesson_forms.solved_problems(nbformat.read(path, as_version=4)) == []


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.name)
def test_solved_lesson_cells_are_short(path):
    assert lesson_forms.size_problems(nbformat.read(path, as_version=4)) == []


def test_size_check_catches_a_long_code_cell_and_a_long_prose_cell():
    short = "\n".join(f"x{i} = {i}" for i in range(lesson_forms.MAX_CODE_LINES))
    long = short + "\nx = 0"
    prose = " ".join(["word"] * lesson_forms.MAX_WORDS)
    nb = nbformat.v4.new_notebook(cells=[code(short), nbformat.v4.new_markdown_cell(prose)])
    assert lesson_forms.size_problems(nb) == []
    nb.cells += [code(long), nbformat.v4.new_markdown_cell(prose + " more")]
    problems = lesson_forms.size_problems(nb)
    assert problems == [
        f"cell 3: {lesson_forms.MAX_CODE_LINES + 1} lines of code (at most {lesson_forms.MAX_CODE_LINES}; split it)",
        f"cell 4: {lesson_forms.MAX_WORDS + 1} words of prose (at most {lesson_forms.MAX_WORDS}; split it)",
    ]


def test_size_check_skips_blank_lines_markers_and_the_bootstrap_block():
    bootstrap = "\n".join(f"line{i} = {i}" for i in range(30)) + f"\n{lesson_forms.BOOTSTRAP_END}\n"
    body = "\n\n".join(f"y{i} = {i}" for i in range(lesson_forms.MAX_CODE_LINES - 2))
    solution = f"### BEGIN SOLUTION\n{body}\n### END SOLUTION\nz = 1\n"
    assert lesson_forms.code_lines(bootstrap + solution) == lesson_forms.MAX_CODE_LINES - 1
    assert lesson_forms.size_problems(nbformat.v4.new_notebook(cells=[code(bootstrap + solution)])) == []
    planted = bootstrap + solution + "\n".join(f"w{i} = 0" for i in range(3))
    assert lesson_forms.size_problems(nbformat.v4.new_notebook(cells=[code(planted)]))


def test_solved_check_catches_an_answer_left_waiting():
    from course_utils.prompts import WAITING

    waiting = nbformat.v4.new_output("display_data", data={"text/plain": WAITING})
    nb = nbformat.v4.new_notebook(cells=[code("guess.reveal(3)", outputs=[waiting])])
    assert any("answer is missing" in p for p in lesson_forms.solved_problems(nb))


@pytest.mark.parametrize("path", nbtools.learner_paths(), ids=lambda p: p.name)
def test_learner_form_shows_no_output_answer_or_machinery(path):
    nb = nbformat.read(path, as_version=4)
    assert lesson_forms.learner_problems(nb) == []
    solved = nbformat.read(nbtools.SOLVED / path.name, as_version=4)
    answers = [c for c in solved.cells if c.cell_type == "code" and "BEGIN SOLUTION" in c.source]
    for cell in answers:  # every solution line is gone from the learner's form
        region = cell.source.split("BEGIN SOLUTION", 1)[1].split("END SOLUTION", 1)[0]
        secret = [line.strip() for line in region.splitlines()[1:] if len(line.strip()) > 12]
        text = "\n".join(c.source for c in nb.cells)
        assert not [line for line in secret if line in text], f"{path.name} shows a solution line"
