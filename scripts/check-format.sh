#!/usr/bin/env bash
# Fails if any C++ source differs from what clang-format (the root .clang-format) would write.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run --Werror
echo "format: all C++ sources match .clang-format"
