// qlm-synth: writes a Hugging Face-layout checkpoint with random weights in a real model's exact
// shape (bf16 safetensors, sharded like the originals), so anyone can benchmark without weights.
#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <qlm/config.hpp>
#include <qlm/convert/hf_config.hpp>
#include <qlm/convert/safetensors.hpp>
#include <qlm/detail/half.hpp>
#include <qlm/format/tensor_names.hpp>

#include "cli_util.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::uint64_t kShardBytes = 2ull << 30;  // 2 GiB shards, like Hugging Face uploads

std::uint64_t mix(std::uint64_t z) {  // splitmix64 finalizer: a counter-based generator
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t hash_name(const std::string& s, std::uint64_t seed) {
  std::uint64_t h = seed ^ 0x9e3779b97f4a7c15ull;
  for (char c : s) h = mix(h ^ static_cast<unsigned char>(c));
  return h;
}

// Normal(0, std) values from (tensor name, seed, index) alone: reproducible and order-free.
void fill_normal(std::span<std::uint8_t> out, std::uint64_t key, float std_dev) {
  const std::size_t n = out.size() / 2;
  for (std::size_t i = 0; i < n; i += 2) {
    const std::uint64_t r = mix(key + i);
    const double u1 = (static_cast<double>(r >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(mix(r) >> 11) * 0x1.0p-53;
    const double radius = std::sqrt(-2.0 * std::log(u1)) * std_dev;
    const float v[2] = {static_cast<float>(radius * std::cos(2 * M_PI * u2)),
                        static_cast<float>(radius * std::sin(2 * M_PI * u2))};
    for (std::size_t j = 0; j < 2 && i + j < n; ++j) {
      const std::uint16_t h = qlm::detail::f32_to_bf16(v[j]);
      std::memcpy(out.data() + 2 * (i + j), &h, 2);
    }
  }
}

// A byte-level BPE tokenizer.json with the model's vocabulary size: the 256 byte symbols, then
// filler tokens, then BOS/EOS. Enough for converting and benchmarking; it tokenizes bytewise.
json synthetic_tokenizer(std::uint32_t vocab, int bos, int eos) {
  json v = json::object();
  auto byte_symbol = [](int b) {
    int cp = b;  // GPT-2 bytes_to_unicode
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
      int n = 0;
      for (int x = 0; x < b; ++x) {
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
      }
      cp = 256 + n;
    }
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xc0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3f));
    }
    return s;
  };
  std::vector<std::string> tokens(vocab);
  for (std::uint32_t i = 0; i < vocab; ++i) tokens[i] = "<synth_" + std::to_string(i) + ">";
  for (int b = 0; b < 256 && static_cast<std::uint32_t>(b + 3) < vocab; ++b)
    tokens[b + 3] = byte_symbol(b);
  json added = json::array();
  for (int id : {bos, eos}) {
    if (id < 0 || static_cast<std::uint32_t>(id) >= vocab) continue;
    tokens[id] = id == bos ? "<s>" : "</s>";
    added.push_back({{"id", id},
                     {"content", tokens[id]},
                     {"special", true},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false}});
  }
  for (std::uint32_t i = 0; i < vocab; ++i) v[tokens[i]] = i;
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"decoder",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"model",
           {{"type", "BPE"},
            {"vocab", v},
            {"merges", json::array()},
            {"byte_fallback", false},
            {"ignore_merges", false}}}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a random-weight checkpoint in the exact shape of a real model"};
  std::string config_path, tokenizer_dir, out;
  std::uint64_t seed = 1;
  app.add_option("--config", config_path, "a Hugging Face config.json")->required();
  app.add_option("--tokenizer", tokenizer_dir, "copy tokenizer files from this directory");
  app.add_option("-o,--output", out, "output directory")->required();
  app.add_option("--seed", seed, "random seed (default 1)");
  CLI11_PARSE(app, argc, argv);

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return std::fprintf(stderr, "qlm-synth: %s: %s\n", out.c_str(), ec.message().c_str()), 1;
  fs::copy_file(config_path, fs::path(out) / "config.json", fs::copy_options::overwrite_existing,
                ec);
  if (ec)
    return std::fprintf(stderr, "qlm-synth: %s: %s\n", config_path.c_str(), ec.message().c_str()),
           1;
  auto config = qlm::read_hf_config(out);
  if (!config) return std::fprintf(stderr, "qlm-synth: %s\n", config.error().message.c_str()), 1;
  std::ifstream cin(fs::path(out) / "config.json");  // the copy read_hf_config accepted
  const json cj = json::parse(cin, nullptr, false);
  const float init =
      cj.is_object() && cj.contains("initializer_range") && cj["initializer_range"].is_number()
          ? cj["initializer_range"].get<float>()
          : 0.02f;

  if (!tokenizer_dir.empty()) {
    for (const char* f :
         {"tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "tokenizer_config.json",
          "added_tokens.json", "special_tokens_map.json", "generation_config.json"}) {
      if (fs::exists(fs::path(tokenizer_dir) / f)) {
        fs::copy_file(fs::path(tokenizer_dir) / f, fs::path(out) / f,
                      fs::copy_options::overwrite_existing);
      }
    }
  } else {
    std::ofstream(fs::path(out) / "tokenizer.json")
        << synthetic_tokenizer(config->vocab_size, config->bos_id, config->eos_id).dump();
  }

  // Group tensors into shards of at most kShardBytes.
  std::vector<std::vector<qlm::safetensors::TensorSpec>> shards(1);
  std::uint64_t shard_bytes = 0, total = 0;
  for (qlm::ExpectedTensor e : qlm::expected_tensors(*config)) {
    if (const auto f = qlm::fused_source(*config, e.name)) {  // written as the real files fuse it
      if (f->row0 != 0) continue;
      e.name = f->name;
      e.shape[0] = f->fused_rows;
    }
    std::uint64_t bytes = 2;
    for (auto d : e.shape) bytes *= d;
    if (shard_bytes > 0 && shard_bytes + bytes > kShardBytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    const bool norm = e.name.ends_with("norm.weight");
    const bool gemma = qlm::gemma_norm(*config, e.name);
    const bool bias = e.name.ends_with(".bias");
    const std::uint64_t key = hash_name(e.name, seed);
    shards.back().push_back(
        {e.name, qlm::safetensors::SourceType::BF16, e.shape, [=](std::span<std::uint8_t> buf) {
           if (norm) {  // RMSNorm weights start at 1 (Gemma stores the offset from 1: 0)
             const std::uint16_t one = qlm::detail::f32_to_bf16(gemma ? 0.0f : 1.0f);
             for (std::size_t i = 0; i < buf.size(); i += 2) std::memcpy(&buf[i], &one, 2);
           } else {
             fill_normal(buf, key, bias ? init * 0.5f : init);
           }
         }});
    shard_bytes += bytes;
    total += bytes;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", json::object()}};
  qlm::tools::ProgressBar bar("writing");
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const std::string name =
        shards.size() == 1 ? "model.safetensors"
                           : fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, shards.size());
    for (const auto& t : shards[s]) index["weight_map"][t.name] = name;
    auto r = qlm::safetensors::write_file(fs::path(out) / name, shards[s]);
    if (!r) return std::fprintf(stderr, "qlm-synth: %s\n", r.error().message.c_str()), 1;
    bar.update(s + 1, shards.size());
  }
  if (shards.size() > 1)
    std::ofstream(fs::path(out) / "model.safetensors.index.json") << index.dump(1);
  fmt::print(stderr, "wrote {}: {} tensors in {} shard(s), {}\n", out,
             qlm::expected_tensors(*config).size(), shards.size(), qlm::tools::human_bytes(total));
  return 0;
}
