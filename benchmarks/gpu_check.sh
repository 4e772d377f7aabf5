#!/usr/bin/env bash
# The GPU measurement, in one go (CUDA machine, repository root, package installed):
# the CUDA variants of the batched-rendering tests (bank, scene, batch transform; host and
# device draws), then generation speed (x_realtime_torch_cuda_n{1,16,256,1024} with host draws
# and ..._device_draws with the bulk noise drawn on the GPU, and the host-side bounds
# x_realtime_host_draws_bound{,_device_draws}) and training speed. Prints pytest's summary and
# two JSON objects (generate_speed, train_speed).
set -euo pipefail
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
pytest -q -p no:cacheprovider tests/sampling/test_bank.py tests/sampling/test_scene.py \
    tests/augment/test_batch_synth.py -k "cuda"
python benchmarks/generate_speed.py --repeats 5 --growth_clips 100
# Training: a stacked step on CUDA is train_species' step; 20 species at once on the GPU on the
# default schedule (30 epochs x 30 steps) vs one species at a time on the CPU (one of them).
pytest -q -p no:cacheprovider tests/training/test_stacked.py -k cuda
python benchmarks/train_speed.py --device cuda --species 20 --cpu_species 1 --epochs 30 --steps 30
