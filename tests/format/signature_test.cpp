// Signed model files (qlm-sign, LoadOptions::trusted_keys): a signed file loads only with its
// signer's key among the trusted ones, any change after signing is caught, unsigned files are
// refused when keys are given, and a signed file still loads where no keys are asked for.
#include <sys/stat.h>

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "model/model_helpers.hpp"
#include "qlm/format/signature.hpp"
#include "qlm/model.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

namespace fs = std::filesystem;

std::string q(const fs::path& p) {
  return fmt::format("'{}'", p.string());
}

}  // namespace

TEST_CASE("keygen writes a private secret key and a public key, never over old ones",
          "[format][signature]") {
  TempDir tmp;
  REQUIRE(format::generate_key_pair(tmp / "alice").ok());
  struct stat st {};
  REQUIRE(::stat((tmp / "alice.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(format::read_public_key(tmp / "alice.pub").ok());
  CHECK(format::read_secret_key(tmp / "alice.key").ok());
  expect_error(format::read_public_key(tmp / "alice.key"), ErrorCode::Format, {"alice.key"});
  const auto before = read_bytes(tmp / "alice.key");
  expect_error(format::generate_key_pair(tmp / "alice"), ErrorCode::InvalidArgument, {"alice"});
  CHECK(read_bytes(tmp / "alice.key") == before);
}

TEST_CASE("a signed model loads only with its signer's key, and only unchanged",
          "[format][signature]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  REQUIRE(format::generate_key_pair(tmp / "alice").ok());
  REQUIRE(format::generate_key_pair(tmp / "bob").ok());
  const fs::path model = tmp / "m.qlm", alice = tmp / "alice.pub", bob = tmp / "bob.pub";

  // Unsigned: fine without keys, refused with them.
  CHECK(Model::open(model).ok());
  expect_error(Model::open(model, {.trusted_keys = {alice}}), ErrorCode::Checksum,
               {"m.qlm", "not signed"});

  const auto unsigned_size = fs::file_size(model);
  REQUIRE(format::sign_file(model, *format::read_secret_key(tmp / "alice.key")).ok());
  CHECK(fs::file_size(model) == unsigned_size + format::kSignatureTrailerBytes);
  CHECK(Model::open(model).ok());  // readers that ask for nothing ignore the trailer
  CHECK(Model::open(model, {.trusted_keys = {alice}}).ok());
  CHECK(Model::open(model, {.trusted_keys = {bob, alice}}).ok());
  expect_error(Model::open(model, {.trusted_keys = {bob}}), ErrorCode::Checksum,
               {"m.qlm", "not a trusted key"});

  // Signing again replaces the signature rather than stacking a second one.
  REQUIRE(format::sign_file(model, *format::read_secret_key(tmp / "bob.key")).ok());
  CHECK(fs::file_size(model) == unsigned_size + format::kSignatureTrailerBytes);
  CHECK(Model::open(model, {.trusted_keys = {bob}}).ok());

  // One byte changed anywhere before the trailer (header, metadata, weights) is caught.
  auto bytes = read_bytes(model);
  for (const std::size_t at : {std::size_t{9}, bytes.size() / 2, unsigned_size - 1}) {
    auto changed = bytes;
    changed[at] ^= 0x01;
    write_bytes(tmp / "changed.qlm", changed);
    const auto r = Model::open(tmp / "changed.qlm", {.trusted_keys = {bob}});
    REQUIRE_FALSE(r.ok());
    INFO(r.error().message);
    CHECK(contains(r.error().message, "changed.qlm"));
  }
  // A cut-off trailer is no signature.
  bytes.resize(bytes.size() - 1);
  write_bytes(tmp / "cut.qlm", bytes);
  expect_error(Model::open(tmp / "cut.qlm", {.trusted_keys = {bob}}), ErrorCode::Checksum,
               {"not signed"});
  expect_error(Model::open(model, {.trusted_keys = {tmp / "missing.pub"}}), ErrorCode::Io,
               {"missing.pub"});
}

TEST_CASE("qlm-sign and the tools' --trusted-key", "[format][signature][tools]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  const std::string model = q(tmp / "m.qlm"), sign = tool_path("qlm-sign");
  const std::string run = tool_path("qlm-run"), inspect = tool_path("qlm-inspect");
  const std::string key = q(tmp / "k.pub"), secret = q(tmp / "k.key"), other = q(tmp / "other.pub");
  // fmt, not chains of std::string +: GCC 12 warns falsely on those (-Wrestrict).
  const auto sh = [](const std::string& command, std::string& out) {
    return run_command(command + " 2>&1", out);
  };
  std::string out;
  REQUIRE(sh(fmt::format("{} keygen -o {}", sign, q(tmp / "k")), out) == 0);
  REQUIRE(sh(fmt::format("{} keygen -o {}", sign, q(tmp / "other")), out) == 0);
  CHECK(sh(fmt::format("{} -m {} --trusted-key {} -p Once -n 2", run, model, key), out) == 1);
  CHECK(contains(out, "not signed"));
  CHECK(sh(fmt::format("{} verify --key {} {}", sign, key, model), out) == 1);
  REQUIRE(sh(fmt::format("{} sign --key {} {}", sign, secret, model), out) == 0);
  CHECK(sh(fmt::format("{} verify --key {} {}", sign, key, model), out) == 0);
  CHECK(contains(out, "signature OK"));
  CHECK(sh(fmt::format("{} verify --key {} {}", sign, other, model), out) == 1);
  CHECK(sh(fmt::format("{} -m {} --trusted-key {} --verify -p Once -n 2", run, model, key), out) ==
        0);
  CHECK(sh(fmt::format("{} --verify --trusted-key {} {}", inspect, key, model), out) == 0);
  CHECK(contains(out, "verified"));
  CHECK(sh(fmt::format("{} --trusted-key {} {}", inspect, other, model), out) == 1);
  CHECK(contains(out, "not a trusted key"));
  // Signing refuses what is not a .qlm file.
  write_text(tmp / "notes.txt", "hello");
  CHECK(sh(fmt::format("{} sign --key {} {}", sign, secret, q(tmp / "notes.txt")), out) == 1);
  CHECK(read_text(tmp / "notes.txt") == "hello");
}

}  // namespace qlm::test
