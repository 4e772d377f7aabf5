#!/usr/bin/env bash
# The GPU measurement, in one go (CUDA machine, repository root, package installed):
# the CUDA variants of the batched-rendering tests (bank, scene, batch transform), then
# generation speed (x_realtime_torch_cuda_n{1,16,256,1024}, with the host-side bound
# x_realtime_host_draws_bound) and training speed. Prints pytest's summary and two JSON objects
# (generate_speed, train_speed).
set -euo pipefail
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
pytest -q -p no:cacheprovider tests/sampling/test_bank.py tests/sampling/test_scene.py \
    tests/augment/test_batch_synth.py -k "cuda"
python benchmarks/generate_speed.py --repeats 5 --growth_clips 100
python benchmarks/train_speed.py
