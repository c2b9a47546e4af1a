// Engine::restore on arbitrary sequence files, over stories260K (q8, f32 KV) converted at start.
// A zero model id or checksum in the input is replaced by the right one, so mutations get past
// those checks to the geometry, token and size checks; other values exercise the refusals.
// Properties: a restored sequence has at most the context's tokens, evaluates a token, and saves
// back to exactly the input bytes (the file has one spelling); a refused one leaves the pool as
// it was.
#include <xxhash.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_util.hpp"
#include "model_access.hpp"
#include "qlm/convert/convert.hpp"
#include "qlm/engine.hpp"

namespace {

qlm::Engine* g_engine = nullptr;  // set once by the initializer
std::uint64_t g_model_id = 0;

constexpr std::size_t kModelIdAt = 8 + 4 + 6 * 4;  // after magic, version, six u32 fields

std::vector<std::uint8_t> read_back(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* shared = std::getenv("QLM_SHARED_DIR");
  const std::filesystem::path root = shared ? shared : QLM_SHARED_DIR;
  const auto model_path = qlm::fuzz::work_dir() / "stories.qlm";
  if (!qlm::convert_checkpoint(
           {.input_dir = root / "models/stories260K", .output = model_path, .type = qlm::DType::Q8})
           .ok()) {
    std::abort();  // the shared data is missing: nothing to fuzz
  }
  static auto model = qlm::Model::open(model_path).value();
  static auto engine =
      qlm::Engine::create(model, {.kv_bytes = 64 * 40960, .context = 256, .threads = 1}).value();
  g_engine = &engine;
  g_model_id = qlm::detail::model_file(*model).header().index_checksum;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> in(data, data + size);
  std::uint64_t v = 0;
  if (in.size() >= kModelIdAt + 16) {
    std::memcpy(&v, &in[kModelIdAt], 8);
    if (v == 0) std::memcpy(&in[kModelIdAt], &g_model_id, 8);
    std::memcpy(&v, &in[in.size() - 8], 8);
    if (v == 0) {
      const std::uint64_t sum = XXH3_64bits(in.data(), in.size() - 8);
      std::memcpy(&in[in.size() - 8], &sum, 8);
    }
  }
  const auto path = qlm::fuzz::write_file("input.seq", in);
  const qlm::KvPoolStats before = g_engine->pool_stats();
  auto seq = g_engine->restore(path);
  if (!seq.ok()) {
    if (g_engine->pool_stats().used != before.used) std::abort();
    return 0;
  }
  if (g_engine->tokens(*seq)->size() > g_engine->context_size()) std::abort();
  const auto again = qlm::fuzz::work_dir() / "again.seq";
  if (!g_engine->save(*seq, again).ok() || read_back(again) != in) std::abort();
  if (g_engine->tokens(*seq)->size() < g_engine->context_size()) {
    const std::int32_t one = 1;
    const qlm::BatchItem item{*seq, {&one, 1}};
    if (!g_engine->eval({&item, 1}).ok()) std::abort();
  }
  (void)g_engine->remove(*seq);
  return 0;
}
