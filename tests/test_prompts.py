import pytest

from course_utils.prompts import WAITING, Prediction, predict


def test_commit_then_reveal(capsys):
    guess = Prediction("How many?", ["1", "2", "3"])
    guess.answer.value = "2"
    guess.button.click()
    assert guess.committed == "2"
    assert guess.answer.disabled and guess.button.disabled
    guess.reveal(2, correct_option="2")
    assert capsys.readouterr().out.strip() == "You predicted: 2. The answer: 2 (right)"
    assert "not what you expected" in guess.outcome(3, correct_option="3")


def test_reveal_before_commit_waits_for_the_commit(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_SHOW_KEYS", raising=False)
    guess = Prediction("How many?", ["1", "2", "3"])
    guess.reveal("2 boxes", correct_option="2")  # Run all: nobody has committed yet
    assert "2 boxes" not in capsys.readouterr().out
    assert guess.outcome("2 boxes") == WAITING
    waiting = guess.pending[0][0]
    assert "2 boxes" not in waiting.value and "Commit" in waiting.value
    guess.commit("3")
    assert waiting.value == "You predicted: 3. The answer: 2 boxes (not what you expected)"
    assert "2 boxes" in guess.status.value
    assert guess.pending == []


def test_solved_form_build_shows_the_answer(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_SHOW_KEYS", "1")
    Prediction("How many?", ["1", "2"]).reveal("2 boxes", correct_option="2")
    assert capsys.readouterr().out == "The answer: 2 boxes\n"


def test_reveal_checks_the_correct_option():
    with pytest.raises(ValueError, match="correct_option"):
        Prediction("Q?", ["a", "b"]).reveal(1, correct_option="c")


def test_free_text_prediction():
    guess = Prediction("Area?")
    guess.answer.value = "about 1000"
    guess.commit()
    assert guess.outcome(1024) == "You predicted: about 1000. The answer: 1024"


def test_empty_commit_is_refused():
    guess = Prediction("Area?")
    with pytest.raises(ValueError, match="empty"):
        guess.commit()
    assert guess.committed is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="question"):
        Prediction("  ")
    with pytest.raises(ValueError, match="at least two"):
        Prediction("Q?", ["only"])
    with pytest.raises(ValueError, match="not one of the options"):
        Prediction("Q?", ["a", "b"]).commit("c")


def test_predict_displays_and_returns():
    assert isinstance(predict("Q?", ["a", "b"]), Prediction)
