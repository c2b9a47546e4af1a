#!/usr/bin/env bash
# Builds qlm and runs the whole test suite: a Release build with warnings as errors, then the same
# suite again under AddressSanitizer + UndefinedBehaviorSanitizer, then the CMake consumer checks.
# Usage: scripts/test.sh            (installs missing Debian packages first; needs root or sudo)
#        QLM_SKIP_ASAN=1 scripts/test.sh   to skip the sanitizer pass locally
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh

bash scripts/check-format.sh

jobs="$(nproc)"
build_and_test() {  # <build dir> <cmake args...>
  local dir="$1"; shift
  cmake -S . -B "$dir" -G Ninja -DQLM_WERROR=ON "$@"
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 900)
}

echo "== Release build, warnings as errors =="
build_and_test build-release -DCMAKE_BUILD_TYPE=Release

if [ "${QLM_SKIP_ASAN:-0}" != 1 ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer =="
  # -O1 -g1, as the sanitizers' own docs suggest: at -O2 -g this pass took ~30 of CI's 45 minutes
  # (build and tests); at -O1 -g1 it took 9 (5.6 min build, 3.5 min tests on the 2-vCPU guest).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    build_and_test build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQLM_SANITIZE=ON \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
    -DQLM_BUILD_BENCH=OFF -DQLM_TEST_NEON_QEMU=OFF  # NEON already ran above; qemu is slow
fi

echo "== consumers: add_subdirectory and find_package =="
bash tests/consumer/run.sh build-release
