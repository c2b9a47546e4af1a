#!/bin/sh
# Cross-compiles the scalar + NEON kernels and the standalone kernel test for aarch64 and runs it
# under qemu-user twice: -cpu max (dotprod + i8mm) and -cpu cortex-a72 (plain NEON: exercises the
# fallbacks). Usage: run_qemu.sh [build-dir]. Exit 77 (skip) when tools are missing, unless CI=true.
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${1:-${TMPDIR:-/tmp}/qlm-neon-qemu}
cxx=${QLM_AARCH64_CXX:-aarch64-linux-gnu-g++}
qemu=${QLM_QEMU_AARCH64:-qemu-aarch64}

missing=""
command -v "$cxx" >/dev/null 2>&1 || missing="$missing $cxx (apt-get install g++-aarch64-linux-gnu)"
command -v "$qemu" >/dev/null 2>&1 || missing="$missing $qemu (apt-get install qemu-user)"
[ -d /usr/include/xsimd ] || missing="$missing xsimd headers (apt-get install libxsimd-dev)"
[ -d /usr/include/eigen3/Eigen ] || missing="$missing Eigen headers (apt-get install libeigen3-dev)"
if [ -n "$missing" ]; then
  echo "run_qemu.sh: NEON kernel tests cannot run, missing:$missing" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  exit 77
fi

mkdir -p "$out/inc" "$out/obj"
# Header-only libraries; only their directories, not the host's other headers.
ln -sfn /usr/include/xsimd "$out/inc/xsimd"
ln -sfn /usr/include/eigen3/Eigen "$out/inc/Eigen"  # hessian.cpp (GPTQ's factorizations)
# -Wno-unknown-pragmas: quantize.cpp's OpenMP pragmas are ignored here (no -fopenmp: serial).
flags="-std=c++20 -O2 -Wall -Wextra -Wpedantic -Wshadow -Wno-psabi -Wno-unknown-pragmas -Werror"
flags="$flags -I$root/kernels"
flags="$flags -I$root/include -I$root/src -I$root/tests/kernels -isystem $out/inc"

compile() {  # source object extra-flags
  # shellcheck disable=SC2086
  "$cxx" $flags $3 -c "$1" -o "$out/obj/$2.o"
}
compile "$root/kernels/dispatch.cpp" dispatch ""
compile "$root/kernels/ref/ref_kernels.cpp" ref ""
compile "$root/kernels/ref/ref_scale_search.cpp" ref_scale_search "-ffp-contract=off"
compile "$root/kernels/neon/neon_scale_search.cpp" neon_scale_search "-ffp-contract=off"
compile "$root/kernels/ref/ref_gptq.cpp" ref_gptq "-ffp-contract=off"
compile "$root/kernels/neon/neon_gptq.cpp" neon_gptq "-ffp-contract=off"
compile "$root/kernels/neon/neon_kernels.cpp" neon ""
compile "$root/kernels/neon/neon_dotprod_kernels.cpp" neon_dotprod "-march=armv8.2-a+dotprod"
compile "$root/kernels/neon/neon_i8mm_kernels.cpp" neon_i8mm "-march=armv8.6-a+dotprod+i8mm"
compile "$root/src/quant/quantize.cpp" quantize ""
compile "$root/src/quant/hessian.cpp" hessian ""
compile "$root/tests/kernels/neon/neon_driver.cpp" driver ""
"$cxx" -static -o "$out/neon_kernel_tests" "$out"/obj/*.o

status=0
echo "== qemu-aarch64 -cpu max (expect neon-i8mm)"
"$qemu" -cpu max "$out/neon_kernel_tests" --expect neon-i8mm || status=1
echo "== qemu-aarch64 -cpu cortex-a72 (expect neon; detection only: the kernels ran above)"
"$qemu" -cpu cortex-a72 "$out/neon_kernel_tests" --expect neon --dispatch-only || status=1
if [ "$status" -ne 0 ]; then echo "run_qemu.sh: NEON kernel tests FAILED" >&2; fi
exit "$status"
