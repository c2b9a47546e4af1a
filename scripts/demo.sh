#!/usr/bin/env bash
# The main job: build qlm, convert the shared stories260K checkpoint to q8 and generate from it.
# Usage: scripts/demo.sh [extra qlm-run arguments]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh --no-cross --no-reference
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQLM_BUILD_TESTS=OFF \
  -DQLM_BUILD_BENCH=OFF >/dev/null
cmake --build build -j "$(nproc)" --target qlm-convert qlm-inspect qlm-run
mkdir -p out
./build/tools/qlm-convert ../shared/models/stories260K -o out/stories260K-q8.qlm --type q8
./build/tools/qlm-run -m out/stories260K-q8.qlm -p "Once upon a time" -n 128 "$@"
echo
