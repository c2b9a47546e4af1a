// Malformed .qlm and safetensors files: every one must give an Error of the right kind naming the
// file and the problem, without crashing, hanging or allocating in proportion to a corrupt count.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <source_location>

#include "format/table_codec.hpp"
#include "qlm/convert/safetensors.hpp"
#include "qlm/format/file_writer.hpp"
#include "qlm/format/model_file.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/qlm_image.hpp"
#include "support/temp_dir.hpp"
#include "util/byte_io.hpp"

namespace {

using qlm::DType;
using qlm::ErrorCode;
using qlm::format::FileHeader;
using qlm::format::ModelFile;
using qlm::test::expect_error;
using qlm::test::TempDir;
using Bytes = std::vector<std::uint8_t>;

// A small valid .qlm: three tensors of different types and a little metadata.
Bytes small_qlm(const TempDir& tmp) {
  qlm::format::Metadata meta;
  meta.set("model.name", std::string("tiny"));
  meta.set("model.list", std::vector<std::int32_t>{1, 2, 3});
  auto fill = [](std::uint8_t seed) {
    return [seed](std::span<std::uint8_t> out) -> qlm::Result<void> {
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(seed + i);
      return {};
    };
  };
  const std::vector<qlm::format::PendingTensor> tensors{
      {"a.weight", DType::F32, {100}, fill(1)},
      {"b.weight", DType::Q8, {20, 40}, fill(2)},
      {"c.weight", DType::F16, {3, 5}, fill(3)},
  };
  const auto path = tmp / "small.qlm";
  const auto r = qlm::format::write_qlm_file(path, meta, tensors);
  if (!r) FAIL(r.error().message);
  return qlm::test::read_bytes(path);
}

// Writes `bytes` to a file in `tmp` and opens it.
qlm::Result<std::shared_ptr<ModelFile>> open_bytes(const TempDir& tmp, const Bytes& bytes,
                                                   bool verify = false,
                                                   const std::string& name = "bad.qlm") {
  qlm::test::write_bytes(tmp / name, bytes);
  return ModelFile::open(tmp / name, {.verify_checksums = verify, .populate = false});
}

void expect_open_error(const TempDir& tmp, const Bytes& bytes, ErrorCode code,
                       std::initializer_list<std::string_view> needles,
                       std::source_location where = std::source_location::current()) {
  const auto r = open_bytes(tmp, bytes);
  expect_error(r, code, needles, where);
  if (!r.ok()) CHECK(qlm::test::contains(r.error().message, (tmp / "bad.qlm").string()));
}

// The file with its table rebuilt after `edit` changed the entries (checksum kept valid).
Bytes with_table(const Bytes& file, const std::function<void(qlm::test::QlmImage&)>& edit) {
  auto img = qlm::test::parse_qlm(file);
  edit(img);
  return qlm::test::build_qlm(img);
}

// The file with its metadata block replaced by raw bytes (checksum kept valid).
Bytes with_metadata(const Bytes& file, std::span<const std::uint8_t> metadata) {
  const auto img = qlm::test::parse_qlm(file);
  const auto table = qlm::format::detail::encode_table(img.table);
  return qlm::test::assemble_qlm(img.header, metadata, table, img.data);
}

Bytes metadata_with_entry(std::uint8_t tag, std::span<const std::uint8_t> payload) {
  qlm::detail::ByteWriter w;
  w.put<std::uint64_t>(1);
  w.put<std::uint16_t>(3);
  w.put_bytes(std::string_view("key"));
  w.put<std::uint8_t>(tag);
  w.put_bytes(payload);
  return std::move(w.bytes());
}

}  // namespace

TEST_CASE("the small .qlm fixture is valid", "[format]") {
  const TempDir tmp;
  const Bytes file = small_qlm(tmp);
  const auto f = open_bytes(tmp, file, true);
  REQUIRE(f.ok());
  CHECK((*f)->tensors().size() == 3);
  // Rebuilding it unchanged through the test helpers gives the same file.
  CHECK(qlm::test::build_qlm(qlm::test::parse_qlm(file)) == file);
  // Read into private memory rather than mapped, it is the same file, byte for byte.
  const auto copy = ModelFile::open(tmp / "bad.qlm", {.verify_checksums = true, .copy = true});
  REQUIRE(copy.ok());
  REQUIRE(copy.value()->tensors().size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto a = (*f)->data((*f)->tensors()[i]);
    const auto b = (*copy)->data((*copy)->tensors()[i]);
    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
  }
  CHECK((*copy)->metadata().entries() == (*f)->metadata().entries());
}

TEST_CASE("truncated .qlm files are rejected at every cut point", "[format]") {
  const TempDir tmp;
  const Bytes file = small_qlm(tmp);
  const FileHeader h = qlm::test::read_header(file);
  std::vector<std::size_t> cuts{0,
                                1,
                                63,
                                64,
                                h.metadata_offset + h.metadata_size,
                                h.table_offset + h.table_size / 2,
                                h.table_offset + h.table_size,
                                h.data_offset,
                                h.data_offset + 1,
                                file.size() - 1};
  for (std::size_t c = 0; c < h.table_offset + h.table_size; c += 7) cuts.push_back(c);
  for (std::size_t c = h.data_offset; c < file.size(); c += 61) cuts.push_back(c);
  for (std::size_t cut : cuts) {
    INFO("cut at " << cut << " of " << file.size());
    expect_open_error(tmp, Bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(cut)),
                      ErrorCode::Format, {});
    // Read into memory instead of mapped: the same checks, the same error.
    expect_error(ModelFile::open(tmp / "bad.qlm", {.copy = true}), ErrorCode::Format,
                 {(tmp / "bad.qlm").string()});
  }
}

TEST_CASE(".qlm header problems are reported", "[format]") {
  const TempDir tmp;
  const Bytes file = small_qlm(tmp);
  auto patched = [&](const std::function<void(FileHeader&)>& edit) {
    Bytes b = file;
    qlm::test::patch_header(b, edit);
    return b;
  };
  expect_open_error(tmp, patched([](FileHeader& h) {
                      h.magic = {'G', 'G', 'U', 'F'};
                    }),
                    ErrorCode::Format, {"magic"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.version = 2; }), ErrorCode::Unsupported,
                    {"version 2"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.version = 0; }), ErrorCode::Format,
                    {"version 0"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.header_size = 65; }), ErrorCode::Format,
                    {"header size 65"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.header_size = 0; }), ErrorCode::Format,
                    {"header size 0"});
  const auto size = file.size();
  expect_open_error(tmp, patched([&](FileHeader& h) { h.metadata_offset = size; }),
                    ErrorCode::Format, {"out of range"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.metadata_offset = ~0ull - 7; }),
                    ErrorCode::Format, {"out of range"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.metadata_size = ~0ull; }), ErrorCode::Format,
                    {"out of range"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.metadata_offset = 0; }), ErrorCode::Format,
                    {"out of range"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.table_size = ~0ull - 100; }),
                    ErrorCode::Format, {"out of range"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.data_offset += 8; }), ErrorCode::Format,
                    {"out of range"});
  expect_open_error(tmp, patched([&](FileHeader& h) { h.data_offset = size + 4096; }),
                    ErrorCode::Format, {"out of range"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.data_offset = 64; }), ErrorCode::Format,
                    {"out of range"});
  expect_open_error(tmp, patched([](FileHeader& h) { h.tensor_count = 0xFFFFFFFFu; }),
                    ErrorCode::Format, {"4294967295 tensors"});
  expect_open_error(tmp, patched([](FileHeader& h) { ++h.tensor_count; }), ErrorCode::Format, {});
  expect_open_error(tmp, patched([](FileHeader& h) { --h.tensor_count; }), ErrorCode::Format,
                    {"unexpected bytes"});
}

TEST_CASE(".qlm index checksum mismatches are Checksum errors", "[format]") {
  const TempDir tmp;
  const Bytes file = small_qlm(tmp);
  const FileHeader h = qlm::test::read_header(file);
  for (std::uint64_t pos : {h.metadata_offset + 3, h.metadata_offset + h.metadata_size - 1,
                            h.table_offset + 5, h.table_offset + h.table_size - 1}) {
    INFO("flipped byte " << pos);
    Bytes b = file;
    b[pos] ^= 0x01;
    expect_open_error(tmp, b, ErrorCode::Checksum, {"checksum"});
  }
  Bytes b = file;
  qlm::test::patch_header(b, [](FileHeader& hh) { hh.index_checksum ^= 1; });
  expect_open_error(tmp, b, ErrorCode::Checksum, {"checksum"});
}

TEST_CASE("corrupted tensor data is caught by verify", "[format]") {
  const TempDir tmp;
  const Bytes file = small_qlm(tmp);
  const auto img = qlm::test::parse_qlm(file);
  const auto& b_info = img.table[1];
  REQUIRE(b_info.name == "b.weight");
  Bytes bad = file;
  bad[img.header.data_offset + b_info.offset + b_info.size / 2] ^= 0x40;

  const auto lazy = open_bytes(tmp, bad, false);
  REQUIRE(lazy.ok());
  expect_error((*lazy)->verify(), ErrorCode::Checksum, {"b.weight", (tmp / "bad.qlm").string()});
  expect_error(open_bytes(tmp, bad, true, "bad2.qlm"), ErrorCode::Checksum,
               {"b.weight", (tmp / "bad2.qlm").string()});
  // Padding between tensors is not covered by any checksum: flipping it is harmless.
  Bytes pad = file;
  pad[img.header.data_offset + img.table[0].offset + img.table[0].size] ^= 0xff;
  CHECK(open_bytes(tmp, pad, true, "pad.qlm").ok());
}

TEST_CASE("inconsistent tensor table entries are rejected", "[format]") {
  const TempDir tmp;
  const Bytes file = small_qlm(tmp);
  using Img = qlm::test::QlmImage;
  const std::uint64_t data_size = qlm::test::parse_qlm(file).data.size();

  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[2].offset = i.table[1].offset; }),
                    ErrorCode::Format, {"overlap", "b.weight", "c.weight"});
  expect_open_error(tmp,
                    with_table(file, [](Img& i) { i.table[0].offset = i.table[1].offset - 64; }),
                    ErrorCode::Format, {"overlap"});
  expect_open_error(
      tmp, with_table(file, [&](Img& i) { i.table[2].offset = qlm::round_up(data_size, 64) + 64; }),
      ErrorCode::Format, {"c.weight"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[2].offset = ~0ull - 63; }),
                    ErrorCode::Format, {"c.weight"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[1].offset += 8; }),
                    ErrorCode::Format, {"b.weight", "aligned"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[0].size += 1; }), ErrorCode::Format,
                    {"a.weight", "401"});
  expect_open_error(tmp,
                    with_table(file,
                               [](Img& i) {
                                 i.table[1].shape = {33, 40};
                               }),
                    ErrorCode::Format, {"b.weight"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[0].dtype = DType::F16; }),
                    ErrorCode::Format, {"a.weight"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[1].shape = {800}; }),
                    ErrorCode::Format, {"b.weight", "q8"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[0].dtype = static_cast<DType>(9); }),
                    ErrorCode::Format, {"a.weight", "dtype 9"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[0].shape = {}; }), ErrorCode::Format,
                    {"a.weight", "rank 0"});
  expect_open_error(tmp,
                    with_table(file,
                               [](Img& i) {
                                 i.table[0].shape = {1, 1, 1, 1, 100};
                               }),
                    ErrorCode::Format, {"a.weight", "rank 5"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[0].shape = {0}; }),
                    ErrorCode::Format, {"a.weight"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[2].name = "a.weight"; }),
                    ErrorCode::Format, {"a.weight", "twice"});
  expect_open_error(tmp, with_table(file, [](Img& i) { i.table[1].name.clear(); }),
                    ErrorCode::Format, {"no name"});
}

TEST_CASE("malformed .qlm metadata is rejected without huge allocations", "[format]") {
  const TempDir tmp;
  const Bytes file = small_qlm(tmp);
  const auto u64 = [](std::uint64_t v) {
    Bytes b(8);
    std::memcpy(b.data(), &v, 8);
    return b;
  };
  // Entry count far beyond the block.
  expect_open_error(tmp, with_metadata(file, u64(1ull << 62)), ErrorCode::Format, {"metadata"});
  // Array and string lengths far beyond the block, for every sized type.
  for (std::uint8_t tag : {7, 8, 9, 10, 11, 12}) {
    INFO("tag " << int{tag});
    expect_open_error(tmp, with_metadata(file, metadata_with_entry(tag, u64(1ull << 60))),
                      ErrorCode::Format, {"metadata"});
    expect_open_error(tmp, with_metadata(file, metadata_with_entry(tag, u64(~0ull))),
                      ErrorCode::Format, {"metadata"});
  }
  // Unknown type tags.
  for (std::uint8_t tag : {13, 99, 255}) {
    expect_open_error(tmp, with_metadata(file, metadata_with_entry(tag, u64(0))), ErrorCode::Format,
                      {"key", "type tag"});
  }
  // A value cut short and trailing garbage.
  expect_open_error(tmp, with_metadata(file, metadata_with_entry(4, {})), ErrorCode::Format,
                    {"metadata"});
  Bytes trailing = metadata_with_entry(2, Bytes{5, 0, 0, 0});
  trailing.push_back(0);
  expect_open_error(tmp, with_metadata(file, trailing), ErrorCode::Format, {"unexpected bytes"});
}

TEST_CASE("random single-byte corruption of the index never crashes", "[format]") {
  const TempDir tmp;
  const Bytes file = small_qlm(tmp);
  const FileHeader h = qlm::test::read_header(file);
  const std::size_t region = h.table_offset + h.table_size;
  std::mt19937 rng(20240611);
  std::size_t opened = 0, failed = 0;
  for (int i = 0; i < 300; ++i) {
    Bytes b = file;
    const std::size_t pos = rng() % region;
    b[pos] = static_cast<std::uint8_t>(b[pos] ^ (1 + rng() % 255));
    // Half the time fix the checksum so the decoders see the corrupt bytes.
    if (pos >= sizeof(FileHeader) && i % 2 == 0) qlm::test::refresh_checksum(b);
    INFO("iteration " << i << ", byte " << pos);
    const auto r = open_bytes(tmp, b, i % 3 == 0);
    if (r.ok()) {
      ++opened;
      const auto& f = **r;
      for (const auto& t : f.tensors()) {
        REQUIRE(f.header().data_offset + t.offset + t.size <= f.file_size());
        REQUIRE(t.size == qlm::tensor_bytes(t.dtype, t.shape));
      }
    } else {
      ++failed;
      REQUIRE(qlm::test::contains(r.error().message, (tmp / "bad.qlm").string()));
    }
  }
  INFO(opened << " opened, " << failed << " rejected");
  CHECK(failed > 150);
}

TEST_CASE("opening something that is not a readable file is an Io error", "[format]") {
  const TempDir tmp;
  expect_error(ModelFile::open(tmp / "missing.qlm"), ErrorCode::Io,
               {(tmp / "missing.qlm").string()});
  expect_error(ModelFile::open(tmp.path()), ErrorCode::Io, {tmp.path().string()});
}
