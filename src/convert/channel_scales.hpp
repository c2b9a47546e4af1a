// Activation-aware channel scaling: before quantizing, multiply each input column c of a matrix by
// s_c = (importance_c / mean)^alpha and divide the producer of that input by s_c, which leaves the
// float model unchanged but gives strongly activated columns finer steps in the 4-bit grid.
// Producers: the RMSNorm weight, or LayerNorm weight and bias (q/k/v and gate/up or c_fc inputs),
// v_proj rows (o_proj input), up_proj rows (down_proj input; starcoder2's c_proj has none). alpha
// is chosen per layer and site from a grid by the importance-weighted output error.
#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "qlm/config.hpp"
#include "qlm/format/dtype.hpp"
#include "qlm/quant/importance.hpp"
#include "qlm/quant/quantize.hpp"

namespace qlm::detail {

/// The scales chosen for a model, and how they change each tensor.
struct ChannelScales {
  std::map<std::string, std::vector<float>> columns;     ///< matrix -> multiply column c by s[c]
  std::map<std::string, std::vector<float>> rows;        ///< tensor -> divide row/element j by s[j]
  std::map<std::string, std::vector<float>> importance;  ///< matrix -> importance after scaling
  std::vector<std::string> notes;                        ///< the alpha of every site

  /// Applies the scales of `name` to its f32 values (shape [rows, k] or [n]).
  void apply(const std::string& name, std::span<float> x,
             std::span<const std::uint64_t> shape) const;
};

/// Loads a tensor of the checkpoint as f32 by name.
using TensorLoader = std::function<std::vector<float>(const std::string&)>;

/// Chooses alpha per site for quantization to `type`; nothing is scaled where alpha 0 is best.
ChannelScales plan_channel_scales(const ModelConfig& config, const TensorLoader& load,
                                  const Importance& importance, DType type,
                                  quant::ScaleMethod method, ThreadPool* pool = nullptr);

}  // namespace qlm::detail
