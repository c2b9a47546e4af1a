// qlm-inspect: print a .qlm file's metadata, tensor table, sizes and bits per weight; --verify
// checks every checksum.
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <qlm/format/model_file.hpp>
#include <qlm/format/signature.hpp>
#include <qlm/model.hpp>
#include <variant>

#include "cli_util.hpp"

namespace {

// Long arrays (vocabularies, merges) are summarised, not dumped.
std::string describe(const qlm::format::MetaValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (x.size() > 80) return fmt::format("\"{}…\" ({} bytes)", x.substr(0, 60), x.size());
          return fmt::format("\"{}\"", x);
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_arithmetic_v<T>) {
          return fmt::format("{}", x);
        } else {
          if (x.size() <= 8) return fmt::format("{}", x);
          std::vector<typename T::value_type> head(x.begin(), x.begin() + 4);
          return fmt::format("[{} elements] {} …", x.size(), head);
        }
      },
      v);
}

// The stored chat templates: "default" and the named ones.
std::vector<std::pair<std::string, std::string>> chat_templates(const qlm::format::ModelFile& f) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto& m = f.metadata();
  if (const auto* d = m.find<std::string>("tokenizer.chat_template"); d && !d->empty()) {
    out.emplace_back("default", *d);
  }
  const auto* names = m.find<std::vector<std::string>>("tokenizer.chat_template.names");
  const auto* sources = m.find<std::vector<std::string>>("tokenizer.chat_template.sources");
  if (names && sources) {
    for (std::size_t i = 0; i < std::min(names->size(), sources->size()); ++i) {
      out.emplace_back((*names)[i], (*sources)[i]);
    }
  }
  return out;
}

int print_template(const qlm::format::ModelFile& f, const std::string& name) {
  std::string known;
  for (const auto& [n, source] : chat_templates(f)) {
    if (n == name) {
      std::fwrite(source.data(), 1, source.size(), stdout);
      return 0;
    }
    known += fmt::format("{}{}", known.empty() ? "" : ", ", n);
  }
  fmt::print(stderr, "qlm-inspect: {} has no chat template '{}' (it has: {})\n", f.path(), name,
             known.empty() ? "none" : known);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Inspect a .qlm model file"};
  std::string path;
  bool verify = false;
  app.add_flag("--verify", verify,
               "recompute every tensor checksum and check that the model loads (config, tensor "
               "shapes, tokenizer)");
  app.add_option("model", path, ".qlm file")->required();
  std::vector<std::string> trusted;
  app.add_option("--trusted-key", trusted,
                 "public key (NAME.pub) the file must be signed with; repeatable")
      ->check(CLI::ExistingFile);
  std::string template_name;
  app.add_option("--chat-template", template_name,
                 "print the chat template NAME ('default' or a named one) exactly as stored, "
                 "and nothing else");
  CLI11_PARSE(app, argc, argv);

  auto file = qlm::format::ModelFile::open(path);
  if (!file) {
    fmt::print(stderr, "qlm-inspect: {}\n", file.error().message);
    return 1;
  }
  const auto& f = **file;
  if (!template_name.empty()) return print_template(f, template_name);
  if (!trusted.empty()) {
    std::vector<qlm::format::PublicKey> keys;
    for (const auto& k : trusted) {
      auto key = qlm::format::read_public_key(k);
      if (!key) return fmt::print(stderr, "qlm-inspect: {}\n", key.error().message), 1;
      keys.push_back(*key);
    }
    if (auto ok = qlm::format::verify_signature(f.bytes(), keys, f.path()); !ok) {
      return fmt::print(stderr, "qlm-inspect: {}\n", ok.error().message), 1;
    }
  }
  fmt::print("file: {} ({})\nformat version: {}\n\nmetadata ({} keys):\n", f.path(),
             qlm::tools::human_bytes(f.file_size()), f.header().version,
             f.metadata().entries().size());
  for (const auto& [key, value] : f.metadata().entries()) {
    fmt::print("  {:<44} {}\n", key, describe(value));
  }
  const auto templates = chat_templates(f);
  fmt::print("\nchat templates ({}){}\n", templates.size(),
             templates.empty() ? "" : ": print one with --chat-template NAME");
  for (const auto& [name, source] : templates) {
    const std::string first = source.substr(0, std::min(source.find('\n'), std::size_t{60}));
    fmt::print("  {:<16} {:>7} bytes  {}{}\n", name, source.size(), first,
               first.size() < source.size() ? " …" : "");
  }
  fmt::print("\ntensors ({}):\n  {:<48} {:<5} {:<14} {:>12} {:>6}\n", f.tensors().size(), "name",
             "type", "shape", "bytes", "bpw");
  std::uint64_t params = 0, bytes = 0;
  for (const auto& t : f.tensors()) {
    params += t.elements();
    bytes += t.size;
    fmt::print("  {:<48} {:<5} {:<14} {:>12} {:>6.2f}\n", t.name, qlm::to_string(t.dtype),
               fmt::format("{}", fmt::join(t.shape, "x")), t.size,
               8.0 * static_cast<double>(t.size) / static_cast<double>(t.elements()));
  }
  if (const auto sig = qlm::format::find_signature(f.bytes())) {
    fmt::print("\nsigned by key {} ({} bytes covered){}\n",
               qlm::format::key_fingerprint(sig->signer), sig->signed_bytes,
               trusted.empty() ? ", not checked (no --trusted-key)" : ", verified");
  }
  fmt::print("\ntotal: {} parameters, {} of tensor data, {:.3f} bits per weight\n", params,
             qlm::tools::human_bytes(bytes), params ? 8.0 * bytes / params : 0.0);
  if (verify) {
    auto ok = f.verify();
    if (!ok) {
      fmt::print(stderr, "qlm-inspect: {}\n", ok.error().message);
      return 1;
    }
    fmt::print("verify: all {} tensor checksums OK\n", f.tensors().size());
    // Sound bytes are not yet a usable model: the loader checks the config, every tensor's shape
    // against it and the tokenizer tables.
    auto model = qlm::Model::open(path, {.trusted_keys = {trusted.begin(), trusted.end()}});
    if (!model) {
      fmt::print(stderr, "qlm-inspect: the model does not load: {}\n", model.error().message);
      return 1;
    }
    fmt::print("verify: the model loads ({}, {} layers, {} tokens)\n",
               qlm::to_string((*model)->config().arch), (*model)->config().n_layers,
               (*model)->tokenizer().size());
  }
  return 0;
}
