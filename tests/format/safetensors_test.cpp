// safetensors reading: the real checkpoint parsed independently matches Checkpoint, write_file
// round-trips, and malformed single files and sharded indexes give errors naming the file.
#include <catch2/catch.hpp>
#include <cstring>
#include <nlohmann/json.hpp>

#include "qlm/convert/safetensors.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;
using qlm::ErrorCode;
using qlm::safetensors::Checkpoint;
using qlm::safetensors::SourceType;
using qlm::test::expect_error;
using qlm::test::TempDir;

// Writes a safetensors file by hand: 8-byte length (or `claimed_length`), header text, data.
void write_raw(const std::filesystem::path& path, const std::string& header, std::size_t data_bytes,
               std::uint64_t claimed_length = ~0ull) {
  const std::uint64_t n = claimed_length == ~0ull ? header.size() : claimed_length;
  std::vector<std::uint8_t> bytes(8);
  std::memcpy(bytes.data(), &n, 8);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + data_bytes, 0x3f);
  qlm::test::write_bytes(path, bytes);
}

json entry(const std::string& dtype, std::vector<std::uint64_t> shape, std::uint64_t begin,
           std::uint64_t end) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

// A directory holding one model.safetensors with the given header and data size.
void expect_shard_error(const std::string& header, std::size_t data_bytes, ErrorCode code,
                        std::initializer_list<std::string_view> needles,
                        std::uint64_t claimed_length = ~0ull) {
  const TempDir tmp;
  write_raw(tmp / "model.safetensors", header, data_bytes, claimed_length);
  const auto r = Checkpoint::open(tmp.path());
  expect_error(r, code, needles);
  if (!r.ok()) CHECK(qlm::test::contains(r.error().message, "model.safetensors"));
}

}  // namespace

TEST_CASE("Checkpoint reads stories260K exactly as its JSON header describes", "[format]") {
  const auto path = qlm::test::stories_dir() / "model.safetensors";
  const auto bytes = qlm::test::read_bytes(path);
  std::uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  const json header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  const auto ckpt = Checkpoint::open(qlm::test::stories_dir());
  REQUIRE(ckpt.ok());
  std::size_t count = 0;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    ++count;
    INFO("tensor " << name);
    const auto* t = ckpt->find(name);
    REQUIRE(t != nullptr);
    CHECK(e["dtype"] == "F32");
    CHECK(t->dtype == SourceType::F32);
    CHECK(t->shape == e["shape"].get<std::vector<std::uint64_t>>());
    const auto off = e["data_offsets"].get<std::vector<std::uint64_t>>();
    REQUIRE(t->data.size() == off[1] - off[0]);
    CHECK(std::memcmp(t->data.data(), bytes.data() + 8 + n + off[0], t->data.size()) == 0);
    CHECK(t->elements() * 4 == t->data.size());
  }
  CHECK(count == 47);
  CHECK(ckpt->tensors().size() == count);
  CHECK(ckpt->find("lm_head.weight") == nullptr);
  CHECK(ckpt->description() == "model.safetensors");
}

TEST_CASE("safetensors write_file round-trips through Checkpoint", "[format]") {
  const TempDir tmp;
  std::vector<qlm::test::HostTensor> tensors{
      {"x", {2, 3}, {1.0f, -2.0f, 0.5f, 1e-3f, 65504.0f, -0.0f}},
      {"y", {5}, {3.0f, 1.0f / 3.0f, 7.0f, -1e-8f, 100.0f}},
  };
  for (SourceType st : {SourceType::F32, SourceType::F16, SourceType::BF16}) {
    INFO(qlm::safetensors::to_string(st));
    qlm::test::write_tensors(tmp.path(), tensors, st, 1);
    const auto ckpt = Checkpoint::open(tmp.path());
    REQUIRE(ckpt.ok());
    REQUIRE(ckpt->tensors().size() == 2);
    for (const auto& h : tensors) {
      const auto* t = ckpt->find(h.name);
      REQUIRE(t != nullptr);
      CHECK(t->dtype == st);
      CHECK(t->shape == h.shape);
      std::vector<float> got(t->elements());
      qlm::safetensors::to_f32(*t, got);
      for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i] == qlm::test::round_to(st, h.values[i]));
      }
    }
  }
}

TEST_CASE("malformed safetensors files are rejected", "[format]") {
  const std::string ok_header = json{{"w", entry("F32", {4}, 0, 16)}}.dump();
  SECTION("a valid file opens") {
    const TempDir tmp;
    write_raw(tmp / "model.safetensors", ok_header, 16);
    CHECK(Checkpoint::open(tmp.path()).ok());
  }
  SECTION("header length beyond the file") {
    expect_shard_error(ok_header, 16, ErrorCode::Format, {"header length"}, 8 + 16 + 1000);
    expect_shard_error(ok_header, 16, ErrorCode::Format, {"header length"}, 1ull << 63);
  }
  SECTION("files shorter than 8 bytes") {
    const TempDir tmp;
    for (std::size_t size : {0, 1, 7}) {
      qlm::test::write_bytes(tmp / "model.safetensors", std::vector<std::uint8_t>(size, 1));
      expect_error(Checkpoint::open(tmp.path()), ErrorCode::Format,
                   {(tmp / "model.safetensors").string(), "too short"});
    }
  }
  SECTION("data offsets beyond the data section (truncated file)") {
    expect_shard_error(ok_header, 12, ErrorCode::Format, {"'w'", "truncated"});
    const std::string h = json{{"w", entry("F32", {4}, 16, 32)}}.dump();
    expect_shard_error(h, 16, ErrorCode::Format, {"'w'"});
    const std::string reversed = json{{"w", entry("F32", {0}, 8, 4)}}.dump();
    expect_shard_error(reversed, 16, ErrorCode::Format, {"'w'"});
  }
  SECTION("size not matching dtype and shape") {
    expect_shard_error(json{{"w", entry("F32", {5}, 0, 16)}}.dump(), 16, ErrorCode::Format,
                       {"'w'", "20"});
    expect_shard_error(json{{"w", entry("BF16", {4}, 0, 16)}}.dump(), 16, ErrorCode::Format,
                       {"'w'"});
    expect_shard_error(json{{"w", entry("F32", {1ull << 40, 1ull << 40}, 0, 16)}}.dump(), 16,
                       ErrorCode::Format, {"'w'"});
  }
  SECTION("unsupported dtypes") {
    expect_shard_error(json{{"w", entry("I64", {2}, 0, 16)}}.dump(), 16, ErrorCode::Unsupported,
                       {"'w'", "I64"});
    expect_shard_error(json{{"w", entry("F8_E4M3", {16}, 0, 16)}}.dump(), 16,
                       ErrorCode::Unsupported, {"F8_E4M3"});
  }
  SECTION("header that is not a JSON object") {
    expect_shard_error("{\"w\": {\"dtype\": ", 16, ErrorCode::Format, {"JSON"});
    expect_shard_error("[1, 2, 3]", 16, ErrorCode::Format, {"JSON"});
    expect_shard_error(std::string(16, '\0'), 16, ErrorCode::Format, {"JSON"});
  }
  SECTION("malformed entries") {
    expect_shard_error(json{{"w", 5}}.dump(), 16, ErrorCode::Format, {"'w'"});
    expect_shard_error(json{{"w", {{"dtype", "F32"}, {"shape", {4}}}}}.dump(), 16,
                       ErrorCode::Format, {"'w'"});
    expect_shard_error(
        json{{"w", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 8, 16}}}}}.dump(), 16,
        ErrorCode::Format, {"'w'"});
    expect_shard_error(
        json{{"w", entry("F32", {4}, 0, 16)}, {"v", entry("F32", {4}, 0, 16)}}.dump(), 16,
        ErrorCode::Format, {"overlap"});
  }
  SECTION("overlapping tensors") {
    const std::string h =
        json{{"a", entry("F32", {4}, 0, 16)}, {"b", entry("F32", {4}, 8, 24)}}.dump();
    expect_shard_error(h, 24, ErrorCode::Format, {"overlap", "'a'", "'b'"});
  }
}

TEST_CASE("malformed sharded checkpoints are rejected", "[format]") {
  const TempDir tmp;
  std::vector<qlm::test::HostTensor> tensors{{"a", {4}, {1, 2, 3, 4}}, {"b", {2}, {5, 6}}};
  qlm::test::write_tensors(tmp.path(), tensors, SourceType::F32, 2);
  const auto index = tmp / "model.safetensors.index.json";
  const json good = json::parse(qlm::test::read_text(index));
  REQUIRE(Checkpoint::open(tmp.path()).ok());
  CHECK(Checkpoint::open(tmp.path())->description() == "2 safetensors shards");
  auto with_index = [&](const json& j) {
    qlm::test::write_text(index, j.dump());
    return Checkpoint::open(tmp.path());
  };

  SECTION("index pointing at a missing shard") {
    json j = good;
    j["weight_map"]["b"] = "model-00009-of-00009.safetensors";
    expect_error(with_index(j), ErrorCode::Io, {"model-00009-of-00009.safetensors"});
  }
  SECTION("index listing a tensor its shard does not hold") {
    json j = good;
    j["weight_map"]["c"] = j["weight_map"]["a"];
    expect_error(with_index(j), ErrorCode::Format, {"'c'", index.string()});
    json k = good;
    k["weight_map"]["a"] = good["weight_map"]["b"];  // exists, but in the other shard
    expect_error(with_index(k), ErrorCode::Format, {"'a'", index.string()});
  }
  SECTION("index that is not a valid index") {
    qlm::test::write_text(index, "{\"weight_map\": ");
    expect_error(Checkpoint::open(tmp.path()), ErrorCode::Format, {index.string()});
    expect_error(with_index(json{{"metadata", {}}}), ErrorCode::Format, {"weight_map"});
    expect_error(with_index(json{{"weight_map", {{"a", 3}}}}), ErrorCode::Format, {"'a'"});
  }
  SECTION("shard names that escape the directory") {
    json j = good;
    j["weight_map"]["a"] = "../model.safetensors";
    expect_error(with_index(j), ErrorCode::Format, {"../model.safetensors"});
  }
  SECTION("a tensor in two shards") {
    qlm::test::write_tensors(tmp / "sub", tensors, SourceType::F32, 1);
    std::filesystem::rename(tmp / "sub" / "model.safetensors", tmp / "dup.safetensors");
    json j = good;
    j["weight_map"]["a"] = "dup.safetensors";
    const auto r = with_index(j);
    REQUIRE_FALSE(r.ok());
    INFO(r.error().message);
    CHECK(r.error().code == ErrorCode::Format);
    // Both shards hold 'a' and 'b'; the error must name one of them.
    CHECK((qlm::test::contains(r.error().message, "'a'") ||
           qlm::test::contains(r.error().message, "'b'")));
  }
  SECTION("no checkpoint at all") {
    const TempDir empty;
    expect_error(Checkpoint::open(empty.path()), ErrorCode::Io, {empty.path().string()});
  }
}
