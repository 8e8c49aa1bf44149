#!/usr/bin/env bash
# Runs the same training steps under every parallel layout of the parallelism test matrix through
# `hal bench step --layout` (in-process ranks, one device each, on this machine) and prints a markdown table: tokens/s
# against one device through the same trainer, the largest peak device bytes of any rank, the bytes one rank sends per
# step (counted per call; mean over the ranks), the measured pipeline bubble beside the theoretical one, and the loss
# of the last step (every layout computes the same model, so the losses agree to ~1e-5).
# Usage: bench/layouts/run.sh [MODEL] [BATCH] [SEQ] [STEPS] [BACKEND]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL="${1:-gpt-mini}"
BATCH="${2:-8}"
SEQ="${3:-128}"
STEPS="${4:-3}"
BACKEND="${5:-cpu}"
LAYOUTS=(
    "dp=2"
    "dp=2,zero=1"
    "tp=2"
    "tp=4"
    "tp=4,tp-mode=2d"
    "tp=8,tp-mode=2.5d"
    "tp=8,tp-mode=3d"
    "tp=2,sp-mode=split-gather"
    "pp=2,pp-schedule=gpipe,microbatches=8"
    "pp=2,pp-schedule=1f1b,microbatches=8"
    "pp=2,pp-schedule=interleaved,pp-chunks=2,microbatches=8"
    "pp=4,pp-schedule=gpipe,microbatches=8"
    "pp=4,pp-schedule=1f1b,microbatches=8"
    "pp=4,pp-schedule=interleaved,pp-chunks=2,microbatches=8"
    "sp=2,sp-mode=ring"
    "sp=4,sp-mode=ring"
    "sp=2,sp-mode=ulysses"
    "sp=4,sp-mode=ulysses"
    "dp=2,tp=2"
    "tp=2,sp=2,sp-mode=ring"
    "tp=2,sp=2,sp-mode=ulysses"
    "tp=2,pp=2,microbatches=4"
    "dp=2,pp=2,sp=2,zero=1,microbatches=4"
)
ARGS=()
for layout in "${LAYOUTS[@]}"; do
    ARGS+=(--layout "$layout")
done
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
"$ROOT/hal" bench step --model "$MODEL" --backend "$BACKEND" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --warmup 1 "${ARGS[@]}" --json > "$OUT"
python3 - "$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f'{r["model"]} on {r["device"]}: batch {r["batch"]} × seq {r["seq"]}, {r["precision"]}, {r["steps"]} timed steps (median)')
print()
print('| layout | ranks | tokens/s | vs one device | peak bytes per rank | bytes sent per rank per step | bubble (theoretical) | last loss |')
print('|---|---|---|---|---|---|---|---|')
for l in r["layouts"]:
    bubble = '-' if l["bubble"] is None else f'{l["bubble"]:.3f} ({l["bubbleTheoretical"]:.3f})'
    print(f'| {l["layout"]} | {l["ranks"]} | {l["tokensPerSec"]:,.0f} | {l["ratioToSingle"]:.2f} | {l["peakDeviceBytesPerRank"]:,} | '
          f'{l["commBytesPerStep"]:,.0f} | {bubble} | {l["lastLoss"]:.6f} |')
PY
