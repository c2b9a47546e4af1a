// A .qlm file opened read-only and memory-mapped: header, metadata and tensor table validated,
// tensor payloads exposed as views into the mapping (zero copy).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qlm/error.hpp"
#include "qlm/format/header.hpp"
#include "qlm/format/metadata.hpp"
#include "qlm/format/tensor_info.hpp"

namespace qlm::format {

/// Options for opening a .qlm file.
struct OpenOptions {
  bool verify_checksums = false;  ///< hash every tensor payload on open (reads the whole file)
  bool populate = false;  ///< pre-fault the mapping (MAP_POPULATE) to avoid page faults later
  /// Read the file into private memory (transparent huge pages where the kernel allows) instead
  /// of mapping it: the read costs time at open and the memory is not shared with other processes.
  bool copy = false;
};

/// An open, validated, memory-mapped .qlm file. Immutable; safe to share across threads.
class ModelFile {
 public:
  /// Opens and validates `path`. Every structural problem is a Format error naming the file.
  /// Mutable only for take_metadata(); share it as `const`.
  static Result<std::shared_ptr<ModelFile>> open(const std::filesystem::path& path,
                                                 OpenOptions options = {});
  ~ModelFile();
  ModelFile(const ModelFile&) = delete;
  ModelFile& operator=(const ModelFile&) = delete;

  const std::string& path() const { return path_; }
  const FileHeader& header() const { return header_; }
  const Metadata& metadata() const { return meta_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  std::uint64_t file_size() const { return size_; }

  /// The tensor called `name`, or nullopt.
  std::optional<TensorView> find(std::string_view name) const;
  /// The payload of a table entry (a view into the mapping).
  std::span<const std::uint8_t> data(const TensorInfo& t) const;

  /// Every byte of the file (e.g. to check a signature over it).
  std::span<const std::uint8_t> bytes() const { return {base_, size_}; }

  /// Recomputes every tensor checksum; a Checksum error names the first tensor that fails.
  Result<void> verify() const;

  /// Moves the decoded metadata keys that start with `prefix` out of metadata() (e.g. to build
  /// the tokenizer from them without holding them twice).
  Metadata take_metadata(std::string_view prefix) { return meta_.extract_prefix(prefix); }

 private:
  ModelFile() = default;
  std::string path_;
  std::shared_ptr<void> mapping_;  // owns the MappedFile (kept opaque to keep src/ types private)
  const std::uint8_t* base_ = nullptr;
  std::uint64_t size_ = 0;
  FileHeader header_{};
  Metadata meta_;
  std::vector<TensorInfo> tensors_;
  friend struct ModelFileLoader;
};

/// XXH3-64 of a byte span (the checksum the format uses).
std::uint64_t checksum(std::span<const std::uint8_t> bytes);

}  // namespace qlm::format
