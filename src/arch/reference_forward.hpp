// The scalar fp32 reference forward pass of the Llama family (llama, mistral, qwen2, qwen3,
// starcoder2, gemma3_text, phi3).
#pragma once

#include <memory>

#include "arch/forward.hpp"
#include "qlm/model.hpp"

namespace qlm::detail {

/// A token-at-a-time reference implementation for sequences of up to `context` tokens (which
/// picks longrope's factors); every op is the plain loop in ops/reference_ops.
std::unique_ptr<Forward> make_reference_forward(const Model& model, std::uint32_t context);

}  // namespace qlm::detail
