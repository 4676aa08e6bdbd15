#!/usr/bin/env bash
# The largest slice of the paper's grid that fits one device call (grok_lib.paper.slice), tables to $OUT.
#
# Here, once: the packages the device image (benchmarks/device_image.txt) lacks, as wheels for its Python,
# the pinned set of benchmarks/gpu_wheels.txt (tests/test_device_image.py checks it covers grok_lib):
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
# Then the device tool's run, with carry [".whl"] and timeout_s 560:
#     bash benchmarks/gpu_grid.sh
# $OUT receives slice.json (epochs chosen, seconds per epoch of each op's ensemble, wall time),
# tables.tar.gz (every run's metrics, complexity and rate-distortion tables with PROVENANCE.json) and
# slice.log. tests/test_slice.py runs this same script on CPU at the ci profile (PROFILE=ci).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export GROK_RUNS=${GROK_RUNS:-/tmp/grok-slice-runs}
timeout "${TIMEOUT_S:-540}" "$PY" -m grok_lib.paper.slice --profile "${PROFILE:-paper}" --budget-s "${BUDGET_S:-480}" \
    --out "$OUT" 2>&1 | tee "$OUT/slice.log" | tail -n 5
