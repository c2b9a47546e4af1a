// ModelConfig from a Hugging Face checkpoint's config.json.
#include "qlm/convert/hf_config.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "qlm/detail/read_file.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;
using nlohmann::json;

namespace {

constexpr std::uint64_t kMaxJson = 16u << 20;  // real config.json files are a few KiB

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
  if (type == "linear") {
    s.type = RopeScaling::Type::Linear;
    s.factor = require<float>(*it, "factor", file);
    return s;
  }
  if (type != "llama3") {
    fail(ErrorCode::Unsupported,
         "{}: rope_scaling type '{}' is not supported (only llama3 and linear)", file, type);
  }
  s.type = RopeScaling::Type::Llama3;
  s.factor = require<float>(*it, "factor", file);
  s.low_freq_factor = get_or<float>(*it, "low_freq_factor", 1.0f, file);
  s.high_freq_factor = get_or<float>(*it, "high_freq_factor", 4.0f, file);
  s.original_max_position =
      get_or<std::uint32_t>(*it, "original_max_position_embeddings", 8192, file);
  return s;
}

// Gemma 3's sliding layers from `layer_types` (newer configs) or `sliding_window_pattern`: stored
// as a period, which every published Gemma 3 follows (five local layers, then one global).
std::uint32_t gemma3_pattern(const json& j, std::uint32_t n_layers, const std::string& file) {
  auto it = j.find("layer_types");
  if (it == j.end() || it->is_null()) {
    return get_or<std::uint32_t>(j, "sliding_window_pattern", 6, file);
  }
  if (!it->is_array() || it->size() != n_layers) {
    fail(ErrorCode::Format, "{}: layer_types must list one type per layer ({})", file, n_layers);
  }
  std::vector<bool> global;
  for (const json& t : *it) {
    if (t == "full_attention") {
      global.push_back(true);
    } else if (t == "sliding_attention") {
      global.push_back(false);
    } else {
      fail(ErrorCode::Unsupported, "{}: layer type {} is not supported", file, t.dump());
    }
  }
  const auto first = std::find(global.begin(), global.end(), true);
  const auto period = static_cast<std::uint32_t>(first - global.begin()) + 1;
  for (std::uint32_t l = 0; l < n_layers; ++l) {
    if (first != global.end() && global[l] != ((l + 1) % period == 0)) {
      fail(ErrorCode::Unsupported,
           "{}: layer_types is not one global layer after every {} sliding ones", file, period - 1);
    }
  }
  return first == global.end() ? 0 : period;
}

// gemma3_text (transformers' Gemma3TextConfig defaults); the multimodal "gemma3" is refused
// before this, and every variant this graph does not compute is refused by name.
void parse_gemma3(const json& j, const std::string& file, ModelConfig& c) {
  const std::string act =
      get_or<std::string>(j, "hidden_activation",
                          get_or<std::string>(j, "hidden_act", "gelu_pytorch_tanh", file), file);
  if (act != "gelu_pytorch_tanh") {
    fail(ErrorCode::Unsupported, "{}: gemma3_text hidden_activation '{}' (only gelu_pytorch_tanh)",
         file, act);
  }
  for (const char* key : {"attn_logit_softcapping", "final_logit_softcapping"}) {
    if (j.contains(key) && !j[key].is_null()) {
      fail(ErrorCode::Unsupported, "{}: gemma3_text {} = {} is not supported", file, key,
           j[key].dump());
    }
  }
  for (const char* key : {"attention_bias", "use_bidirectional_attention"}) {
    if (get_or<bool>(j, key, false, file)) {
      fail(ErrorCode::Unsupported, "{}: gemma3_text {} = true is not supported", file, key);
    }
  }
  c.head_dim = get_or<std::uint32_t>(j, "head_dim", 256, file);
  c.query_pre_attn_scalar = get_or<float>(j, "query_pre_attn_scalar", 256.0f, file);
  c.rope_local_theta = get_or<float>(j, "rope_local_base_freq", 10000.0f, file);
  c.sliding_window = get_or<std::uint32_t>(j, "sliding_window", 4096, file);
  c.sliding_window_pattern = gemma3_pattern(j, c.n_layers, file);
  c.rope_theta = get_or<float>(j, "rope_theta", 1000000.0f, file);
  c.max_position_embeddings = get_or<std::uint32_t>(j, "max_position_embeddings", 131072, file);
}

// phi3 (transformers' Phi3Config and _compute_longrope_parameters): partial rotary dims, and
// longrope ("su" in older configs) with per-frequency short and long factors and cos/sin scaled
// by an attention factor. Which factors a session uses is decided from its context size.
void parse_phi3(const json& j, const std::string& file, ModelConfig& c) {
  if (get_or<bool>(j, "lm_head_bias", false, file)) {
    fail(ErrorCode::Unsupported, "{}: phi3 lm_head_bias = true is not supported", file);
  }
  const float partial = get_or<float>(j, "partial_rotary_factor", 1.0f, file);
  const auto rotary = static_cast<std::uint32_t>(static_cast<float>(c.head_dim) * partial);
  if (!(partial > 0.0f && partial <= 1.0f) || rotary == 0 || rotary % 2 != 0) {
    fail(ErrorCode::Unsupported,
         "{}: phi3 partial_rotary_factor {} gives {} rotated dimensions "
         "of {} (must be even and positive)",
         file, partial, rotary, c.head_dim);
  }
  c.rotary_dim = rotary == c.head_dim ? 0 : rotary;
  c.sliding_window = get_or<std::uint32_t>(j, "sliding_window", 0, file);
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return;
  const std::string type =
      get_or<std::string>(*it, "rope_type", get_or<std::string>(*it, "type", "", file), file);
  if (type != "longrope" && type != "su") {
    fail(ErrorCode::Unsupported, "{}: phi3 rope_scaling type '{}' is not supported (only longrope)",
         file, type);
  }
  RopeScaling& s = c.rope_scaling;
  s.type = RopeScaling::Type::LongRope;
  s.short_factor = require<std::vector<float>>(*it, "short_factor", file);
  s.long_factor = require<std::vector<float>>(*it, "long_factor", file);
  const auto original = get_or<std::uint32_t>(j, "original_max_position_embeddings", 0, file);
  float factor = get_or<float>(*it, "factor", 1.0f, file);
  s.original_max_position = c.max_position_embeddings;
  if (original != 0) {
    s.original_max_position = original;
    factor = static_cast<float>(c.max_position_embeddings) / static_cast<float>(original);
  }
  const double log_ratio = std::log(static_cast<double>(factor)) /
                           std::log(static_cast<double>(s.original_max_position));
  s.attention_factor =
      get_or<float>(*it, "attention_factor",
                    factor <= 1.0f ? 1.0f : static_cast<float>(std::sqrt(1.0 + log_ratio)), file);
}

ModelConfig parse_config(const json& j, const std::string& file) {
  if (!j.is_object()) fail(ErrorCode::Format, "{}: expected a JSON object", file);
  ModelConfig c;
  const std::string type = get_or<std::string>(j, "model_type", "", file);
  if (type == "gemma3") {
    fail(ErrorCode::Unsupported,
         "{}: model_type 'gemma3' (the multimodal Gemma3ForConditionalGeneration) is not "
         "supported; text-only checkpoints (gemma3_text) are",
         file);
  }
  const auto arch = parse_architecture(type);
  if (!arch) {
    fail(ErrorCode::Unsupported,
         "{}: unknown architecture model_type '{}' (supported: llama, mistral, qwen2, qwen3, "
         "starcoder2, gemma3_text, phi3)",
         file, type);
  }
  c.arch = *arch;
  const bool starcoder2 = c.arch == Architecture::Starcoder2;
  if (c.gemma()) {
    // checked in parse_gemma3
  } else if (starcoder2) {
    // The exact-erf "gelu" would need another kernel; every StarCoder2 config uses the tanh form.
    const std::string act = get_or<std::string>(j, "hidden_act", "gelu_pytorch_tanh", file);
    if (act != "gelu_pytorch_tanh") {
      fail(ErrorCode::Unsupported, "{}: starcoder2 hidden_act '{}' (only gelu_pytorch_tanh)", file,
           act);
    }
    const std::string norm = get_or<std::string>(j, "norm_type", "layer_norm", file);
    if (norm != "layer_norm") {
      fail(ErrorCode::Unsupported, "{}: starcoder2 norm_type '{}' (only layer_norm)", file, norm);
    }
    const std::string mlp = get_or<std::string>(j, "mlp_type", "default", file);
    if (mlp != "default") {
      fail(ErrorCode::Unsupported, "{}: starcoder2 mlp_type '{}' (only default)", file, mlp);
    }
  } else {
    const std::string act = get_or<std::string>(j, "hidden_act", "silu", file);
    if (act != "silu") fail(ErrorCode::Unsupported, "{}: hidden_act '{}' (only silu)", file, act);
    if (get_or<bool>(j, "mlp_bias", false, file)) {
      fail(ErrorCode::Unsupported, "{}: mlp_bias = true is not supported", file);
    }
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
  if (starcoder2 && j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const json& rs = j["rope_scaling"];
    const std::string scaling =
        rs.is_object()
            ? get_or<std::string>(rs, "rope_type", get_or<std::string>(rs, "type", "", file), file)
            : rs.dump();
    fail(ErrorCode::Unsupported, "{}: starcoder2 rope_scaling type '{}' is not supported", file,
         scaling);
  }
  if (c.arch != Architecture::Phi3) c.rope_scaling = parse_rope_scaling(j, file);
  // starcoder2 (Starcoder2Config defaults): LayerNorm eps in norm_epsilon, one use_bias for every
  // linear layer, tied embeddings unless the config says otherwise.
  c.rms_norm_eps = starcoder2 ? get_or<float>(j, "norm_epsilon", 1e-5f, file)
                              : get_or<float>(j, "rms_norm_eps", 1e-6f, file);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", starcoder2 || c.gemma(), file);
  c.attention_bias = c.arch == Architecture::Qwen2 ? true
                     : starcoder2                  ? get_or<bool>(j, "use_bias", true, file)
                                                   : get_or<bool>(j, "attention_bias", false, file);
  c.max_position_embeddings = get_or<std::uint32_t>(j, "max_position_embeddings", 2048, file);
  if (c.arch == Architecture::Mistral || starcoder2) {
    c.sliding_window = get_or<std::uint32_t>(j, "sliding_window", 0, file);
  } else if ((c.arch == Architecture::Qwen2 || c.arch == Architecture::Qwen3) &&
             get_or<bool>(j, "use_sliding_window", false, file)) {
    fail(ErrorCode::Unsupported, "{}: {} use_sliding_window = true is not supported", file,
         to_string(c.arch));
  }
  if (c.gemma()) parse_gemma3(j, file, c);
  if (c.arch == Architecture::Phi3) {
    c.attention_bias = false;  // Phi3Attention's qkv_proj has no bias, whatever the config says
    parse_phi3(j, file, c);
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
    const std::string text = detail::unwrap(detail::read_regular_file(file, kMaxJson, "config"));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) fail(ErrorCode::Format, "{}: invalid JSON", file);
    return parse_config(j, file);
  });
}

}  // namespace qlm
