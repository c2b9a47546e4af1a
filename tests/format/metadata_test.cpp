// Metadata block encoding: every value type round-trips, and malformed blocks are rejected with
// errors naming the source (trailing bytes, duplicate keys, absurd counts, truncation).
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "qlm/config.hpp"
#include "qlm/format/metadata.hpp"
#include "qlm/format/model_config.hpp"
#include "support/expect_error.hpp"
#include "util/byte_io.hpp"

namespace {

using qlm::ErrorCode;
using qlm::format::Metadata;
using qlm::format::MetaValue;

Metadata every_type() {
  using std::numeric_limits;
  Metadata m;
  m.set("bool.false", false);
  m.set("bool.true", true);
  m.set("i32", numeric_limits<std::int32_t>::min());
  m.set("u32", numeric_limits<std::uint32_t>::max());
  m.set("i64", numeric_limits<std::int64_t>::min());
  m.set("u64", numeric_limits<std::uint64_t>::max());
  m.set("f32", -0.0f);
  m.set("f32.inf", std::numeric_limits<float>::infinity());
  m.set("f32.denormal", std::numeric_limits<float>::denorm_min());
  m.set("f64", 3.141592653589793);
  m.set("string", std::string("h\xc3\xa9llo\0world", 12));
  m.set("string.empty", std::string());
  m.set("i32s", std::vector<std::int32_t>{-1, 0, 1, numeric_limits<std::int32_t>::max()});
  m.set("i32s.empty", std::vector<std::int32_t>{});
  m.set("u32s", std::vector<std::uint32_t>{0, 7, numeric_limits<std::uint32_t>::max()});
  m.set("u32s.empty", std::vector<std::uint32_t>{});
  m.set("f32s", std::vector<float>{1.5f, -2.25f, 1e-30f});
  m.set("f32s.empty", std::vector<float>{});
  m.set("strings", std::vector<std::string>{"", "a", std::string(300, 'x'), "\xe2\x96\x81the"});
  m.set("strings.empty", std::vector<std::string>{});
  m.set("bytes", std::vector<std::uint8_t>{0, 255, 10, 13});
  m.set("bytes.empty", std::vector<std::uint8_t>{});
  m.set("", std::string("empty key"));
  m.set(std::string(1000, 'k'), true);
  return m;
}

// Bytes of one encoded entry (u16 key length, key, u8 tag, payload) built by hand.
std::vector<std::uint8_t> entry(std::string_view key, std::uint8_t tag,
                                std::span<const std::uint8_t> payload) {
  qlm::detail::ByteWriter w;
  w.put<std::uint16_t>(static_cast<std::uint16_t>(key.size()));
  w.put_bytes(key);
  w.put<std::uint8_t>(tag);
  w.put_bytes(payload);
  return std::move(w.bytes());
}

std::vector<std::uint8_t> block(std::uint64_t count, std::span<const std::uint8_t> entries) {
  qlm::detail::ByteWriter w;
  w.put<std::uint64_t>(count);
  w.put_bytes(entries);
  return std::move(w.bytes());
}

std::vector<std::uint8_t> u64_bytes(std::uint64_t v) {
  std::vector<std::uint8_t> b(8);
  std::memcpy(b.data(), &v, 8);
  return b;
}

}  // namespace

TEST_CASE("metadata round-trips every value type", "[format]") {
  const Metadata m = every_type();
  std::set<std::size_t> kinds;
  for (const auto& [key, value] : m.entries()) kinds.insert(value.index());
  REQUIRE(kinds.size() == std::variant_size_v<MetaValue>);

  const auto bytes = qlm::format::encode_metadata(m);
  std::uint64_t count;
  std::memcpy(&count, bytes.data(), 8);
  CHECK(count == m.entries().size());
  const auto back = qlm::format::decode_metadata(bytes, "meta.bin");
  REQUIRE(back.ok());
  CHECK(back->entries() == m.entries());
  // -0.0 keeps its sign (== alone would not tell).
  const float* neg_zero = back->find<float>("f32");
  REQUIRE(neg_zero != nullptr);
  CHECK(std::bit_cast<std::uint32_t>(*neg_zero) == 0x80000000u);
  // A NaN survives as a NaN with the same bits.
  Metadata nan;
  nan.set("nan", std::bit_cast<float>(0x7fc01234u));
  const auto nan_back = qlm::format::decode_metadata(qlm::format::encode_metadata(nan), "n");
  REQUIRE(nan_back.ok());
  CHECK(std::bit_cast<std::uint32_t>(*nan_back->find<float>("nan")) == 0x7fc01234u);
  // find<T> is type-checked.
  CHECK(back->find<std::int32_t>("u32") == nullptr);
  CHECK(back->find<std::uint32_t>("u32") != nullptr);
}

TEST_CASE("empty metadata encodes as a zero count", "[format]") {
  const auto bytes = qlm::format::encode_metadata(Metadata{});
  CHECK(bytes == u64_bytes(0));
  const auto back = qlm::format::decode_metadata(bytes, "empty.bin");
  REQUIRE(back.ok());
  CHECK(back->entries().empty());
}

TEST_CASE("metadata decoding rejects malformed blocks", "[format]") {
  Metadata one;
  one.set("a", std::uint32_t{7});
  const auto good = qlm::format::encode_metadata(one);
  const std::vector<std::uint8_t> a_entry(good.begin() + 8, good.end());

  SECTION("trailing bytes") {
    auto bytes = good;
    bytes.push_back(0);
    qlm::test::expect_error(qlm::format::decode_metadata(bytes, "trail.bin"), ErrorCode::Format,
                            {"trail.bin", "unexpected"});
  }
  SECTION("duplicate keys") {
    std::vector<std::uint8_t> entries = a_entry;
    entries.insert(entries.end(), a_entry.begin(), a_entry.end());
    qlm::test::expect_error(qlm::format::decode_metadata(block(2, entries), "dup.bin"),
                            ErrorCode::Format, {"dup.bin", "'a'", "twice"});
  }
  SECTION("absurd entry count") {
    qlm::test::expect_error(qlm::format::decode_metadata(block(1ull << 62, a_entry), "n.bin"),
                            ErrorCode::Format, {"n.bin"});
    qlm::test::expect_error(qlm::format::decode_metadata(block(~0ull, a_entry), "n.bin"),
                            ErrorCode::Format, {"n.bin"});
  }
  SECTION("absurd array counts never allocate") {
    for (std::uint8_t tag : {7, 8, 9, 10, 11, 12}) {  // string and every array type
      INFO("tag " << int{tag});
      for (std::uint64_t n : {1ull << 61, ~0ull, 1000ull}) {
        const auto bytes = block(1, entry("arr", tag, u64_bytes(n)));
        qlm::test::expect_error(qlm::format::decode_metadata(bytes, "arr.bin"), ErrorCode::Format,
                                {"arr.bin"});
      }
    }
    // A string inside a string array claiming 4 GiB.
    auto payload = u64_bytes(1);
    for (std::uint8_t b : {0xff, 0xff, 0xff, 0xff}) payload.push_back(b);
    qlm::test::expect_error(
        qlm::format::decode_metadata(block(1, entry("s", 11, payload)), "s.bin"), ErrorCode::Format,
        {"s.bin"});
  }
  SECTION("unknown type tags") {
    for (std::uint8_t tag : {13, 14, 127, 255}) {
      const auto bytes = block(1, entry("weird", tag, u64_bytes(0)));
      qlm::test::expect_error(qlm::format::decode_metadata(bytes, "tag.bin"), ErrorCode::Format,
                              {"tag.bin", "weird", "type"});
    }
  }
  SECTION("every truncation of a valid block") {
    const auto full = qlm::format::encode_metadata(every_type());
    for (std::size_t cut = 0; cut < full.size(); ++cut) {
      INFO("cut at " << cut << " of " << full.size());
      const auto r = qlm::format::decode_metadata(std::span(full).first(cut), "cut.bin");
      REQUIRE_FALSE(r.ok());
      REQUIRE(r.error().code == ErrorCode::Format);
      REQUIRE(qlm::test::contains(r.error().message, "cut.bin"));
    }
  }
}

TEST_CASE("model config round-trips through metadata and missing keys are named", "[format]") {
  qlm::ModelConfig c;
  c.arch = qlm::Architecture::Qwen2;
  c.vocab_size = 1000;
  c.hidden_size = 128;
  c.intermediate_size = 300;
  c.n_layers = 3;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.rope_theta = 1e6f;
  c.rope_scaling.type = qlm::RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.original_max_position = 8192;
  c.rms_norm_eps = 1e-6f;
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.sliding_window = 4096;
  c.max_position_embeddings = 32768;
  c.bos_id = 5;
  c.eos_id = -1;
  Metadata m;
  qlm::store_config(c, m);
  const auto back = qlm::load_config(m, "cfg.qlm");
  REQUIRE(back.ok());
  CHECK(back->arch == c.arch);
  CHECK(back->vocab_size == c.vocab_size);
  CHECK(back->n_kv_heads == c.n_kv_heads);
  CHECK(back->head_dim == c.head_dim);
  CHECK(back->rope_theta == c.rope_theta);
  CHECK(back->rope_scaling.type == c.rope_scaling.type);
  CHECK(back->rope_scaling.factor == c.rope_scaling.factor);
  CHECK(back->sliding_window == c.sliding_window);
  CHECK(back->bos_id == c.bos_id);
  CHECK(back->eos_id == c.eos_id);

  for (const auto& [key, value] : m.entries()) {
    INFO("without " << key);
    Metadata partial;
    for (const auto& [k, v] : m.entries()) {
      if (k != key) partial.set(k, v);
    }
    qlm::test::expect_error(qlm::load_config(partial, "cfg.qlm"), ErrorCode::Format,
                            {"cfg.qlm", key});
  }
  Metadata wrong_type = m;
  wrong_type.set("model.vocab_size", std::uint64_t{1000});
  qlm::test::expect_error(qlm::load_config(wrong_type, "cfg.qlm"), ErrorCode::Format,
                          {"cfg.qlm", "model.vocab_size"});
  Metadata bad_arch = m;
  bad_arch.set("model.architecture", std::string("gpt2"));
  qlm::test::expect_error(qlm::load_config(bad_arch, "cfg.qlm"), ErrorCode::Unsupported,
                          {"cfg.qlm", "gpt2"});
}
