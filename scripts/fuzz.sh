#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs them (tests/fuzz/README.md).
# Usage: scripts/fuzz.sh ci [SECONDS]         replay the saved corpora and the seeds, then fuzz every
#                                              target, one per core at a time, for SECONDS in all
#                                              (default 240)
#        scripts/fuzz.sh campaign SECONDS     fuzz each target for SECONDS on every core (or on
#                                              $QLM_FUZZ_JOBS cores), then merge what grew
#                                              coverage into tests/fuzz/corpus/
# Seeds come from ../shared and from what build-release's tools make of stories260K (built first
# if missing). Any crash, leak, timeout or out-of-memory fails the run and leaves the input in
# $QLM_FUZZ_OUT (default build-fuzz/findings): copy it to tests/fuzz/corpus/<target>/ with the fix.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mode="${1:-ci}"
seconds="${2:-240}"
build="$root/build-fuzz"
out="${QLM_FUZZ_OUT:-$build/findings}"
release="$root/build-release"

if [ ! -x "$release/tools/qlm-perplexity" ]; then
  cmake -S . -B "$release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$release" --target qlm-convert qlm-perplexity
fi
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DQLM_FUZZ=ON -DQLM_WERROR=ON \
  -DQLM_BUILD_TESTS=OFF -DQLM_BUILD_TOOLS=OFF -DQLM_BUILD_BENCH=OFF -DQLM_BUILD_EXAMPLES=OFF \
  -DQLM_INSTALL=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"

seeds="$build/seeds"
rm -rf "$seeds"
python3 tests/fuzz/make_seeds.py "$seeds" "$release"
mkdir -p "$out"
export QLM_FUZZ_TMP="$build/tmp"
mkdir -p "$QLM_FUZZ_TMP"

targets=()
for t in "$build"/tests/fuzz/fuzz_*; do targets+=("$(basename "$t")"); done

# Per-target input bound: every input may cost at most 2 x its size + 64 MiB in one allocation
# (-malloc_limit_mb), and the RSS a little more (the process's own tables).
max_len() {
  case "$1" in
    fuzz_qlm_file) echo 1048576 ;;
    fuzz_safetensors) echo 1100000 ;;
    fuzz_encode) echo 4096 ;;
    fuzz_sequence_file) echo 131072 ;;  # a 64-token f32 seed is 82 kB
    *) echo 65536 ;;
  esac
}
flags() {
  local len
  len="$(max_len "$1")"
  local dict=()
  [ -f "$root/tests/fuzz/$1.dict" ] && dict=("-dict=$root/tests/fuzz/$1.dict")
  echo "-max_len=$len -malloc_limit_mb=$((64 + 2 * len / 1048576 + 1)) -rss_limit_mb=2048" \
    "-timeout=20 -artifact_prefix=$out/$1- -print_final_stats=1 ${dict[*]:-}"
}

corpus_dirs() {  # saved regressions and minimized corpus, then the seeds
  local dirs=()
  [ -d "$root/tests/fuzz/corpus/$1" ] && dirs+=("$root/tests/fuzz/corpus/$1")
  [ -d "$seeds/$1" ] && dirs+=("$seeds/$1")
  echo "${dirs[@]}"
}

case "$mode" in
  ci)
    # SECONDS of fuzzing shared by the targets, which run one per core at a time: the phase takes
    # SECONDS / cores plus the replays.
    cores="$(nproc)"
    per=$((seconds / ${#targets[@]}))
    run_target() {  # <target>: replay, then fuzz; the log's tail on failure
      local t="$1" work="$build/work/$1"
      # shellcheck disable=SC2046
      "$build/tests/fuzz/$t" $(flags "$t") -runs=0 $(corpus_dirs "$t") 2>"$out/$t.replay.log" ||
        { echo "== $t: replay failed"; tail -40 "$out/$t.replay.log"; return 1; }
      mkdir -p "$work"
      # shellcheck disable=SC2046
      "$build/tests/fuzz/$t" $(flags "$t") -max_total_time="$per" "$work" $(corpus_dirs "$t") \
        2>"$out/$t.fuzz.log" || { echo "== $t: finding"; tail -40 "$out/$t.fuzz.log"; return 1; }
      echo "== $t: replayed $(corpus_dirs "$t" | wc -w) corpus dir(s), fuzzed ${per}s:" \
        "$(grep -E "^stat::number_of_executed_units" "$out/$t.fuzz.log" | tail -1)"
    }
    failed=0
    pids=()
    for t in "${targets[@]}"; do
      if [ "${#pids[@]}" -ge "$cores" ]; then  # wait for the oldest before starting another
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
      fi
      run_target "$t" &
      pids+=("$!")
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    [ "$failed" = 0 ] || { echo "fuzz: a target failed (logs in $out)"; exit 1; }
    echo "fuzz: ${#targets[@]} targets replayed and fuzzed, no finding"
    ;;
  campaign)
    jobs="${QLM_FUZZ_JOBS:-$(nproc)}"
    for t in "${targets[@]}"; do
      mkdir -p "$out/$t.jobs"
      cd "$out/$t.jobs"  # libFuzzer writes each job's log (fuzz-N.log) into the working directory
      work="$build/campaign/$t"
      mkdir -p "$work"
      echo "== $t: ${seconds}s on $jobs jobs"
      # shellcheck disable=SC2046
      "$build/tests/fuzz/$t" $(flags "$t") -max_total_time="$seconds" -jobs="$jobs" \
        -workers="$jobs" "$work" $(corpus_dirs "$t") >"$out/$t.campaign.log" 2>&1 || true
      mkdir -p "$root/tests/fuzz/corpus/$t"
      # shellcheck disable=SC2046
      "$build/tests/fuzz/$t" $(flags "$t") -merge=1 "$root/tests/fuzz/corpus/$t" "$work" \
        >"$out/$t.merge.log" 2>&1
      tail -1 "$out/$t.merge.log"
      grep -h "DONE\|number_of_executed_units" fuzz-*.log || true
      # Inputs over 8 KiB stay out of the repository: the seeds cover the large files.
      find "$root/tests/fuzz/corpus/$t" -type f -size +8k -delete
    done
    if ls "$out"/fuzz_*-{crash,leak,timeout,oom,slow-unit}-* >/dev/null 2>&1; then
      echo "fuzz: findings:"; ls "$out"/fuzz_*-{crash,leak,timeout,oom,slow-unit}-* 2>/dev/null
      exit 1
    fi
    ;;
  *)
    echo "fuzz.sh: unknown mode '$mode' (ci or campaign)" >&2
    exit 2
    ;;
esac
