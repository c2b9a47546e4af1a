// TempDir: unique directory names from the process id, a counter and a random number.
#include "support/temp_dir.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>

namespace qlm::test {
namespace {

std::filesystem::path temp_root() {
  const char* env = std::getenv("QLM_TEST_TMP");
  if (env != nullptr && *env != '\0') {
    std::filesystem::path root(env);
    std::filesystem::create_directories(root);
    return root;
  }
  return std::filesystem::temp_directory_path();
}

}  // namespace

TempDir::TempDir() {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path root = temp_root();
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string name = "qlm-test-" + std::to_string(::getpid()) + "-" +
                             std::to_string(counter++) + "-" + std::to_string(rd() % 1000000);
    std::filesystem::path p = root / name;
    if (std::filesystem::create_directory(p)) {
      path_ = std::move(p);
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory under " + root.string());
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace qlm::test
