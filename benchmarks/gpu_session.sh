#!/usr/bin/env bash
# Everything this project measures on a GPU machine, in one device call of under 10 minutes.
#
# Here, once: the packages the device image (benchmarks/device_image.txt) lacks, as wheels for its Python,
# the pinned set of benchmarks/gpu_wheels.txt (tests/test_device_image.py checks it covers grok_lib):
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
# Then the device tool's run, with carry [".whl"]:
#     bash benchmarks/gpu_session.sh
# Logs land in $OUT (the device tool brings them back; default ./gpu-out elsewhere): env.txt, tests.txt
# (the CUDA variants of the ensemble, spectral and batched-complexity tests run there), bench_training.txt
# (E = 1, 8, 72; regularized vs plain; svdvals vs Gram), bench_complexity.txt (Algorithm 1 per checkpoint,
# sequential and batch 8, and tracking throughput with a process per core). GPU numbers exist only where
# these logs came back from a GPU machine.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}  # the device image's python3 holds torch; elsewhere e.g. PYTHON=.venv/bin/python
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-$(nproc)}
{
    date -u; nvidia-smi -L 2>&1; nproc
    "$PY" -c "import torch, sklearn, skopt; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'sklearn', sklearn.__version__, 'skopt', skopt.__version__)"
} > "$OUT/env.txt" 2>&1
timeout 150 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_ensemble.py tests/test_spectral.py \
    tests/test_complexity.py tests/test_surrogate.py > "$OUT/tests.txt" 2>&1
timeout 180 "$PY" benchmarks/bench_training.py --device "$DEVICE" --ensemble 1 8 72 --spectral-ensemble 1 8 72 \
    > "$OUT/bench_training.txt" 2>&1
timeout 220 "$PY" benchmarks/bench_complexity.py --device "$DEVICE" --store /tmp/grok-bench-runs --repeat 2 \
    --batch 8 --batched-losses --throughput "$WORKERS" --workers "$WORKERS" > "$OUT/bench_complexity.txt" 2>&1
tail -n 3 "$OUT"/*.txt
