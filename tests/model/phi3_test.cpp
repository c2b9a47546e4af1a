// Phi-3 / Phi-4-mini (phi3) on random checkpoints written by tests/reference/torch_llama.py: fused
// qkv_proj and gate_up_proj split by the converter, RoPE on 3/4 of each head (Phi-4-mini's
// partial_rotary_factor), and longrope with its short factors (context within the original) and
// long ones (beyond it), cos and sin scaled by the attention factor. The reference path is held to
// PyTorch (float64), the fast path to the reference path at every weight type and ISA.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "model/model_helpers.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/engine.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/session.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

// head_dim 32 with partial_rotary_factor 0.75: 24 rotated dims, 12 factors of each kind.
// `stretch`: max_position_embeddings / original_context, which sets the attention factor.
std::string phi3_config(std::uint32_t original_context, std::uint32_t stretch = 4) {
  nlohmann::json j = nlohmann::json::parse(R"({"model_type": "phi3",
      "architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
      "num_hidden_layers": 2, "vocab_size": 512, "partial_rotary_factor": 0.75,
      "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": true})");
  std::vector<double> short_f, long_f;
  for (int i = 0; i < 12; ++i) {
    short_f.push_back(1.0 + 0.05 * i);
    long_f.push_back(1.0 + 0.9 * i);
  }
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", short_f}, {"long_factor", long_f}};
  j["original_max_position_embeddings"] = original_context;
  j["max_position_embeddings"] = stretch * original_context;
  return j.dump();
}

void check_phi3(std::uint32_t original_context, std::uint32_t stretch, int seed) {
  TempDir tmp;  // the tests evaluate at a context of 128
  check_every_type_against_torch(tmp.path(), phi3_config(original_context, stretch), seed,
                                 [](const ModelConfig& c) {
                                   REQUIRE(c.arch == Architecture::Phi3);
                                   REQUIRE(c.rope_dim() == 24);
                                 });
}

}  // namespace

TEST_CASE("phi3: logits match PyTorch with longrope's short factors", "[model][phi3]") {
  check_phi3(256, 4, 21);  // a context of 128 is within the original 256
}

TEST_CASE("phi3: logits match PyTorch with longrope's long factors", "[model][phi3]") {
  // A context of 128 and 40 tokens are beyond the original 32. (With a stretch of 4, the
  // attention factor squared sharpens these random weights' attention enough that q4/q5's int8
  // activations drift 0.023-0.026 of the logit range from the f32 reference path, past the 0.02
  // every model test uses; f32/f16/bf16/q8 agree there as here.)
  check_phi3(32, 2, 22);
}

TEST_CASE("phi3: partial rotation and each factor set move PyTorch's logits", "[model][phi3]") {
  // Guards the tests above against agreeing vacuously.
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, phi3_config(32), 22);
  const auto ids = pseudo_random_tokens(40);
  const auto phi3 = torch_logits(dir, ids, tmp.path());
  const nlohmann::json original = nlohmann::json::parse(read_text(dir / "config.json"));
  auto moved = [&](const std::function<void(nlohmann::json&)>& edit) {
    edit_config(dir, [&](nlohmann::json& j) {
      j = original;
      edit(j);
    });
    return relative_max_diff(torch_logits(dir, ids, tmp.path()), phi3);
  };
  CHECK(moved([](auto& j) {
          j["partial_rotary_factor"] = 1.0;
          j["rope_scaling"] = nullptr;
        }) > 0.01f);
  CHECK(moved([](auto& j) { j["original_max_position_embeddings"] = 64; }) > 0.01f);  // short
  CHECK(moved([](auto& j) { j["rope_scaling"]["attention_factor"] = 1.0; }) > 0.01f);
}

TEST_CASE("phi3: a session's context picks the factors once", "[model][phi3]") {
  // llama.cpp's rule: contexts beyond the original take the long factors for every position, so
  // the same tokens give other logits at context 32 than at 33 on a model whose original is 32.
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, phi3_config(32), 3);
  convert_or_fail(dir, tmp / "m.qlm", DType::F32);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto ids = pseudo_random_tokens(20);
  const auto within = eval_all_logits(model, {.context = 32}, ids);
  const auto beyond = eval_all_logits(model, {.context = 33}, ids);
  const auto beyond_ref = eval_all_logits(model, {.context = 33, .isa = "reference"}, ids);
  CHECK(relative_max_diff(within, beyond) > 0.01f);
  CHECK(relative_max_diff(beyond, beyond_ref) <= 1e-5f);
}

TEST_CASE("phi3: a sequence saved with one factor set is not restored under the other",
          "[model][phi3][engine]") {
  // Its keys were rotated with the factors its engine's context chose: an engine whose context
  // lies on the other side of the original would attend over wrongly rotated keys.
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, phi3_config(32), 4);
  convert_or_fail(dir, tmp / "m.qlm", DType::F32);
  auto model = open_or_fail(tmp / "m.qlm");
  const auto ids = pseudo_random_tokens(12);
  auto save = [&](std::uint32_t context, const std::filesystem::path& path) {
    auto engine = Engine::create(model, {.context = context, .threads = 1});
    REQUIRE(engine.ok());
    const SequenceId s = engine->add();
    const BatchItem item{s, ids};
    REQUIRE(engine->eval({&item, 1}).ok());
    REQUIRE(engine->save(s, path).ok());
  };
  save(32, tmp / "short.qlms");  // within the original: short factors
  save(64, tmp / "long.qlms");
  for (std::uint32_t context : {16u, 32u, 33u, 64u}) {
    INFO("context " << context);
    auto engine = Engine::create(model, {.context = context, .threads = 1});
    REQUIRE(engine.ok());
    const bool long_factors = context > 32;
    auto same = engine->restore(tmp / (long_factors ? "long.qlms" : "short.qlms"));
    CHECK(same.ok());
    const std::uint32_t used = engine->pool_stats().used;
    auto other = engine->restore(tmp / (long_factors ? "short.qlms" : "long.qlms"));
    REQUIRE_FALSE(other.ok());
    CHECK(contains(other.error().message, "longrope"));
    CHECK(engine->pool_stats().used == used);  // refused with nothing changed
  }
}

TEST_CASE("phi3: qlm-synth writes a Phi-4-mini-shaped checkpoint that converts and runs",
          "[model][phi3][tools]") {
  TempDir tmp;
  auto model = synth_shape_model(tmp.path(), shared_data_dir() / "shapes" / "phi-4-mini.json",
                                 [](nlohmann::json& j) { j["pad_token_id"] = 1001; });
  const ModelConfig& c = model->config();
  CHECK(c.arch == Architecture::Phi3);
  CHECK(c.head_dim == 128);
  CHECK(c.rope_dim() == 96);
  for (std::uint32_t context : {16u, 8192u}) {  // short and long factors
    INFO("context " << context);
    check_reference_and_fast_agree(model, context);
  }
}

}  // namespace qlm::test

namespace qlm::test {

TEST_CASE("phi3: the conversion report counts each split part once", "[model][phi3]") {
  // qkv_proj and gate_up_proj are split into q/k/v and gate/up: the parameters reported are the
  // file's tensors' elements, not each fused source counted once per part.
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, phi3_config(32), 5);
  const auto report = convert_checkpoint({dir, tmp / "m.qlm", DType::Q8, {}});
  REQUIRE(report.ok());
  const auto file = format::ModelFile::open(tmp / "m.qlm");
  REQUIRE(file.ok());
  std::uint64_t elements = 0;
  for (const auto& t : (*file)->tensors()) elements += t.elements();
  CHECK(report->weights == elements);
}

}  // namespace qlm::test
