// Internal: the cache-blocked GEMM loop every SIMD ISA shares, written once over a micro-kernel
// policy. A chunk of row groups (detail::l2_chunk_groups: ~256 KiB of weights) stays in L2 while
// every activation row passes over it, kMr rows per micro-kernel call plus one call for the tail;
// an ISA whose micro-kernel reads a packed activation panel gets K cut into chunks of kKChunk
// blocks, the panel packed once per (rows, K chunk) and reused by every group of the chunk.
// Internal linkage, like the ISA headers that include it, so differently-flagged translation units
// never share a copy.
#pragma once

#include <algorithm>
#include <cstddef>

#include "detail/weight_format.hpp"
#include "kernel_table.hpp"

#if defined(__GNUC__)
#define QLM_KERNEL_INLINE inline __attribute__((always_inline))
#else
#define QLM_KERNEL_INLINE inline
#endif

namespace qlm::kernels {
namespace {

// A micro-kernel policy K provides:
//   static constexpr int kMr;             activation rows per full call (>= 1)
//   static constexpr std::size_t kParts;  calls per row group: the group's kRowGroup rows are cut
//                                         into kParts parts of kRowGroup / kParts rows (AVX-512: 1,
//                                         AVX2: 2 halves, NEON: 4 quads); parts past n are skipped
//   static constexpr std::size_t kKChunk; 0: a call covers all of K; else blocks per K chunk, and
//                                         k.pack(m0, mr, b0, nb) runs before each chunk's calls
//   void pack(std::size_t m0, std::size_t mr, std::size_t b0, std::size_t nb);  (kKChunk > 0)
//   template <int MR> void micro(std::size_t m0, std::size_t b0, std::size_t nb, std::size_t g,
//                                std::size_t part) const;
//     activation rows [m0, m0 + MR) x blocks [b0, b0 + nb) x part `part` of row group g; b0 > 0
//     continues the sums stored in y (blocks stay in order, so K chunks change no result).

// Activation rows [m0, m0 + mr), mr < MR <= K::kMr: the micro-kernel instance for exactly mr rows.
template <int MR, class K>
void micro_tail(const K& k, std::size_t m0, std::size_t mr, std::size_t b0, std::size_t nb,
                std::size_t g, std::size_t part) {
  if constexpr (MR > 0) {
    if (mr == static_cast<std::size_t>(MR)) return k.template micro<MR>(m0, b0, nb, g, part);
    micro_tail<MR - 1>(k, m0, mr, b0, nb, g, part);
  }
}

// Activation rows [m0, m0 + mr), mr <= K::kMr: the full micro-kernel, or the tail's.
template <class K>
QLM_KERNEL_INLINE void micro_rows(const K& k, std::size_t m0, std::size_t mr, std::size_t b0,
                                  std::size_t nb, std::size_t g, std::size_t part) {
  if (mr == static_cast<std::size_t>(K::kMr)) {
    k.template micro<K::kMr>(m0, b0, nb, g, part);
  } else {
    micro_tail<K::kMr - 1>(k, m0, mr, b0, nb, g, part);
  }
}

// Row groups [gc, gend), each part of each, for activation rows [m0, m0 + mr) and blocks
// [b0, b0 + nb).
template <class K>
QLM_KERNEL_INLINE void gemm_groups(const K& k, const detail::Geometry& geo, std::size_t gc,
                                   std::size_t gend, std::size_t m0, std::size_t mr, std::size_t b0,
                                   std::size_t nb) {
  constexpr std::size_t kPartRows = kRowGroup / K::kParts;
  static_assert(kPartRows * K::kParts == kRowGroup);
  for (std::size_t g = gc; g < gend; ++g) {
    if constexpr (K::kParts == 1) {
      micro_rows(k, m0, mr, b0, nb, g, 0);
    } else {
      for (std::size_t part = 0; part < K::kParts && g * kRowGroup + part * kPartRows < geo.n;
           ++part) {
        micro_rows(k, m0, mr, b0, nb, g, part);
      }
    }
  }
}

/// The GEMM of row groups [g0, g1) (g1 <= geo.groups) for `rows` activation rows.
template <class K>
QLM_KERNEL_INLINE void gemm_blocked(K& k, const detail::Geometry& geo, std::size_t rows,
                                    std::size_t g0, std::size_t g1) {
  constexpr std::size_t kMr = K::kMr;
  const std::size_t chunk = detail::l2_chunk_groups(geo.blocks, geo.tile);
  for (std::size_t gc = g0; gc < g1; gc += chunk) {
    const std::size_t gend = std::min(g1, gc + chunk);
    for (std::size_t m0 = 0; m0 < rows; m0 += kMr) {
      const std::size_t mr = std::min(kMr, rows - m0);
      if constexpr (K::kKChunk > 0) {
        for (std::size_t b0 = 0; b0 < geo.blocks; b0 += K::kKChunk) {
          const std::size_t nb = std::min(K::kKChunk, geo.blocks - b0);
          k.pack(m0, mr, b0, nb);
          gemm_groups(k, geo, gc, gend, m0, mr, b0, nb);
        }
      } else {
        gemm_groups(k, geo, gc, gend, m0, mr, 0, geo.blocks);
      }
    }
  }
}

}  // namespace
}  // namespace qlm::kernels
