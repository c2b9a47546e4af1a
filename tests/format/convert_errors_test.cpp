// The converter on broken checkpoints: each problem gives the right ErrorCode and a message naming
// the file and the culprit; the qlm-convert tool exits non-zero with one line; output files are
// replaced atomically (a failure or cancellation never leaves a partial or temporary file).
#include <sys/wait.h>

#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "qlm/convert/convert.hpp"
#include "qlm/format/model_file.hpp"
#include "support/checkpoint_writer.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

using qlm::DType;
using qlm::ErrorCode;
using qlm::safetensors::SourceType;
using qlm::test::expect_error;
using qlm::test::HostTensor;
using qlm::test::TempDir;
namespace fs = std::filesystem;

const std::vector<HostTensor>& stories_tensors() {
  static const std::vector<HostTensor> tensors = qlm::test::load_tensors(qlm::test::stories_dir());
  return tensors;
}

// tmp/ckpt: the stories260K config and tokenizer with `tensors` as a single F32 file.
fs::path make_checkpoint(const TempDir& tmp, const std::vector<HostTensor>& tensors) {
  const auto dir = tmp / "ckpt";
  qlm::test::copy_aux_files(qlm::test::stories_dir(), dir);
  qlm::test::write_tensors(dir, tensors, SourceType::F32, 1);
  return dir;
}

fs::path make_checkpoint(const TempDir& tmp) {
  return make_checkpoint(tmp, stories_tensors());
}

// Converts `dir` into tmp/out/model.qlm, checking that a failure leaves tmp/out as it was.
qlm::Result<qlm::ConvertReport> convert(const TempDir& tmp, const fs::path& dir,
                                        DType type = DType::Q8) {
  fs::create_directories(tmp / "out");
  const auto before = qlm::test::list_dir(tmp / "out");
  auto r = qlm::convert_checkpoint({dir, tmp / "out" / "model.qlm", type, {}});
  if (!r.ok()) CHECK(qlm::test::list_dir(tmp / "out") == before);
  return r;
}

std::vector<HostTensor> without(std::string_view name) {
  std::vector<HostTensor> t = stories_tensors();
  std::erase_if(t, [&](const HostTensor& h) { return h.name == name; });
  return t;
}

std::vector<HostTensor> with_value(std::string_view name, std::size_t i, float v) {
  std::vector<HostTensor> t = stories_tensors();
  qlm::test::find_tensor(t, name).values.at(i) = v;
  return t;
}

struct ToolRun {
  int exit_code = -1;
  std::string err;
};

fs::path convert_tool() {
  return fs::path(QLM_BINARY_DIR) / "tools" / "qlm-convert";
}

// Shell-quoted path (test paths hold no quotes).
std::string quote(const fs::path& p) {
  return fmt::format("'{}'", p.string());
}

ToolRun run_tool(const TempDir& tmp, const std::string& args) {
  const std::string cmd = fmt::format("{} {} >{} 2>{}", quote(convert_tool()), args,
                                      quote(tmp / "stdout.txt"), quote(tmp / "stderr.txt"));
  const int status = std::system(cmd.c_str());
  ToolRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.err = qlm::test::read_text(tmp / "stderr.txt");
  return run;
}

std::size_t count_lines(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

TEST_CASE("the converter rejects checkpoints that do not match config.json", "[convert]") {
  const TempDir tmp;
  SECTION("missing tensor") {
    const auto dir = make_checkpoint(tmp, without("model.layers.2.mlp.up_proj.weight"));
    expect_error(convert(tmp, dir), ErrorCode::Format,
                 {"model.layers.2.mlp.up_proj.weight", "missing", dir.string()});
  }
  SECTION("wrong shape") {
    auto tensors = stories_tensors();
    auto& k = qlm::test::find_tensor(tensors, "model.layers.0.self_attn.k_proj.weight");
    REQUIRE(k.shape == std::vector<std::uint64_t>{32, 64});
    k.shape = {64, 32};
    const auto dir = make_checkpoint(tmp, tensors);
    expect_error(convert(tmp, dir), ErrorCode::Format,
                 {"model.layers.0.self_attn.k_proj.weight", "64x32", "32x64",
                  (dir / "model.safetensors").string()});
  }
  SECTION("unexpected extra tensor") {
    auto tensors = stories_tensors();
    tensors.push_back({"model.layers.0.mlp.extra.weight", {4}, {1, 2, 3, 4}});
    const auto dir = make_checkpoint(tmp, tensors);
    expect_error(
        convert(tmp, dir), ErrorCode::Format,
        {"model.layers.0.mlp.extra.weight", "unexpected", (dir / "model.safetensors").string()});
  }
  SECTION("a tied model's redundant lm_head is ignored with a note") {
    auto tensors = stories_tensors();
    HostTensor head = qlm::test::find_tensor(tensors, "model.embed_tokens.weight");
    head.name = "lm_head.weight";
    tensors.push_back(head);
    const auto r = convert(tmp, make_checkpoint(tmp, tensors));
    REQUIRE(r.ok());
    CHECK(std::any_of(r->notes.begin(), r->notes.end(),
                      [](const std::string& n) { return qlm::test::contains(n, "lm_head"); }));
    const auto f = qlm::format::ModelFile::open(tmp / "out" / "model.qlm");
    REQUIRE(f.ok());
    CHECK_FALSE((*f)->find("lm_head.weight").has_value());
  }
  SECTION("non-finite weights") {
    const std::string v = "model.layers.1.self_attn.v_proj.weight";
    for (DType type : {DType::Q4, DType::F16}) {
      const auto dir = make_checkpoint(tmp, with_value(v, 77, std::nanf("")));
      expect_error(convert(tmp, dir, type), ErrorCode::Format,
                   {v, "non-finite", "77", (dir / "model.safetensors").string()});
    }
    const std::string norm = "model.norm.weight";
    const auto dir = make_checkpoint(tmp, with_value(norm, 3, HUGE_VALF));
    expect_error(convert(tmp, dir, DType::F32), ErrorCode::Format, {norm, "non-finite"});
  }
  SECTION("values beyond f16") {
    const std::string w = "model.layers.3.mlp.gate_proj.weight";
    const auto dir = make_checkpoint(tmp, with_value(w, 5, 1e5f));
    expect_error(convert(tmp, dir, DType::F16), ErrorCode::Unsupported, {w, "f16"});
    CHECK(convert(tmp, dir, DType::Q8).ok());  // a Q8 scale of 1e5/127 is fine
    // Q8/Q4 scales are f16: values whose scale would overflow it are refused.
    const auto huge = make_checkpoint(tmp, with_value(w, 5, 1e7f));
    expect_error(convert(tmp, huge, DType::Q8), ErrorCode::Unsupported, {w, "q8"});
    expect_error(convert(tmp, huge, DType::Q4), ErrorCode::Unsupported, {w, "q4"});
  }
  SECTION("output directory that does not exist") {
    const auto out = tmp / "no" / "such" / "dir" / "model.qlm";
    expect_error(qlm::convert_checkpoint({qlm::test::stories_dir(), out, DType::Q8, {}}),
                 ErrorCode::Io, {out.string()});
  }
  SECTION("no safetensors") {
    const auto dir = tmp / "ckpt";
    qlm::test::copy_aux_files(qlm::test::stories_dir(), dir);
    expect_error(convert(tmp, dir), ErrorCode::Io, {dir.string()});
  }
}

TEST_CASE("the converter rejects bad config.json files", "[convert]") {
  const TempDir tmp;
  const auto dir = make_checkpoint(tmp);
  const std::string config = (dir / "config.json").string();
  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    qlm::test::edit_config(dir, edit);
    return convert(tmp, dir);
  };
  SECTION("unknown architecture") {
    expect_error(edited([](auto& j) { j["model_type"] = "gpt2"; }), ErrorCode::Unsupported,
                 {"gpt2", config});
  }
  SECTION("not JSON") {
    qlm::test::write_text(dir / "config.json", "{\"model_type\": \"llama\",");
    expect_error(convert(tmp, dir), ErrorCode::Format, {config, "JSON"});
  }
  SECTION("missing field") {
    expect_error(edited([](auto& j) { j.erase("hidden_size"); }), ErrorCode::Format,
                 {"hidden_size", config});
  }
  SECTION("field of the wrong type") {
    expect_error(edited([](auto& j) { j["num_hidden_layers"] = "five"; }), ErrorCode::Format,
                 {"num_hidden_layers", config});
  }
  SECTION("fractional, negative or huge integer fields") {
    expect_error(edited([](auto& j) { j["hidden_size"] = 64.5; }), ErrorCode::Format,
                 {"hidden_size", "64.5", config});
    expect_error(edited([](auto& j) { j["hidden_size"] = -64; }), ErrorCode::Format,
                 {"hidden_size", config});
    expect_error(edited([](auto& j) { j["hidden_size"] = 1e300; }), ErrorCode::Format,
                 {"hidden_size", config});
  }
  SECTION("absurd vocabulary") {
    expect_error(edited([](auto& j) { j["vocab_size"] = 1u << 30; }), ErrorCode::Format,
                 {"1073741824", config});
  }
  SECTION("heads not divisible by kv heads") {
    expect_error(edited([](auto& j) { j["num_key_value_heads"] = 3; }), ErrorCode::Format,
                 {"3 kv heads", config});
  }
  SECTION("zero layers") {
    expect_error(edited([](auto& j) { j["num_hidden_layers"] = 0; }), ErrorCode::Format, {config});
  }
  SECTION("shape mismatch implied by the config") {
    expect_error(edited([](auto& j) { j["intermediate_size"] = 176; }), ErrorCode::Format,
                 {"mlp", "176"});
  }
  SECTION("no config.json") {
    fs::remove(dir / "config.json");
    expect_error(convert(tmp, dir), ErrorCode::Io, {config});
  }
  SECTION("input directory that does not exist") {
    expect_error(convert(tmp, tmp / "nowhere"), ErrorCode::Io, {(tmp / "nowhere").string()});
  }
}

TEST_CASE("qlm-convert exits non-zero with a single line on stderr", "[convert]") {
  if (!fs::exists(convert_tool())) {
    WARN("qlm-convert not built at " << convert_tool() << "; skipping");
    return;
  }
  const TempDir tmp;
  const auto out = tmp / "out.qlm";
  SECTION("missing input directory") {
    const auto run = run_tool(tmp, quote(tmp / "nowhere") + " -o " + quote(out));
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 1);
    CHECK(count_lines(run.err) == 1);
    CHECK(run.err.ends_with("\n"));
    CHECK(qlm::test::contains(run.err, (tmp / "nowhere").string()));
  }
  SECTION("unsupported architecture") {
    const auto dir = make_checkpoint(tmp);
    qlm::test::edit_config(dir, [](auto& j) { j["model_type"] = "gpt2"; });
    const auto run = run_tool(tmp, quote(dir) + " -o " + quote(out) + " --type q4");
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 1);
    CHECK(count_lines(run.err) == 1);
    CHECK(qlm::test::contains(run.err, "gpt2"));
  }
  SECTION("unknown --type") {
    const auto run =
        run_tool(tmp, quote(qlm::test::stories_dir()) + " -o " + quote(out) + " --type q3");
    INFO("stderr: " << run.err);
    CHECK(run.exit_code != 0);
    CHECK(count_lines(run.err) == 1);
    CHECK(qlm::test::contains(run.err, "q3"));
  }
  CHECK_FALSE(fs::exists(out));
  SECTION("success writes the file") {
    const auto run = run_tool(tmp, quote(qlm::test::stories_dir()) + " -o " + quote(out));
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 0);
    CHECK(qlm::format::ModelFile::open(out, {.verify_checksums = true, .populate = false}).ok());
  }
}

TEST_CASE("conversion replaces the output atomically", "[convert]") {
  const TempDir tmp;
  const auto out_dir = tmp / "out";
  fs::create_directories(out_dir);
  const auto out = out_dir / "model.qlm";

  SECTION("a failed conversion leaves an existing good file untouched") {
    REQUIRE(qlm::convert_checkpoint({qlm::test::stories_dir(), out, DType::Q8, {}}).ok());
    const auto good = qlm::test::read_bytes(out);
    // Fails late: while writing the data of a tensor in the middle of the file.
    const auto nan_dir =
        make_checkpoint(tmp, with_value("model.layers.4.mlp.down_proj.weight", 0, std::nanf("")));
    // Fails early: before anything is written.
    const auto missing = tmp / "missing";
    qlm::test::copy_aux_files(qlm::test::stories_dir(), missing);
    qlm::test::write_tensors(missing, without("model.norm.weight"), SourceType::F32);
    for (const auto& dir : {nan_dir, missing}) {
      INFO("input " << dir);
      const auto r = qlm::convert_checkpoint({dir, out, DType::Q4, {}});
      CHECK_FALSE(r.ok());
      CHECK(qlm::test::read_bytes(out) == good);
      CHECK(qlm::test::list_dir(out_dir) == std::vector<std::string>{"model.qlm"});
    }
  }
  SECTION("cancelling leaves no output and no temporary file") {
    std::size_t calls = 0;
    qlm::ConvertOptions o{qlm::test::stories_dir(), out, DType::Q8, {}};
    o.on_progress = [&](std::size_t done, std::size_t, std::uint64_t) {
      ++calls;
      return done < 3;
    };
    expect_error(qlm::convert_checkpoint(o), ErrorCode::Cancelled, {out.string()});
    CHECK(calls == 3);
    CHECK(qlm::test::list_dir(out_dir).empty());
    // Cancelling over an existing file keeps it.
    qlm::test::write_text(out, "previous");
    expect_error(qlm::convert_checkpoint(o), ErrorCode::Cancelled, {});
    CHECK(qlm::test::read_text(out) == "previous");
    CHECK(qlm::test::list_dir(out_dir) == std::vector<std::string>{"model.qlm"});
  }
  SECTION("a successful conversion replaces the old file and reports progress") {
    qlm::test::write_text(out, "an old file that is not a .qlm");
    std::vector<std::size_t> done_seen;
    std::size_t total_seen = 0;
    std::uint64_t last_bytes = 0;
    bool bytes_grow = true;
    qlm::ConvertOptions o{qlm::test::stories_dir(), out, DType::Q4, {}};
    o.on_progress = [&](std::size_t done, std::size_t total, std::uint64_t bytes) {
      done_seen.push_back(done);
      total_seen = total;
      bytes_grow = bytes_grow && bytes > last_bytes;
      last_bytes = bytes;
      return true;
    };
    const auto r = qlm::convert_checkpoint(o);
    REQUIRE(r.ok());
    CHECK(fs::file_size(out) == r->file_bytes);
    CHECK(qlm::format::ModelFile::open(out, {.verify_checksums = true, .populate = false}).ok());
    CHECK(qlm::test::list_dir(out_dir) == std::vector<std::string>{"model.qlm"});
    CHECK(total_seen == r->tensors);
    REQUIRE(done_seen.size() == r->tensors);
    for (std::size_t i = 0; i < done_seen.size(); ++i) CHECK(done_seen[i] == i + 1);
    CHECK(bytes_grow);
    CHECK(last_bytes == r->file_bytes);
  }
}
