"""Show a widget with a static stand-in, for readers where widgets do not run.

JupyterLab and Colab draw the widget (the richest representation); GitHub, nbviewer and a
notebook reopened without its kernel show the stand-in (text, HTML or a picture) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def display_with_fallback(widget: Any, fallback: Mapping[str, str]) -> None:
    """Display ``widget`` with ``fallback`` (mime type -> data) beside its widget view.

    Older ipywidgets, which have no ``_repr_mimebundle_``, display the widget alone.
    """
    from IPython.display import display

    bundle = getattr(widget, "_repr_mimebundle_", None)
    data = bundle() if callable(bundle) else None
    if not isinstance(data, dict):
        display(widget)
        return
    display({**data, **fallback}, raw=True)
