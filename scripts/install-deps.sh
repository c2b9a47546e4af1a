#!/usr/bin/env bash
# Installs every build and test dependency of qlm from Debian packages. Idempotent; run as root.
# Usage: scripts/install-deps.sh [--no-cross] [--no-reference]
#   --no-cross      skip the aarch64 cross compiler and qemu-user (NEON tests)
#   --no-reference  skip PyTorch / SentencePiece / Node + tokenizers.js (reference tests)
set -euo pipefail

cross=1
reference=1
for arg in "$@"; do
  case "$arg" in
    --no-cross) cross=0 ;;
    --no-reference) reference=0 ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

packages=(
  g++ cmake make ninja-build pkg-config git ca-certificates
  libeigen3-dev libxsimd-dev libgomp1 libbenchmark-dev catch2 libfmt-dev
  nlohmann-json3-dev libpcre2-dev libicu-dev libxxhash-dev libcli11-dev
  clang-format
  clang-14 libclang-rt-14-dev libomp-14-dev  # libFuzzer targets (scripts/fuzz.sh)
  libsodium-dev                               # model signatures (qlm-sign)
  libboost-dev                                # qlm-server: Boost.Asio and Beast (header-only)
  nginx-light                                 # qlm-server replicas behind nginx (tests)
  tmux                                        # qlm-run --chat on a real terminal (tests)
  fortunes  # English text for quantization-quality tests and docs/quantization.md
)
if [ "$cross" = 1 ]; then
  packages+=(g++-aarch64-linux-gnu qemu-user)
fi
if [ "$reference" = 1 ]; then
  packages+=(python3 python3-numpy python3-torch python3-sentencepiece)
  # Node may come from another channel that bundles npm (which conflicts with Debian's npm).
  if ! command -v node >/dev/null 2>&1; then packages+=(nodejs); fi
  if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Hugging Face's tokenizers.js (pinned in tests/reference/package.json), the tokenizer tests'
# reference implementation. Re-running only re-checks the installed version.
if [ "$reference" = 1 ]; then
  ref_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/reference"
  (cd "$ref_dir" && npm install --no-audit --no-fund --loglevel=error)
fi
