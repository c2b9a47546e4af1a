// Qwen3 on a random checkpoint written by tests/reference/torch_llama.py (per-head q/k RMSNorms
// before RoPE, an explicit head_dim of 32 where hidden / heads is 16, no q/k/v biases, tied
// embeddings): the reference path against PyTorch (float64), the fast path against the reference
// path at every weight type and ISA, and the loader's checks of the q/k norm tensors; then
// qlm-synth on the real Qwen3-0.6B shape.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>

#include "kernel_table.hpp"
#include "model/model_helpers.hpp"
#include "qlm/session.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/qlm_image.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

// hidden 64 over 4 heads would give head_dim 16: 32 makes q_proj [128, 64] and o_proj [64, 128].
constexpr const char* kQwen3 = R"({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"],
    "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
    "num_hidden_layers": 2, "vocab_size": 512, "attention_bias": false,
    "tie_word_embeddings": true, "rope_theta": 1000000.0, "rope_scaling": null,
    "rms_norm_eps": 1e-6, "use_sliding_window": false, "sliding_window": null,
    "max_window_layers": 2})";

}  // namespace

TEST_CASE("qwen3: logits match PyTorch on the reference and fast paths", "[model][qwen3]") {
  TempDir tmp;
  check_every_type_against_torch(tmp.path(), kQwen3, 11, [](const ModelConfig& c) {
    REQUIRE(c.arch == Architecture::Qwen3);
    REQUIRE(c.head_dim == 32);
  });
}

TEST_CASE("qwen3: the q/k norms change the logits", "[model][qwen3]") {
  // Guards the test above against agreeing vacuously (qlm and the reference both skipping the
  // norms): PyTorch's logits of the same weights read as qwen2, which has no q/k norms (nor, here,
  // biases), are far from its qwen3 logits.
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, kQwen3, 11);
  const auto ids = pseudo_random_tokens(16);
  const auto with_norms = torch_logits(dir, ids, tmp.path());
  edit_config(dir, [](nlohmann::json& j) {
    j["model_type"] = "qwen2";
    j["architectures"] = {"Qwen2ForCausalLM"};
  });
  const auto without = torch_logits(dir, ids, tmp.path());
  CHECK(relative_max_diff(without, with_norms) > 0.05f);
}

TEST_CASE("qwen3: the loader names a q/k norm tensor of the wrong shape or missing",
          "[model][qwen3]") {
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, kQwen3, 5);
  convert_or_fail(dir, tmp / "good.qlm", DType::Q8);
  const auto good = read_bytes(tmp / "good.qlm");
  REQUIRE(Model::open(tmp / "good.qlm").ok());
  const std::string q_norm = "model.layers.1.self_attn.q_norm.weight";
  const std::string k_norm = "model.layers.0.self_attn.k_norm.weight";
  auto edited = [&](const std::string& name, const std::function<void(format::TensorInfo&)>& edit) {
    QlmImage img = parse_qlm(good);
    const auto it = std::find_if(img.table.begin(), img.table.end(),
                                 [&](const format::TensorInfo& t) { return t.name == name; });
    REQUIRE(it != img.table.end());
    REQUIRE(it->shape == std::vector<std::uint64_t>{32});
    edit(*it);
    const auto path = tmp / "bad.qlm";
    write_bytes(path, build_qlm(img));
    return Model::open(path);
  };
  const std::string bad = (tmp / "bad.qlm").string();
  SECTION("q_norm of hidden_size / heads elements instead of head_dim") {
    expect_error(edited(q_norm,
                        [](format::TensorInfo& t) {
                          t.shape = {16};
                          t.size = 16 * 4;
                        }),
                 ErrorCode::Format, {bad, q_norm, "shape 16", "implies 32"});
  }
  SECTION("k_norm as a matrix") {
    expect_error(edited(k_norm,
                        [](format::TensorInfo& t) {
                          t.shape = {2, 16};
                        }),
                 ErrorCode::Format, {bad, k_norm, "2x16", "implies 32"});
  }
  SECTION("q_norm missing") {
    expect_error(edited(q_norm, [](format::TensorInfo& t) { t.name = "model.layers.1.other"; }),
                 ErrorCode::Format, {bad, q_norm, "missing"});
  }
}

TEST_CASE("qwen3: qlm-synth writes a Qwen3-0.6B-shaped checkpoint that converts and runs",
          "[model][qwen3][tools]") {
  TempDir tmp;
  auto model = synth_shape_model(tmp.path(), shared_data_dir() / "shapes" / "qwen3-0.6b.json",
                                 [](nlohmann::json& j) { j["max_window_layers"] = 2; });
  const ModelConfig& c = model->config();
  CHECK(c.arch == Architecture::Qwen3);
  CHECK(c.head_dim == 128);
  CHECK(c.n_heads * c.head_dim == 2 * c.hidden_size);
  check_reference_and_fast_agree(model);
}

}  // namespace qlm::test
