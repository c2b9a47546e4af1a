// Gemma 3 (gemma3_text) on random checkpoints written by tests/reference/torch_gemma3.py: scaled
// embeddings, (1 + w) RMSNorms before and after attention and the MLP, q/k norms, GeGLU, a score
// scale from query_pre_attn_scalar, and sliding-window layers with their own RoPE base between
// global ones. The reference path is held to PyTorch (float64), the fast path to the reference
// path at every weight type and ISA; then qlm-synth on the real Gemma 3 1B shape.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "model/model_helpers.hpp"
#include "qlm/session.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

// Four layers alternating sliding (window 8) and global; head_dim 32 with a score scale of
// 1/sqrt(24); one KV head for four query heads, as Gemma 3 1B.
constexpr const char* kGemma3 = R"({"model_type": "gemma3_text", "hidden_size": 64,
    "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32,
    "num_hidden_layers": 4, "vocab_size": 512, "query_pre_attn_scalar": 24, "sliding_window": 8,
    "sliding_window_pattern": 2, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0})";

std::filesystem::path gemma3_checkpoint(const TempDir& tmp, int seed) {
  const auto dir = tmp / "ckpt";
  torch_synth(dir, kGemma3, seed);
  return dir;
}

}  // namespace

TEST_CASE("gemma3: logits match PyTorch on the reference and fast paths", "[model][gemma3]") {
  TempDir tmp;
  const auto dir = gemma3_checkpoint(tmp, 13);
  const auto ids = pseudo_random_tokens(40);  // 5 windows: the sliding layers drop keys
  const auto torch = torch_logits(dir, ids, tmp.path());
  for (DType type :
       {DType::F32, DType::F16, DType::BF16, DType::Q8, DType::Q5, DType::Q4, DType::Q4NL}) {
    INFO("type " << to_string(type));
    const auto path = tmp / "model.qlm";
    convert_or_fail(dir, path, type);
    auto model = open_or_fail(path);
    const ModelConfig& c = model->config();
    REQUIRE(c.arch == Architecture::Gemma3);
    REQUIRE(c.sliding(0));
    REQUIRE_FALSE(c.sliding(1));
    check_logits_against_torch(model, ids, torch, type);
  }
}

TEST_CASE("gemma3: every Gemma feature moves PyTorch's logits", "[model][gemma3]") {
  // Guards the test above against agreeing vacuously: with any one of the features changed, the
  // reference's logits of the same weights are far from its Gemma 3 logits.
  TempDir tmp;
  const auto dir = gemma3_checkpoint(tmp, 13);
  const auto ids = pseudo_random_tokens(40);
  const auto gemma = torch_logits(dir, ids, tmp.path());
  const nlohmann::json original = nlohmann::json::parse(read_text(dir / "config.json"));
  const std::vector<std::pair<const char*, nlohmann::json>> edits{
      {"sliding_window_pattern", 1},       // every layer global
      {"sliding_window", 4096},            // windows wider than the sequence
      {"query_pre_attn_scalar", 32},       // the usual 1/sqrt(head_dim)
      {"rope_local_base_freq", 1000000.0}  // sliding layers rotate as global ones
  };
  for (const auto& [key, value] : edits) {
    INFO(key);
    edit_config(dir, [&](nlohmann::json& j) {
      j = original;
      j[key] = value;
    });
    CHECK(relative_max_diff(torch_logits(dir, ids, tmp.path()), gemma) > 0.01f);
  }
}

TEST_CASE("gemma3: one sequence is the same alone and in any chunking", "[model][gemma3]") {
  // Rows of one chunk meet sliding and global layers at different positions: chunked prefill
  // must give the same bits as token-by-token decoding.
  TempDir tmp;
  const auto dir = gemma3_checkpoint(tmp, 5);
  convert_or_fail(dir, tmp / "m.qlm", DType::Q4);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto ids = pseudo_random_tokens(37);
  const auto whole = eval_all_logits(model, {.context = 64, .threads = 2}, ids);
  const auto steps = eval_all_logits(model, {.context = 64, .threads = 1, .batch = 3}, ids);
  REQUIRE(whole.size() == steps.size());
  CHECK(std::equal(whole.begin(), whole.end(), steps.begin()));
}

TEST_CASE("gemma3: qlm-synth writes a Gemma-3-1B-shaped checkpoint that converts and runs",
          "[model][gemma3][tools]") {
  // The published config (tests/data/shapes) with 2 of its 26 layers, one sliding and one global,
  // and a 1024-token vocabulary; every per-layer shape is Gemma 3 1B's.
  TempDir tmp;
  const auto cfg_dir = tmp / "cfg";
  std::filesystem::create_directories(cfg_dir);
  std::filesystem::copy_file(
      std::filesystem::path(QLM_SOURCE_DIR) / "tests/data/shapes/gemma-3-1b.json",
      cfg_dir / "config.json");
  edit_config(cfg_dir, [](nlohmann::json& j) {
    j["num_hidden_layers"] = 2;
    j["sliding_window_pattern"] = 2;
    j["sliding_window"] = 4;
    j["vocab_size"] = 1024;
    j["bos_token_id"] = 1000;
    j["eos_token_id"] = 1001;
  });
  std::string out;
  const std::string cmd = fmt::format("'{}' --config '{}' -o '{}' 2>&1", tool_path("qlm-synth"),
                                      (cfg_dir / "config.json").string(), (tmp / "ckpt").string());
  const int rc = run_command(cmd, out);
  INFO(cmd << "\n" << out);
  REQUIRE(rc == 0);
  convert_or_fail(tmp / "ckpt", tmp / "m.qlm", DType::Q8);
  auto model = open_or_fail(tmp / "m.qlm");
  const ModelConfig& c = model->config();
  CHECK(c.arch == Architecture::Gemma3);
  CHECK(c.head_dim == 256);
  CHECK(c.n_heads * c.head_dim == 1024);
  CHECK(c.window(0) == 4);
  CHECK(c.window(1) == 0);
  const std::vector<std::int32_t> ids{1000, 5, 77, 300, 12, 900, 4};
  const auto ref = eval_all_logits(model, {.context = 16, .isa = "reference"}, ids);
  const auto fast = eval_all_logits(model, {.context = 16}, ids);
  REQUIRE(ref.size() == ids.size() * 1024);
  CHECK(std::all_of(ref.begin(), ref.end(), [](float v) { return std::isfinite(v); }));
  CHECK(relative_max_diff(fast, ref) <= 0.02f);
}

}  // namespace qlm::test
