// A .qlm file from a stranger: header, metadata, tensor table, config keys, tokenizer tables,
// tensor shapes and bands (Model::open), then the file reader's own view (ModelFile::open,
// checksums) and the importance reader, which reads the same container.
#include "fuzz_util.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/model.hpp"
#include "qlm/quant/importance.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = qlm::fuzz::write_file("input.qlm", {data, size});
  if (auto model = qlm::Model::open(path); model.ok()) {
    (void)(*model)->tokenizer().encode("Once upon a time");
  }
  if (auto file = qlm::format::ModelFile::open(path); file.ok()) (void)(*file)->verify();
  (void)qlm::Importance::load(path);
  return 0;
}
