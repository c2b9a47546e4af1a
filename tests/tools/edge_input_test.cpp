// Bad input at the edges of the tools and the library: special files (a FIFO, /dev/zero) as
// inputs and outputs, a converter asked to overwrite its own checkpoint, verification that a file
// loads, and absurd command-line numbers. Each is a clear error and a non-zero exit, never a
// hang, a crash or a partial file. (docs/reliability.md keeps the table of cases.)
#include <sys/stat.h>

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "model/model_helpers.hpp"
#include "qlm/detail/read_file.hpp"
#include "qlm/format/file_writer.hpp"
#include "qlm/format/model_file.hpp"
#include "qlm/model.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace qlm::test {
namespace {

namespace fs = std::filesystem;

fs::path make_fifo(const fs::path& p) {
  REQUIRE(::mkfifo(p.c_str(), 0600) == 0);
  return p;
}

// Runs a tool line (stderr folded into the output, bounded by timeout(1) so that a regression to
// a hang fails instead of stalling the suite); returns its exit code.
int run_tool(const std::string& line, std::string& out) {
  return run_command("timeout 60 " + line + " 2>&1", out);
}

std::string q(const fs::path& p) {
  return fmt::format("'{}'", p.string());
}

// A tool's command line: its path and arguments joined by spaces (fmt: GCC 12 warns falsely on
// chains of std::string +).
template <class... Args>
std::string line(const std::string& tool, const Args&... args) {
  std::string out = tool_path(tool);
  ((out += ' ', out += args), ...);
  return out;
}

}  // namespace

TEST_CASE("special files are refused as inputs without blocking", "[tools][edge]") {
  TempDir tmp;
  const fs::path fifo = make_fifo(tmp / "fifo");
  expect_error(Model::open(fifo), ErrorCode::Io, {"fifo", "not a regular file"});
  expect_error(format::ModelFile::open(fifo), ErrorCode::Io, {"not a regular file"});
  expect_error(detail::read_regular_file(fifo, 100, "prompt file"), ErrorCode::Io,
               {"prompt file", "not a regular file"});
  expect_error(detail::read_regular_file("/dev/zero", 100, "prompt file"), ErrorCode::Io,
               {"/dev/zero"});
  write_text(tmp / "big.txt", std::string(101, 'x'));
  expect_error(detail::read_regular_file(tmp / "big.txt", 100, "prompt file"),
               ErrorCode::InvalidArgument, {"101 bytes", "100"});

  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  const std::string model = q(tmp / "m.qlm");
  std::string out;
  for (const fs::path& prompt : {fifo, fs::path("/dev/zero")}) {
    CHECK(run_tool(line("qlm-run", "-m", model, "-f", q(prompt)), out) == 1);
    CHECK(contains(out, "not a regular file"));
  }
  CHECK(run_tool(line("qlm-perplexity", "-m", model, "-f", q(fifo)), out) == 1);
  CHECK(contains(out, "not a regular file"));
  // A checkpoint whose config.json is a FIFO.
  fs::create_directory(tmp / "ckpt");
  make_fifo(tmp / "ckpt" / "config.json");
  CHECK(run_tool(line("qlm-convert", q(tmp / "ckpt"), "-o", q(tmp / "x.qlm")), out) != 0);
  CHECK(contains(out, "not a regular file"));
  CHECK_FALSE(fs::exists(tmp / "x.qlm"));
}

TEST_CASE("qlm-convert never overwrites its own input or a special file", "[tools][edge]") {
  TempDir tmp;
  fs::copy(stories_dir(), tmp / "ckpt");
  const auto config_before = read_bytes(tmp / "ckpt" / "config.json");
  std::string out;
  for (const char* name : {"config.json", "model.safetensors"}) {
    CHECK(run_tool(line("qlm-convert", q(tmp / "ckpt"), "-o", q(tmp / "ckpt" / name)), out) != 0);
    CHECK(contains(out, "overwrite the checkpoint's own"));
  }
  CHECK(read_bytes(tmp / "ckpt" / "config.json") == config_before);
  const fs::path fifo = make_fifo(tmp / "out.fifo");
  CHECK(run_tool(line("qlm-convert", q(tmp / "ckpt"), "-o", q(fifo)), out) != 0);
  CHECK(contains(out, "not a regular file"));
  CHECK(fs::is_fifo(fifo));
}

TEST_CASE("qlm-inspect --verify says whether the model loads, not only its checksums",
          "[tools][edge]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  std::string out;
  CHECK(run_tool(line("qlm-inspect", "--verify", q(tmp / "m.qlm")), out) == 0);
  CHECK(contains(out, "the model loads"));
  // Sound checksums, no tokenizer table: the loader refuses it, so must --verify.
  auto file = format::ModelFile::open(tmp / "m.qlm");
  REQUIRE(file.ok());
  format::Metadata meta = (*file)->metadata();
  (void)meta.extract_prefix("tokenizer.tokens");
  std::vector<format::PendingTensor> tensors;
  for (const format::TensorInfo& t : (*file)->tensors()) {
    tensors.push_back({t.name, t.dtype, t.shape, [&file, &t](std::span<std::uint8_t> o) {
                         const auto bytes = (*file)->data(t);
                         std::copy(bytes.begin(), bytes.end(), o.begin());
                         return Result<void>{};
                       }});
  }
  REQUIRE(format::write_qlm_file(tmp / "bad.qlm", meta, tensors).ok());
  CHECK(run_tool(line("qlm-inspect", "--verify", q(tmp / "bad.qlm")), out) == 1);
  CHECK(contains(out, "checksums OK"));
  CHECK(contains(out, "does not load"));
  CHECK(contains(out, "tokenizer.tokens"));
}

TEST_CASE("absurd command-line numbers are refused with a clear message", "[tools][edge]") {
  TempDir tmp;
  convert_or_fail(stories_dir(), tmp / "m.qlm", DType::Q8);
  const std::string m = "-m " + q(tmp / "m.qlm");
  struct Case {
    std::string line, says;
  };
  const Case cases[] = {
      {line("qlm-bench", m, "-p abc"), "-p 'abc'"},
      {line("qlm-bench", m, "-t 10000"), "-t '10000'"},
      {line("qlm-bench", m, "-n 5,,6"), "-n '5,,6'"},
      {line("qlm-bench", m, "-d -1"), "-d '-1'"},
      {line("qlm-bench", m, "-r 0"), "'0' is not a whole number from 1"},
      {line("qlm-run", m, "-p hi -t 10000"), "'10000' is not a whole number from 0 to 1024"},
      {line("qlm-run", m, "-p hi --temp nan"), "'nan' is not a finite number"},
      {line("qlm-run", m, "-p hi --top-p inf"), "'inf' is not a finite number"},
      {line("qlm-run", m, "-p hi --repeat-penalty 0 --temp 0"), "repeat_penalty"},
      {line("qlm-perplexity", m, "-f", q(tmp / "m.qlm"), "--chunks 0"),
       "'0' is not a whole number from 1 to 1099511627776"},
  };
  for (const Case& c : cases) {
    INFO(c.line);
    std::string out;
    CHECK(run_tool(c.line, out) != 0);
    INFO(out);
    CHECK(contains(out, c.says));
    CHECK(out.size() < 400);  // one clear line, not a dump
  }
  // --min-p above 1 keeps the most likely token: a valid story, not an out-of-vocabulary id.
  std::string out;
  CHECK(run_tool(line("qlm-run", m, "-p Once -n 4 --min-p 2 --temp 1"), out) == 0);
}

}  // namespace qlm::test
