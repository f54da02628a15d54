"""nbgrader settings for the course's graded assignments; this folder is the course root.

Run nbgrader from this folder (``cd nbgrader``), where it reads this file. The assignments under
source/ are generated from the lecture notebooks by ``make assignments``
(scripts/assignments.py); never edit them by hand. Everything nbgrader writes here (source/,
release/, submitted/, autograded/, feedback/, gradebook.db) is git-ignored. The instructor
guide is docs/instructors.md.
"""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it reads this file

# This folder, wherever nbgrader is started from.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "objdet-course"

# Grading executes every notebook: allow slow CPU cells (seconds per cell), and stop runaway output.
c.Execute.timeout = 600
c.LimitOutput.max_lines = 500

# A test cell a student deleted is put back (with a note saying so) and graded.
c.OverwriteCells.add_missing_cells = True

# What replaces an answer in the student release.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
