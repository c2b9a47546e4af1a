// Checkpoint writing for tests, through qlm::safetensors::write_file (one file per shard).
#include "support/checkpoint_writer.hpp"

#include <fmt/format.h>
#include <cstring>
#include <stdexcept>

#include "qlm/detail/half.hpp"
#include "qlm/format/tensor_names.hpp"
#include "support/files.hpp"

namespace qlm::test {

using safetensors::SourceType;

std::vector<HostTensor> load_tensors(const std::filesystem::path& dir) {
  auto ckpt = safetensors::Checkpoint::open(dir);
  if (!ckpt) throw std::runtime_error(ckpt.error().message);
  std::vector<HostTensor> out;
  for (const auto& t : ckpt->tensors()) {
    HostTensor h{t.name, t.shape, std::vector<float>(t.elements())};
    safetensors::to_f32(t, h.values);
    out.push_back(std::move(h));
  }
  return out;
}

std::vector<HostTensor> expected_host_tensors(const ModelConfig& config, float value) {
  std::vector<HostTensor> out;
  for (const auto& e : expected_tensors(config)) {
    std::uint64_t n = 1;
    for (auto d : e.shape) n *= d;
    out.push_back({e.name, e.shape, std::vector<float>(n, value)});
  }
  return out;
}

HostTensor& find_tensor(std::vector<HostTensor>& tensors, std::string_view name) {
  for (auto& t : tensors) {
    if (t.name == name) return t;
  }
  throw std::out_of_range("no tensor " + std::string(name));
}

float round_to(SourceType type, float x) {
  switch (type) {
    case SourceType::F32:
      return x;
    case SourceType::F16:
      return detail::f16_to_f32(detail::f32_to_f16(x));
    case SourceType::BF16:
      return detail::bf16_to_f32(detail::f32_to_bf16(x));
  }
  return x;
}

std::vector<std::uint8_t> encode_values(std::span<const float> values, SourceType type) {
  const std::size_t elem = type == SourceType::F32 ? 4 : 2;
  std::vector<std::uint8_t> out(values.size() * elem);
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (type == SourceType::F32) {
      std::memcpy(out.data() + 4 * i, &values[i], 4);
    } else {
      const std::uint16_t h =
          type == SourceType::F16 ? detail::f32_to_f16(values[i]) : detail::f32_to_bf16(values[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

namespace {

void write_shard(const std::filesystem::path& path, std::span<const HostTensor> tensors,
                 SourceType type) {
  std::vector<safetensors::TensorSpec> specs;
  for (const auto& t : tensors) {
    specs.push_back({t.name, type, t.shape, [&t, type](std::span<std::uint8_t> out) {
                       const auto bytes = encode_values(t.values, type);
                       if (bytes.size() != out.size()) throw std::logic_error("size mismatch");
                       std::memcpy(out.data(), bytes.data(), bytes.size());
                     }});
  }
  auto r = safetensors::write_file(path, specs);
  if (!r) throw std::runtime_error(r.error().message);
}

}  // namespace

void write_tensors(const std::filesystem::path& dir, std::span<const HostTensor> tensors,
                   SourceType type, int shards) {
  std::filesystem::create_directories(dir);
  if (shards <= 1) {
    write_shard(dir / "model.safetensors", tensors, type);
    return;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  const std::size_t n = tensors.size();
  const auto count = static_cast<std::size_t>(shards);
  for (std::size_t s = 0; s < count; ++s) {
    const std::string file = fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, shards);
    const auto part = tensors.subspan(s * n / count, (s + 1) * n / count - s * n / count);
    write_shard(dir / file, part, type);
    for (const auto& t : part) weight_map[t.name] = file;
  }
  const nlohmann::json index = {{"metadata", {{"format", "pt"}}}, {"weight_map", weight_map}};
  write_text(dir / "model.safetensors.index.json", index.dump(2));
}

void copy_aux_files(const std::filesystem::path& src, const std::filesystem::path& dst) {
  std::filesystem::create_directories(dst);
  for (const auto& e : std::filesystem::directory_iterator(src)) {
    const std::string name = e.path().filename().string();
    if (name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json")) continue;
    if (!e.is_regular_file()) continue;
    // Write rather than copy: the shared files are read-only and the copies must be editable.
    write_bytes(dst / name, read_bytes(e.path()));
  }
}

void write_checkpoint_copy(const std::filesystem::path& src, const std::filesystem::path& dst,
                           SourceType type, int shards) {
  copy_aux_files(src, dst);
  write_tensors(dst, load_tensors(src), type, shards);
}

void edit_config(const std::filesystem::path& dir,
                 const std::function<void(nlohmann::json&)>& edit) {
  const auto path = dir / "config.json";
  nlohmann::json j = nlohmann::json::parse(read_text(path));
  edit(j);
  write_text(path, j.dump(2));
}

std::filesystem::path config_from(const std::filesystem::path& dir,
                                  const std::filesystem::path& config_json,
                                  const std::function<void(nlohmann::json&)>& edit,
                                  bool tokenizer) {
  std::filesystem::create_directories(dir);
  if (tokenizer) copy_aux_files(stories_dir(), dir);
  std::filesystem::copy_file(config_json, dir / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  if (edit) edit_config(dir, edit);
  return dir;
}

}  // namespace qlm::test
