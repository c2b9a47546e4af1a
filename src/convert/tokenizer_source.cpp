// Wires the tokenizer loaders into the converter (placeholder until the tokenizer lands).
#include "convert/tokenizer_source.hpp"

namespace qlm {

void add_tokenizer(const std::filesystem::path&, const ModelConfig&, format::Metadata&,
                   ConvertReport& report) {
  report.notes.push_back("tokenizer not yet stored");
}

}  // namespace qlm
