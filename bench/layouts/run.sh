#!/usr/bin/env bash
# Runs one training job under every parallel layout `hal train` has, in-process on this machine, and prints a table:
# tokens/s (the end line's, the first step excluded from nothing: the whole run), peak device bytes (the largest of the
# ranks) and the final loss. Every layout computes the same model; the losses should agree to ~1e-5.
# Usage: bench/layouts/run.sh [MODEL] [BATCH] [SEQ] [STEPS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL="${1:-gpt-tiny}"
BATCH="${2:-8}"
SEQ="${3:-64}"
STEPS="${4:-20}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
LAYOUTS=(
    "dp1|"
    "dp2|--dp 2"
    "dp2-zero1|--dp 2 --zero 1"
    "dp2-zero3|--dp 2 --zero 3"
    "tp2|--tp 2"
    "dp2-tp2|--dp 2 --tp 2"
    "sp2-ring|--sp 2 --sp-mode ring"
    "sp2-ulysses|--sp 2 --sp-mode ulysses"
    "dp2-sp2|--dp 2 --sp 2"
)
printf '%-14s %10s %16s %12s\n' layout tokens/s peak-bytes/rank final-loss
for entry in "${LAYOUTS[@]}"; do
    name="${entry%%|*}"
    flags="${entry#*|}"
    # shellcheck disable=SC2086
    "$ROOT/hal" train --model "$MODEL" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" $flags --json-log "$OUT/$name.jsonl" > "$OUT/$name.txt" 2>&1 \
        || { echo "$name: failed, see below"; tail -5 "$OUT/$name.txt"; continue; }
    python3 - "$OUT/$name.jsonl" "$name" <<'PY'
import json, sys
end = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["event"] == "end"][0]
print(f'{sys.argv[2]:<14} {end["tokensPerSec"]:10.0f} {end["peakDeviceBytes"]:16,d} {end["finalLoss"]:12.6f}')
PY
done
