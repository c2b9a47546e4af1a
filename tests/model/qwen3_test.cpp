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
  const auto dir = tmp / "ckpt";
  torch_synth(dir, kQwen3, 11);
  const auto ids = pseudo_random_tokens(40);
  const auto torch = torch_logits(dir, ids, tmp.path());
  for (DType type :
       {DType::F32, DType::F16, DType::BF16, DType::Q8, DType::Q5, DType::Q4, DType::Q4NL}) {
    INFO("type " << to_string(type));
    const auto path = tmp / "model.qlm";
    convert_or_fail(dir, path, type);
    auto model = open_or_fail(path);
    REQUIRE(model->config().arch == Architecture::Qwen3);
    REQUIRE(model->config().head_dim == 32);
    check_logits_against_torch(model, ids, torch, type);
  }
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
  // The real config with 2 of its 28 layers and a 1024-token vocabulary (the 151936-row
  // embedding alone would take a minute to convert); every per-layer shape is Qwen3-0.6B's.
  TempDir tmp;
  const auto cfg_dir = tmp / "cfg";
  std::filesystem::create_directories(cfg_dir);
  std::filesystem::copy_file(shared_data_dir() / "shapes" / "qwen3-0.6b.json",
                             cfg_dir / "config.json");
  edit_config(cfg_dir, [](nlohmann::json& j) {
    j["num_hidden_layers"] = 2;
    j["max_window_layers"] = 2;
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
  CHECK(c.arch == Architecture::Qwen3);
  CHECK(c.head_dim == 128);
  CHECK(c.n_heads * c.head_dim == 2 * c.hidden_size);
  const std::vector<std::int32_t> ids{1000, 5, 77, 300};
  const auto ref = eval_all_logits(model, {.context = 16, .isa = "reference"}, ids);
  const auto fast = eval_all_logits(model, {.context = 16}, ids);
  REQUIRE(ref.size() == ids.size() * 1024);
  CHECK(std::all_of(ref.begin(), ref.end(), [](float v) { return std::isfinite(v); }));
  CHECK(relative_max_diff(fast, ref) <= 0.02f);
}

}  // namespace qlm::test
