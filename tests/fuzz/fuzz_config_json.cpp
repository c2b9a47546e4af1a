// A Hugging Face config.json: types, ranges, rope scaling, architecture names.
#include "fuzz_util.hpp"
#include "qlm/convert/hf_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = qlm::fuzz::work_dir() / "cfg";
  std::filesystem::create_directories(dir);
  (void)qlm::fuzz::write_file("cfg/config.json", {data, size});
  (void)qlm::read_hf_config(dir);
  return 0;
}
