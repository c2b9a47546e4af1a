#!/usr/bin/env bash
# Builds a small program against qlm both ways a user would: add_subdirectory and an installed
# find_package(qlm); each must configure, link and run on the converted stories260K model.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/${1:-build-release}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$build/tools/qlm-convert" "$root/../shared/models/stories260K" -o "$work/m.qlm" --type q8 2>/dev/null

cmake -S "$root/tests/consumer/add_subdirectory" -B "$work/sub" -G Ninja \
  -DQLM_SOURCE="$root" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/sub" -j "$(nproc)" >/dev/null
"$work/sub/consumer" "$work/m.qlm"

cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$root/tests/consumer/find_package" -B "$work/pkg" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/pkg" >/dev/null
"$work/pkg/consumer" "$work/m.qlm"
echo "consumers: add_subdirectory and find_package OK"
