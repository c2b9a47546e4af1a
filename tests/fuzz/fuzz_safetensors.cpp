// A safetensors file: the 8-byte length, the JSON header (dtypes, shapes, offsets) and the
// payload bounds (Checkpoint::open), then every tensor converted to f32.
#include <vector>

#include "fuzz_util.hpp"
#include "qlm/convert/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = qlm::fuzz::work_dir() / "ckpt";
  std::filesystem::create_directories(dir);
  (void)qlm::fuzz::write_file("ckpt/model.safetensors", {data, size});
  auto ckpt = qlm::safetensors::Checkpoint::open(dir);
  if (!ckpt.ok()) return 0;
  std::vector<float> out;
  for (const auto& t : ckpt->tensors()) {
    if (t.elements() > (std::size_t{1} << 20)) continue;  // the payload is within the input
    out.resize(t.elements());
    qlm::safetensors::to_f32(t, out);
  }
  return 0;
}
