// Saving a sequence (its tokens and their keys and values) to a file and restoring it: a header
// that names the model file (its index checksum), the KV type and the cache geometry, the
// tokens, the rows of every page, and an XXH3-64 checksum of everything before it.
#pragma once

#include <cstdint>
#include <filesystem>

#include "kv/sequence_kv.hpp"

namespace qlm::detail {

/// Writes `seq` to `path` atomically (a failure leaves no file). Throws Failure (Io) on errors.
void save_sequence(const std::filesystem::path& path, const SequenceKv& seq,
                   std::uint64_t model_id);

/// Reads a file written by save_sequence into `seq` (empty, on `seq.pool()`), or throws Failure
/// naming the file: Format (not a sequence file, truncated), Checksum (altered), InvalidArgument
/// (another model, KV type or geometry; longer than `context`), PoolFull. Nothing is changed on
/// failure: the whole file is checked before a page is taken.
void restore_sequence(const std::filesystem::path& path, SequenceKv& seq, std::uint64_t model_id,
                      std::uint32_t context, std::uint32_t vocab);

}  // namespace qlm::detail
