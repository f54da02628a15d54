"""The course map (``data/course_map.yaml``): every lesson of the course, in order.

A lesson is *available* when its learner notebook ``notebooks/<file>`` exists; the others are
shown as "(in preparation)" with their planned time. The total time is computed from the map's
minutes of the available lessons, never typed.

``python -m course_utils.course_map`` prints the table as the README shows it (with links).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .paths import data_dir, repo_root
from .yaml_files import DuplicateKeyError, load_unique_yaml

FIELDS = ("file", "title", "minutes", "summary")
IN_PREPARATION = "(in preparation)"


@dataclass(frozen=True)
class LessonInfo:
    """One lesson of the map: its notebook's file name, title, minutes and one-line summary."""

    file: str
    title: str
    minutes: int
    summary: str

    @property
    def number(self) -> str:
        """The lesson's number, the first part of its file stem (``"04"``)."""
        return self.file.split("_", 1)[0]

    @property
    def available(self) -> bool:
        """Whether the learner notebook ``notebooks/<file>`` exists."""
        return (repo_root() / "notebooks" / self.file).is_file()


def load_course_map() -> list[LessonInfo]:
    """The lessons of ``data/course_map.yaml`` in course order.

    Raises:
        ValueError: a lesson lacks a field, a key is written twice, a file is listed twice, or its minutes
            are not a positive whole number.
    """
    path = data_dir() / "course_map.yaml"
    try:
        raw = load_unique_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as err:
        raise ValueError(err.explained(path.name)) from None
    lessons, seen = [], set()
    for i, item in enumerate(raw.get("lessons", []), start=1):
        missing = set(FIELDS) - set(item)
        if missing:
            raise ValueError(f"{path.name}: lesson #{i} lacks {', '.join(sorted(missing))}")
        if type(item["minutes"]) is not int or item["minutes"] <= 0:
            raise ValueError(f"{path.name}: lesson #{i} has minutes {item['minutes']!r}, not a positive integer")
        if item["file"] in seen:
            raise ValueError(f"{path.name}: lesson #{i} repeats the file {item['file']!r}; each lesson is listed once")
        seen.add(item["file"])
        lessons.append(LessonInfo(**{key: item[key] for key in FIELDS}))
    return lessons


def available_lessons(lessons: Sequence[LessonInfo]) -> list[LessonInfo]:
    """The lessons whose learner notebook exists, in map order."""
    return [lesson for lesson in lessons if lesson.available]


def total_minutes(lessons: Sequence[LessonInfo]) -> int:
    """The minutes of the available lessons, added up."""
    return sum(lesson.minutes for lesson in available_lessons(lessons))


def format_duration(minutes: int) -> str:
    """A number of minutes for people: ``45`` -> ``"45 min"``, ``580`` -> ``"9 h 40 min"``."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def total_line(lessons: Sequence[LessonInfo]) -> str:
    """The map's last line: the time of the available lessons, and how many are in preparation."""
    ready = available_lessons(lessons)
    noun = "lesson" if len(ready) == 1 else "lessons"
    line = f"**Total:** about {format_duration(total_minutes(lessons))} for the {len(ready)} {noun} available"
    waiting = len(lessons) - len(ready)
    return f"{line} ({waiting} more in preparation)." if waiting else f"{line}."


def _row(lesson: LessonInfo, link_dir: str | None) -> str:
    """One table row; an available lesson is linked to ``<link_dir>/<file>`` when link_dir is given."""
    if not lesson.available:
        name, minutes = f"{lesson.title} {IN_PREPARATION}", f"{lesson.minutes} (planned)"
    elif link_dir is None:
        name, minutes = f"{lesson.title} (`{lesson.file}`)", str(lesson.minutes)
    else:
        name, minutes = f"[{lesson.title}]({link_dir}/{lesson.file})", str(lesson.minutes)
    return f"| {lesson.number} | {name} | {minutes} | {lesson.summary} |"


def course_map_markdown(link_dir: str | None = None) -> str:
    """The map as a Markdown table (number, lesson, minutes, what it covers) and a total line.

    ``link_dir`` (e.g. ``"notebooks"``, as in the README) links every available lesson to its
    learner notebook; lessons in preparation are never linked.
    """
    lessons = load_course_map()
    rows = ["| # | Lesson | Minutes | What you will do |", "|---|---|---|---|"]
    rows += [_row(lesson, link_dir) for lesson in lessons]
    return "\n".join([*rows, "", total_line(lessons)])


def show_course_map() -> None:
    """Display the course map in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(course_map_markdown()))


if __name__ == "__main__":
    print(course_map_markdown(link_dir="notebooks"))
