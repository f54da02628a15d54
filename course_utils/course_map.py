"""The course map (``data/course_map.yaml``): the lessons, in order."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from .paths import data_dir, repo_root


@dataclass(frozen=True)
class LessonInfo:
    file: str
    title: str
    minutes: int
    summary: str

    @property
    def available(self) -> bool:
        return (repo_root() / "notebooks" / self.file).is_file()


def load_course_map() -> list[LessonInfo]:
    """The lessons of ``data/course_map.yaml`` in course order."""
    path = data_dir() / "course_map.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    lessons = []
    for i, item in enumerate(raw.get("lessons", []), start=1):
        missing = {"file", "title", "minutes", "summary"} - set(item)
        if missing:
            raise ValueError(f"{path.name}: lesson #{i} lacks {', '.join(sorted(missing))}")
        lessons.append(LessonInfo(**{k: item[k] for k in ("file", "title", "minutes", "summary")}))
    return lessons


def course_map_markdown() -> str:
    """The map as a Markdown table (lesson, minutes, what it covers)."""
    rows = ["| # | Lesson | Minutes | What you will do |", "|---|---|---|---|"]
    for lesson in load_course_map():
        number = lesson.file.split("_", 1)[0]
        title = lesson.title if lesson.available else f"{lesson.title} (in preparation)"
        rows.append(f"| {number} | {title} (`{lesson.file}`) | {lesson.minutes} | {lesson.summary} |")
    return "\n".join(rows)


def show_course_map() -> None:
    """Display the course map in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(course_map_markdown()))
