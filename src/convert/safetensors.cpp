// safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}}, then the raw data. Every offset and size is checked against the mapped file.
#include "qlm/convert/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "qlm/detail/half.hpp"
#include "qlm/detail/read_file.hpp"
#include "util/atomic_file.hpp"
#include "util/fail.hpp"
#include "util/mapped_file.hpp"

namespace qlm::safetensors {

using detail::fail;
using nlohmann::json;

namespace {

constexpr std::uint64_t kMaxHeader = 256ull << 20;  // the format's own readers cap at 100 MB

std::size_t element_size(SourceType t) {
  return t == SourceType::F32 ? 4 : 2;
}

SourceType parse_dtype(const std::string& s, const std::string& file, const std::string& name) {
  if (s == "F32") return SourceType::F32;
  if (s == "F16") return SourceType::F16;
  if (s == "BF16") return SourceType::BF16;
  fail(ErrorCode::Unsupported, "{}: tensor '{}' has unsupported dtype {} (F32, F16, BF16 only)",
       file, name, s);
}

Tensor parse_entry(const std::string& name, const json& e, std::span<const std::uint8_t> data,
                   const std::string& file) {
  Tensor t;
  t.name = name;
  t.file = file;
  try {
    t.dtype = parse_dtype(e.at("dtype").get<std::string>(), file, name);
    t.shape = e.at("shape").get<std::vector<std::uint64_t>>();
    const auto offsets = e.at("data_offsets").get<std::vector<std::uint64_t>>();
    if (offsets.size() != 2)
      fail(ErrorCode::Format, "{}: '{}' data_offsets needs 2 values", file, name);
    if (offsets[0] > offsets[1] || offsets[1] > data.size()) {
      fail(ErrorCode::Format,
           "{}: tensor '{}' data_offsets [{}, {}] fall outside the {}-byte data section "
           "(truncated file?)",
           file, name, offsets[0], offsets[1], data.size());
    }
    t.data = data.subspan(offsets[0], offsets[1] - offsets[0]);
  } catch (const json::exception& ex) {
    fail(ErrorCode::Format, "{}: tensor '{}' has a malformed entry: {}", file, name, ex.what());
  }
  std::uint64_t n = element_size(t.dtype);
  for (auto d : t.shape) {
    if (d != 0 && n > (std::uint64_t{1} << 62) / d)
      fail(ErrorCode::Format, "{}: '{}' shape overflows", file, name);
    n *= d;
  }
  if (n != t.data.size()) {
    fail(ErrorCode::Format, "{}: tensor '{}' is {} bytes but dtype {} and its shape need {}", file,
         name, t.data.size(), to_string(t.dtype), n);
  }
  return t;
}

std::vector<Tensor> parse_shard(const detail::MappedFile& m) {
  const std::string& file = m.path();
  const auto bytes = m.bytes();
  if (bytes.size() < 8)
    fail(ErrorCode::Format, "{}: {} bytes is too short for safetensors", file, bytes.size());
  std::uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  if (n > bytes.size() - 8 || n > kMaxHeader) {
    fail(ErrorCode::Format, "{}: header length {} exceeds the file ({} bytes)", file, n,
         bytes.size());
  }
  const auto header = bytes.subspan(8, n);
  json j = json::parse(header.begin(), header.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    fail(ErrorCode::Format, "{}: header is not valid JSON", file);
  const auto data = bytes.subspan(8 + n);
  std::vector<Tensor> out;
  for (const auto& [name, e] : j.items()) {
    if (name == "__metadata__") continue;
    out.push_back(parse_entry(name, e, data, file));
  }
  std::vector<const Tensor*> sorted;
  for (const auto& t : out) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](auto* a, auto* b) { return a->data.data() < b->data.data(); });
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i - 1]->data.data() + sorted[i - 1]->data.size() > sorted[i]->data.data()) {
      fail(ErrorCode::Format, "{}: tensors '{}' and '{}' overlap", file, sorted[i - 1]->name,
           sorted[i]->name);
    }
  }
  return out;
}

std::map<std::string, std::string> read_index(const std::filesystem::path& path) {
  // Real indexes are well under 1 MiB (one line per tensor).
  const std::string text =
      detail::unwrap(detail::read_regular_file(path, 64u << 20, "safetensors index"));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
      !j["weight_map"].is_object()) {
    fail(ErrorCode::Format, "{}: not a valid safetensors index (needs a weight_map object)",
         path.string());
  }
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string())
      fail(ErrorCode::Format, "{}: weight_map['{}'] is not a file name", path.string(), name);
    const std::string f = file.get<std::string>();
    if (f.find('/') != std::string::npos || f == "..") {
      fail(ErrorCode::Format, "{}: shard name '{}' must be a plain file name", path.string(), f);
    }
    map[name] = f;
  }
  return map;
}

// Checked before the index is matched against the shards, so a duplicate is reported as such.
void check_unique(const std::vector<Tensor>& tensors) {
  std::set<std::string_view> seen;
  for (const auto& t : tensors) {
    if (!seen.insert(t.name).second) {
      fail(ErrorCode::Format, "{}: tensor '{}' appears in more than one shard", t.file, t.name);
    }
  }
}

}  // namespace

std::string_view to_string(SourceType t) noexcept {
  switch (t) {
    case SourceType::F32:
      return "F32";
    case SourceType::F16:
      return "F16";
    case SourceType::BF16:
      return "BF16";
  }
  return "?";
}

std::uint64_t Tensor::elements() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

Checkpoint::Checkpoint() = default;
Checkpoint::~Checkpoint() = default;
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;

Result<Checkpoint> Checkpoint::open(const std::filesystem::path& dir) {
  return detail::capture([&] {
    Checkpoint c;
    const auto index = dir / "model.safetensors.index.json";
    const auto single = dir / "model.safetensors";
    auto add_shard = [&](const std::filesystem::path& p) {
      auto m = std::make_shared<detail::MappedFile>(p);
      for (auto& t : parse_shard(*m)) c.tensors_.push_back(std::move(t));
      c.shards_.push_back(std::move(m));
    };
    if (std::filesystem::exists(index)) {
      const auto map = read_index(index);
      std::set<std::string> files;
      for (const auto& [name, f] : map) files.insert(f);
      for (const auto& f : files) add_shard(dir / f);
      check_unique(c.tensors_);
      for (const auto& [name, f] : map) {
        const Tensor* t = c.find(name);
        if (t == nullptr || std::filesystem::path(t->file).filename() != f) {
          fail(ErrorCode::Format, "{}: tensor '{}' is listed in shard {} but not found there",
               index.string(), name, f);
        }
      }
    } else if (std::filesystem::exists(single)) {
      add_shard(single);
      check_unique(c.tensors_);
    } else {
      fail(ErrorCode::Io, "{}: no model.safetensors or model.safetensors.index.json", dir.string());
    }
    return c;
  });
}

const Tensor* Checkpoint::find(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string Checkpoint::description() const {
  if (shards_.size() == 1)
    return std::filesystem::path(tensors_.empty() ? "" : tensors_[0].file).filename().string();
  return std::to_string(shards_.size()) + " safetensors shards";
}

void to_f32(const Tensor& t, std::span<float> out) {
  const std::uint8_t* p = t.data.data();
  const std::size_t n = out.size();
  switch (t.dtype) {
    case SourceType::F32:
      std::memcpy(out.data(), p, n * 4);
      break;
    case SourceType::F16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = detail::f16_to_f32(h);
      }
      break;
    case SourceType::BF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = detail::bf16_to_f32(h);
      }
      break;
  }
}

Result<void> write_file(const std::filesystem::path& path, std::span<const TensorSpec> tensors) {
  return detail::capture([&] {
    json header = json::object();
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> offsets;
    for (const auto& t : tensors) {
      std::uint64_t bytes = element_size(t.dtype);
      for (auto d : t.shape) bytes *= d;
      header[t.name] = {{"dtype", std::string(to_string(t.dtype))},
                        {"shape", t.shape},
                        {"data_offsets", {offset, offset + bytes}}};
      offsets.push_back(offset);
      offset += bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
    detail::AtomicFile out(path);
    const std::uint64_t n = text.size();
    out.write_at({reinterpret_cast<const std::uint8_t*>(&n), 8}, 0);
    out.write_at({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, 8);
    const std::uint64_t base = 8 + n;
    std::vector<std::uint8_t> buf;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const std::uint64_t end = i + 1 < tensors.size() ? offsets[i + 1] : offset;
      buf.assign(end - offsets[i], 0);
      tensors[i].produce(buf);
      out.write_at(buf, base + offsets[i]);
    }
    out.commit(base + offset);
  });
}

}  // namespace qlm::safetensors
