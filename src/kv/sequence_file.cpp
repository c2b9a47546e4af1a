// The sequence file: header, tokens, then for each layer group and each page it holds the rows of
// every (layer, head), keys then values, exactly as the pool stores them; the checksum last.
#include "kv/sequence_file.hpp"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "qlm/detail/read_file.hpp"
#include "util/atomic_file.hpp"
#include "util/byte_io.hpp"
#include "util/fail.hpp"

namespace qlm::detail {
namespace {

constexpr std::array<std::uint8_t, 8> kMagic = {'Q', 'L', 'M', 'S', 'E', 'Q', 0, 1};
// Version 2 added the layer groups (KvLayout). A file has one spelling: version 1 files are
// refused by name (evaluate their tokens again).
constexpr std::uint32_t kVersion = 2;

struct Header {
  std::uint32_t kv_type, layers, kv_heads, head_dim, page_tokens, tokens;
  std::uint64_t model_id;
  std::uint32_t global_groups, sliding_groups, window;
};

constexpr std::size_t kHeaderBytes = kMagic.size() + 4 + 6 * 4 + 8;
constexpr std::size_t kLayoutBytes = 3 * 4;

std::uint32_t pages_for(std::uint64_t tokens) {
  return static_cast<std::uint32_t>((tokens + kKvPageTokens - 1) / kKvPageTokens);
}

// The first token a sliding group's pages in the file hold (KvLayout::first_needed_page).
std::uint64_t first_kept(const Header& h) {
  if (h.window == 0 || h.tokens < h.window) return 0;
  return std::uint64_t{(h.tokens - h.window + 1) / kKvPageTokens} * kKvPageTokens;
}

std::uint64_t payload_bytes(const Header& h) {
  const std::uint64_t rows = std::uint64_t{h.global_groups} * h.tokens +
                             std::uint64_t{h.sliding_groups} * (h.tokens - first_kept(h));
  return rows * h.layers * h.kv_heads * h.head_dim * 2 *
         kv_type_size(static_cast<KvType>(h.kv_type));
}

// Copies the first `rows` keys from a dims-major key page to rows of hd elements of es bytes, the
// file's order (from_page), or back from such rows into the page.
void copy_key_rows(const std::byte* from, std::byte* to, std::size_t rows, std::size_t hd,
                   std::size_t es, bool from_page) {
  for (std::size_t t = 0; t < rows; ++t) {
    for (std::size_t i = 0; i < hd; ++i) {
      const std::size_t in_page = KvPool::key_offset(i, t, es), in_rows = (t * hd + i) * es;
      std::memcpy(to + (from_page ? in_rows : in_page), from + (from_page ? in_page : in_rows), es);
    }
  }
}

// Visits the stored runs of a sequence's pages in file order: for each layer group, for each page
// it holds, the rows of each (layer, head), keys then values, as (the page's keys or values in the
// pool, rows, whether keys). The file holds keys row by row, as values; the pool holds them
// dims-major (KvPool::rows), so callers transpose them with copy_key_rows.
template <class F>
void for_each_run(const SequenceKv& seq, std::size_t tokens, F&& f) {
  const KvPool& pool = seq.pool();
  const KvLayout& k = pool.layout();
  const auto n = static_cast<std::uint32_t>(tokens);
  for (std::uint32_t g = 0; g < k.groups(); ++g) {
    const std::span<const PageId> pages = seq.pages(g);
    for (std::size_t i = k.sliding(g) ? k.first_needed_page(n) : 0; i < pages_for(n); ++i) {
      const std::size_t rows = std::min<std::size_t>(kKvPageTokens, tokens - i * kKvPageTokens);
      for (std::uint32_t l = 0; l < pool.layers(); ++l) {
        for (std::uint32_t h = 0; h < pool.kv_heads(); ++h) {
          f(pool.rows(pages[i], l, h, false), rows, true);
          f(pool.rows(pages[i], l, h, true), rows, false);
        }
      }
    }
  }
}

// The pool's geometry as a header would state it.
Header geometry(const KvPool& pool, std::uint32_t tokens) {
  const KvLayout& k = pool.layout();
  const auto sliding =
      static_cast<std::uint32_t>(std::count(k.group_sliding.begin(), k.group_sliding.end(), 1));
  return {static_cast<std::uint32_t>(pool.type()),
          pool.layers(),
          pool.kv_heads(),
          pool.head_dim(),
          kKvPageTokens,
          tokens,
          0,
          k.groups() - sliding,
          sliding,
          k.window};
}

}  // namespace

void save_sequence(const std::filesystem::path& path, const SequenceKv& seq,
                   std::uint64_t model_id) {
  KvPool& pool = seq.pool();
  ByteWriter w;
  w.put_bytes(kMagic);
  w.put(kVersion);
  const Header h = geometry(pool, seq.size());
  for (std::uint32_t v : {h.kv_type, h.layers, h.kv_heads, h.head_dim, h.page_tokens, h.tokens}) {
    w.put(v);
  }
  w.put(model_id);
  for (std::uint32_t v : {h.global_groups, h.sliding_groups, h.window}) w.put(v);
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
  const std::size_t hd = seq.pool().head_dim(), es = kv_type_size(seq.pool().type());
  std::vector<std::byte> keys(std::size_t{kKvPageTokens} * hd * es);
  for_each_run(seq, seq.size(), [&](const std::byte* p, std::size_t rows, bool key) {
    if (key) copy_key_rows(p, keys.data(), rows, hd, es, true);
    write({reinterpret_cast<const std::uint8_t*>(key ? keys.data() : p), rows * hd * es});
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
  Header largest = geometry(pool, context);
  largest.kv_type = 0;
  const std::uint64_t limit =
      kHeaderBytes + kLayoutBytes + 4ull * context + payload_bytes(largest) + 8;
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
  h.global_groups = r.get<std::uint32_t>();
  h.sliding_groups = r.get<std::uint32_t>();
  h.window = r.get<std::uint32_t>();
  if (h.kv_type > 1) fail(ErrorCode::Format, "{}: unknown KV type {}", name, h.kv_type);
  if (h.global_groups > 4096 || h.sliding_groups > 4096) {
    fail(ErrorCode::Format, "{}: {} + {} layer groups is absurd", name, h.global_groups,
         h.sliding_groups);
  }
  const std::uint64_t expected =
      kHeaderBytes + kLayoutBytes + 4ull * h.tokens + payload_bytes(h) + 8;
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
         "{}: saved from another model file, or with the other longrope factors (a context on the "
         "other side of the model's original one): model id {:016x}, this engine's {:016x}",
         name, h.model_id, model_id);
  }
  if (static_cast<KvType>(h.kv_type) != pool.type()) {
    fail(ErrorCode::InvalidArgument, "{}: saved with KV type {}, this engine uses {}", name,
         to_string(static_cast<KvType>(h.kv_type)), to_string(pool.type()));
  }
  const Header mine = geometry(pool, h.tokens);
  if (h.layers != mine.layers || h.kv_heads != mine.kv_heads || h.head_dim != mine.head_dim ||
      h.page_tokens != kKvPageTokens || h.global_groups != mine.global_groups ||
      h.sliding_groups != mine.sliding_groups || h.window != mine.window) {
    fail(ErrorCode::InvalidArgument,
         "{}: cache geometry {}x{}x{}/{} in {} + {} groups, window {} differs from this "
         "engine's",
         name, h.layers, h.kv_heads, h.head_dim, h.page_tokens, h.global_groups, h.sliding_groups,
         h.window);
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
  const std::uint32_t need = seq.pages_needed_empty(h.tokens);
  if (need > pool.available()) {
    fail(ErrorCode::PoolFull, "{}: restoring needs {} KV pages; {} are available", name, need,
         pool.available());
  }
  seq.reserve_restore(h.tokens);
  const std::size_t hd = pool.head_dim(), es = kv_type_size(pool.type());
  for_each_run(seq, h.tokens, [&](std::byte* p, std::size_t rows, bool key) {
    const std::span<const std::uint8_t> in = r.take(rows * hd * es);
    if (key) {
      copy_key_rows(reinterpret_cast<const std::byte*>(in.data()), p, rows, hd, es, false);
    } else {
      std::memcpy(p, in.data(), in.size());
    }
  });
  seq.append(tokens);
}

}  // namespace qlm::detail
