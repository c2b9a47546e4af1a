// Helpers for model-level tests: converting checkpoints, running the PyTorch reference and tools.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "qlm/format/dtype.hpp"
#include "qlm/model.hpp"
#include "qlm/session.hpp"

namespace qlm::test {

/// Converts a Hugging Face directory to `out` with `type`; REQUIREs success.
void convert_or_fail(const std::filesystem::path& dir, const std::filesystem::path& out,
                     DType type);

/// Opens a .qlm model; REQUIREs success.
std::shared_ptr<const Model> open_or_fail(const std::filesystem::path& path);

/// Float32 logits [ids.size()][vocab] from tests/reference/torch_llama.py (float64 math).
std::vector<float> torch_logits(const std::filesystem::path& dir,
                                const std::vector<std::int32_t>& ids,
                                const std::filesystem::path& scratch);

/// Writes a random checkpoint with tests/reference/torch_llama.py synth (config overrides as JSON).
void torch_synth(const std::filesystem::path& out_dir, const std::string& overrides_json, int seed);

/// A real model's config (`config_json`, e.g. ../shared/shapes/qwen3-0.6b.json) cut to 2 layers
/// and a 1024-token vocabulary (BOS 1000, EOS 1001), then `edit`ed, filled with random weights
/// by qlm-synth in `dir`, converted to q8 and opened; REQUIREs success. Every per-layer shape
/// stays the real model's (the full embedding alone would take a minute to convert).
std::shared_ptr<const Model> synth_shape_model(
    const std::filesystem::path& dir, const std::filesystem::path& config_json,
    const std::function<void(nlohmann::json&)>& edit = {});

/// Runs 7 tokens through `model`'s reference and fast paths at `context`: finite logits that
/// agree within 0.02 of the logit range.
void check_reference_and_fast_agree(std::shared_ptr<const Model> model, std::uint32_t context = 16);

/// Runs a shell command; returns its exit status and captures stdout (stderr to `stderr_file`).
int run_command(const std::string& command, std::string& out);

/// Path of a built tool ("qlm-run" -> <build>/tools/qlm-run).
std::string tool_path(const std::string& name);

/// Largest absolute difference between two equally long vectors.
float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

/// max_abs_diff(a, ref) divided by the spread (max - min) of `ref`: one tolerance then fits
/// models whose logits have different scales.
float relative_max_diff(const std::vector<float>& a, const std::vector<float>& ref);

/// Logits [ids.size()][vocab] of `ids` evaluated by a new Session with `options`; REQUIREs
/// success. Tests compare sessions that differ only in their options, so the options are explicit.
std::vector<float> eval_all_logits(std::shared_ptr<const Model> model, SessionOptions options,
                                   std::span<const std::int32_t> ids);

/// Checks `model`'s logits of `ids` against PyTorch's (`torch`, from torch_logits) on the reference
/// path and every ISA's fast path. f32 weights: within 1e-4 of PyTorch (the same math up to float
/// rounding). Other types change the weights themselves, so the fast path is held to the reference
/// path at the same type: within 1e-5 (float) or 0.02 (quantized) of the logit range.
void check_logits_against_torch(std::shared_ptr<const Model> model,
                                std::span<const std::int32_t> ids, const std::vector<float>& torch,
                                DType type);

/// Writes a random checkpoint of `overrides_json` (torch_synth, `seed`) in `dir`/ckpt and holds
/// it, converted to every weight type in turn, to PyTorch's logits of 40 pseudo-random tokens
/// (check_logits_against_torch); `check_config` sees each converted model's config first.
void check_every_type_against_torch(const std::filesystem::path& dir,
                                    const std::string& overrides_json, int seed,
                                    const std::function<void(const ModelConfig&)>& check_config);

/// A fixed pseudo-random sequence of `n` ids starting with BOS; ids < 512 fit the vocabulary of
/// every test model, and the fixed seed keeps long-context results reproducible.
std::vector<std::int32_t> pseudo_random_tokens(std::size_t n);

/// stories260K-style prompt of at least 40 tokens (REQUIREd): natural text, so the fast and
/// reference paths are compared on realistic activations.
std::vector<std::int32_t> story_tokens(const Model& model);

}  // namespace qlm::test
