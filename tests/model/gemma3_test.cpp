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
  // 40 tokens are 5 windows: the sliding layers drop keys.
  TempDir tmp;
  check_every_type_against_torch(tmp.path(), kGemma3, 13, [](const ModelConfig& c) {
    REQUIRE(c.arch == Architecture::Gemma3);
    REQUIRE(c.sliding(0));
    REQUIRE_FALSE(c.sliding(1));
  });
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
  // The published config (tests/data/shapes), one sliding layer with a window of 4 (the 7 tokens
  // outgrow it) and one global layer.
  TempDir tmp;
  auto model = synth_shape_model(
      tmp.path(), std::filesystem::path(QLM_SOURCE_DIR) / "tests/data/shapes/gemma-3-1b.json",
      [](nlohmann::json& j) {
        j["sliding_window_pattern"] = 2;
        j["sliding_window"] = 4;
      });
  const ModelConfig& c = model->config();
  CHECK(c.arch == Architecture::Gemma3);
  CHECK(c.head_dim == 256);
  CHECK(c.n_heads * c.head_dim == 1024);
  CHECK(c.window(0) == 4);
  CHECK(c.window(1) == 0);
  check_reference_and_fast_agree(model);
}

}  // namespace qlm::test
