// TempDir: a unique scratch directory for one test, removed with everything in it on destruction.
#pragma once

#include <filesystem>
#include <string_view>

namespace qlm::test {

/// Creates a fresh directory under $QLM_TEST_TMP (or the system temp directory); RAII.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// path() / name.
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace qlm::test
