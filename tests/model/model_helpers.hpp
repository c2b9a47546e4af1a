// Helpers for model-level tests: converting checkpoints, running the PyTorch reference and tools.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "qlm/dtype.hpp"
#include "qlm/model.hpp"

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

/// Runs a shell command; returns its exit status and captures stdout (stderr to `stderr_file`).
int run_command(const std::string& command, std::string& out);

/// Path of a built tool ("qlm-run" -> <build>/tools/qlm-run).
std::string tool_path(const std::string& name);

/// Largest absolute difference between two equally long vectors.
float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace qlm::test
