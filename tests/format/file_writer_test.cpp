// write_qlm_file: the layout it produces (alignment, ordering, sizes), argument validation, and
// failures of a tensor producer leaving nothing behind.
#include <catch2/catch.hpp>
#include <cstring>

#include "qlm/format/file_writer.hpp"
#include "qlm/format/model_file.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

using qlm::DType;
using qlm::ErrorCode;
using qlm::format::Metadata;
using qlm::format::ModelFile;
using qlm::format::PendingTensor;
using qlm::test::expect_error;
using qlm::test::TempDir;

PendingTensor filled(std::string name, DType type, std::vector<std::uint64_t> shape,
                     std::uint8_t value) {
  return {std::move(name), type, std::move(shape), [value](std::span<std::uint8_t> out) {
            std::memset(out.data(), value, out.size());
            return qlm::Result<void>{};
          }};
}

}  // namespace

TEST_CASE("write_qlm_file lays tensors out aligned, in order, without overlap", "[format]") {
  const TempDir tmp;
  const std::vector<PendingTensor> tensors{
      filled("one", DType::F32, {3}, 1),        filled("two", DType::Q4, {17, 33}, 2),
      filled("three", DType::BF16, {5, 7}, 3),  filled("four", DType::Q8, {1, 1}, 4),
      filled("five", DType::F16, {2, 2, 2}, 5),
  };
  Metadata meta;
  meta.set("k", std::string("v"));
  const auto path = tmp / "layout.qlm";
  const auto end = qlm::format::write_qlm_file(path, meta, tensors);
  REQUIRE(end.ok());
  CHECK(*end == std::filesystem::file_size(path));
  const auto f = ModelFile::open(path, {.verify_checksums = true, .populate = false});
  REQUIRE(f.ok());
  const auto& h = (*f)->header();
  CHECK(h.data_offset % qlm::format::kDataAlignment == 0);
  CHECK(h.metadata_offset == 64);
  CHECK(h.table_offset == h.metadata_offset + h.metadata_size);
  REQUIRE((*f)->tensors().size() == tensors.size());
  std::uint64_t next = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = (*f)->tensors()[i];
    INFO("tensor " << t.name);
    CHECK(t.name == tensors[i].name);
    CHECK(t.dtype == tensors[i].dtype);
    CHECK(t.shape == tensors[i].shape);
    CHECK(t.size == qlm::tensor_bytes(t.dtype, t.shape));
    CHECK(t.offset % qlm::format::kTensorAlignment == 0);
    CHECK(t.offset >= next);
    CHECK(t.offset - next < qlm::format::kTensorAlignment);  // no gap beyond alignment padding
    next = t.offset + t.size;
    const auto data = (*f)->data(t);
    CHECK(std::all_of(data.begin(), data.end(), [&](std::uint8_t b) { return b == i + 1; }));
  }
  CHECK(h.data_offset + next == *end);
}

TEST_CASE("an empty .qlm file (no tensors, no metadata) is valid", "[format]") {
  const TempDir tmp;
  const auto path = tmp / "empty.qlm";
  const auto end = qlm::format::write_qlm_file(path, Metadata{}, {});
  REQUIRE(end.ok());
  const auto f = ModelFile::open(path, {.verify_checksums = true, .populate = false});
  REQUIRE(f.ok());
  CHECK((*f)->tensors().empty());
  CHECK((*f)->metadata().entries().empty());
  CHECK((*f)->file_size() == *end);
}

TEST_CASE("write_qlm_file rejects invalid tensors and leaves no file", "[format]") {
  const TempDir tmp;
  const auto path = tmp / "bad.qlm";
  auto write = [&](const std::vector<PendingTensor>& t) {
    auto r = qlm::format::write_qlm_file(path, Metadata{}, t);
    CHECK(qlm::test::list_dir(tmp.path()).empty());
    return r;
  };
  expect_error(write({filled("a", DType::F32, {2}, 0), filled("a", DType::F32, {2}, 0)}),
               ErrorCode::InvalidArgument, {"'a'", "twice"});
  expect_error(write({filled("", DType::F32, {2}, 0)}), ErrorCode::InvalidArgument, {"empty"});
  expect_error(write({filled("q", DType::Q8, {64}, 0)}), ErrorCode::InvalidArgument, {"'q'", "q8"});
  expect_error(write({filled("z", DType::F32, {4, 0}, 0)}), ErrorCode::InvalidArgument, {"'z'"});
  expect_error(write({filled(std::string(70000, 'n'), DType::F32, {1}, 0)}),
               ErrorCode::InvalidArgument, {"too long"});
  // A producer's error comes back unchanged and nothing is written.
  PendingTensor failing{"f", DType::F32, {8}, [](std::span<std::uint8_t>) -> qlm::Result<void> {
                          return qlm::Error{ErrorCode::Io, "source.bin: read failed"};
                        }};
  expect_error(write({filled("ok", DType::F32, {8}, 1), failing}), ErrorCode::Io,
               {"source.bin: read failed"});
}

TEST_CASE("metadata that cannot be encoded is refused rather than written corrupt", "[format]") {
  // Keys are stored with a 16-bit length: a longer key must not produce an unreadable file.
  const TempDir tmp;
  const auto path = tmp / "longkey.qlm";
  Metadata meta;
  meta.set(std::string(70000, 'k'), true);
  const auto w = qlm::format::write_qlm_file(path, meta, {});
  if (w.ok()) {
    const auto f = ModelFile::open(path);
    INFO((f.ok() ? std::string("opened") : f.error().message.substr(0, 160)));
    REQUIRE(f.ok());
    CHECK((*f)->metadata().entries() == meta.entries());
  } else {
    CHECK(w.error().code == ErrorCode::InvalidArgument);
    CHECK_FALSE(std::filesystem::exists(path));
  }
}
