// ModelConfig from Hugging Face config.json and to/from .qlm metadata.
#include "qlm/config.hpp"

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/fail.hpp"

namespace qlm {

using detail::fail;
using nlohmann::json;

std::string_view to_string(Architecture a) noexcept {
  switch (a) {
    case Architecture::Llama:
      return "llama";
    case Architecture::Mistral:
      return "mistral";
    case Architecture::Qwen2:
      return "qwen2";
  }
  return "?";
}

Result<void> ModelConfig::validate(std::string_view source) const {
  return detail::capture([&] {
    constexpr std::uint32_t kMaxDim = 1u << 20, kMaxVocab = 1u << 24, kMaxLayers = 1024;
    if (vocab_size == 0 || vocab_size > kMaxVocab || hidden_size == 0 || hidden_size > kMaxDim ||
        intermediate_size == 0 || intermediate_size > kMaxDim || n_layers == 0 ||
        n_layers > kMaxLayers || n_heads == 0 || n_heads > 4096 || head_dim == 0 ||
        head_dim > 4096 || n_kv_heads == 0) {
      fail(ErrorCode::Format,
           "{}: absurd or missing sizes (vocab {}, hidden {}, intermediate {}, layers {}, heads "
           "{}, kv heads {}, head_dim {})",
           source, vocab_size, hidden_size, intermediate_size, n_layers, n_heads, n_kv_heads,
           head_dim);
    }
    if (n_heads % n_kv_heads != 0) {
      fail(ErrorCode::Format, "{}: {} attention heads are not a multiple of {} kv heads", source,
           n_heads, n_kv_heads);
    }
    if (head_dim % 2 != 0) fail(ErrorCode::Format, "{}: head_dim {} is odd", source, head_dim);
    if (!(rope_theta > 0.0f) || !(rms_norm_eps > 0.0f) || !(rope_scaling.factor > 0.0f)) {
      fail(ErrorCode::Format, "{}: rope_theta {} / rms_norm_eps {} / rope factor {} must be > 0",
           source, rope_theta, rms_norm_eps, rope_scaling.factor);
    }
    if (rope_scaling.type == RopeScaling::Type::Llama3 &&
        !(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor)) {
      fail(ErrorCode::Format, "{}: llama3 rope_scaling needs high_freq_factor > low_freq_factor",
           source);
    }
  });
}

namespace {

template <class T>
T get_or(const json& j, const char* key, T fallback, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // nlohmann would truncate 64.5 to 64 and cast huge values with undefined behaviour.
    const bool fits =
        it->is_number_integer() &&
        (std::is_signed_v<T> ? it->get<std::int64_t>() >= std::numeric_limits<T>::min() &&
                                   it->get<std::int64_t>() <= std::numeric_limits<T>::max()
                             : it->is_number_unsigned() &&
                                   it->get<std::uint64_t>() <= std::numeric_limits<T>::max());
    if (!fits)
      fail(ErrorCode::Format, "{}: field '{}' must be an integer in range, not {}", file, key,
           it->dump());
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail(ErrorCode::Format, "{}: field '{}' has the wrong type ({})", file, key, it->dump());
  }
}

template <class T>
T require(const json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) {
    fail(ErrorCode::Format, "{}: missing field '{}'", file, key);
  }
  return get_or<T>(j, key, T{}, file);
}

// bos/eos ids may be an integer or a list (the first is the primary one).
std::int32_t first_id(const json& j, const char* key, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return -1;
  const json& v = it->is_array() && !it->empty() ? (*it)[0] : *it;
  if (v.is_array()) return -1;
  if (!v.is_number_integer()) fail(ErrorCode::Format, "{}: '{}' is not a token id", file, key);
  return v.get<std::int32_t>();
}

RopeScaling parse_rope_scaling(const json& j, const std::string& file) {
  RopeScaling s;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return s;
  const std::string type =
      get_or<std::string>(*it, "rope_type", get_or<std::string>(*it, "type", "", file), file);
  if (type == "default") return s;
  if (type != "llama3") {
    fail(ErrorCode::Unsupported, "{}: rope_scaling type '{}' is not supported (only llama3)", file,
         type);
  }
  s.type = RopeScaling::Type::Llama3;
  s.factor = require<float>(*it, "factor", file);
  s.low_freq_factor = get_or<float>(*it, "low_freq_factor", 1.0f, file);
  s.high_freq_factor = get_or<float>(*it, "high_freq_factor", 4.0f, file);
  s.original_max_position =
      get_or<std::uint32_t>(*it, "original_max_position_embeddings", 8192, file);
  return s;
}

Architecture parse_architecture(const std::string& name, std::string_view file) {
  for (auto a : {Architecture::Llama, Architecture::Mistral, Architecture::Qwen2}) {
    if (to_string(a) == name) return a;
  }
  fail(ErrorCode::Unsupported,
       "{}: unknown architecture model_type '{}' (supported: llama, mistral, qwen2)", file, name);
}

ModelConfig parse_config(const json& j, const std::string& file) {
  if (!j.is_object()) fail(ErrorCode::Format, "{}: expected a JSON object", file);
  ModelConfig c;
  c.arch = parse_architecture(get_or<std::string>(j, "model_type", "", file), file);
  const std::string act = get_or<std::string>(j, "hidden_act", "silu", file);
  if (act != "silu") fail(ErrorCode::Unsupported, "{}: hidden_act '{}' (only silu)", file, act);
  if (get_or<bool>(j, "mlp_bias", false, file)) {
    fail(ErrorCode::Unsupported, "{}: mlp_bias = true is not supported", file);
  }
  c.vocab_size = require<std::uint32_t>(j, "vocab_size", file);
  c.hidden_size = require<std::uint32_t>(j, "hidden_size", file);
  c.intermediate_size = require<std::uint32_t>(j, "intermediate_size", file);
  c.n_layers = require<std::uint32_t>(j, "num_hidden_layers", file);
  c.n_heads = require<std::uint32_t>(j, "num_attention_heads", file);
  c.n_kv_heads = get_or<std::uint32_t>(j, "num_key_value_heads", c.n_heads, file);
  c.head_dim =
      get_or<std::uint32_t>(j, "head_dim", c.n_heads ? c.hidden_size / c.n_heads : 0, file);
  c.rope_theta = get_or<float>(j, "rope_theta", 10000.0f, file);
  c.rope_scaling = parse_rope_scaling(j, file);
  c.rms_norm_eps = get_or<float>(j, "rms_norm_eps", 1e-6f, file);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, file);
  c.attention_bias =
      c.arch == Architecture::Qwen2 ? true : get_or<bool>(j, "attention_bias", false, file);
  c.max_position_embeddings = get_or<std::uint32_t>(j, "max_position_embeddings", 2048, file);
  if (c.arch == Architecture::Mistral) {
    c.sliding_window = get_or<std::uint32_t>(j, "sliding_window", 0, file);
  } else if (c.arch == Architecture::Qwen2 && get_or<bool>(j, "use_sliding_window", false, file)) {
    fail(ErrorCode::Unsupported, "{}: qwen2 use_sliding_window = true is not supported", file);
  }
  c.bos_id = first_id(j, "bos_token_id", file);
  c.eos_id = first_id(j, "eos_token_id", file);
  detail::unwrap(c.validate(file));
  return c;
}

}  // namespace

Result<ModelConfig> read_hf_config(const std::filesystem::path& dir) {
  const std::string file = (dir / "config.json").string();
  return detail::capture([&] {
    std::ifstream in(file);
    if (!in) fail(ErrorCode::Io, "{}: cannot open", file);
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded()) fail(ErrorCode::Format, "{}: invalid JSON", file);
    return parse_config(j, file);
  });
}

void store_config(const ModelConfig& c, format::Metadata& m) {
  m.set("model.architecture", std::string(to_string(c.arch)));
  m.set("model.vocab_size", c.vocab_size);
  m.set("model.hidden_size", c.hidden_size);
  m.set("model.intermediate_size", c.intermediate_size);
  m.set("model.n_layers", c.n_layers);
  m.set("model.n_heads", c.n_heads);
  m.set("model.n_kv_heads", c.n_kv_heads);
  m.set("model.head_dim", c.head_dim);
  m.set("model.rope_theta", c.rope_theta);
  m.set("model.rope_scaling.type",
        std::string(c.rope_scaling.type == RopeScaling::Type::Llama3 ? "llama3" : "none"));
  m.set("model.rope_scaling.factor", c.rope_scaling.factor);
  m.set("model.rope_scaling.low_freq_factor", c.rope_scaling.low_freq_factor);
  m.set("model.rope_scaling.high_freq_factor", c.rope_scaling.high_freq_factor);
  m.set("model.rope_scaling.original_max_position", c.rope_scaling.original_max_position);
  m.set("model.rms_norm_eps", c.rms_norm_eps);
  m.set("model.tie_word_embeddings", c.tie_word_embeddings);
  m.set("model.attention_bias", c.attention_bias);
  m.set("model.sliding_window", c.sliding_window);
  m.set("model.max_position_embeddings", c.max_position_embeddings);
  m.set("model.bos_id", c.bos_id);
  m.set("model.eos_id", c.eos_id);
}

namespace {

template <class T>
T meta_get(const format::Metadata& m, const char* key, std::string_view file) {
  const T* v = m.find<T>(key);
  if (v == nullptr)
    fail(ErrorCode::Format, "{}: metadata key '{}' missing or of the wrong type", file, key);
  return *v;
}

}  // namespace

Result<ModelConfig> load_config(const format::Metadata& m, std::string_view file) {
  return detail::capture([&] {
    ModelConfig c;
    c.arch = parse_architecture(meta_get<std::string>(m, "model.architecture", file), file);
    c.vocab_size = meta_get<std::uint32_t>(m, "model.vocab_size", file);
    c.hidden_size = meta_get<std::uint32_t>(m, "model.hidden_size", file);
    c.intermediate_size = meta_get<std::uint32_t>(m, "model.intermediate_size", file);
    c.n_layers = meta_get<std::uint32_t>(m, "model.n_layers", file);
    c.n_heads = meta_get<std::uint32_t>(m, "model.n_heads", file);
    c.n_kv_heads = meta_get<std::uint32_t>(m, "model.n_kv_heads", file);
    c.head_dim = meta_get<std::uint32_t>(m, "model.head_dim", file);
    c.rope_theta = meta_get<float>(m, "model.rope_theta", file);
    const auto rope_type = meta_get<std::string>(m, "model.rope_scaling.type", file);
    if (rope_type == "llama3") {
      c.rope_scaling.type = RopeScaling::Type::Llama3;
    } else if (rope_type != "none") {
      fail(ErrorCode::Unsupported, "{}: unknown rope scaling '{}'", file, rope_type);
    }
    c.rope_scaling.factor = meta_get<float>(m, "model.rope_scaling.factor", file);
    c.rope_scaling.low_freq_factor = meta_get<float>(m, "model.rope_scaling.low_freq_factor", file);
    c.rope_scaling.high_freq_factor =
        meta_get<float>(m, "model.rope_scaling.high_freq_factor", file);
    c.rope_scaling.original_max_position =
        meta_get<std::uint32_t>(m, "model.rope_scaling.original_max_position", file);
    c.rms_norm_eps = meta_get<float>(m, "model.rms_norm_eps", file);
    c.tie_word_embeddings = meta_get<bool>(m, "model.tie_word_embeddings", file);
    c.attention_bias = meta_get<bool>(m, "model.attention_bias", file);
    c.sliding_window = meta_get<std::uint32_t>(m, "model.sliding_window", file);
    c.max_position_embeddings = meta_get<std::uint32_t>(m, "model.max_position_embeddings", file);
    c.bos_id = meta_get<std::int32_t>(m, "model.bos_id", file);
    c.eos_id = meta_get<std::int32_t>(m, "model.eos_id", file);
    detail::unwrap(c.validate(file));
    return c;
  });
}

}  // namespace qlm
