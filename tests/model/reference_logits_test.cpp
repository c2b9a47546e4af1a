// qlm's f32 reference path against an independent PyTorch implementation (float64), on the real
// stories260K model and on random checkpoints covering qwen2 biases, llama3 RoPE scaling, GQA
// ratios 1/2/4 and Mistral's sliding window.
#include <catch2/catch.hpp>

#include "model/model_helpers.hpp"
#include "qlm/session.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

std::vector<float> qlm_logits(const std::filesystem::path& qlm,
                              const std::vector<std::int32_t>& ids) {
  return eval_all_logits(open_or_fail(qlm), {.context = 128, .isa = "reference"}, ids);
}

void compare_with_torch(const std::filesystem::path& dir, const TempDir& tmp, std::size_t n) {
  const auto ids = pseudo_random_tokens(n);
  const auto qlm_path = tmp / "model.qlm";
  convert_or_fail(dir, qlm_path, DType::F32);
  const auto ours = qlm_logits(qlm_path, ids);
  const auto theirs = torch_logits(dir, ids, tmp.path());
  REQUIRE(ours.size() == theirs.size());
  const float diff = max_abs_diff(ours, theirs);
  INFO("max |qlm - torch| = " << diff);
  CHECK(diff <= 1e-4f);
}

}  // namespace

TEST_CASE("stories260K f32 logits match PyTorch over 64 tokens", "[model][reference]") {
  TempDir tmp;
  compare_with_torch(stories_dir(), tmp, 64);
}

TEST_CASE("random checkpoints match PyTorch", "[model][reference]") {
  struct Variant {
    const char* name;
    const char* overrides;
  };
  const Variant variant = GENERATE(
      Variant{"gqa ratio 1", R"({"num_attention_heads": 4, "num_key_value_heads": 4})"},
      Variant{"gqa ratio 2", R"({"num_attention_heads": 4, "num_key_value_heads": 2})"},
      Variant{"gqa ratio 4", R"({"num_attention_heads": 8, "num_key_value_heads": 2})"},
      Variant{"qwen2 biases", R"({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
              "tie_word_embeddings": true})"},
      Variant{"llama3 rope scaling",
              R"({"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 64}})"},
      Variant{"mistral sliding window", R"({"model_type": "mistral", "sliding_window": 8,
              "architectures": ["MistralForCausalLM"]})"});
  INFO(variant.name);
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, variant.overrides, 7);
  compare_with_torch(dir, tmp, 40);
}

}  // namespace qlm::test
