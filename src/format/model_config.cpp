// ModelConfig <-> "model.*" metadata: one list of (key, member) pairs that both directions walk.
#include "qlm/format/model_config.hpp"

#include <string>
#include <type_traits>

#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {

// Calls f(key, member) for every stored member; C is ModelConfig or const ModelConfig.
template <class C, class F>
void for_each_key(C& c, F&& f) {
  f("model.architecture", c.arch);
  f("model.vocab_size", c.vocab_size);
  f("model.hidden_size", c.hidden_size);
  f("model.intermediate_size", c.intermediate_size);
  f("model.n_layers", c.n_layers);
  f("model.n_heads", c.n_heads);
  f("model.n_kv_heads", c.n_kv_heads);
  f("model.head_dim", c.head_dim);
  f("model.rope_theta", c.rope_theta);
  f("model.rope_scaling.type", c.rope_scaling.type);
  f("model.rope_scaling.factor", c.rope_scaling.factor);
  f("model.rope_scaling.low_freq_factor", c.rope_scaling.low_freq_factor);
  f("model.rope_scaling.high_freq_factor", c.rope_scaling.high_freq_factor);
  f("model.rope_scaling.original_max_position", c.rope_scaling.original_max_position);
  f("model.rms_norm_eps", c.rms_norm_eps);
  f("model.tie_word_embeddings", c.tie_word_embeddings);
  f("model.attention_bias", c.attention_bias);
  f("model.sliding_window", c.sliding_window);
  f("model.max_position_embeddings", c.max_position_embeddings);
  f("model.bos_id", c.bos_id);
  f("model.eos_id", c.eos_id);
}

// Keys added after the format's first release: absent in older files, which get the default
// (`d`, also what decides whether a key is written at all).
template <class C, class F>
void for_each_optional_key(C& c, F&& f) {
  const ModelConfig d;
  f("model.query_pre_attn_scalar", c.query_pre_attn_scalar, d.query_pre_attn_scalar);
  f("model.rope_local_theta", c.rope_local_theta, d.rope_local_theta);
  f("model.sliding_window_pattern", c.sliding_window_pattern, d.sliding_window_pattern);
  f("model.rotary_dim", c.rotary_dim, d.rotary_dim);
  f("model.rope_scaling.short_factor", c.rope_scaling.short_factor, d.rope_scaling.short_factor);
  f("model.rope_scaling.long_factor", c.rope_scaling.long_factor, d.rope_scaling.long_factor);
  f("model.rope_scaling.attention_factor", c.rope_scaling.attention_factor,
    d.rope_scaling.attention_factor);
}

// Enums are stored by name.
std::string_view rope_name(RopeScaling::Type t) {
  switch (t) {
    case RopeScaling::Type::Llama3:
      return "llama3";
    case RopeScaling::Type::Linear:
      return "linear";
    case RopeScaling::Type::LongRope:
      return "longrope";
    case RopeScaling::Type::None:
      break;
  }
  return "none";
}

template <class T>
const T& require(const format::Metadata& m, const char* key, std::string_view file) {
  const T* v = m.find<T>(key);
  if (v == nullptr) {
    fail(ErrorCode::Format, "{}: metadata key '{}' missing or of the wrong type", file, key);
  }
  return *v;
}

}  // namespace

void store_config(const ModelConfig& c, format::Metadata& m) {
  for_each_key(c, [&](const char* key, const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, Architecture>) {
      m.set(key, std::string(to_string(v)));
    } else if constexpr (std::is_same_v<T, RopeScaling::Type>) {
      m.set(key, std::string(rope_name(v)));
    } else {
      m.set(key, v);
    }
  });
  // Written only when set, so files of the older families stay readable by older readers.
  for_each_optional_key(c, [&](const char* key, const auto& v, const auto& fallback) {
    if (v != fallback) m.set(key, v);
  });
}

Result<ModelConfig> load_config(const format::Metadata& m, std::string_view file) {
  return detail::capture([&] {
    ModelConfig c;
    for_each_key(c, [&](const char* key, auto& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, Architecture>) {
        const std::string& name = require<std::string>(m, key, file);
        const auto arch = parse_architecture(name);
        if (!arch) {
          fail(ErrorCode::Unsupported,
               "{}: unknown architecture model_type '{}' (supported: llama, mistral, qwen2, qwen3, "
               "starcoder2, gemma3_text, phi3)",
               file, name);
        }
        v = *arch;
      } else if constexpr (std::is_same_v<T, RopeScaling::Type>) {
        const std::string& name = require<std::string>(m, key, file);
        bool known = false;
        for (T t : {T::None, T::Llama3, T::Linear, T::LongRope}) {
          if (name == rope_name(t)) {
            v = t;
            known = true;
          }
        }
        if (!known) fail(ErrorCode::Unsupported, "{}: unknown rope scaling '{}'", file, name);
      } else {
        v = require<T>(m, key, file);
      }
    });
    for_each_optional_key(c, [&](const char* key, auto& v, const auto&) {
      using T = std::decay_t<decltype(v)>;
      if (m.contains(key)) v = require<T>(m, key, file);
    });
    detail::unwrap(c.validate(file));
    return c;
  });
}

}  // namespace qlm
