"""Notebook maintenance: keep the template cells in sync, and re-execute the lessons.

    python scripts/notebooks.py sync            # badge + bootstrap cell from pyproject's Repository
    python scripts/notebooks.py run [NAME ...]  # execute in order (ci profile), store outputs
    python scripts/notebooks.py check           # exit 1 when a notebook is out of sync

The repository address is written once, in pyproject.toml's [project.urls] Repository;
``sync`` copies it into each notebook's "Open in Colab" badge and its bootstrap block (the
part of the setup cell above ``BOOTSTRAP_END``). ``run`` executes notebooks with nbclient in
the notebook folder and replaces machine-specific paths in the outputs.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BOOTSTRAP_END = "# --- end of bootstrap ---"
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def repository_url() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]["urls"]["Repository"].rstrip("/")


def notebook_paths() -> list[Path]:
    """Every lesson notebook, in course order (their names start with a number)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


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


def synced(nb: nbformat.NotebookNode, name: str, url: str) -> nbformat.NotebookNode:
    """Return the notebook with its badge and bootstrap block rewritten; raise if they are missing."""
    first = nb.cells[0]
    if first.cell_type != "markdown" or not BADGE_RE.search(first.source):
        raise ValueError(f"{name}: the first cell must be markdown holding the 'Open In Colab' badge")
    first.source = BADGE_RE.sub(lambda _: badge(url, name), first.source)
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
    for cell in nb.cells:
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


def run(names: list[str]) -> int:
    from nbclient import NotebookClient

    paths = notebook_paths()
    if names:
        paths = [p for p in paths if p.name in names or p.stem in names]
    for path in paths:
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        client.execute()
        scrub_outputs(nb)
        nbformat.write(nb, path)
        print(f"{path.name}: executed in {time.perf_counter() - start:.0f} s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync")
    sub.add_parser("check")
    run_parser = sub.add_parser("run")
    run_parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    args = parser.parse_args()
    if args.command == "sync":
        return sync()
    if args.command == "check":
        return sync(check_only=True)
    return run(args.names)


if __name__ == "__main__":
    sys.exit(main())
