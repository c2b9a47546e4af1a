#!/usr/bin/env bash
# Builds qlm and runs the whole test suite: a Release build with warnings as errors, the same
# suite again under AddressSanitizer + UndefinedBehaviorSanitizer, the threaded tests under
# ThreadSanitizer, the fuzz targets (saved corpora replayed, then a few minutes of fuzzing), and
# the CMake consumer checks. Prints each phase's time at the end.
# Usage: scripts/test.sh            (installs missing Debian packages first; needs root or sudo)
#        QLM_SKIP_ASAN=1 QLM_SKIP_TSAN=1 QLM_SKIP_FUZZ=1 scripts/test.sh   to skip those passes
#        QLM_FUZZ_SECONDS=N         fuzzing time after the replay (default 240)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

phases=()
phase_start=$SECONDS
phase_name=""
phase() {  # <name>: ends the running phase (recording its time) and starts the next
  if [ -n "$phase_name" ]; then phases+=("$phase_name: $((SECONDS - phase_start)) s"); fi
  phase_name="$1"
  phase_start=$SECONDS
  [ -n "$1" ] && echo "== $1 =="
  return 0
}

phase "dependencies"
bash scripts/install-deps.sh

phase "format"
bash scripts/check-format.sh

jobs="$(nproc)"
build_and_test() {  # <build dir> <cmake args...>
  local dir="$1"; shift
  cmake -S . -B "$dir" -G Ninja -DQLM_WERROR=ON "$@"
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 900)
}

phase "Release build and tests, warnings as errors"
build_and_test build-release -DCMAKE_BUILD_TYPE=Release

if [ "${QLM_SKIP_ASAN:-0}" != 1 ]; then
  phase "AddressSanitizer + UndefinedBehaviorSanitizer"
  # -O1 -g1, as the sanitizers' own docs suggest: at -O2 -g this pass took ~30 of CI's 45 minutes
  # (build and tests); at -O1 -g1 it took 9 (5.6 min build, 3.5 min tests on the 2-vCPU guest).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    build_and_test build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQLM_SANITIZE=ON \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
    -DQLM_BUILD_BENCH=OFF -DQLM_TEST_NEON_QEMU=OFF  # NEON already ran above; qemu is slow
fi

if [ "${QLM_SKIP_TSAN:-0}" != 1 ]; then
  phase "ThreadSanitizer (thread pools, a Model shared by sessions, the Scheduler, qlm-server)"
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    build_and_test build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQLM_TSAN=ON \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DQLM_BUILD_BENCH=OFF \
    "-DQLM_TOOLS=qlm-server;qlm-convert;qlm-synth;qlm-run" -DQLM_BUILD_EXAMPLES=OFF \
    -DQLM_INSTALL=OFF -DQLM_TEST_NEON_QEMU=OFF
fi

if [ "${QLM_SKIP_FUZZ:-0}" != 1 ]; then
  phase "fuzzing: saved corpora replayed, then ${QLM_FUZZ_SECONDS:-240} s (ASan + UBSan)"
  bash scripts/fuzz.sh ci "${QLM_FUZZ_SECONDS:-240}"
fi

phase "consumers: add_subdirectory and find_package"
bash tests/consumer/run.sh build-release

phase ""
echo "== phase times =="
printf '%s\n' "${phases[@]}"
