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

namespace qlm {
class Model;
}

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
  static Result<std::shared_ptr<const ModelFile>> open(const std::filesystem::path& path,
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

  /// Recomputes every tensor checksum; a Checksum error names the first tensor that fails.
  Result<void> verify() const;

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
  // Model::open moves the tokenizer keys out of meta_ (into its Tokenizer) before sharing.
  friend class qlm::Model;
  static std::shared_ptr<ModelFile> load(const std::filesystem::path& path, OpenOptions options);
  std::span<const std::uint8_t> metadata_block() const {
    return {base_ + header_.metadata_offset, header_.metadata_size};
  }
};

/// XXH3-64 of a byte span (the checksum the format uses).
std::uint64_t checksum(std::span<const std::uint8_t> bytes);

}  // namespace qlm::format
