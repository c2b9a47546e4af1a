// Decode batches as lanes: on a pool of T threads, a batch whose rows are each the one new token
// of its own sequence runs as T lanes, each thread taking a share of the sequences through every
// layer on its own; the LM head then runs once over all of them, split across the threads. Every
// other batch splits each matmul across the threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "arch/fast_forward.hpp"

namespace qlm::detail {

/// Fewest rows per lane for a batch to run as lanes on `threads` threads, for a model file of
/// `weight_bytes`: each lane streams every weight, so its rows must keep it busy computing.
std::size_t lane_rows(int threads, std::uint64_t weight_bytes);

/// The fast path over `options.pool` with decode batches run as lanes (see above); a single
/// thread, or an observer (which sees whole batches), gets the plain fast path.
std::unique_ptr<Forward> make_laned_forward(const Model& model, const kernels::KernelTable& kernels,
                                            FastOptions options);

}  // namespace qlm::detail
