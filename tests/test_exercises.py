"""Check cells: an unsolved exercise is reported and replaced in a learner's run, fails in a graded
run; a wrong answer always fails; show_solution prints the solved cell on request only."""

import pytest

from course_utils import exercises
from course_utils.exercises import ExerciseNotSolvedError, exercise_checks, show_solution


def stub(boxes):
    raise NotImplementedError()


def library(boxes):
    return "library"


def run_checks(namespace):
    """A check cell, run with ``namespace`` as its globals (as a notebook cell would be)."""
    code = (
        "with exercise_checks('area', fallbacks={'area': library}):\n"
        "    assert area(1) == 'library', 'area is wrong'\n"
        "    print('area agrees')\n"
    )
    exec(code, namespace)


def namespace(area):
    return {"exercise_checks": exercise_checks, "library": library, "area": area}


def test_unsolved_exercise_is_reported_and_replaced_in_a_learner_run(learner, capsys):
    ns = namespace(stub)
    run_checks(ns)
    out = capsys.readouterr().out
    assert "Exercise 'area' is not solved yet: stub() in the answer cell above" in out
    assert 'show_solution("area")' in out
    assert ns["area"] is library, "later cells must use the library's version"
    assert ns["show_solution"] is show_solution, "the message tells the learner to run it"
    run_checks(ns)  # the next run of the check passes with the fallback in place, and says whose version it is
    out = capsys.readouterr().out
    assert "area agrees" in out
    assert "`area` is still the library's version" in out and "not yours" in out


def test_a_solved_exercise_is_checked_without_the_stand_in_note(learner, capsys):
    ns = namespace(lambda boxes: "library")  # the learner's own, right answer (not the fallback object)
    run_checks(ns)
    assert "still the library's version" not in capsys.readouterr().out


def test_unsolved_exercise_fails_in_a_graded_run(graded):
    ns = namespace(stub)
    with pytest.raises(ExerciseNotSolvedError, match="'area' is not solved"):
        run_checks(ns)
    assert ns["area"] is stub
    with pytest.raises(AssertionError):  # nbgrader counts AssertionError as a failed test
        run_checks(ns)


def test_wrong_answer_fails_everywhere(learner):
    with pytest.raises(AssertionError, match="area is wrong"):
        run_checks(namespace(lambda boxes: 0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="name"):
        exercise_checks("not a name")
    with pytest.raises(ValueError, match="fallbacks"):
        exercise_checks("area", fallbacks={"area": 3})


def test_show_solution_prints_the_solved_cell_without_markers(capsys, learner):
    show_solution("pairwise_iou")
    out = capsys.readouterr().out
    assert "02_boxes_and_iou.ipynb" in out and "def pairwise_iou" in out and "inter / union" in out
    assert "BEGIN SOLUTION" not in out and "HIDDEN" not in out
    with pytest.raises(KeyError, match="no exercise"):
        show_solution("no_such_exercise")


def test_show_solution_refuses_in_a_graded_run(graded):
    with pytest.raises(RuntimeError, match="graded"):
        show_solution("pairwise_iou")


def test_every_solved_exercise_can_be_found():
    names = ["to_pixel_boxes", "xyxy_to_xywh", "pairwise_iou", "greedy_nms", "make_anchors", "match_anchors"]
    for name in names:
        path, source = exercises.find_solution(name)
        assert f"def {name}" in source, (name, path.name)
