#!/usr/bin/env bash
# make compat: does the course work with the OLDEST torch/torchvision pair that pyproject.toml claims?
#
# Builds a throw-away virtual environment, installs the minimum torch and torchvision of
# pyproject.toml's ranges (the rest of the packages unpinned, as a learner's pip would resolve them),
# then runs the unit tests and the quick lessons (solved forms, ci profile, offline) in it.
# Not part of `make test`: it downloads a few GB of wheels and takes several minutes.
#
#   COMPAT_VENV   where to build the environment (default: a new temporary folder, removed at the end)
#   COMPAT_LESSONS  the lessons to run (default: the quick ones)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"

read -r torch_min vision_min < <("$python" - <<'EOF'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
low = {re.split(r"[<>=!~ ]", d)[0]: re.search(r">=\s*([0-9.]+)", d).group(1) for d in deps if ">=" in d}
print(low["torch"], low["torchvision"])
EOF
)

if [ -n "${COMPAT_VENV:-}" ]; then
    venv="$COMPAT_VENV"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    venv="$work/venv"
fi
lessons="${COMPAT_LESSONS:-notebooks/solved/00_welcome.ipynb notebooks/solved/02_boxes_and_iou.ipynb notebooks/solved/03_nms_and_postprocessing.ipynb}"

echo "compat: torch==$torch_min torchvision==$vision_min in $venv"
test -x "$venv/bin/python" || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "torch==$torch_min" "torchvision==$vision_min"
# The package with its extras; pip keeps the torch pair above because it satisfies the ranges.
"$venv/bin/python" -m pip install --quiet ".[lab,test,grade]"
"$venv/bin/python" - <<'EOF'
import numpy, torch, torchvision
print(f"compat: installed torch {torch.__version__}, torchvision {torchvision.__version__}, numpy {numpy.__version__}")
EOF

env="OMP_WAIT_POLICY=PASSIVE COURSE_PROFILE=ci COURSE_OFFLINE=1 PYTHONPATH=$PWD/tests/offline:$PWD MPLBACKEND=Agg"
cache="$(mktemp -d)"
status=0
# test_lab.py and test_browser.py start `make lab`, which sets up the course's own pinned environment
# (constraints.txt), not the one built here: they test the course's set-up, not the library versions.
env $env COURSE_CACHE="$cache" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests \
    --ignore tests/test_lab.py --ignore tests/test_browser.py || status=1
# shellcheck disable=SC2086
env $env COURSE_CACHE="$cache" COURSE_SHOW_KEYS=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
    --nbval-sanitize-with tests/nbval_sanitize.cfg $lessons || status=1
rm -rf "$cache"
if [ "$status" = 0 ]; then
    echo "compat: torch $torch_min + torchvision $vision_min pass the unit tests and the quick lessons"
else
    echo "compat: torch $torch_min + torchvision $vision_min FAIL (see above)" >&2
fi
exit "$status"
