"""Helpers for the object-detection course notebooks, one concept per module.

Import what a lesson needs from its module, e.g. ``from course_utils.session import start_lesson``.
This file imports nothing heavy, so ``import course_utils`` is cheap.
"""

__version__ = "0.1.0"
