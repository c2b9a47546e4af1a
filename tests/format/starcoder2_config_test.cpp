// StarCoder2's config.json: the real StarCoder2-3B one is read (LayerNorm eps from norm_epsilon,
// use_bias, the sliding window, tied embeddings by default) with the tensors it implies (LayerNorm
// and o_proj biases, c_fc / c_proj in place of gate/up/down); unknown activations, norm types, MLP
// types and RoPE scalings are refused by name; the converter checks the bias tensors.
#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "qlm/convert/convert.hpp"
#include "qlm/convert/hf_config.hpp"
#include "qlm/format/tensor_names.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

using qlm::ErrorCode;
using qlm::test::expect_error;
using qlm::test::TempDir;
namespace fs = std::filesystem;

// tmp/cfg/config.json: the real StarCoder2-3B config after `edit`.
fs::path starcoder2_config(const TempDir& tmp,
                           const std::function<void(nlohmann::json&)>& edit = {},
                           bool tokenizer = false) {
  return qlm::test::config_from(
      tmp / "cfg", qlm::test::shared_data_dir() / "shapes" / "starcoder2-3b.json", edit, tokenizer);
}

const qlm::ExpectedTensor& find(const std::vector<qlm::ExpectedTensor>& t, std::string_view name) {
  const auto it = std::find_if(t.begin(), t.end(), [&](const auto& e) { return e.name == name; });
  REQUIRE(it != t.end());
  return *it;
}

bool has(const std::vector<qlm::ExpectedTensor>& t, std::string_view name) {
  return std::any_of(t.begin(), t.end(), [&](const auto& e) { return e.name == name; });
}

}  // namespace

TEST_CASE("starcoder2: the real StarCoder2-3B config.json is read", "[convert][starcoder2]") {
  const TempDir tmp;
  const auto c = qlm::read_hf_config(starcoder2_config(tmp));
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c.ok());
  CHECK(c->arch == qlm::Architecture::Starcoder2);
  CHECK(qlm::to_string(c->arch) == "starcoder2");
  CHECK(c->layer_norm());
  CHECK_FALSE(c->gated_mlp());
  CHECK(c->output_biases());
  CHECK_FALSE(c->qk_norm());
  CHECK(c->hidden_size == 3072);
  CHECK(c->n_layers == 30);
  CHECK(c->n_heads == 24);
  CHECK(c->n_kv_heads == 2);
  CHECK(c->head_dim == 128);
  CHECK(c->intermediate_size == 12288);
  CHECK(c->vocab_size == 49152);
  CHECK(c->sliding_window == 4096);
  CHECK(c->tie_word_embeddings);  // no key: Starcoder2Config's default
  CHECK(c->attention_bias);
  CHECK(c->rms_norm_eps == 1e-5f);  // norm_epsilon
  CHECK(c->rope_theta == 999999.4420358813f);
  CHECK(c->rope_scaling.type == qlm::RopeScaling::Type::None);
  CHECK(c->max_position_embeddings == 16384);
  CHECK(c->bos_id == 0);
  CHECK(c->eos_id == 0);

  const auto t = qlm::expected_tensors(*c);
  const std::string p = "model.layers.29.";
  auto shape = [&](const std::string& name) { return find(t, name).shape; };
  using S = std::vector<std::uint64_t>;
  CHECK(shape(p + "self_attn.q_proj.weight") == S{3072, 3072});
  CHECK(shape(p + "self_attn.k_proj.weight") == S{256, 3072});
  CHECK(shape(p + "self_attn.v_proj.bias") == S{256});
  CHECK(shape(p + "self_attn.o_proj.bias") == S{3072});
  CHECK(shape(p + "mlp.c_fc.weight") == S{12288, 3072});
  CHECK(shape(p + "mlp.c_fc.bias") == S{12288});
  CHECK(shape(p + "mlp.c_proj.weight") == S{3072, 12288});
  CHECK(shape(p + "mlp.c_proj.bias") == S{3072});
  for (const std::string& norm : std::vector<std::string>{
           p + "input_layernorm.bias", p + "post_attention_layernorm.bias", "model.norm.bias"}) {
    CHECK(shape(norm) == S{3072});
    CHECK_FALSE(find(t, norm).matrix);  // stored f32 like every norm
  }
  CHECK_FALSE(has(t, p + "mlp.gate_proj.weight"));
  CHECK_FALSE(has(t, p + "mlp.up_proj.weight"));
  CHECK_FALSE(has(t, "lm_head.weight"));
  // 30 layers x (2 LayerNorms x 2 + q/k/v/o x 2 + c_fc/c_proj x 2) + embedding + final norm x 2.
  CHECK(t.size() == 30 * 16 + 3);
  CHECK(qlm::matrices_reading(*c, qlm::MatrixInput::Mlp, 3) ==
        std::vector<std::string>{"model.layers.3.mlp.c_fc.weight"});
  CHECK(qlm::matrices_reading(*c, qlm::MatrixInput::MlpHidden, 3) ==
        std::vector<std::string>{"model.layers.3.mlp.c_proj.weight"});
}

TEST_CASE("starcoder2: use_bias false and an untied head", "[convert][starcoder2]") {
  const TempDir tmp;
  const auto c = qlm::read_hf_config(starcoder2_config(tmp, [](auto& j) {
    j["use_bias"] = false;
    j["tie_word_embeddings"] = false;
  }));
  REQUIRE(c.ok());
  CHECK_FALSE(c->attention_bias);
  CHECK_FALSE(c->tie_word_embeddings);
  const auto t = qlm::expected_tensors(*c);
  CHECK(has(t, "lm_head.weight"));
  CHECK_FALSE(has(t, "model.layers.0.self_attn.q_proj.bias"));
  CHECK_FALSE(has(t, "model.layers.0.mlp.c_fc.bias"));
  CHECK(has(t, "model.layers.0.input_layernorm.bias"));  // LayerNorm biases stay
}

TEST_CASE("starcoder2: unknown activations, norms, MLPs and RoPE scalings are refused by name",
          "[convert][starcoder2]") {
  const TempDir tmp;
  auto refused = [&](const std::function<void(nlohmann::json&)>& edit, std::string_view key,
                     std::string_view value) {
    const auto dir = starcoder2_config(tmp, edit);
    expect_error(qlm::read_hf_config(dir), ErrorCode::Unsupported,
                 {"starcoder2", key, value, (dir / "config.json").string()});
  };
  SECTION("hidden_act silu") {
    refused([](auto& j) { j["hidden_act"] = "silu"; }, "hidden_act", "silu");
  }
  SECTION("hidden_act gelu (exact erf)") {
    refused([](auto& j) { j["hidden_act"] = "gelu"; }, "hidden_act", "'gelu'");
  }
  SECTION("norm_type rms_norm") {
    refused([](auto& j) { j["norm_type"] = "rms_norm"; }, "norm_type", "rms_norm");
  }
  SECTION("mlp_type gated") {
    refused([](auto& j) { j["mlp_type"] = "gated"; }, "mlp_type", "gated");
  }
  SECTION("linear RoPE scaling") {
    refused(
        [](auto& j) {
          j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
        },
        "rope_scaling", "linear");
  }
  SECTION("llama3 RoPE scaling") {
    refused(
        [](auto& j) {
          j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
        },
        "rope_scaling", "llama3");
  }
}

TEST_CASE("starcoder2: the converter names a missing or misshapen bias", "[convert][starcoder2]") {
  const TempDir tmp;
  // A one-layer StarCoder2-3B shrunk to stories260K's vocabulary (whose tokenizer it borrows);
  // its tensors come from expected_tensors() itself.
  const auto dir = starcoder2_config(
      tmp,
      [](auto& j) {
        j["num_hidden_layers"] = 1;
        j["hidden_size"] = 64;
        j["intermediate_size"] = 128;
        j["num_attention_heads"] = 4;
        j["num_key_value_heads"] = 2;
        j["vocab_size"] = 512;
        j["bos_token_id"] = 1;
        j["eos_token_id"] = 2;
      },
      true);
  const auto config = qlm::read_hf_config(dir);
  REQUIRE(config.ok());
  const auto tensors = qlm::test::expected_host_tensors(*config, 0.5f);
  auto convert = [&](const std::vector<qlm::test::HostTensor>& t) {
    qlm::test::write_tensors(dir, t, qlm::safetensors::SourceType::BF16);
    return qlm::convert_checkpoint({dir, tmp / "out.qlm", qlm::DType::Q8, {}});
  };
  const std::string c_proj_bias = "model.layers.0.mlp.c_proj.bias";
  const std::string ln_bias = "model.norm.bias";
  SECTION("complete") {
    const auto r = convert(tensors);
    INFO((r ? std::string() : r.error().message));
    CHECK(r.ok());
  }
  SECTION("misshapen") {
    auto t = tensors;
    auto& b = qlm::test::find_tensor(t, c_proj_bias);
    b.shape = {128};
    b.values.resize(128);
    expect_error(convert(t), ErrorCode::Format,
                 {c_proj_bias, "128", "64", (dir / "model.safetensors").string()});
  }
  SECTION("missing") {
    auto t = tensors;
    std::erase_if(t, [&](const auto& h) { return h.name == ln_bias; });
    expect_error(convert(t), ErrorCode::Format, {ln_bias, "missing", dir.string()});
  }
}
