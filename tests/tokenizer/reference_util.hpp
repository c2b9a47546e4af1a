// Helpers for tokenizer tests: the shared corpus, temp dirs, and running reference scripts.
#pragma once

#include <fmt/format.h>

#include <unistd.h>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "qlm/tokenizer.hpp"
#include "qlm/tokenizer/hf_tokenizer.hpp"

namespace qlm::test {

namespace fs = std::filesystem;

inline fs::path source_dir() {
  return QLM_SOURCE_DIR;
}
inline fs::path shared_dir() {
  return QLM_SHARED_DIR;
}
inline fs::path corpus_path() {
  return source_dir() / "tests/tokenizer/corpus/corpus.jsonl";
}

/// The tricky-string corpus, one JSON string per line.
inline std::vector<std::string> load_corpus() {
  std::ifstream in(corpus_path(), std::ios::binary);
  REQUIRE(in.good());
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line).get<std::string>());
  }
  return out;
}

/// A fresh directory for this test's files (under QLM_TEST_TMP or the build tree).
/// The tokenizer of a Hugging Face model directory; REQUIREs that it loads.
inline Tokenizer load_tokenizer(const fs::path& dir) {
  auto vocab = load_hf_tokenizer(dir);
  INFO(dir.string() << ": " << (vocab.ok() ? "" : vocab.error().message));
  REQUIRE(vocab.ok());
  auto tok = Tokenizer::create(std::move(vocab).value());
  INFO((tok.ok() ? "" : tok.error().message));
  REQUIRE(tok.ok());
  return std::move(tok).value();
}

inline fs::path temp_dir(std::string_view name) {
  static int counter = 0;
  const char* env = std::getenv("QLM_TEST_TMP");
  const fs::path base = env != nullptr ? fs::path(env) : fs::path(QLM_BINARY_DIR) / "tests/tmp";
  const fs::path dir = base / fmt::format("{}-{}-{}", name, ::getpid(), counter++);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

inline void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

/// Runs `cmd` through the shell and returns its stdout; a non-zero exit fails the test loudly
/// (a missing reference tool is a failure, never a skip).
inline std::string run_reference(const std::string& cmd) {
  INFO("reference command: " << cmd);
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  INFO("reference output (first 2000 bytes): " << out.substr(0, 2000));
  INFO(
      "if node, @huggingface/tokenizers or python3-sentencepiece is missing, run "
      "scripts/install-deps.sh");
  REQUIRE(status == 0);
  return out;
}

/// Runs tests/reference/hf_encode.mjs (Hugging Face's tokenizers.js) over a JSONL file of strings
/// (by default the tricky-string corpus).
inline nlohmann::json run_hf(const fs::path& tokenizer_json, const std::string& config = "-",
                             const fs::path& corpus = corpus_path()) {
  const fs::path ref = source_dir() / "tests/reference";
  REQUIRE(fs::exists(ref / "node_modules/@huggingface/tokenizers/package.json"));
  return nlohmann::json::parse(run_reference(fmt::format(
      "cd {} && node hf_encode.mjs {} {} {}", shell_quote(ref.string()),
      shell_quote(tokenizer_json.string()), shell_quote(config), shell_quote(corpus.string()))));
}

/// Printable form of a test string for failure messages.
inline std::string show(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline std::string show_ids(const std::vector<std::int32_t>& ids) {
  return fmt::format("{}", fmt::join(ids, ","));
}

}  // namespace qlm::test
