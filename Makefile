# The course's two commands are `make lab` and `make test`; each sets itself up first.
# Set-up is cheap to repeat: it runs again only when pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.course-installed
# Extra options for JupyterLab, e.g. `make lab LAB_ARGS="--no-browser --port 8899"`.
LAB_ARGS ?=
# JupyterLab refuses to run as root (containers, some cloud machines) unless told it may.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# Environment of every test process (and of the notebook kernels they start).
TEST_ENV := OMP_WAIT_POLICY=PASSIVE COURSE_PROFILE=ci COURSE_OFFLINE=1 PYTHONPATH=$(CURDIR)/tests/offline MPLBACKEND=Agg
NBVAL_ARGS := --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
	--nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: setup lab test lint unit nbtest notebooks sync lock clean clean-cache browser assignments compat

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[lab,test,grade]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 \
		--display-name "Python 3 (object detection course)"
	$(BIN)/python -c "import torchvision.ops, torch; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)"
	touch $@

## make lab: JupyterLab on notebooks/ with the course's kernel.
lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

## make test: lint, unit tests, then every lesson under nbval (ci profile, offline): first the
## solved forms (their checked outputs compared; answers and keys shown, as when they are built),
## then the learner forms, untouched, run to the end.
## Both runs share one model cache that starts empty, so the learner forms reuse the trained models.
test: setup lint unit nbtest

lint: setup
	$(BIN)/ruff check course_utils tests scripts benchmarks notebooks conftest.py

unit: setup browser
	env $(TEST_ENV) $(BIN)/python -m pytest tests

## make browser: Debian's Chromium for the browser tests (installed when missing and possible;
## without it those tests are skipped with the reason).
browser:
	bash scripts/install_browser.sh

nbtest: setup
	cache=$$(mktemp -d) && trap 'rm -rf "$$cache"' EXIT && \
	env $(TEST_ENV) COURSE_CACHE=$$cache COURSE_SHOW_KEYS=1 $(BIN)/python -m pytest $(NBVAL_ARGS) notebooks/solved && \
	env $(TEST_ENV) COURSE_CACHE=$$cache $(BIN)/python -m pytest $(NBVAL_ARGS) notebooks/[0-9]*.ipynb

## make notebooks: execute the solved lessons in order (ci profile, empty model cache), store their
## outputs, check their figures, and write the learner forms. `make notebooks NAMES="02 08"` for some.
notebooks: setup sync
	env $(TEST_ENV) $(BIN)/python scripts/notebooks.py run $(NAMES)

## make clean-cache: empty the model cache (trained models are stored there and reused).
clean-cache: setup
	$(BIN)/python -c "from course_utils.model_cache import clear_model_cache as c; print(c(), 'cached models removed')"

## make sync: copy the repository address and the bootstrap cell into every notebook.
sync: setup
	$(BIN)/python scripts/notebooks.py sync

## make assignments: graded assignments from the lessons (nbgrader/source; student release in nbgrader/release).
assignments: setup
	$(BIN)/python scripts/assignments.py release

## make compat: the oldest torch/torchvision pair that pyproject.toml admits, in a throw-away venv:
## the unit tests and the quick lessons (downloads a few GB of wheels; not part of `make test`).
compat:
	bash scripts/compat.sh

## make lock: regenerate constraints.txt from the current environment.
lock: setup
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^pip=='; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
