// QlmImage: parsing with the library's decoders, assembling by hand following docs/format.md.
#include "support/qlm_image.hpp"

#include <cstring>
#include <stdexcept>

#include "format/table_codec.hpp"
#include "qlm/format/metadata.hpp"
#include "qlm/format/model_file.hpp"

namespace qlm::test {

format::FileHeader read_header(std::span<const std::uint8_t> file) {
  if (file.size() < sizeof(format::FileHeader)) throw std::runtime_error("file too short");
  format::FileHeader h;
  std::memcpy(&h, file.data(), sizeof h);
  return h;
}

void patch_header(std::vector<std::uint8_t>& file,
                  const std::function<void(format::FileHeader&)>& edit) {
  format::FileHeader h = read_header(file);
  edit(h);
  std::memcpy(file.data(), &h, sizeof h);
}

void refresh_checksum(std::vector<std::uint8_t>& file) {
  patch_header(file, [&](format::FileHeader& h) {
    if (h.metadata_offset + h.metadata_size > file.size() ||
        h.table_offset + h.table_size > file.size()) {
      throw std::runtime_error("header regions outside the file");
    }
    std::vector<std::uint8_t> index(
        file.begin() + static_cast<std::ptrdiff_t>(h.metadata_offset),
        file.begin() + static_cast<std::ptrdiff_t>(h.metadata_offset + h.metadata_size));
    index.insert(index.end(), file.begin() + static_cast<std::ptrdiff_t>(h.table_offset),
                 file.begin() + static_cast<std::ptrdiff_t>(h.table_offset + h.table_size));
    h.index_checksum = format::checksum(index);
  });
}

QlmImage parse_qlm(std::span<const std::uint8_t> file) {
  QlmImage img;
  img.header = read_header(file);
  const auto& h = img.header;
  if (h.data_offset > file.size() || h.metadata_offset + h.metadata_size > file.size() ||
      h.table_offset + h.table_size > file.size()) {
    throw std::runtime_error("header regions outside the file");
  }
  img.metadata.assign(
      file.begin() + static_cast<std::ptrdiff_t>(h.metadata_offset),
      file.begin() + static_cast<std::ptrdiff_t>(h.metadata_offset + h.metadata_size));
  img.table = format::detail::decode_table(file.subspan(h.table_offset, h.table_size),
                                           h.tensor_count, file.size() - h.data_offset, "image");
  img.data.assign(file.begin() + static_cast<std::ptrdiff_t>(h.data_offset), file.end());
  return img;
}

std::vector<std::uint8_t> assemble_qlm(const format::FileHeader& header,
                                       std::span<const std::uint8_t> metadata,
                                       std::span<const std::uint8_t> table,
                                       std::span<const std::uint8_t> data) {
  format::FileHeader h = header;
  h.metadata_offset = sizeof(format::FileHeader);
  h.metadata_size = metadata.size();
  h.table_offset = h.metadata_offset + h.metadata_size;
  h.table_size = table.size();
  h.data_offset = round_up(h.table_offset + h.table_size, format::kDataAlignment);
  std::vector<std::uint8_t> file(h.data_offset + data.size(), 0);
  if (!metadata.empty())
    std::memcpy(file.data() + h.metadata_offset, metadata.data(), metadata.size());
  if (!table.empty()) std::memcpy(file.data() + h.table_offset, table.data(), table.size());
  if (!data.empty()) std::memcpy(file.data() + h.data_offset, data.data(), data.size());
  std::memcpy(file.data(), &h, sizeof h);
  refresh_checksum(file);
  return file;
}

std::vector<std::uint8_t> build_qlm(const QlmImage& image) {
  format::FileHeader h = image.header;
  h.tensor_count = static_cast<std::uint32_t>(image.table.size());
  const auto table = format::detail::encode_table(image.table);
  return assemble_qlm(h, image.metadata, table, image.data);
}

}  // namespace qlm::test
