// What cached keys depend on besides their tokens and the KV type. Saved sequences and the
// prefix index key on it, so keys computed one way are never restored or reused as another's.
#pragma once

#include <cstdint>

#include "qlm/model.hpp"

namespace qlm::detail {

/// The model file's index checksum (it covers the metadata and every tensor), mixed with the
/// rotation the context chose where that differs between contexts: longrope (Phi-3) takes its
/// long factors for every position when the context exceeds the original one.
std::uint64_t kv_identity(const Model& model, std::uint32_t context);

}  // namespace qlm::detail
