#!/usr/bin/env bash
# End-to-end speed: synthesizes SmolLM2-135M and TinyLlama-1.1B shaped checkpoints (random weights,
# real shapes), converts each to q4 and q8, and prints qlm-bench's pp512 / tg64 table at 1 and 2
# threads. Run it on a quiet machine.
# Usage: bench/e2e.sh [build dir (default build-release)] [work dir (default /tmp/qlm-e2e)]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-release}"
work="${2:-/tmp/qlm-e2e}"
shared="$root/../shared"
reps="${QLM_BENCH_REPS:-5}"

if [ ! -x "$build/tools/qlm-bench" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target qlm-synth qlm-convert qlm-bench
fi
mkdir -p "$work"
for shape in smollm2-135m tinyllama-1.1b; do
  tok=""
  [ -d "$shared/tokenizers/$shape" ] && tok="--tokenizer $shared/tokenizers/$shape"
  [ -f "$work/$shape/config.json" ] ||
    "$build/tools/qlm-synth" --config "$shared/shapes/$shape.json" $tok -o "$work/$shape"
  for type in q4 q8; do
    # Converted afresh every run: on the development VM a model file kept from an earlier session
    # decoded up to 40% slower than a byte-identical new copy (bench/RESULTS.md, session 4).
    "$build/tools/qlm-convert" "$work/$shape" -o "$work/$shape-$type.qlm" --type "$type" 2>/dev/null
    echo "### $shape $type"
    "$build/tools/qlm-bench" -m "$work/$shape-$type.qlm" -p 512 -n 64 -t 1,2 -r "$reps"
    echo
  done
done
