// Qwen3's config.json: the real Qwen3-0.6B one is read with its explicit head_dim (128, where
// hidden / heads is 64) and the tensors it implies; a sliding window or an unknown RoPE scaling is
// refused by name; the converter checks the q/k norm tensors like every other.
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

// tmp/cfg/config.json: the real Qwen3-0.6B config after `edit`.
fs::path qwen3_config(const TempDir& tmp, const std::function<void(nlohmann::json&)>& edit = {},
                      bool tokenizer = false) {
  return qlm::test::config_from(
      tmp / "cfg", qlm::test::shared_data_dir() / "shapes" / "qwen3-0.6b.json", edit, tokenizer);
}

const qlm::ExpectedTensor& find(const std::vector<qlm::ExpectedTensor>& t, std::string_view name) {
  const auto it = std::find_if(t.begin(), t.end(), [&](const auto& e) { return e.name == name; });
  REQUIRE(it != t.end());
  return *it;
}

}  // namespace

TEST_CASE("qwen3: the real Qwen3-0.6B config.json is read with its explicit head_dim",
          "[convert][qwen3]") {
  const TempDir tmp;
  const auto c = qlm::read_hf_config(qwen3_config(tmp));
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c.ok());
  CHECK(c->arch == qlm::Architecture::Qwen3);
  CHECK(qlm::to_string(c->arch) == "qwen3");
  CHECK(c->qk_norm());
  CHECK(c->hidden_size == 1024);
  CHECK(c->n_heads == 16);
  CHECK(c->n_kv_heads == 8);
  CHECK(c->head_dim == 128);  // not 1024 / 16
  CHECK(c->n_layers == 28);
  CHECK(c->intermediate_size == 3072);
  CHECK(c->vocab_size == 151936);
  CHECK(c->tie_word_embeddings);
  CHECK_FALSE(c->attention_bias);
  CHECK(c->sliding_window == 0);
  CHECK(c->rope_theta == 1e6f);
  CHECK(c->rope_scaling.type == qlm::RopeScaling::Type::None);
  CHECK(c->rms_norm_eps == 1e-6f);
  CHECK(c->bos_id == 151643);
  CHECK(c->eos_id == 151645);

  const auto t = qlm::expected_tensors(*c);
  CHECK(find(t, "model.layers.0.self_attn.q_proj.weight").shape ==
        std::vector<std::uint64_t>{2048, 1024});
  CHECK(find(t, "model.layers.0.self_attn.k_proj.weight").shape ==
        std::vector<std::uint64_t>{1024, 1024});
  CHECK(find(t, "model.layers.0.self_attn.o_proj.weight").shape ==
        std::vector<std::uint64_t>{1024, 2048});
  for (const char* norm :
       {"model.layers.27.self_attn.q_norm.weight", "model.layers.27.self_attn.k_norm.weight"}) {
    const auto& e = find(t, norm);
    CHECK(e.shape == std::vector<std::uint64_t>{128});
    CHECK_FALSE(e.matrix);  // stored f32 like every norm
  }
  CHECK(std::none_of(t.begin(), t.end(), [](const auto& e) {
    return e.name.ends_with(".bias") || e.name == "lm_head.weight";
  }));
  // 28 layers x 11 tensors (no biases) + embedding + final norm; tied: no LM head.
  CHECK(t.size() == 28 * 11 + 2);
}

TEST_CASE("qwen3: attention_bias true adds q/k/v biases", "[convert][qwen3]") {
  const TempDir tmp;
  const auto c =
      qlm::read_hf_config(qwen3_config(tmp, [](auto& j) { j["attention_bias"] = true; }));
  REQUIRE(c.ok());
  CHECK(c->attention_bias);
  const auto t = qlm::expected_tensors(*c);
  CHECK(find(t, "model.layers.3.self_attn.q_proj.bias").shape == std::vector<std::uint64_t>{2048});
  CHECK(find(t, "model.layers.3.self_attn.v_proj.bias").shape == std::vector<std::uint64_t>{1024});
}

TEST_CASE("qwen3: sliding windows and unknown RoPE scalings are refused by name",
          "[convert][qwen3]") {
  const TempDir tmp;
  SECTION("use_sliding_window true") {
    const auto dir = qwen3_config(tmp, [](auto& j) {
      j["use_sliding_window"] = true;
      j["sliding_window"] = 4096;
    });
    expect_error(qlm::read_hf_config(dir), ErrorCode::Unsupported,
                 {"qwen3", "use_sliding_window", (dir / "config.json").string()});
  }
  SECTION("a sliding_window value alone is ignored while use_sliding_window is false") {
    const auto c =
        qlm::read_hf_config(qwen3_config(tmp, [](auto& j) { j["sliding_window"] = 4096; }));
    REQUIRE(c.ok());
    CHECK(c->sliding_window == 0);
  }
  SECTION("yarn RoPE scaling") {
    const auto dir = qwen3_config(tmp, [](auto& j) {
      j["rope_scaling"] = {
          {"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
    });
    expect_error(qlm::read_hf_config(dir), ErrorCode::Unsupported,
                 {"rope_scaling", "yarn", (dir / "config.json").string()});
  }
  SECTION("dynamic RoPE scaling, old 'type' key") {
    const auto dir = qwen3_config(tmp, [](auto& j) {
      j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
    });
    expect_error(qlm::read_hf_config(dir), ErrorCode::Unsupported,
                 {"rope_scaling", "dynamic", (dir / "config.json").string()});
  }
}

TEST_CASE("qwen3: the converter names a missing or misshapen q/k norm", "[convert][qwen3]") {
  const TempDir tmp;
  // A one-layer Qwen3-0.6B shrunk to stories260K's vocabulary (whose tokenizer it borrows); its
  // tensors come from expected_tensors() itself.
  const auto dir = qwen3_config(
      tmp,
      [](auto& j) {
        j["num_hidden_layers"] = 1;
        j["hidden_size"] = 64;
        j["intermediate_size"] = 96;
        j["num_attention_heads"] = 4;
        j["num_key_value_heads"] = 2;
        j["head_dim"] = 32;
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
  const std::string q_norm = "model.layers.0.self_attn.q_norm.weight";
  SECTION("complete") {
    const auto r = convert(tensors);
    INFO((r ? std::string() : r.error().message));
    CHECK(r.ok());
  }
  SECTION("misshapen") {
    auto t = tensors;
    auto& q = qlm::test::find_tensor(t, q_norm);
    q.shape = {16};
    q.values.resize(16);
    expect_error(convert(t), ErrorCode::Format,
                 {q_norm, "16", "32", (dir / "model.safetensors").string()});
  }
  SECTION("missing") {
    auto t = tensors;
    std::erase_if(t, [&](const auto& h) { return h.name == q_norm; });
    expect_error(convert(t), ErrorCode::Format, {q_norm, "missing", dir.string()});
  }
}
