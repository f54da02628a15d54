"""Committed solved notebooks: executed in order, in sync with the template, free of machine details."""

import getpass
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("nbtools", ROOT / "scripts" / "notebooks.py")
nbtools = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbtools)

NOTEBOOKS = nbtools.notebook_paths()
USER = getpass.getuser()


def read(path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_welcome.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    assert nbtools.hygiene_problems(read(path), USER) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_matches_template(path):
    nb = read(path)
    url = nbtools.repository_url()
    assert nbformat.writes(nbtools.synced(read(path), path.name, url)) == nbformat.writes(nb), (
        f"{path.name} is out of sync with the template: run `make sync`"
    )
    assert nb.metadata["kernelspec"]["name"] == "python3"
    setup = next(c for c in nb.cells if nbtools.BOOTSTRAP_END in c.source)
    assert "start_lesson(" in setup.source


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.name)
def test_lesson_has_its_quiz(path):
    sources = "\n".join(c.source for c in read(path).cells)
    assert f'show_quiz("{path.stem}"' in sources
    assert (ROOT / "data" / "quizzes" / f"{path.stem}.yaml").is_file()


def _executed(cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = n + 1
    return nb


def test_hygiene_catches_a_machine_path():
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", text="/home/alice/course/x.py:3: UserWarning\n")]
    problems = nbtools.hygiene_problems(_executed([cell]), "alice")
    assert any("machine path" in p for p in problems)
    assert any("user name" in p for p in problems)


def test_hygiene_catches_unexecuted_cell_with_outputs():
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert any("never executed" in p for p in nbtools.hygiene_problems(nb))


def test_hygiene_catches_out_of_order_counts():
    nb = _executed([nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2")])
    nb.cells[0].execution_count, nb.cells[1].execution_count = 2, 1
    assert any("out of order" in p for p in nbtools.hygiene_problems(nb))
    assert nbtools.hygiene_problems(_executed([nbformat.v4.new_code_cell("a = 1")])) == []


def test_scrub_replaces_this_machines_paths():
    text = f"{nbtools.ROOT}/notebooks/x.py and {nbtools.sys.prefix}/lib/site.py"
    assert str(nbtools.ROOT) not in nbtools.scrub(text)
    assert "<course>/notebooks/x.py" in nbtools.scrub(text)
