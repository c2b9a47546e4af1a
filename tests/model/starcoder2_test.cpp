// StarCoder2 on a random checkpoint written by tests/reference/torch_llama.py (LayerNorms with
// weight and bias, biases on q/k/v/o_proj, a non-gated c_fc -> gelu_tanh -> c_proj MLP with
// biases, tied embeddings, and a sliding window of 8 that the 40-token sequence crosses): the
// reference path against PyTorch (float64), the fast path against the reference path at every
// weight type and ISA, the loader's checks of the bias tensors; then qlm-synth on the real
// StarCoder2-3B shape.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <functional>

#include "kernel_table.hpp"
#include "model/model_helpers.hpp"
#include "model_access.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/format/tensor_names.hpp"
#include "qlm/quant/importance.hpp"
#include "qlm/session.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/qlm_image.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

constexpr const char* kStarcoder2 = R"({"model_type": "starcoder2",
    "architectures": ["Starcoder2ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 2, "intermediate_size": 128,
    "vocab_size": 512, "use_bias": true, "norm_epsilon": 1e-5, "norm_type": "layer_norm",
    "mlp_type": "default", "hidden_act": "gelu_pytorch_tanh", "rope_theta": 999999.4420358813,
    "sliding_window": 8})";

// PyTorch logits of a deliberately wrong starcoder2 (see TORCH_LLAMA_ABLATE in torch_llama.py).
std::vector<float> ablated_torch_logits(const std::filesystem::path& dir,
                                        const std::vector<std::int32_t>& ids,
                                        const std::filesystem::path& scratch, const char* what) {
  ::setenv("TORCH_LLAMA_ABLATE", what, 1);
  auto logits = torch_logits(dir, ids, scratch);
  ::unsetenv("TORCH_LLAMA_ABLATE");
  return logits;
}

}  // namespace

TEST_CASE("starcoder2: logits match PyTorch on the reference and fast paths",
          "[model][starcoder2]") {
  TempDir tmp;
  check_every_type_against_torch(tmp.path(), kStarcoder2, 13, [](const ModelConfig& c) {
    REQUIRE(c.arch == Architecture::Starcoder2);
    REQUIRE(c.sliding_window == 8);
    REQUIRE(c.tie_word_embeddings);
  });
}

TEST_CASE("starcoder2: the biases, LayerNorm and window change the logits", "[model][starcoder2]") {
  // Guards the test above against agreeing vacuously: PyTorch's logits without the biases, with
  // RMSNorm for LayerNorm, or without the window are far from the real ones (and so from qlm's).
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, kStarcoder2, 13);
  const auto ids = pseudo_random_tokens(40);
  const auto real = torch_logits(dir, ids, tmp.path());
  CHECK(relative_max_diff(ablated_torch_logits(dir, ids, tmp.path(), "no_bias"), real) > 0.05f);
  CHECK(relative_max_diff(ablated_torch_logits(dir, ids, tmp.path(), "rms_norm"), real) > 0.05f);
  edit_config(dir, [](nlohmann::json& j) { j["sliding_window"] = nullptr; });
  CHECK(relative_max_diff(torch_logits(dir, ids, tmp.path()), real) > 0.05f);
}

TEST_CASE("starcoder2: the loader names a bias of the wrong shape or missing",
          "[model][starcoder2]") {
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, kStarcoder2, 5);
  convert_or_fail(dir, tmp / "good.qlm", DType::Q8);
  const auto good = read_bytes(tmp / "good.qlm");
  REQUIRE(Model::open(tmp / "good.qlm").ok());
  auto edited = [&](const std::string& name, std::uint64_t elements,
                    const std::function<void(format::TensorInfo&)>& edit) {
    QlmImage img = parse_qlm(good);
    const auto it = std::find_if(img.table.begin(), img.table.end(),
                                 [&](const format::TensorInfo& t) { return t.name == name; });
    REQUIRE(it != img.table.end());
    REQUIRE(it->shape == std::vector<std::uint64_t>{elements});
    edit(*it);
    const auto path = tmp / "bad.qlm";
    write_bytes(path, build_qlm(img));
    return Model::open(path);
  };
  const std::string bad = (tmp / "bad.qlm").string();
  const std::string c_fc_bias = "model.layers.1.mlp.c_fc.bias";
  const std::string ln_bias = "model.layers.0.post_attention_layernorm.bias";
  const std::string o_bias = "model.layers.0.self_attn.o_proj.bias";
  SECTION("c_fc bias of hidden_size elements instead of intermediate_size") {
    expect_error(edited(c_fc_bias, 128,
                        [](format::TensorInfo& t) {
                          t.shape = {64};
                          t.size = 64 * 4;
                        }),
                 ErrorCode::Format, {bad, c_fc_bias, "shape 64", "implies 128"});
  }
  SECTION("LayerNorm bias as a matrix") {
    expect_error(edited(ln_bias, 64,
                        [](format::TensorInfo& t) {
                          t.shape = {2, 32};
                        }),
                 ErrorCode::Format, {bad, ln_bias, "2x32", "implies 64"});
  }
  SECTION("o_proj bias missing") {
    expect_error(edited(o_bias, 64, [](format::TensorInfo& t) { t.name = "model.layers.0.other"; }),
                 ErrorCode::Format, {bad, o_bias, "missing"});
  }
}

TEST_CASE("starcoder2: channel scales fold into LayerNorm weight and bias", "[model][starcoder2]") {
  // Outlier LayerNorm channels (large weights, large biases) make the q/k/v and c_fc sites take a
  // scale; the float model must not change, which it would if the bias were left unscaled.
  TempDir tmp;
  const auto dir = tmp / "ckpt";
  torch_synth(dir, kStarcoder2, 17);
  auto tensors = load_tensors(dir);
  for (auto& t : tensors) {
    if (t.name.ends_with("layernorm.weight")) {
      for (std::size_t i = 0; i < 4; ++i) t.values[i] *= 12.0f;
    } else if (t.name.ends_with("layernorm.bias")) {
      for (std::size_t i = 4; i < 8; ++i) t.values[i] += 6.0f;
    }
  }
  write_tensors(dir, tensors, safetensors::SourceType::F32);
  convert_or_fail(dir, tmp / "plain.qlm", DType::F32);
  const auto plain = open_or_fail(tmp / "plain.qlm");
  const auto ids = pseudo_random_tokens(40);
  auto imp = std::make_shared<Importance>(plain->config());
  const auto a = eval_all_logits(plain, {.threads = 1, .observer = imp}, ids);
  REQUIRE(imp->save(tmp / "imp.qlmi").ok());
  ConvertOptions o{dir, tmp / "scaled.qlm", DType::F32, {}};
  o.importance = tmp / "imp.qlmi";
  const auto report = convert_checkpoint(o);
  REQUIRE(report.ok());
  const auto scaled = open_or_fail(tmp / "scaled.qlm");
  for (const char* name : {"input_layernorm.bias", "post_attention_layernorm.bias"}) {
    INFO(name);
    const auto bias = layer_tensor(0, name);
    const auto& sf = detail::model_file(*scaled);
    const auto& pf = detail::model_file(*plain);
    CHECK_FALSE(std::ranges::equal(sf.data(*sf.find(bias)->info), pf.data(*pf.find(bias)->info)));
  }
  const auto b = eval_all_logits(scaled, {.threads = 1}, ids);
  float range = 0.0f;
  for (float v : a) range = std::max(range, std::fabs(v));
  INFO("max |scaled - plain| = " << max_abs_diff(a, b) << " of " << range);
  CHECK(max_abs_diff(a, b) <= 1e-4f * range);
}

TEST_CASE("starcoder2: qlm-synth writes a StarCoder2-3B-shaped checkpoint that converts and runs",
          "[model][starcoder2][tools]") {
  TempDir tmp;
  auto model = synth_shape_model(tmp.path(), shared_data_dir() / "shapes" / "starcoder2-3b.json");
  const ModelConfig& c = model->config();
  CHECK(c.arch == Architecture::Starcoder2);
  CHECK(c.head_dim == 128);
  CHECK(c.sliding_window == 4096);
  check_reference_and_fast_agree(model);
}

}  // namespace qlm::test
