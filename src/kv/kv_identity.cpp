// kv_identity: the checksum alone for every model whose keys do not depend on the context, so
// their saved sequences keep the identity they were saved with.
#include "kv/kv_identity.hpp"

#include <xxhash.h>

#include "model_access.hpp"

namespace qlm::detail {

std::uint64_t kv_identity(const Model& model, std::uint32_t context) {
  const std::uint64_t checksum = model_file(model).header().index_checksum;
  const RopeScaling& s = model.config().rope_scaling;
  if (s.type != RopeScaling::Type::LongRope || context <= s.original_max_position) return checksum;
  const std::uint64_t parts[] = {checksum, 0x6c6f6e67ull};  // "long": the long factors
  return XXH3_64bits(parts, sizeof parts);
}

}  // namespace qlm::detail
