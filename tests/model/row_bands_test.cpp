// Matrices stored in row bands ("name[r0:r1]" tensors, docs/format.md): cutting a matrix into bands
// of its own type changes no bit of the logits; bands of different types agree with the reference
// path on every ISA; and bands that do not tile the matrix are refused, naming the file and band.
#include <catch2/catch.hpp>
#include <map>

#include "kernel_table.hpp"
#include "model/model_helpers.hpp"
#include "qlm/format/file_writer.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/format/tensor_names.hpp"
#include "qlm/quant/layout.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

/// One band to write: rows [row0, row1) of `matrix`, taken from `from`, stored under `name`
/// (normally band_tensor(matrix, {row0, row1})) with `rows` rows in its shape (normally row1-row0).
struct BandSpec {
  std::string matrix;
  std::uint64_t row0 = 0, row1 = 0;
  const format::ModelFile* from = nullptr;
  std::string name{};
  std::uint64_t rows = 0;
};

// Rows [row0, row1) of a 2-D tensor: the same bytes a matrix of those rows alone would have, since
// a tile layout keeps whole 16-row groups together (quantized values first, then scales).
std::vector<std::uint8_t> slice_rows(const format::ModelFile& f, const format::TensorInfo& t,
                                     std::uint64_t row0, std::uint64_t row1) {
  const auto data = f.data(t);
  const std::uint64_t k = t.shape[1];
  if (!is_quantized(t.dtype)) {
    const std::uint64_t row_bytes = *tensor_bytes(t.dtype, std::vector<std::uint64_t>{1, k});
    return {data.begin() + static_cast<std::ptrdiff_t>(row0 * row_bytes),
            data.begin() + static_cast<std::ptrdiff_t>(row1 * row_bytes)};
  }
  const quant::TileGeometry whole(t.dtype, t.shape[0], k), part(t.dtype, row1 - row0, k);
  const std::size_t g0 = row0 / kRowGroup, g1 = g0 + part.groups;
  std::vector<std::uint8_t> out(data.begin() + whole.quant_offset(g0, 0),
                                data.begin() + whole.quant_offset(g1, 0));
  out.insert(out.end(), data.begin() + whole.scale_offset(g0, 0),
             data.begin() + whole.scale_offset(g1, 0));
  return out;
}

// Rewrites `base` with the named matrices replaced by the given bands (or, with `keep_whole`,
// stored both whole and in them).
void write_banded(const format::ModelFile& base, const std::filesystem::path& out,
                  const std::vector<BandSpec>& bands, bool keep_whole = false) {
  std::vector<format::PendingTensor> tensors;
  std::map<std::string, bool> banded;
  for (const auto& b : bands) banded[b.matrix] = true;
  auto add = [&](std::string name, const format::TensorInfo& t, std::vector<std::uint64_t> shape,
                 std::vector<std::uint8_t> bytes) {
    tensors.push_back({std::move(name), t.dtype, std::move(shape),
                       [bytes = std::move(bytes)](std::span<std::uint8_t> o) {
                         std::copy(bytes.begin(), bytes.end(), o.begin());
                         return Result<void>{};
                       }});
  };
  for (const auto& t : base.tensors()) {
    if (banded.count(t.name) && !keep_whole) continue;
    const auto d = base.data(t);
    add(t.name, t, t.shape, {d.begin(), d.end()});
  }
  for (const auto& b : bands) {
    const auto& t = *b.from->find(b.matrix)->info;
    const std::uint64_t rows = b.rows ? b.rows : b.row1 - b.row0;
    auto bytes = slice_rows(*b.from, t, b.row0, b.row0 + rows);
    add(b.name.empty() ? band_tensor(b.matrix, {b.row0, b.row1}) : b.name, t, {rows, t.shape[1]},
        std::move(bytes));
  }
  REQUIRE(format::write_qlm_file(out, base.metadata(), tensors).ok());
}

std::shared_ptr<const format::ModelFile> open_file(const std::filesystem::path& p) {
  auto f = format::ModelFile::open(p);
  REQUIRE(f.ok());
  return *f;
}

const std::string kEmbed = "model.embed_tokens.weight";
const std::string kGate0 = "model.layers.0.mlp.gate_proj.weight";  // 172 rows
const std::string kDown1 = "model.layers.1.mlp.down_proj.weight";  // 64 rows
const std::string kQ2 = "model.layers.2.self_attn.q_proj.weight";  // 64 rows

}  // namespace

TEST_CASE("a matrix cut into bands of its own type gives bit-identical logits", "[model][bands]") {
  TempDir tmp;
  const DType type = GENERATE(DType::Q4NL, DType::Q8, DType::F32);
  convert_or_fail(stories_dir(), tmp / "whole.qlm", type);
  const auto base = open_file(tmp / "whole.qlm");
  const auto* f = base.get();
  write_banded(*base, tmp / "banded.qlm",
               {{kEmbed, 0, 256, f},
                {kEmbed, 256, 432, f},
                {kEmbed, 432, 512, f},
                {kGate0, 0, 160, f},
                {kGate0, 160, 172, f},
                {kQ2, 0, 16, f},
                {kQ2, 16, 64, f}});
  CHECK(open_file(tmp / "banded.qlm")->tensors().size() == base->tensors().size() + 4);
  const auto whole = open_or_fail(tmp / "whole.qlm");
  const auto banded = open_or_fail(tmp / "banded.qlm");
  const auto ids = story_tokens(*whole);
  for (auto isa : kernels::supported_isas()) {
    INFO("type " << to_string(type) << ", isa " << kernels::to_string(isa));
    for (int threads : {1, 2}) {
      const SessionOptions o{.threads = threads, .isa = std::string(kernels::to_string(isa))};
      CHECK(eval_all_logits(banded, o, ids) == eval_all_logits(whole, o, ids));
    }
  }
  CHECK(eval_all_logits(banded, {.isa = "reference"}, ids) ==
        eval_all_logits(whole, {.isa = "reference"}, ids));
}

TEST_CASE("bands of different types agree with the reference path on every ISA", "[model][bands]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "q4.qlm", DType::Q4);
  convert_or_fail(stories_dir(), tmp / "q8.qlm", DType::Q8);
  convert_or_fail(stories_dir(), tmp / "f16.qlm", DType::F16);
  const auto q4 = open_file(tmp / "q4.qlm"), q8 = open_file(tmp / "q8.qlm"),
             f16 = open_file(tmp / "f16.qlm");
  // The tied embedding (also the LM head) in three types; a q8 band in a q4 down_proj (its input
  // then gets two int8 passes); a float band in a fused q/k/v.
  write_banded(*q4, tmp / "mixed.qlm",
               {{kEmbed, 0, 256, q8.get()},
                {kEmbed, 256, 480, q4.get()},
                {kEmbed, 480, 512, f16.get()},
                {kDown1, 0, 32, q8.get()},
                {kDown1, 32, 64, q4.get()},
                {kQ2, 0, 48, q4.get()},
                {kQ2, 48, 64, f16.get()}});
  const auto model = open_or_fail(tmp / "mixed.qlm");
  const auto plain = open_or_fail(tmp / "q4.qlm");
  const auto ids = story_tokens(*model);
  const auto ref = eval_all_logits(model, {.isa = "reference"}, ids);
  CHECK(ref != eval_all_logits(plain, {.isa = "reference"}, ids));
  for (auto isa : kernels::supported_isas()) {
    INFO("isa " << kernels::to_string(isa));
    const auto fast = eval_all_logits(model, {.isa = std::string(kernels::to_string(isa))}, ids);
    CHECK(relative_max_diff(fast, ref) <= 0.02f);  // fast_path_test's tolerance for 4-bit
    CHECK(eval_all_logits(model, {.threads = 2, .isa = std::string(kernels::to_string(isa))},
                          ids) == fast);
  }
}

TEST_CASE("bands that do not tile their matrix are refused by name", "[model][bands][format]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "q4.qlm", DType::Q4);
  const auto base = open_file(tmp / "q4.qlm");
  const auto* f = base.get();
  auto refused = [&](const std::vector<BandSpec>& bands,
                     std::initializer_list<std::string_view> needles) {
    write_banded(*base, tmp / "bad.qlm", bands);
    expect_error(Model::open(tmp / "bad.qlm"), ErrorCode::Format, needles);
  };
  // A gap, an overlap, an edge inside a row group, a short end, a band of the wrong height.
  refused({{kQ2, 0, 16, f}, {kQ2, 32, 64, f}}, {"bad.qlm", kQ2 + "[32:64]"});
  refused({{kQ2, 0, 32, f}, {kQ2, 16, 64, f}}, {"bad.qlm", kQ2 + "[16:64]"});
  refused({{kGate0, 0, 100, f}, {kGate0, 100, 172, f}}, {"bad.qlm", kGate0 + "[0:100]"});
  refused({{kQ2, 0, 32, f}}, {"bad.qlm", kQ2, "end at row 32 of 64"});
  refused({{kQ2, 0, 32, f}, {kQ2, 32, 64, f, kQ2 + "[32:64]", 16}}, {"bad.qlm", "16x64"});
  // Whole and in bands at once.
  write_banded(*base, tmp / "both.qlm", {{kDown1, 0, 64, f}});
  write_banded(*base, tmp / "twice.qlm", {{kDown1, 0, 64, f}}, true);
  expect_error(Model::open(tmp / "twice.qlm"), ErrorCode::Format,
               {"twice.qlm", kDown1, "both whole and in bands"});
  // A single band covering the whole matrix is fine.
  CHECK(Model::open(tmp / "both.qlm").ok());
}

TEST_CASE("band tensor names parse back, and near misses are not bands", "[model][bands]") {
  CHECK(band_tensor(kEmbed, {256, 512}) == kEmbed + "[256:512]");
  const auto b = parse_band_tensor(kEmbed + "[256:512]", kEmbed);
  REQUIRE(b);
  CHECK(b->row0 == 256);
  CHECK(b->row1 == 512);
  for (const std::string& bad :
       {kEmbed, kEmbed + "[256:]", kEmbed + "[:512]", kEmbed + "[a:b]", kEmbed + "[1:2]x",
        kEmbed + "(1:2)", kEmbed + "[1:2:3]", kEmbed + "[-1:2]"}) {
    INFO(bad);
    CHECK_FALSE(parse_band_tensor(bad, kEmbed));
  }
  // A band of layer 10's matrix is not one of layer 1's.
  CHECK_FALSE(parse_band_tensor("model.layers.10.mlp.up_proj.weight[0:16]",
                                "model.layers.1.mlp.up_proj.weight"));
}

}  // namespace qlm::test
