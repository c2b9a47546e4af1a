#!/usr/bin/env bash
# Quantization quality on the real stories260K model: every type and recipe against the model's own
# f32 conversion, on English text from Debian's fortunes package (scored: fortunes/wisdom;
# calibration for importance: fortunes/literature, a different text). Prints the markdown table of
# docs/quantization.md. Usage: bash bench/quantization.sh [build-dir] (default build-release);
# QLM_ONLY=regex keeps only the rows whose label matches.
# QLM_SYNTH=<shape> (a config of ../shared/shapes, e.g. smollm2-135m) measures a random-weight
# checkpoint of that real shape instead (qlm-synth, with the shape's own tokenizer from
# ../shared/tokenizers), on the first QLM_CHUNKS windows (default 8) of the same text, for the
# relative comparisons; rows that measure on a calibration text (models up to 50M parameters) are
# left out.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
model=../shared/models/stories260K
text=/usr/share/games/fortunes/wisdom
calib=/usr/share/games/fortunes/literature
out=out/quantization
limit=()
for f in "$text" "$calib"; do
  [ -f "$f" ] || { echo "missing $f: install Debian's fortunes package" >&2; exit 1; }
done
if [ -n "${QLM_SYNTH:-}" ]; then
  out=out/quantization-$QLM_SYNTH
  model=$out/checkpoint
  limit=(--chunks "${QLM_CHUNKS:-8}")
  mkdir -p "$out"
  [ -f "$model/config.json" ] || "$build/tools/qlm-synth" --config "../shared/shapes/$QLM_SYNTH.json" \
    --tokenizer "../shared/tokenizers/$QLM_SYNTH" -o "$model" >/dev/null
  QLM_ONLY=${QLM_ONLY:-'^(q8|q8 rtn|q4 rtn \(Q4_0\)|q4|q4 \+imp|q4nl|q4nl \+imp|q5|q5 \+imp|mixed|mixed \+imp)$'}
fi
mkdir -p "$out"
convert() {  # name, converter options...
  local name=$1; shift
  "$build/tools/qlm-convert" "$model" -o "$out/$name.qlm" "$@" 2>"$out/$name.convert.log"
}
ppl() {  # model, options...
  local m=$1; shift
  "$build/tools/qlm-perplexity" -m "$out/$m.qlm" -f "$text" -c 256 -t 1 "${limit[@]}" "$@" 2>/dev/null
}
field() { grep "^$1 = " | head -1 | sed "s/^$1 = //; s/ .*//"; }

convert f32 --type f32
ppl f32 --save-logits "$out/f32.logits" >/dev/null
convert q8 --type q8
# Per-column mean squares and, for inputs up to 1024 wide (all of stories260K's), E[x x^T]: the
# converter then also rounds with error feedback (GPTQ); `--no-gptq` turns that off.
"$build/tools/qlm-perplexity" -m "$out/q8.qlm" -f "$calib" -c 256 -t 1 \
  --save-importance "$out/importance.qlmi" >/dev/null 2>&1

variants=(
  "f16|--type f16"
  "bf16|--type bf16"
  "q8 rtn|--type q8 --scales rtn|--activations int8"
  "q8 rtn|--type q8 --scales rtn"
  "q8|--type q8|--activations int8"
  "q8|--type q8"
  "q8 +imp -gptq|--type q8 --importance $out/importance.qlmi --no-gptq|--activations int8"
  "q8 +imp -gptq|--type q8 --importance $out/importance.qlmi --no-gptq"
  "q8 +imp|--type q8 --importance $out/importance.qlmi|--activations int8"
  "q8 +imp|--type q8 --importance $out/importance.qlmi"
  "q4 rtn (Q4_0)|--type q4 --scales rtn"
  "q4|--type q4"
  "q4 +imp -gptq|--type q4 --importance $out/importance.qlmi --no-gptq"
  "q4 +imp|--type q4 --importance $out/importance.qlmi"
  "q4nl|--type q4nl"
  "q4nl +imp -gptq|--type q4nl --importance $out/importance.qlmi --no-gptq"
  "q4nl +imp|--type q4nl --importance $out/importance.qlmi"
  "q5 rtn (Q5_0)|--type q5 --scales rtn"
  "q5|--type q5"
  "q5 +imp|--type q5 --importance $out/importance.qlmi"
  "mixed q4|--type mixed --mixed-base q4"
  "mixed q4 +imp|--type mixed --mixed-base q4 --importance $out/importance.qlmi"
  "mixed|--type mixed"
  "mixed +imp|--type mixed --importance $out/importance.qlmi"
  "mixed q4 +imp +cal|--type mixed --mixed-base q4 --importance $out/importance.qlmi --calibration $calib"
  "mixed +imp +cal|--type mixed --importance $out/importance.qlmi --calibration $calib|--activations int8"
  "mixed +imp +cal|--type mixed --importance $out/importance.qlmi --calibration $calib"
  "mixed +imp +cal, whole matrices|--type mixed --importance $out/importance.qlmi --calibration $calib --mixed-bands 1"
  "mixed +imp +cal, q8 only|--type mixed --importance $out/importance.qlmi --calibration $calib --mixed-promote q8 --mixed-bands 1"
)
# A third field holds run-time options (--activations); rows sharing converter options share
# one converted file.
echo "| type | converter options | activations | bits/weight | file size | PPL | KLD mean | KLD p99 | same top |"
echo "|------|-------------------|-------------|------------:|----------:|----:|---------:|--------:|---------:|"
ref=$(ppl f32)
echo "| f32 | \`--type f32\` | f32 | 32.00 | $(stat -c %s "$out/f32.qlm") B | $(echo "$ref" | field PPL) | 0 | 0 | 100% |"
declare -A converted
for v in "${variants[@]}"; do
  IFS='|' read -r label opts run <<<"$v"
  [[ -z "${QLM_ONLY:-}" || "$label" =~ $QLM_ONLY ]] || continue
  name=$(echo "$opts" | md5sum | cut -c1-12)
  if [ -z "${converted[$name]:-}" ]; then
    # shellcheck disable=SC2086
    convert "$name" $opts
    converted[$name]=1
  fi
  bpw=$(grep '^wrote' "$out/$name.convert.log" | grep -o '[0-9.]* bits per weight' | cut -d' ' -f1)
  # shellcheck disable=SC2086
  r=$(ppl "$name" --kl "$out/f32.logits" $run)
  act=${run#--activations }
  echo "| $label | \`${opts//$out\//}\` | ${act:-auto} | $bpw | $(stat -c %s "$out/$name.qlm") B |" \
    "$(echo "$r" | field PPL) | $(echo "$r" | field 'KLD mean') | $(echo "$r" | field 'KLD p99') |" \
    "$(echo "$r" | field 'same top') |"
done
