#!/usr/bin/env bash
# Sums the <Counters> of every TRX file under DIR and prints one line: "N passed, N failed, N skipped".
#
#   bash scripts/trx-summary.sh DIR [TEST_EXIT_STATUS]
#
# failed  = failed + error + timeout + aborted (a test that errored is never counted as skipped)
# skipped = total - passed - failed (xunit's skipped tests are "notExecuted" in TRX)
# When TEST_EXIT_STATUS is non-zero but no test failed (the build failed, or a test host crashed),
# one failure is counted, so the line never reads "0 failed" for a run that failed.
# Exit status: 1 when anything failed, else 0. Uses only bash, find, grep and sed.
set -euo pipefail

dir="${1:?usage: trx-summary.sh DIR [TEST_EXIT_STATUS]}"
status="${2:-0}"

# Reads attribute $2 from a <Counters .../> element $1; 0 when absent.
attr() {
    local value
    value="$(printf '%s\n' "$1" | sed -n "s/.*[[:space:]]$2=\"\([0-9]*\)\".*/\1/p")"
    printf '%s\n' "${value:-0}"
}

passed=0
failed=0
skipped=0
if [[ -d "$dir" ]]; then
    while IFS= read -r -d '' file; do
        # One <Counters> element per TRX file; its attributes may be spread over several lines.
        counters="$(tr '\n\r' '  ' < "$file" | grep -o '<Counters[^>]*>' | head -n 1 || true)"
        if [[ -z "$counters" ]]; then
            continue
        fi
        total="$(attr "$counters" total)"
        p="$(attr "$counters" passed)"
        f=$(( $(attr "$counters" failed) + $(attr "$counters" error) + $(attr "$counters" timeout) + $(attr "$counters" aborted) ))
        s=$(( total - p - f ))
        if (( s < 0 )); then
            s=0
        fi
        passed=$(( passed + p ))
        failed=$(( failed + f ))
        skipped=$(( skipped + s ))
    done < <(find "$dir" -type f -name '*.trx' -print0)
fi

if [[ "$status" != "0" ]] && (( failed == 0 )); then
    failed=1
fi

echo "$passed passed, $failed failed, $skipped skipped"
if (( failed > 0 )); then
    exit 1
fi
exit 0
