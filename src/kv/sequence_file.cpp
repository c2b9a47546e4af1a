// The sequence file: header, tokens, then for each page the rows it holds of every (layer,
// head), keys then values, exactly as the pool stores them; the checksum last.
#include "kv/sequence_file.hpp"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "qlm/detail/read_file.hpp"
#include "util/atomic_file.hpp"
#include "util/byte_io.hpp"
#include "util/fail.hpp"

namespace qlm::detail {
namespace {

constexpr std::array<std::uint8_t, 8> kMagic = {'Q', 'L', 'M', 'S', 'E', 'Q', 0, 1};
constexpr std::uint32_t kVersion = 1;

struct Header {
  std::uint32_t kv_type, layers, kv_heads, head_dim, page_tokens, tokens;
  std::uint64_t model_id;
};

constexpr std::size_t kHeaderBytes = kMagic.size() + 4 + 6 * 4 + 8;

std::uint64_t payload_bytes(const Header& h) {
  return std::uint64_t{h.tokens} * h.layers * h.kv_heads * h.head_dim * 2 *
         kv_type_size(static_cast<KvType>(h.kv_type));
}

// Visits the stored runs of a sequence's pages in file order: for each page, the rows it holds
// of each (layer, head), keys then values, as (pointer into the pool, bytes).
template <class F>
void for_each_run(const KvPool& pool, std::span<const PageId> pages, std::size_t tokens, F&& f) {
  const std::size_t row = std::size_t{pool.head_dim()} * kv_type_size(pool.type());
  for (std::size_t i = 0; i * kKvPageTokens < tokens; ++i) {
    const std::size_t rows = std::min<std::size_t>(kKvPageTokens, tokens - i * kKvPageTokens);
    for (std::uint32_t l = 0; l < pool.layers(); ++l) {
      for (std::uint32_t h = 0; h < pool.kv_heads(); ++h) {
        f(pool.rows(pages[i], l, h, false), rows * row);
        f(pool.rows(pages[i], l, h, true), rows * row);
      }
    }
  }
}

}  // namespace

void save_sequence(const std::filesystem::path& path, const SequenceKv& seq,
                   std::uint64_t model_id) {
  KvPool& pool = seq.pool();
  ByteWriter w;
  w.put_bytes(kMagic);
  w.put(kVersion);
  for (std::uint32_t v : {static_cast<std::uint32_t>(pool.type()), pool.layers(), pool.kv_heads(),
                          pool.head_dim(), kKvPageTokens, seq.size()}) {
    w.put(v);
  }
  w.put(model_id);
  for (std::int32_t t : seq.tokens()) w.put(t);
  // Owned from the start: the file's constructor may throw (e.g. no such directory).
  const std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                              XXH3_freeState);
  if (!state) throw std::bad_alloc();
  XXH3_64bits_reset(state.get());
  AtomicFile out(path);
  std::uint64_t offset = 0;
  auto write = [&](std::span<const std::uint8_t> bytes) {
    XXH3_64bits_update(state.get(), bytes.data(), bytes.size());
    out.write_at(bytes, offset);
    offset += bytes.size();
  };
  write(w.bytes());
  for_each_run(pool, seq.pages(), seq.size(), [&](const std::byte* p, std::size_t n) {
    write({reinterpret_cast<const std::uint8_t*>(p), n});
  });
  const std::uint64_t sum = XXH3_64bits_digest(state.get());
  write({reinterpret_cast<const std::uint8_t*>(&sum), sizeof sum});
  out.commit(offset);
}

void restore_sequence(const std::filesystem::path& path, SequenceKv& seq, std::uint64_t model_id,
                      std::uint32_t context, std::uint32_t vocab) {
  KvPool& pool = seq.pool();
  const std::string name = path.string();
  // The largest file this engine could have written: the full context in f32.
  const std::uint64_t limit =
      kHeaderBytes + 4ull * context +
      payload_bytes({0, pool.layers(), pool.kv_heads(), pool.head_dim(), 0, context, 0}) + 8;
  const std::string data = unwrap(read_regular_file(path, limit, "sequence file"));
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(data.data()),
                                            data.size());
  ByteReader r(bytes, name, "sequence file");
  const auto magic = r.take(kMagic.size());
  if (!std::equal(magic.begin(), magic.end(), kMagic.begin())) {
    fail(ErrorCode::Format, "{}: not a qlm sequence file", name);
  }
  if (const auto v = r.get<std::uint32_t>(); v != kVersion) {
    fail(ErrorCode::Format, "{}: sequence file version {} (this build reads {})", name, v,
         kVersion);
  }
  Header h{};
  h.kv_type = r.get<std::uint32_t>();
  h.layers = r.get<std::uint32_t>();
  h.kv_heads = r.get<std::uint32_t>();
  h.head_dim = r.get<std::uint32_t>();
  h.page_tokens = r.get<std::uint32_t>();
  h.tokens = r.get<std::uint32_t>();
  h.model_id = r.get<std::uint64_t>();
  if (h.kv_type > 1) fail(ErrorCode::Format, "{}: unknown KV type {}", name, h.kv_type);
  const std::uint64_t expected = kHeaderBytes + 4ull * h.tokens + payload_bytes(h) + 8;
  if (bytes.size() != expected) {
    fail(ErrorCode::Format, "{}: {} bytes, but its header describes {} (truncated or padded)", name,
         bytes.size(), expected);
  }
  std::uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (XXH3_64bits(bytes.data(), bytes.size() - 8) != stored) {
    fail(ErrorCode::Checksum, "{}: checksum mismatch (the file was altered or damaged)", name);
  }
  if (h.model_id != model_id) {
    fail(ErrorCode::InvalidArgument,
         "{}: saved from another model file (model id {:016x}, this engine's {:016x})", name,
         h.model_id, model_id);
  }
  if (static_cast<KvType>(h.kv_type) != pool.type()) {
    fail(ErrorCode::InvalidArgument, "{}: saved with KV type {}, this engine uses {}", name,
         to_string(static_cast<KvType>(h.kv_type)), to_string(pool.type()));
  }
  if (h.layers != pool.layers() || h.kv_heads != pool.kv_heads() || h.head_dim != pool.head_dim() ||
      h.page_tokens != kKvPageTokens) {
    fail(ErrorCode::InvalidArgument, "{}: cache geometry {}x{}x{}/{} differs from this engine's",
         name, h.layers, h.kv_heads, h.head_dim, h.page_tokens);
  }
  if (h.tokens > context) {
    fail(ErrorCode::InvalidArgument, "{}: {} tokens exceed the context of {}", name, h.tokens,
         context);
  }
  std::vector<std::int32_t> tokens(h.tokens);
  std::memcpy(tokens.data(), r.take(4ull * h.tokens).data(), 4ull * h.tokens);
  for (std::int32_t t : tokens) {
    if (t < 0 || static_cast<std::uint32_t>(t) >= vocab) {
      fail(ErrorCode::Format, "{}: token id {} is outside the vocabulary [0, {})", name, t, vocab);
    }
  }
  const std::uint32_t need = seq.pages_needed(h.tokens);
  if (need > pool.available()) {
    fail(ErrorCode::PoolFull, "{}: restoring needs {} KV pages; {} are available", name, need,
         pool.available());
  }
  seq.reserve(h.tokens);
  for_each_run(pool, seq.pages(), h.tokens,
               [&](std::byte* p, std::size_t n) { std::memcpy(p, r.take(n).data(), n); });
  seq.append(tokens);
}

}  // namespace qlm::detail
