// Gemma 3's config.json: the published Gemma 3 1B (sliding_window_pattern) and 270M (layer_types)
// configs are read with the tensors they imply (sandwich norms, q/k norms); the multimodal
// "gemma3", logit soft-capping, other activations and irregular layer_types are refused by name;
// the converter stores Gemma's norm weights as 1 + w.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <nlohmann/json.hpp>

#include "qlm/convert/convert.hpp"
#include "qlm/convert/hf_config.hpp"
#include "qlm/format/model_config.hpp"
#include "qlm/format/model_file.hpp"
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

fs::path shapes_dir() {
  return fs::path(QLM_SOURCE_DIR) / "tests/data/shapes";
}

// tmp/cfg/config.json: a published Gemma 3 config after `edit`.
fs::path gemma3_config(const TempDir& tmp, const char* file = "gemma-3-1b.json",
                       const std::function<void(nlohmann::json&)>& edit = {},
                       bool tokenizer = false) {
  return qlm::test::config_from(tmp / "cfg", shapes_dir() / file, edit, tokenizer);
}

bool has(const std::vector<qlm::ExpectedTensor>& t, std::string_view name) {
  return std::any_of(t.begin(), t.end(), [&](const auto& e) { return e.name == name; });
}

}  // namespace

TEST_CASE("gemma3: the published Gemma 3 1B config.json is read", "[convert][gemma3]") {
  const TempDir tmp;
  const auto c = qlm::read_hf_config(gemma3_config(tmp));
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c.ok());
  CHECK(c->arch == qlm::Architecture::Gemma3);
  CHECK(qlm::to_string(c->arch) == "gemma3_text");
  CHECK(c->gemma());
  CHECK(c->qk_norm());
  CHECK(c->gated_mlp());
  CHECK_FALSE(c->layer_norm());
  CHECK(c->hidden_size == 1152);
  CHECK(c->intermediate_size == 6912);
  CHECK(c->n_layers == 26);
  CHECK(c->n_heads == 4);
  CHECK(c->n_kv_heads == 1);
  CHECK(c->head_dim == 256);
  CHECK(c->vocab_size == 262144);
  CHECK(c->tie_word_embeddings);  // no key: Gemma's default
  CHECK_FALSE(c->attention_bias);
  CHECK(c->rms_norm_eps == 1e-6f);
  CHECK(c->rope_theta == 1e6f);
  CHECK(c->rope_local_theta == 1e4f);
  CHECK(c->query_pre_attn_scalar == 256.0f);
  CHECK(c->attention_scale() == 1.0f / 16.0f);
  CHECK(c->sliding_window == 512);
  CHECK(c->sliding_window_pattern == 6);
  CHECK(c->bos_id == 2);
  CHECK(c->eos_id == 1);
  // Layers 5, 11, 17 and 23 are global; the rest see the last 512 tokens.
  for (std::uint32_t l = 0; l < 26; ++l) {
    INFO("layer " << l);
    CHECK(c->window(l) == ((l + 1) % 6 == 0 ? 0u : 512u));
  }

  const auto t = qlm::expected_tensors(*c);
  for (const char* norm : {"input_layernorm", "post_attention_layernorm",
                           "pre_feedforward_layernorm", "post_feedforward_layernorm"}) {
    CHECK(has(t, qlm::layer_tensor(25, (std::string(norm) + ".weight").c_str())));
  }
  CHECK(has(t, "model.layers.0.self_attn.q_norm.weight"));
  CHECK_FALSE(has(t, "lm_head.weight"));
  // 26 layers x (4 norms + q/k norms + q/k/v/o + gate/up/down) + embedding + final norm.
  CHECK(t.size() == 26 * 13 + 2);
  CHECK(std::string(qlm::mlp_norm_name(*c)) == "pre_feedforward_layernorm");
  CHECK(qlm::gemma_norm(*c, "model.layers.3.self_attn.k_norm.weight"));
  CHECK(qlm::gemma_norm(*c, "model.norm.weight"));
  CHECK_FALSE(qlm::gemma_norm(*c, "model.layers.3.mlp.up_proj.weight"));
}

TEST_CASE("gemma3: Gemma 3 270M's layer_types give the same pattern", "[convert][gemma3]") {
  const TempDir tmp;
  const auto c = qlm::read_hf_config(gemma3_config(tmp, "gemma-3-270m.json"));
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c.ok());
  CHECK(c->n_layers == 18);
  CHECK(c->hidden_size == 640);
  CHECK(c->sliding_window_pattern == 6);
  CHECK(c->window(4) == 512);
  CHECK(c->window(5) == 0);
  SECTION("all sliding") {
    const auto all = qlm::read_hf_config(gemma3_config(tmp, "gemma-3-270m.json", [](auto& j) {
      j["layer_types"] = std::vector<std::string>(18, "sliding_attention");
    }));
    REQUIRE(all.ok());
    CHECK(all->sliding_window_pattern == 0);
    CHECK(all->window(17) == 512);
  }
}

TEST_CASE("gemma3: variants this graph does not compute are refused by name", "[convert][gemma3]") {
  const TempDir tmp;
  // An empty `b` matches any message.
  auto refused = [&](const std::function<void(nlohmann::json&)>& edit, std::string_view a,
                     std::string_view b = "") {
    const auto dir = gemma3_config(tmp, "gemma-3-1b.json", edit);
    expect_error(qlm::read_hf_config(dir), ErrorCode::Unsupported,
                 {a, b, (dir / "config.json").string()});
  };
  SECTION("the multimodal gemma3") {
    refused([](auto& j) { j["model_type"] = "gemma3"; }, "'gemma3'", "multimodal");
  }
  SECTION("final logit soft-capping") {
    refused([](auto& j) { j["final_logit_softcapping"] = 30.0; }, "final_logit_softcapping", "30");
  }
  SECTION("attention soft-capping") {
    refused([](auto& j) { j["attn_logit_softcapping"] = 50.0; }, "attn_logit_softcapping");
  }
  SECTION("exact-erf GELU") {
    refused([](auto& j) { j["hidden_activation"] = "gelu"; }, "hidden_activation", "'gelu'");
  }
  SECTION("bidirectional attention (EmbeddingGemma)") {
    refused([](auto& j) { j["use_bidirectional_attention"] = true; },
            "use_bidirectional_attention");
  }
  SECTION("irregular layer_types") {
    refused(
        [](auto& j) {
          std::vector<std::string> types(26, "sliding_attention");
          types[5] = types[9] = "full_attention";
          j["layer_types"] = types;
        },
        "layer_types");
  }
  SECTION("yarn RoPE scaling") {
    refused(
        [](auto& j) {
          j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
        },
        "rope_scaling", "yarn");
  }
}

TEST_CASE("gemma3: linear RoPE scaling is read (the global layers of Gemma 3 4B and up)",
          "[convert][gemma3]") {
  const TempDir tmp;
  const auto c = qlm::read_hf_config(gemma3_config(tmp, "gemma-3-1b.json", [](auto& j) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  }));
  REQUIRE(c.ok());
  CHECK(c->rope_scaling.type == qlm::RopeScaling::Type::Linear);
  CHECK(c->rope_scaling.factor == 8.0f);
}

TEST_CASE("gemma3: the converter stores norm weights as 1 + w and keeps the new keys",
          "[convert][gemma3]") {
  const TempDir tmp;
  const auto dir = gemma3_config(
      tmp, "gemma-3-1b.json",
      [](auto& j) {
        j["num_hidden_layers"] = 1;
        j["hidden_size"] = 64;
        j["intermediate_size"] = 128;
        j["head_dim"] = 32;
        j["vocab_size"] = 512;
        j["bos_token_id"] = 1;
        j["eos_token_id"] = 2;
      },
      true);
  const auto config = qlm::read_hf_config(dir);
  REQUIRE(config.ok());
  auto tensors = qlm::test::expected_host_tensors(*config, 0.5f);
  const std::string norm = "model.layers.0.post_feedforward_layernorm.weight";
  auto& n = qlm::test::find_tensor(tensors, norm);
  std::fill(n.values.begin(), n.values.end(), 0.25f);
  qlm::test::write_tensors(dir, tensors, qlm::safetensors::SourceType::F32);
  const auto out = tmp / "out.qlm";
  const auto r = qlm::convert_checkpoint({dir, out, qlm::DType::Q8, {}});
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r.ok());
  const auto file = qlm::format::ModelFile::open(out);
  REQUIRE(file.ok());
  const auto t = (*file)->find(norm);
  REQUIRE(t);
  float first = 0.0f;
  std::memcpy(&first, t->data.data(), 4);
  CHECK(first == 1.25f);
  const auto stored = qlm::load_config((*file)->metadata(), out.string());
  REQUIRE(stored.ok());
  CHECK(stored->arch == qlm::Architecture::Gemma3);
  CHECK(stored->query_pre_attn_scalar == 256.0f);
  CHECK(stored->rope_local_theta == 1e4f);
  CHECK(stored->sliding_window_pattern == 6);
  CHECK(stored->sliding_window == 512);
}
