"""The course map (data/course_map.yaml): complete, sorted, rendered with honest availability and total."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from course_utils.course_map import (
    IN_PREPARATION,
    course_map_markdown,
    format_duration,
    load_course_map,
    total_minutes,
)

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| (\d\d) \|", flags=re.M)
TOTAL = re.compile(r"\*\*Total:\*\* about (?:(\d+) h)? ?(?:(\d+) min)? for the (\d+) lessons? available")


def map_files() -> list[str]:
    return [lesson.file for lesson in load_course_map()]


def minutes_of(total_line: str) -> tuple[int, int]:
    """(minutes, number of lessons) read back from a rendered total line."""
    match = TOTAL.search(total_line)
    assert match, f"no total line in:\n{total_line}"
    hours, minutes, count = (int(group or 0) for group in match.groups())
    return 60 * hours + minutes, count


def test_the_map_is_sorted_and_numbered_once():
    files = map_files()
    assert files == sorted(files), "the course map must be in lesson order"
    numbers = [name.split("_", 1)[0] for name in files]
    assert len(numbers) == len(set(numbers)), f"a lesson number is used twice: {numbers}"
    assert all(name.endswith(".ipynb") for name in files)


@pytest.mark.parametrize("folder", ["notebooks", "notebooks/solved"])
def test_every_notebook_is_in_the_map(folder):
    notebooks = {path.name for path in (ROOT / folder).glob("[0-9]*.ipynb")}
    missing = notebooks - set(map_files())
    assert not missing, f"{folder}/ holds lessons that data/course_map.yaml lacks: {sorted(missing)}"


def test_availability_follows_the_learner_notebook():
    for lesson in load_course_map():
        assert lesson.available == (ROOT / "notebooks" / lesson.file).is_file(), lesson.file


def test_the_table_has_one_row_per_lesson():
    lessons = load_course_map()
    table = course_map_markdown()
    assert ROW.findall(table) == [lesson.number for lesson in lessons]
    for lesson in lessons:
        row = next(line for line in table.splitlines() if line.startswith(f"| {lesson.number} |"))
        assert (IN_PREPARATION in row) == (not lesson.available), row


def test_the_total_is_the_sum_of_the_available_lessons():
    lessons = load_course_map()
    minutes, count = minutes_of(course_map_markdown())
    assert minutes == sum(lesson.minutes for lesson in lessons if lesson.available) == total_minutes(lessons)
    assert count == sum(lesson.available for lesson in lessons)


def test_readme_shows_the_map_with_links_to_the_learner_notebooks():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = course_map_markdown(link_dir="notebooks")
    assert table in readme, (
        "README's course map differs from data/course_map.yaml and the notebooks present: paste the "
        "output of `python -m course_utils.course_map` into README.md"
    )
    for lesson in load_course_map():
        linked = f"](notebooks/{lesson.file})" in readme
        assert linked == lesson.available, f"README: {lesson.file} linked {linked}, available {lesson.available}"


def test_readme_links_only_notebooks_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\((notebooks/[^)]+\.ipynb)\)", readme):
        assert (ROOT / target).is_file(), f"README links {target}, which does not exist"


def plant_course(root: Path, lessons: list[tuple[str, int]], present: set[str]) -> None:
    """A course root with a map of `lessons` (file, minutes) and the learner notebooks `present`."""
    (root / "data").mkdir()
    (root / "notebooks").mkdir()
    items = [{"file": f, "title": f"Lesson {f[:2]}", "minutes": m, "summary": "s."} for f, m in lessons]
    (root / "data" / "course_map.yaml").write_text(yaml.safe_dump({"lessons": items}), encoding="utf-8")
    for name in present:
        (root / "notebooks" / name).write_text("{}", encoding="utf-8")


def test_total_and_availability_on_a_planted_map(tmp_path, monkeypatch):
    lessons = [("00_a.ipynb", 15), ("01_b.ipynb", 45), ("02_c.ipynb", 100), ("03_d.ipynb", 30)]
    plant_course(tmp_path, lessons, present={"00_a.ipynb", "02_c.ipynb", "03_d.ipynb"})
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    table = course_map_markdown(link_dir="notebooks")
    assert [lesson.available for lesson in load_course_map()] == [True, False, True, True]
    assert minutes_of(table) == (145, 3)
    assert "**Total:** about 2 h 25 min for the 3 lessons available (1 more in preparation)." in table
    assert "| 01 | Lesson 01 (in preparation) | 45 (planned) | s. |" in table
    assert "| 02 | [Lesson 02](notebooks/02_c.ipynb) | 100 | s. |" in table
    assert "| 00 | Lesson 00 (`00_a.ipynb`) | 15 | s. |" in course_map_markdown()


def test_total_of_a_planted_map_follows_its_minutes(monkeypatch):
    planted = [*load_course_map()[:2]]
    monkeypatch.setattr("course_utils.course_map.load_course_map", lambda: planted)
    monkeypatch.setattr(type(planted[0]), "available", property(lambda lesson: True))
    expected = planted[0].minutes + planted[1].minutes
    assert minutes_of(course_map_markdown()) == (expected, 2)


def test_a_lesson_without_minutes_is_refused(tmp_path, monkeypatch):
    plant_course(tmp_path, [("00_a.ipynb", 10)], present=set())
    path = tmp_path / "data" / "course_map.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("minutes: 10", "minutes: ten"), encoding="utf-8")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(ValueError, match="minutes"):
        load_course_map()


def test_a_key_written_twice_is_refused_with_its_line(tmp_path, monkeypatch):
    plant_course(tmp_path, [("00_a.ipynb", 10), ("01_b.ipynb", 20)], present=set())
    path = tmp_path / "data" / "course_map.yaml"
    text = path.read_text(encoding="utf-8").replace("minutes: 20", "minutes: 20\n  minutes: 2")
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(ValueError, match=r"course_map.yaml, line \d+: key 'minutes' appears twice"):
        load_course_map()


def test_a_lesson_listed_twice_is_refused(tmp_path, monkeypatch):
    plant_course(tmp_path, [("00_a.ipynb", 10), ("00_a.ipynb", 20)], present=set())
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(ValueError, match="repeats the file '00_a.ipynb'"):
        load_course_map()


@pytest.mark.parametrize(
    ("minutes", "text"), [(45, "45 min"), (60, "1 h"), (100, "1 h 40 min"), (580, "9 h 40 min")]
)
def test_format_duration(minutes, text):
    assert format_duration(minutes) == text
