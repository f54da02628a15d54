import pytest

from course_utils.prompts import Prediction, predict


def test_commit_then_reveal(capsys):
    guess = Prediction("How many?", ["1", "2", "3"])
    guess.answer.value = "2"
    guess.button.click()
    assert guess.committed == "2"
    assert guess.answer.disabled and guess.button.disabled
    guess.reveal(2, correct_option="2")
    assert capsys.readouterr().out.strip() == "You predicted: 2. The answer: 2 (right)"
    assert "not what you expected" in guess.outcome(3, correct_option="3")


def test_reveal_without_commit_still_gives_the_answer():
    guess = Prediction("Area?")
    assert guess.outcome(1024) == "No prediction was committed. The answer: 1024"


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
