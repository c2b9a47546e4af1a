// Logits files: round trip, atomic writes, and refusal of truncated, padded and corrupt files
// with errors that name the file.
#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "qlm/eval/logits_file.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

LogitsFileInfo small_layout() {
  return {.window = 8,
          .first = 4,
          .rows = 3,
          .vocab = 5,
          .windows = 0,
          .model = {"stories260K", "llama vocab=5 hidden=4"}};
}

struct Window {
  std::vector<std::int32_t> tokens;
  std::vector<float> logits;
};

std::vector<Window> make_windows(const LogitsFileInfo& info, int count) {
  std::vector<Window> windows(static_cast<std::size_t>(count));
  int k = 0;
  for (Window& w : windows) {
    for (std::uint32_t i = 0; i < info.window; ++i) w.tokens.push_back(k++ % 5);
    for (std::uint32_t i = 0; i < info.rows * info.vocab; ++i) {
      w.logits.push_back(static_cast<float>(k++) * 0.125f - 3.0f);
    }
  }
  return windows;
}

void write_file(const std::filesystem::path& path, const LogitsFileInfo& info,
                const std::vector<Window>& windows) {
  auto writer = LogitsWriter::create(path, info);
  REQUIRE(writer.ok());
  for (const Window& w : windows) REQUIRE(writer->write_window(w.tokens, w.logits).ok());
  auto committed = writer->commit();
  INFO((committed ? std::string() : committed.error().message));
  REQUIRE(committed.ok());
}

// Overwrites a u32 of the header.
void patch_u32(const std::filesystem::path& path, std::size_t offset, std::uint32_t value) {
  auto bytes = read_bytes(path);
  std::memcpy(bytes.data() + offset, &value, 4);
  write_bytes(path, bytes);
}

}  // namespace

TEST_CASE("logits files round-trip tokens, logits, layout and fingerprint", "[eval][logits]") {
  TempDir tmp;
  const LogitsFileInfo info = small_layout();
  const auto windows = make_windows(info, 3);
  write_file(tmp / "ref.bin", info, windows);
  // header 40 + fingerprint strings + 3 records of 8 tokens, 3 x 5 logits and a checksum
  CHECK(std::filesystem::file_size(tmp / "ref.bin") == 40 + 11 + 22 + 3 * (8 * 4 + 15 * 4 + 8));
  CHECK(list_dir(tmp.path()) == std::vector<std::string>{"ref.bin"});

  auto reader = LogitsReader::open(tmp / "ref.bin");
  REQUIRE(reader.ok());
  const LogitsFileInfo& got = reader->info();
  CHECK(got.window == 8);
  CHECK(got.first == 4);
  CHECK(got.rows == 3);
  CHECK(got.vocab == 5);
  CHECK(got.windows == 3);
  CHECK(got.model == info.model);
  for (std::uint32_t w : {2u, 0u, 1u}) {  // random access
    auto window = reader->read_window(w);
    REQUIRE(window.ok());
    CHECK(std::equal(window->tokens.begin(), window->tokens.end(), windows[w].tokens.begin(),
                     windows[w].tokens.end()));
    CHECK(std::equal(window->logits.begin(), window->logits.end(), windows[w].logits.begin(),
                     windows[w].logits.end()));
  }
  expect_error(reader->read_window(3), ErrorCode::InvalidArgument, {"ref.bin", "window 3"});
}

TEST_CASE("an uncommitted logits file leaves nothing behind", "[eval][logits]") {
  TempDir tmp;
  const LogitsFileInfo info = small_layout();
  const auto windows = make_windows(info, 2);
  {
    auto writer = LogitsWriter::create(tmp / "ref.bin", info);
    REQUIRE(writer.ok());
    REQUIRE(writer->write_window(windows[0].tokens, windows[0].logits).ok());
  }
  CHECK(list_dir(tmp.path()).empty());

  auto writer = LogitsWriter::create(tmp / "ref.bin", info);
  REQUIRE(writer.ok());
  expect_error(writer->commit(), ErrorCode::InvalidArgument, {"ref.bin", "no windows"});
  expect_error(writer->write_window(windows[0].tokens, std::span(windows[0].logits).first(14)),
               ErrorCode::InvalidArgument, {"ref.bin", "14 logits"});
}

TEST_CASE("the logits writer refuses an inconsistent layout", "[eval][logits]") {
  TempDir tmp;
  LogitsFileInfo info = small_layout();
  info.rows = 4;
  expect_error(LogitsWriter::create(tmp / "ref.bin", info), ErrorCode::InvalidArgument,
               {"ref.bin", "4 logits rows"});
  info = small_layout();
  info.vocab = 0;
  expect_error(LogitsWriter::create(tmp / "ref.bin", info), ErrorCode::InvalidArgument,
               {"ref.bin", "vocabulary of 0"});
  CHECK(list_dir(tmp.path()).empty());
}

TEST_CASE("truncated, padded and corrupt logits files are refused naming the file",
          "[eval][logits]") {
  TempDir tmp;
  const auto path = tmp / "ref.bin";
  const LogitsFileInfo info = small_layout();
  write_file(path, info, make_windows(info, 3));
  const auto good = read_bytes(path);

  SECTION("missing") {
    expect_error(LogitsReader::open(tmp / "none.bin"), ErrorCode::Io, {"none.bin"});
  }
  SECTION("truncated by one byte") {
    write_bytes(path, std::span(good).first(good.size() - 1));
    expect_error(LogitsReader::open(path), ErrorCode::Format, {path.string(), "truncated"});
  }
  SECTION("truncated inside the header") {
    write_bytes(path, std::span(good).first(20));
    expect_error(LogitsReader::open(path), ErrorCode::Format, {path.string(), "header"});
  }
  SECTION("trailing bytes") {
    auto bytes = good;
    bytes.push_back(0);
    write_bytes(path, bytes);
    expect_error(LogitsReader::open(path), ErrorCode::Format, {path.string(), "trailing"});
  }
  SECTION("bad magic") {
    auto bytes = good;
    bytes[0] = 'X';
    write_bytes(path, bytes);
    expect_error(LogitsReader::open(path), ErrorCode::Format, {path.string(), "magic"});
  }
  SECTION("a newer version") {
    patch_u32(path, 8, 2);
    expect_error(LogitsReader::open(path), ErrorCode::Unsupported, {path.string(), "version 2"});
  }
  SECTION("an absurd window count is checked against the file size before allocating") {
    patch_u32(path, 28, 0xFFFFFFFFu);
    expect_error(LogitsReader::open(path), ErrorCode::Format, {path.string(), "truncated"});
  }
  SECTION("an absurd vocabulary") {
    patch_u32(path, 24, 0x80000000u);
    expect_error(LogitsReader::open(path), ErrorCode::Format, {path.string(), "vocabulary"});
  }
  SECTION("an absurd fingerprint length") {
    patch_u32(path, 36, 0xFFFFFF00u);
    expect_error(LogitsReader::open(path), ErrorCode::Format, {path.string(), "fingerprint"});
  }
  SECTION("rows that do not match the window") {
    patch_u32(path, 20, 2);
    expect_error(LogitsReader::open(path), ErrorCode::Format, {path.string(), "2 logits rows"});
  }
  SECTION("a flipped logit bit fails the window's checksum") {
    auto bytes = good;
    bytes[bytes.size() - 20] ^= 0x10;  // inside the last window's logits
    write_bytes(path, bytes);
    auto reader = LogitsReader::open(path);
    REQUIRE(reader.ok());
    CHECK(reader->read_window(0).ok());
    expect_error(reader->read_window(2), ErrorCode::Checksum,
                 {path.string(), "window 2", "checksum"});
  }
}

}  // namespace qlm::test
