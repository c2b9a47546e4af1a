// Phi-4-mini's config.json (phi3): partial rotary dims, longrope's factors and attention factor,
// the fused tensors the converter splits; unsupported rope scalings and head biases are refused by
// name; the converter names a missing or misshapen fused tensor.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
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

// tmp/cfg/config.json: the real Phi-4-mini config after `edit`.
fs::path phi4_config(const TempDir& tmp, const std::function<void(nlohmann::json&)>& edit = {},
                     bool tokenizer = false) {
  return qlm::test::config_from(
      tmp / "cfg", qlm::test::shared_data_dir() / "shapes" / "phi-4-mini.json", edit, tokenizer);
}

}  // namespace

TEST_CASE("phi3: the real Phi-4-mini config.json is read", "[convert][phi3]") {
  const TempDir tmp;
  const auto c = qlm::read_hf_config(phi4_config(tmp));
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c.ok());
  CHECK(c->arch == qlm::Architecture::Phi3);
  CHECK(qlm::to_string(c->arch) == "phi3");
  CHECK(c->hidden_size == 3072);
  CHECK(c->n_layers == 32);
  CHECK(c->n_heads == 24);
  CHECK(c->n_kv_heads == 8);
  CHECK(c->head_dim == 128);
  CHECK(c->rope_dim() == 96);  // partial_rotary_factor 0.75
  CHECK(c->vocab_size == 200064);
  CHECK(c->tie_word_embeddings);
  CHECK_FALSE(c->attention_bias);
  CHECK(c->sliding_window == 262144);
  const qlm::RopeScaling& s = c->rope_scaling;
  CHECK(s.type == qlm::RopeScaling::Type::LongRope);
  CHECK(s.original_max_position == 4096);
  CHECK(s.short_factor.size() == 48);
  CHECK(s.long_factor.size() == 48);
  CHECK(s.long_factor[1] == Approx(1.118320672));
  // max_position 131072 / original 4096 = 32: sqrt(1 + ln 32 / ln 4096) = sqrt(1 + 5/12).
  CHECK(s.attention_factor == Approx(std::sqrt(1.0 + 5.0 / 12.0)).epsilon(1e-6));

  const auto t = qlm::expected_tensors(*c);
  const auto q = qlm::fused_source(*c, "model.layers.7.self_attn.q_proj.weight");
  const auto v = qlm::fused_source(*c, "model.layers.7.self_attn.v_proj.weight");
  const auto up = qlm::fused_source(*c, "model.layers.7.mlp.up_proj.weight");
  REQUIRE(q);
  REQUIRE(v);
  REQUIRE(up);
  CHECK(q->name == "model.layers.7.self_attn.qkv_proj.weight");
  CHECK((q->row0 == 0 && q->rows == 3072 && q->fused_rows == 5120));
  CHECK((v->row0 == 4096 && v->rows == 1024));
  CHECK(up->name == "model.layers.7.mlp.gate_up_proj.weight");
  CHECK((up->row0 == 8192 && up->rows == 8192 && up->fused_rows == 16384));
  CHECK_FALSE(qlm::fused_source(*c, "model.layers.7.self_attn.o_proj.weight"));
  CHECK_FALSE(qlm::fused_source(*c, "model.embed_tokens.weight"));
}

TEST_CASE("phi3: Phi-3-mini's layout (no rope_scaling, full rotation, 'su' alias)",
          "[convert][phi3]") {
  const TempDir tmp;
  const auto plain = qlm::read_hf_config(phi4_config(tmp, [](auto& j) {
    j.erase("partial_rotary_factor");
    j["rope_scaling"] = nullptr;
  }));
  REQUIRE(plain.ok());
  CHECK(plain->rope_dim() == 128);
  CHECK(plain->rotary_dim == 0);
  CHECK(plain->rope_scaling.type == qlm::RopeScaling::Type::None);
  const auto su = qlm::read_hf_config(phi4_config(tmp, [](auto& j) {
    j["rope_scaling"]["type"] = "su";
    j["rope_scaling"]["attention_factor"] = 1.25;
  }));
  REQUIRE(su.ok());
  CHECK(su->rope_scaling.type == qlm::RopeScaling::Type::LongRope);
  CHECK(su->rope_scaling.attention_factor == 1.25f);
}

TEST_CASE("phi3: unsupported variants and inconsistent factors are refused by name",
          "[convert][phi3]") {
  const TempDir tmp;
  auto refused = [&](const std::function<void(nlohmann::json&)>& edit, ErrorCode code,
                     std::string_view a, std::string_view b = "") {
    const auto dir = phi4_config(tmp, edit);
    expect_error(qlm::read_hf_config(dir), code, {a, b, (dir / "config.json").string()});
  };
  SECTION("yarn") {
    refused([](auto& j) { j["rope_scaling"]["type"] = "yarn"; }, ErrorCode::Unsupported,
            "rope_scaling", "yarn");
  }
  SECTION("a biased LM head") {
    refused([](auto& j) { j["lm_head_bias"] = true; }, ErrorCode::Unsupported, "lm_head_bias");
  }
  SECTION("an odd number of rotated dims") {
    refused([](auto& j) { j["partial_rotary_factor"] = 0.5078125; }, ErrorCode::Unsupported,
            "partial_rotary_factor", "65");
  }
  SECTION("factors that do not match the rotated dims") {
    refused([](auto& j) { j["rope_scaling"]["short_factor"] = std::vector<double>(64, 1.0); },
            ErrorCode::Format, "longrope", "64");
  }
  SECTION("a missing long_factor") {
    refused([](auto& j) { j["rope_scaling"].erase("long_factor"); }, ErrorCode::Format,
            "long_factor");
  }
}

TEST_CASE("phi3: the converter names a missing or misshapen fused tensor", "[convert][phi3]") {
  const TempDir tmp;
  const auto dir = phi4_config(
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
        j["pad_token_id"] = 2;
        j["rope_scaling"] = nullptr;
      },
      true);
  const auto config = qlm::read_hf_config(dir);
  REQUIRE(config.ok());
  // expected_host_tensors lists the unfused names; fuse them as Phi-3 files do.
  std::vector<qlm::test::HostTensor> fused;
  for (const auto& t : qlm::test::expected_host_tensors(*config, 0.5f)) {
    const auto f = qlm::fused_source(*config, t.name);
    if (!f) {
      fused.push_back(t);
    } else if (f->row0 == 0) {
      qlm::test::HostTensor whole = t;
      whole.name = f->name;
      whole.shape[0] = f->fused_rows;
      whole.values.assign(f->fused_rows * t.shape[1], 0.25f);
      fused.push_back(whole);
    }
  }
  auto convert = [&](const std::vector<qlm::test::HostTensor>& t) {
    qlm::test::write_tensors(dir, t, qlm::safetensors::SourceType::BF16);
    return qlm::convert_checkpoint({dir, tmp / "out.qlm", qlm::DType::Q8, {}});
  };
  const std::string qkv = "model.layers.0.self_attn.qkv_proj.weight";
  SECTION("complete") {
    const auto r = convert(fused);
    INFO((r ? std::string() : r.error().message));
    CHECK(r.ok());
  }
  SECTION("misshapen") {
    auto t = fused;
    auto& b = qlm::test::find_tensor(t, qkv);
    b.shape[0] = 64;
    b.values.resize(64 * 64);
    expect_error(convert(t), ErrorCode::Format,
                 {qkv, "64x64", "128x64", (dir / "model.safetensors").string()});
  }
  SECTION("missing") {
    auto t = fused;
    std::erase_if(t, [&](const auto& h) { return h.name == qkv; });
    expect_error(convert(t), ErrorCode::Format, {qkv, "missing", dir.string()});
  }
  SECTION("unfused names are not what a phi3 checkpoint holds") {
    expect_error(convert(qlm::test::expected_host_tensors(*config, 0.5f)), ErrorCode::Format,
                 {"missing", qkv});
  }
}
