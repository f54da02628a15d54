"""Notebook maintenance: the template cells, the two forms of each lesson, and their execution.

    python scripts/notebooks.py sync            # badge + bootstrap cell from pyproject's Repository
    python scripts/notebooks.py run [NAME ...]  # execute the solved forms, check them, write learner forms
    python scripts/notebooks.py learner         # write the learner forms from the solved forms
    python scripts/notebooks.py check           # exit 1 when a notebook is out of sync or unclean

Each lesson has two forms. ``notebooks/solved/NN_name.ipynb`` is the source, edited by hand and
committed executed; ``notebooks/NN_name.ipynb`` is the learner's form, generated from it by
``course_utils.lesson_forms.learner_form`` (never edited by hand).

The repository address is written once, in pyproject.toml's [project.urls] Repository; ``sync``
copies it into each solved notebook's "Open in Colab" badge (which opens the learner's form) and
its bootstrap block, and copies each lesson's time from ``data/course_map.yaml`` into its title cell (the part of the setup cell above ``BOOTSTRAP_END``). ``run`` executes solved
notebooks with nbclient in their folder, on an empty model cache (so the outputs show real
training) unless ``--keep-cache``, with Jupyter's inline plots (``MPLBACKEND`` is not passed on)
and the quizzes' static keys; it replaces machine-specific paths in the outputs, checks figures and
harness text, and writes the learner forms.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from course_utils import lesson_forms  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
SOLVED = NOTEBOOKS / "solved"
BOOTSTRAP_END = lesson_forms.BOOTSTRAP_END
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
TIME_RE = re.compile(r"\*Time: about [0-9]+ minutes")


def repository_url() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]["urls"]["Repository"].rstrip("/")


def notebook_paths() -> list[Path]:
    """Every solved lesson notebook (the source), in course order (their names start with a number)."""
    return sorted(SOLVED.glob("[0-9][0-9]_*.ipynb"))


def learner_paths() -> list[Path]:
    """Every learner-form notebook, in course order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def learner_path(solved: Path) -> Path:
    return NOTEBOOKS / solved.name


def learner_text(solved: Path) -> str:
    """The learner form of a solved notebook, as it must be committed."""
    nb = nbformat.from_dict(lesson_forms.learner_form(nbformat.read(solved, as_version=4)))
    return nbformat.writes(nb) + "\n"


def write_learner_forms() -> list[str]:
    """Write every learner form; return the names that changed. Learner forms without a solved form go."""
    changed = []
    for path in notebook_paths():
        text = learner_text(path)
        target = learner_path(path)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            changed.append(target.name)
    solved_names = {p.name for p in notebook_paths()}
    for orphan in (p for p in learner_paths() if p.name not in solved_names):
        orphan.unlink()
        changed.append(f"{orphan.name} (removed)")
    return changed


def form_problems() -> list[str]:
    """Learner forms out of step with their solved forms, and harness text or missing figures."""
    problems = []
    for path in notebook_paths():
        target = learner_path(path)
        if not target.exists() or target.read_text() != learner_text(path):
            problems.append(f"{target.name}: out of step with solved/{path.name} (run `make notebooks`)")
        nb = nbformat.read(path, as_version=4)
        problems += [f"solved/{path.name}: {p}" for p in lesson_forms.figure_problems(nb)]
        problems += [f"solved/{path.name}: {p}" for p in lesson_forms.solved_problems(nb)]
        problems += [f"solved/{path.name}: {p}" for p in lesson_forms.size_problems(nb)]
    for target in learner_paths():
        nb = nbformat.read(target, as_version=4)
        problems += [f"{target.name}: {p}" for p in lesson_forms.learner_problems(nb)]
    return problems


def badge(url: str, name: str) -> str:
    slug = url.removeprefix("https://github.com/")
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{name})"
    )


def bootstrap(url: str) -> str:
    folder = "/content/" + url.rsplit("/", 1)[-1]
    return "\n".join(
        [
            "# Setup. On Colab, first fetch and install the course (elsewhere nothing extra happens).",
            "import sys",
            'if "google.colab" in sys.modules:',
            "    import os",
            "    import subprocess",
            f'    if not os.path.isdir("{folder}"):',
            f'        subprocess.run(["git", "clone", "--depth=1", "{url}", "{folder}"], check=True)',
            f'        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "{folder}"], check=True)',
            f'    sys.path.insert(0, "{folder}")',
            BOOTSTRAP_END,
        ]
    )


def lesson_minutes(name: str) -> int:
    """The lesson's time in ``data/course_map.yaml`` (the one place it is written)."""
    from course_utils.course_map import load_course_map

    found = [lesson.minutes for lesson in load_course_map() if lesson.file == name]
    if not found:
        raise ValueError(f"{name}: not in data/course_map.yaml")
    return found[0]


def synced(nb: nbformat.NotebookNode, name: str, url: str) -> nbformat.NotebookNode:
    """Return the notebook with its badge, its time (from the course map) and its bootstrap block
    rewritten; raise if they are missing."""
    first = nb.cells[0]
    if first.cell_type != "markdown" or not BADGE_RE.search(first.source):
        raise ValueError(f"{name}: the first cell must be markdown holding the 'Open In Colab' badge")
    if not TIME_RE.search(first.source):
        raise ValueError(f"{name}: the first cell must say '*Time: about N minutes' (from the course map)")
    first.source = BADGE_RE.sub(lambda _: badge(url, name), first.source)
    first.source = TIME_RE.sub(f"*Time: about {lesson_minutes(name)} minutes", first.source)
    setup = next((c for c in nb.cells if c.cell_type == "code" and BOOTSTRAP_END in c.source), None)
    if setup is None:
        raise ValueError(f"{name}: no setup cell with the line {BOOTSTRAP_END!r}")
    setup.source = bootstrap(url) + setup.source.split(BOOTSTRAP_END, 1)[1]
    return nb


def sync(check_only: bool = False) -> int:
    url, stale = repository_url(), []
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        after = nbformat.writes(synced(nb, path.name, url))
        if before != after:
            stale.append(path.name)
            if not check_only:
                path.write_text(after)
    verb = "out of sync" if check_only else "updated"
    print(f"{len(stale)} notebook(s) {verb}: {', '.join(stale) or '-'}")
    return 1 if (check_only and stale) else 0


def scrub(text: str) -> str:
    """Replace this machine's paths (the repository, the Python prefix, home) in output text."""
    for path, stand_in in ((Path(sys.prefix), "<python>"), (ROOT, "<course>"), (Path.home(), "~")):
        text = text.replace(str(path), stand_in)
    return text


def scrub_outputs(nb: nbformat.NotebookNode) -> None:
    """Replace machine paths in the outputs, and drop the cells' execution timestamps."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = scrub(out["text"])
            for key, value in out.get("data", {}).items():
                if key.startswith("text/") and isinstance(value, str):
                    out["data"][key] = scrub(value)
            if "traceback" in out:
                out["traceback"] = [scrub(line) for line in out["traceback"]]


PATH_RE = re.compile(r"(/work/|/root/|/home/[A-Za-z]|/Users/[A-Za-z]|/tmp/[A-Za-z0-9_.-]+/|[A-Z]:\\Users\\)")


def hygiene_problems(nb: nbformat.NotebookNode, user: str | None = None) -> list[str]:
    """What is wrong with a committed notebook: machine paths or a user name (in code or outputs),
    a code cell that has outputs but was never run, a code cell left unexecuted, or execution
    counts out of order (cells must have been run once, top to bottom)."""
    problems: list[str] = []
    user_patterns = [f"/{user}/", f"~{user}", f"\\{user}\\"] if user else []
    expected = 1
    for number, cell in enumerate(nb.cells, start=1):
        texts = [cell.source]
        if cell.cell_type == "code":
            outputs = cell.get("outputs", [])
            for out in outputs:
                texts.append(out.get("text", ""))
                texts.extend(v for v in out.get("data", {}).values() if isinstance(v, str))
                texts.extend(out.get("traceback", []))
            count = cell.get("execution_count")
            if count is None and outputs:
                problems.append(f"cell {number}: has outputs but was never executed")
            elif count is None:
                problems.append(f"cell {number}: not executed (run `make notebooks`)")
            elif count != expected:
                problems.append(f"cell {number}: execution count {count}, expected {expected} (out of order)")
            if count is not None:
                expected = count + 1
        for text in texts:
            if match := PATH_RE.search(text):
                problems.append(f"cell {number}: holds a machine path ({match.group(0)!r})")
            for pattern in user_patterns:
                if pattern in text:
                    problems.append(f"cell {number}: holds the user name ({pattern!r})")
    return problems


def kernel_environment(cache: str | None) -> dict[str, str]:
    """The environment of the kernels that execute solved lessons.

    ``MPLBACKEND`` is removed: a non-interactive backend (the test environment sets Agg) would
    replace Jupyter's inline backend, and ``plt.show()`` would draw nothing into the notebook.
    """
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["COURSE_SHOW_KEYS"] = "1"
    if cache is not None:
        env["COURSE_CACHE"] = cache
    return env


def execute(path: Path, env: dict[str, str]) -> None:
    from nbclient import NotebookClient

    start = time.perf_counter()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=1800,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)  # handed on to the kernel manager's start_kernel
    scrub_outputs(nb)
    nbformat.write(nb, path)
    print(f"{path.name}: executed in {time.perf_counter() - start:.0f} s")


def run(names: list[str], keep_cache: bool = False) -> int:
    paths = notebook_paths()
    if names:
        paths = [p for p in paths if p.name in names or p.stem in names or p.stem[:2] in names]
    with tempfile.TemporaryDirectory(prefix="course-cache-") as empty:
        env = kernel_environment(None if keep_cache else empty)
        for path in paths:
            execute(path, env)
    changed = write_learner_forms()
    print(f"learner forms written: {', '.join(changed) or 'none changed'}")
    problems = form_problems()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync")
    sub.add_parser("check")
    sub.add_parser("learner")
    run_parser = sub.add_parser("run")
    run_parser.add_argument("names", nargs="*", help="notebook names or numbers (default: all)")
    run_parser.add_argument("--keep-cache", action="store_true", help="reuse the model cache")
    args = parser.parse_args()
    if args.command == "sync":
        return sync()
    if args.command == "learner":
        print(f"learner forms written: {', '.join(write_learner_forms()) or 'none changed'}")
        return 0
    if args.command == "check":
        problems = form_problems()
        for problem in problems:
            print(problem)
        return max(sync(check_only=True), 1 if problems else 0)
    return run(args.names, args.keep_cache)


if __name__ == "__main__":
    sys.exit(main())
