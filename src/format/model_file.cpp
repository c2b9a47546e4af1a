// Opening a .qlm file: map it read-only, then validate header, index checksum, metadata and table
// before exposing any tensor. Nothing is allocated in proportion to a size read from the file
// until that size has been checked against the file's real size.
#include "qlm/format/model_file.hpp"

#include <xxhash.h>

#include <cstring>

#include "format/table_codec.hpp"
#include "util/fail.hpp"
#include "util/mapped_file.hpp"

namespace qlm::format {

using qlm::detail::fail;

std::uint64_t checksum(std::span<const std::uint8_t> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

struct ModelFileLoader {
  static void map(ModelFile& f, const std::filesystem::path& path, const OpenOptions& options) {
    using qlm::detail::MapMode;
    const MapMode mode = options.copy       ? MapMode::Copy
                         : options.populate ? MapMode::Populate
                                            : MapMode::Map;
    auto mapping = std::make_shared<qlm::detail::MappedFile>(path, mode);
    f.base_ = mapping->bytes().data();
    f.size_ = mapping->bytes().size();
    f.mapping_ = std::move(mapping);
    if (f.size_ < sizeof(FileHeader)) {
      fail(ErrorCode::Format, "{}: file is {} bytes, too small for a .qlm header", f.path_,
           f.size_);
    }
  }

  static void check_header(ModelFile& f) {
    std::memcpy(&f.header_, f.base_, sizeof(FileHeader));
    const FileHeader& h = f.header_;
    if (h.magic != kMagic) fail(ErrorCode::Format, "{}: not a .qlm file (bad magic)", f.path_);
    if (h.version != kVersion) {
      fail(h.version > kVersion ? ErrorCode::Unsupported : ErrorCode::Format,
           "{}: format version {} is not supported (this build reads version {})", f.path_,
           h.version, kVersion);
    }
    if (h.header_size != sizeof(FileHeader)) {
      fail(ErrorCode::Format, "{}: header size {} (expected {})", f.path_, h.header_size,
           sizeof(FileHeader));
    }
    auto in_file = [&](std::uint64_t off, std::uint64_t len) {
      return off <= f.size_ && len <= f.size_ - off;
    };
    if (!in_file(h.metadata_offset, h.metadata_size) || !in_file(h.table_offset, h.table_size) ||
        h.data_offset > f.size_ || h.data_offset % kTensorAlignment != 0 ||
        h.metadata_offset < sizeof(FileHeader) || h.table_offset < sizeof(FileHeader) ||
        h.data_offset < h.table_offset + h.table_size) {
      fail(ErrorCode::Format,
           "{}: header sections out of range (metadata {}+{}, table {}+{}, data at {}, file {} "
           "bytes; truncated?)",
           f.path_, h.metadata_offset, h.metadata_size, h.table_offset, h.table_size, h.data_offset,
           f.size_);
    }
    XXH3_state_t* state = XXH3_createState();
    XXH3_64bits_reset(state);
    XXH3_64bits_update(state, f.base_ + h.metadata_offset, h.metadata_size);
    XXH3_64bits_update(state, f.base_ + h.table_offset, h.table_size);
    const std::uint64_t sum = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    if (sum != h.index_checksum) {
      fail(ErrorCode::Checksum, "{}: metadata/tensor table checksum mismatch (file corrupted)",
           f.path_);
    }
  }

  static void load(ModelFile& f, const std::filesystem::path& path, const OpenOptions& options) {
    map(f, path, options);
    check_header(f);
    const FileHeader& h = f.header_;
    f.meta_ = qlm::detail::unwrap(
        decode_metadata({f.base_ + h.metadata_offset, h.metadata_size}, f.path_));
    f.tensors_ = detail::decode_table({f.base_ + h.table_offset, h.table_size}, h.tensor_count,
                                      f.size_ - h.data_offset, f.path_);
    if (options.verify_checksums) qlm::detail::unwrap(f.verify());
  }
};

Result<std::shared_ptr<ModelFile>> ModelFile::open(const std::filesystem::path& path,
                                                   OpenOptions options) {
  return qlm::detail::capture([&] {
    std::shared_ptr<ModelFile> f(new ModelFile());
    f->path_ = path.string();
    ModelFileLoader::load(*f, path, options);
    return f;
  });
}

ModelFile::~ModelFile() = default;

std::optional<TensorView> ModelFile::find(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return TensorView{&t, data(t)};
  }
  return std::nullopt;
}

std::span<const std::uint8_t> ModelFile::data(const TensorInfo& t) const {
  return {base_ + header_.data_offset + t.offset, t.size};
}

Result<void> ModelFile::verify() const {
  for (const auto& t : tensors_) {
    if (checksum(data(t)) != t.checksum) {
      return Error{ErrorCode::Checksum,
                   path_ + ": tensor '" + t.name + "' fails its checksum (file corrupted)"};
    }
  }
  return {};
}

}  // namespace qlm::format
