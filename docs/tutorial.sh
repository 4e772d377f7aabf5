#!/usr/bin/env bash
# Runs the commands of docs/TUTORIAL.md in order, on the bundled recordings.
#
#   bash docs/tutorial.sh [--quick] [--workdir DIR]
#
# --quick: tiny settings (2 training epochs of 4 batches, short clips) to check that every
# command runs — about 1.5 minutes of CPU time; the models are not worth listening to. Without
# it, the tutorial's own settings (12 epochs: a few minutes per species on 2 idle cores).
# DIR (default tutorial/) receives data/, models/ and results/ as in the tutorial.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
QUICK=0
WORKDIR=tutorial
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --workdir) WORKDIR="$2"; shift ;;
        *) echo "usage: bash docs/tutorial.sh [--quick] [--workdir DIR]" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    TRAIN=(--epochs 2 --steps_per_epoch 4 --batch_size 4)
    SONGS=(--n 2 --seconds 2)
    EXPLAIN=(--seconds 2 --dpi 40)
    BALANCE=(--epochs 1)
else
    TRAIN=(--epochs 12)
    SONGS=(--n 5)
    EXPLAIN=()
    BALANCE=()
fi
mkdir -p "$WORKDIR"
cd "$WORKDIR"
set -x

# 0. The data: two species, one folder each (great tit: 4 clips of one bird; chaffinch: 7
#    xeno-canto recordings, with their recordists in manifest.csv).
mkdir -p data/raw
cp -r "$REPO/tests/data/Parus_major" "$REPO/benchmarks/data/xc-germany/Fringilla_coelebs" data/raw/
{ head -n 1 "$REPO/benchmarks/data/xc-germany/manifest.csv"
  grep '^Fringilla_coelebs/' "$REPO/benchmarks/data/xc-germany/manifest.csv"; } > data/raw/manifest.csv

# 1. Preprocess: F0, voicing, loudness, active stretches, background floor.
ddsp-augment preprocess --data_path data/raw/ --output_path data/processed/

# 2. Train one model per species.
ddsp-augment train --data_path data/processed/ --output_path models/ "${TRAIN[@]}"

# 3. Generate new songs (wav + spectrogram + JSON sidecar each, a contact sheet per species).
ddsp-augment generate --model_checkpoint models/ --output_path results/songs/ \
    --real_path data/raw/ "${SONGS[@]}"

# 4. Explain: one page per species of what its model learned.
ddsp-augment explain --model_checkpoint models/ --real_path data/raw/ \
    --output_path results/explain/ "${EXPLAIN[@]}"
ddsp-augment explain --model_checkpoint models/Parus_major/ \
    --output_path results/explain-no-real/ "${EXPLAIN[@]}"

# 5. Evaluate the songs against the real recordings.
ddsp-augment evaluate --generated_path results/songs/ --real_path data/raw/ \
    --model_checkpoint models/ --output_path results/evaluation/

# 6. Balance a DataLoader.
python "$REPO/docs/tutorial_balance.py" --data data/raw/ --models models/ "${BALANCE[@]}"
