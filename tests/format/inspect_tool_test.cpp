// The qlm-inspect tool: prints metadata, the tensor table and bits per weight; --verify exits
// non-zero naming the corrupted tensor.
#include <catch2/catch.hpp>

#include "model/model_helpers.hpp"
#include "qlm/format/model_file.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {

TEST_CASE("qlm-inspect lists the file and --verify names a corrupted tensor", "[tools][format]") {
  TempDir tmp;
  const auto path = tmp / "m.qlm";
  convert_or_fail(stories_dir(), path, DType::Q4);
  std::string out;
  REQUIRE(run_command(tool_path("qlm-inspect") + " --verify '" + path.string() + "' 2>&1", out) ==
          0);
  CHECK(out.find("model.architecture") != std::string::npos);
  CHECK(out.find("model.layers.4.mlp.down_proj.weight") != std::string::npos);
  CHECK(out.find("bits per weight") != std::string::npos);
  CHECK(out.find("verify: all 47 tensor checksums OK") != std::string::npos);

  // Flip one byte inside the payload of a tensor in the middle of the file.
  std::string victim;
  std::uint64_t offset = 0;
  {
    auto file = format::ModelFile::open(path);
    REQUIRE(file.ok());
    const auto& t = (*file)->tensors()[20];
    victim = t.name;
    offset = (*file)->header().data_offset + t.offset + t.size / 2;
  }
  auto bytes = read_bytes(path);
  bytes[offset] ^= 0x5a;
  write_bytes(path, bytes);
  const int rc =
      run_command(tool_path("qlm-inspect") + " --verify '" + path.string() + "' 2>&1", out);
  CHECK(rc != 0);
  CHECK(out.find(victim) != std::string::npos);
  CHECK(out.find("checksum") != std::string::npos);
}

}  // namespace qlm::test
