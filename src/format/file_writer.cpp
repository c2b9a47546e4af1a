// Atomic .qlm writer: payloads are produced one at a time, hashed and written at their final
// offsets in an unnamed temporary file (O_TMPFILE), which is linked and renamed over the target
// only when everything succeeded. A crash or kill therefore leaves nothing behind.
#include "qlm/format/file_writer.hpp"

#include <xxhash.h>

#include <unordered_set>

#include "format/table_codec.hpp"
#include "qlm/format/header.hpp"
#include "qlm/format/model_file.hpp"
#include "util/atomic_file.hpp"
#include "util/fail.hpp"

namespace qlm::format {
namespace {

using qlm::detail::fail;

std::vector<TensorInfo> plan_layout(std::span<const PendingTensor> tensors) {
  std::vector<TensorInfo> infos;
  std::unordered_set<std::string_view> names;
  std::uint64_t offset = 0;
  for (const auto& p : tensors) {
    if (!names.insert(p.name).second) fail(ErrorCode::InvalidArgument, "tensor '{}' twice", p.name);
    if (p.name.empty() || p.name.size() > 0xffff) {
      fail(ErrorCode::InvalidArgument, "tensor name '{}' is empty or too long", p.name);
    }
    const auto bytes = tensor_bytes(p.dtype, p.shape);
    if (!bytes) {
      fail(ErrorCode::InvalidArgument, "tensor '{}': shape invalid for type {}", p.name,
           to_string(p.dtype));
    }
    infos.push_back(TensorInfo{p.name, p.dtype, p.shape, offset, *bytes, 0});
    offset = round_up(offset + *bytes, kTensorAlignment);
  }
  return infos;
}

}  // namespace

Result<std::uint64_t> write_qlm_file(const std::filesystem::path& path, const Metadata& meta,
                                     std::span<const PendingTensor> tensors,
                                     const ProgressFn& progress) {
  return qlm::detail::capture([&]() -> std::uint64_t {
    qlm::detail::unwrap(check_encodable(meta));
    std::vector<TensorInfo> infos = plan_layout(tensors);
    const std::vector<std::uint8_t> meta_bytes = encode_metadata(meta);
    FileHeader h;
    h.tensor_count = static_cast<std::uint32_t>(infos.size());
    h.metadata_offset = sizeof(FileHeader);
    h.metadata_size = meta_bytes.size();
    h.table_offset = h.metadata_offset + h.metadata_size;
    for (const auto& t : infos) h.table_size += detail::table_entry_size(t);
    h.data_offset = round_up(h.table_offset + h.table_size, kDataAlignment);

    qlm::detail::AtomicFile out(path);
    std::uint64_t end = h.data_offset;
    std::vector<std::uint8_t> buf;
    for (std::size_t i = 0; i < infos.size(); ++i) {
      buf.assign(infos[i].size, 0);
      qlm::detail::unwrap(tensors[i].produce(buf));
      infos[i].checksum = checksum(buf);
      out.write_at(buf, h.data_offset + infos[i].offset);
      end = h.data_offset + infos[i].offset + infos[i].size;
      if (progress &&
          !qlm::detail::call_back("progress callback", progress, i + 1, infos.size(), end)) {
        fail(ErrorCode::Cancelled, "{}: writing cancelled", path.string());
      }
    }
    const std::vector<std::uint8_t> table = detail::encode_table(infos);
    XXH3_state_t* state = XXH3_createState();
    XXH3_64bits_reset(state);
    XXH3_64bits_update(state, meta_bytes.data(), meta_bytes.size());
    XXH3_64bits_update(state, table.data(), table.size());
    h.index_checksum = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    out.write_at({reinterpret_cast<const std::uint8_t*>(&h), sizeof h}, 0);
    out.write_at(meta_bytes, h.metadata_offset);
    out.write_at(table, h.table_offset);
    out.commit(end);
    return end;
  });
}

}  // namespace qlm::format
