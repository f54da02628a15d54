""" "Predict before you run": the learner commits to an answer, a later cell reveals it.

    >>> guess = predict("How many anchors does one 800x1088 image get?", ["~1k", "~10k", "~200k"])
    ... (next cell computes the real number)
    >>> guess.reveal(n_anchors)

The widget disables itself once the learner commits, so the guess cannot drift after the
answer is shown. The answer waits for the commit: when nobody has committed yet (*Run all*, or a
learner who skipped the prompt), ``reveal`` shows "commit your prediction above to see the
answer" and keeps the answer; committing later fills it in, under the reveal cell and under the
prompt. So the answer never appears before the learner has predicted.

The solved form of a lesson is built and tested with ``COURSE_SHOW_KEYS=1``: there nobody commits,
and ``reveal`` prints the answer, so that a reader of the solved form on the web sees it.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from typing import Any

WAITING = "Commit your prediction above to see the answer."


class Prediction:
    """A question with a commit button; ``reveal(actual)`` compares the guess with the truth."""

    def __init__(self, question: str, options: Sequence[str] | None = None):
        import ipywidgets as widgets

        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        if options is not None and len(options) < 2:
            raise ValueError(f"options must hold at least two choices, got {list(options)!r}")
        self.question = question
        self.options = None if options is None else [str(o) for o in options]
        self.committed: str | None = None
        self.pending: list[tuple[Any, Any, str | None]] = []  # (widget, actual, correct_option)
        self.prompt = widgets.HTML(f"<b>Predict before you run:</b> {question}")
        if self.options is None:
            self.answer: Any = widgets.Text(placeholder="your prediction")
        else:
            self.answer = widgets.RadioButtons(options=self.options, value=None)
        self.button = widgets.Button(description="Commit")
        self.status = widgets.HTML("<i>Commit an answer, then run the next cells.</i>")
        self.button.on_click(lambda _: self.commit())
        self.box = widgets.VBox([self.prompt, self.answer, self.button, self.status])

    def commit(self, answer: str | None = None) -> str:
        """Lock in the learner's answer (the widget's value, or ``answer`` when given)."""
        value = self.answer.value if answer is None else str(answer)
        if value is None or str(value).strip() == "":
            self.status.value = "<i>Type or pick an answer first.</i>"
            raise ValueError("nothing to commit: the prediction is empty")
        if self.options is not None and value not in self.options:
            raise ValueError(f"answer {value!r} is not one of the options {self.options}")
        self.committed = str(value)
        self.answer.disabled = True
        self.button.disabled = True
        self.status.value = f"Committed: <b>{html.escape(self.committed)}</b>"
        for widget, actual, correct_option in self.pending:
            widget.value = _as_html(self.outcome(actual, correct_option))
        if self.pending:
            self.status.value += "<br>" + _as_html(self.outcome(*self.pending[-1][1:]))
        self.pending.clear()
        return self.committed

    def reveal(self, actual: Any, correct_option: str | None = None) -> None:
        """Show how the committed guess compares with ``actual`` (see ``outcome``).

        Before a commit the answer is kept, and the output says to commit first; the commit fills it in.
        """
        if correct_option is not None and self.options is not None and correct_option not in self.options:
            raise ValueError(f"correct_option {correct_option!r} is not one of the options {self.options}")
        if self.committed is not None:
            print(self.outcome(actual, correct_option))
            return
        if os.environ.get("COURSE_SHOW_KEYS") == "1":  # the solved form's build: show the answer
            print(f"The answer: {actual}")
            return
        import ipywidgets as widgets

        from .widget_display import display_with_fallback

        waiting = widgets.HTML(f"<i>{WAITING}</i>")
        self.pending.append((waiting, actual, correct_option))
        display_with_fallback(waiting, {"text/plain": WAITING})

    def outcome(self, actual: Any, correct_option: str | None = None) -> str:
        """The comparison of the committed guess with ``actual``, as one line.

        ``correct_option`` names the option that ``actual`` corresponds to, for multiple-choice
        predictions; the message then says whether the guess was right.
        """
        if self.committed is None:
            message = WAITING
        else:
            message = f"You predicted: {self.committed}. The answer: {actual}"
            if correct_option is not None:
                verdict = "right" if correct_option == self.committed else "not what you expected"
                message += f" ({verdict})"
        return message


def _as_html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def predict(question: str, options: Sequence[str] | None = None) -> Prediction:
    """Show a "predict before you run" prompt and return it; call ``.reveal(actual)`` later."""
    from IPython.display import display

    prediction = Prediction(question, options)
    display(prediction.box)
    return prediction
