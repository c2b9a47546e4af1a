// A logits file (qlm-perplexity --save-logits / --kl): header, fingerprint, window layout, and
// every window read back with its checksum.
#include "fuzz_util.hpp"
#include "qlm/eval/logits_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = qlm::fuzz::write_file("input.logits", {data, size});
  auto reader = qlm::LogitsReader::open(path);
  if (!reader.ok()) return 0;
  for (std::uint32_t w = 0; w < reader->info().windows && w < 64; ++w) {
    if (!reader->read_window(w).ok()) break;
  }
  return 0;
}
