// ActivationObserver: a hook that sees the input of every weight-matrix product of the forward
// pass, for calibration statistics (Importance) and debugging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace qlm {

/// Where an observed activation is read: each value names the weight matrices that read it.
enum class MatrixInput : std::uint8_t {
  Attention,        ///< normed hidden state read by q, k and v projections
  AttentionOutput,  ///< attention output read by o_proj
  Mlp,              ///< normed hidden state read by gate and up projections
  MlpHidden,        ///< silu(gate) * up read by down_proj
  Head,             ///< final normed hidden state read by the LM head
};

/// Receives activations on the thread that calls Session::eval, before the products that read
/// them. `x` holds `rows` token rows of x.size() / rows values each. An exception thrown here
/// fails the eval call (the session must then be truncated or discarded).
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  /// `layer` is 0 for MatrixInput::Head.
  virtual void observe(MatrixInput input, std::uint32_t layer, std::span<const float> x,
                       std::size_t rows) = 0;
};

}  // namespace qlm
