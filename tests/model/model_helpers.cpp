// Model-test helpers; reference tools that are missing make the test fail loudly, never skip.
#include "model/model_helpers.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>

#include "kernel_table.hpp"
#include "qlm/convert/convert.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/files.hpp"

namespace qlm::test {

namespace {
const char* kPython = "/usr/bin/python3";
std::string reference_script() {
  return std::string(QLM_SOURCE_DIR) + "/tests/reference/torch_llama.py";
}
}  // namespace

void convert_or_fail(const std::filesystem::path& dir, const std::filesystem::path& out,
                     DType type) {
  auto r = convert_checkpoint({dir, out, type, {}});
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r.ok());
}

std::shared_ptr<const Model> open_or_fail(const std::filesystem::path& path) {
  auto m = Model::open(path);
  INFO((m ? std::string() : m.error().message));
  REQUIRE(m.ok());
  return *m;
}

int run_command(const std::string& command, std::string& out) {
  out.clear();
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string tool_path(const std::string& name) {
  return std::string(QLM_BINARY_DIR) + "/tools/" + name;
}

std::vector<float> torch_logits(const std::filesystem::path& dir,
                                const std::vector<std::int32_t>& ids,
                                const std::filesystem::path& scratch) {
  const auto out = scratch / "torch_logits.f32";
  std::string log;
  const std::string cmd = fmt::format("{} {} logits '{}' {} '{}' 2>&1", kPython, reference_script(),
                                      dir.string(), fmt::join(ids, ","), out.string());
  const int rc = run_command(cmd, log);
  INFO("PyTorch reference (needs Debian python3-torch; run scripts/install-deps.sh): " << log);
  REQUIRE(rc == 0);
  const auto bytes = read_bytes(out);
  std::vector<float> logits(bytes.size() / 4);
  std::memcpy(logits.data(), bytes.data(), logits.size() * 4);
  return logits;
}

void torch_synth(const std::filesystem::path& out_dir, const std::string& overrides_json,
                 int seed) {
  std::string log;
  const std::string cmd =
      fmt::format("{} {} synth '{}' '{}' {} '{}' 2>&1", kPython, reference_script(),
                  out_dir.string(), overrides_json, seed, stories_dir().string());
  const int rc = run_command(cmd, log);
  INFO("PyTorch synth: " << log);
  REQUIRE(rc == 0);
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float m = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

float relative_max_diff(const std::vector<float>& a, const std::vector<float>& ref) {
  const auto [lo, hi] = std::minmax_element(ref.begin(), ref.end());
  return max_abs_diff(a, ref) / (*hi - *lo);
}

std::vector<float> eval_all_logits(std::shared_ptr<const Model> model, SessionOptions options,
                                   std::span<const std::int32_t> ids) {
  auto s = Session::create(std::move(model), std::move(options));
  INFO((s ? "" : s.error().message));
  REQUIRE(s.ok());
  auto l = s->eval(ids, {.all_logits = true});
  REQUIRE(l.ok());
  return {l->begin(), l->end()};
}

std::vector<std::int32_t> pseudo_random_tokens(std::size_t n) {
  std::vector<std::int32_t> ids{1};
  std::uint32_t s = 12345;
  while (ids.size() < n) {
    s = s * 1664525u + 1013904223u;  // a linear congruential generator (Numerical Recipes)
    ids.push_back(static_cast<std::int32_t>(3 + (s >> 8) % 509));
  }
  return ids;
}

std::vector<std::int32_t> story_tokens(const Model& model) {
  auto ids = model.tokenizer()
                 .encode(
                     "Once upon a time, there was a little dog named Max. Max liked to run in the "
                     "big green "
                     "park with his friend, a small red bird. One day the bird could not fly.")
                 .value();
  REQUIRE(ids.size() >= 40);
  return ids;
}

void check_logits_against_torch(std::shared_ptr<const Model> model,
                                std::span<const std::int32_t> ids, const std::vector<float>& torch,
                                DType type) {
  const auto ref = eval_all_logits(model, {.context = 128, .isa = "reference"}, ids);
  INFO("reference path: max |qlm - torch| = " << max_abs_diff(ref, torch) << ", relative "
                                              << relative_max_diff(ref, torch));
  if (type == DType::F32) CHECK(max_abs_diff(ref, torch) <= 1e-4f);
  const float tolerance = is_quantized(type) ? 0.02f : 1e-5f;
  for (auto isa : kernels::supported_isas()) {
    INFO("isa " << kernels::to_string(isa));
    const auto fast =
        eval_all_logits(model, {.context = 128, .isa = std::string(kernels::to_string(isa))}, ids);
    INFO("max |fast - reference| / logit range = " << relative_max_diff(fast, ref));
    INFO("fast path: max |qlm - torch| = " << max_abs_diff(fast, torch));
    CHECK(relative_max_diff(fast, ref) <= tolerance);
    if (type == DType::F32) CHECK(max_abs_diff(fast, torch) <= 1e-4f);
  }
}

std::shared_ptr<const Model> synth_shape_model(const std::filesystem::path& dir,
                                               const std::filesystem::path& config_json,
                                               const std::function<void(nlohmann::json&)>& edit) {
  const auto cfg_dir = dir / "cfg";
  std::filesystem::create_directories(cfg_dir);
  std::filesystem::copy_file(config_json, cfg_dir / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  edit_config(cfg_dir, [&](nlohmann::json& j) {
    j["num_hidden_layers"] = 2;
    j["vocab_size"] = 1024;
    j["bos_token_id"] = 1000;
    j["eos_token_id"] = 1001;
    if (edit) edit(j);
  });
  std::string out;
  const std::string cmd = fmt::format("'{}' --config '{}' -o '{}' 2>&1", tool_path("qlm-synth"),
                                      (cfg_dir / "config.json").string(), (dir / "ckpt").string());
  const int rc = run_command(cmd, out);
  INFO(cmd << "\n" << out);
  REQUIRE(rc == 0);
  // Round-to-nearest scales: these tests are about the architecture at a real width, not the
  // scale search, which costs minutes on matrices this size under the sanitizers.
  ConvertOptions o{dir / "ckpt", dir / "m.qlm", DType::Q8, {}};
  o.scale_method = quant::ScaleMethod::Rtn;
  auto r = convert_checkpoint(o);
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r.ok());
  return open_or_fail(dir / "m.qlm");
}

void check_reference_and_fast_agree(std::shared_ptr<const Model> model, std::uint32_t context) {
  const std::vector<std::int32_t> ids{1000, 5, 77, 300, 12, 900, 4};
  const auto ref = eval_all_logits(model, {.context = context, .isa = "reference"}, ids);
  const auto fast = eval_all_logits(model, {.context = context}, ids);
  REQUIRE(ref.size() == ids.size() * model->config().vocab_size);
  CHECK(std::all_of(ref.begin(), ref.end(), [](float v) { return std::isfinite(v); }));
  CHECK(relative_max_diff(fast, ref) <= 0.02f);
}

void check_every_type_against_torch(const std::filesystem::path& dir,
                                    const std::string& overrides_json, int seed,
                                    const std::function<void(const ModelConfig&)>& check_config) {
  torch_synth(dir / "ckpt", overrides_json, seed);
  const auto ids = pseudo_random_tokens(40);
  const auto torch = torch_logits(dir / "ckpt", ids, dir);
  for (DType type :
       {DType::F32, DType::F16, DType::BF16, DType::Q8, DType::Q5, DType::Q4, DType::Q4NL}) {
    INFO("type " << to_string(type));
    convert_or_fail(dir / "ckpt", dir / "model.qlm", type);
    auto model = open_or_fail(dir / "model.qlm");
    check_config(model->config());
    check_logits_against_torch(model, ids, torch, type);
  }
}

}  // namespace qlm::test
