#!/usr/bin/env bash
# The GPU check, in one go (CUDA machine, repository root, package installed):
#   1. the whole test suite with a CUDA device present, which runs its CUDA variants (batched
#      rendering of bank, scene and batch transform with host and device draws, the stacked
#      training step) next to everything else;
#   2. generation speed (x_realtime_torch_cuda_n{1,16,256,1024}, host and device draws, next to
#      the CPU backends on one core of the same machine);
#   3. training speed: 20 species at once on the GPU (stacked, as `train --together` does) and,
#      side by side in a second process, one species at a time on one CPU core, same schedule.
# Writes pytest.log, generate_speed.json and train_speed_{cuda,cpu}.json (with their logs) into
# $1 (default gpu_check/). Extra pytest arguments in $PYTEST_ARGS (e.g. "-n 14" with
# pytest-xdist); the training schedule's epochs in $EPOCHS (default 5: seconds per species grow
# linearly with epochs, and per-epoch validation on the CPU bounds the GPU's).
set -uo pipefail
out=${1:-gpu_check}
epochs=${EPOCHS:-5}
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
failed=0
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
python -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests >"$out/pytest.log" 2>&1 || failed=1
tail -n 25 "$out/pytest.log"
python benchmarks/generate_speed.py --repeats 5 --growth_clips 100 \
    >"$out/generate_speed.json" 2>"$out/generate_speed.log" || failed=1
python benchmarks/train_speed.py --device cuda --species 20 --cpu_species 0 --epochs "$epochs" \
    --steps 30 >"$out/train_speed_cuda.json" 2>"$out/train_speed_cuda.log" &
cuda=$!
python benchmarks/train_speed.py --species 1 --epochs "$epochs" --steps 30 \
    --cache_dir .cache/train_speed_cpu >"$out/train_speed_cpu.json" 2>"$out/train_speed_cpu.log" ||
    failed=1
wait "$cuda" || failed=1
cat "$out/generate_speed.json" "$out/train_speed_cuda.json" "$out/train_speed_cpu.json"
exit "$failed"
