// qlm-sign: Ed25519 signatures for .qlm files (docs/format.md, "Signature"; threat model in
// docs/reliability.md).
//   qlm-sign keygen -o NAME                 writes NAME.key (mode 0600) and NAME.pub
//   qlm-sign sign --key NAME.key FILE       appends (or replaces) the file's signature
//   qlm-sign verify --key NAME.pub FILE     exit 0 if FILE is signed by that key and unchanged
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <qlm/format/model_file.hpp>
#include <qlm/format/signature.hpp>
#include <vector>

namespace {

int fail(const std::string& message) {
  fmt::print(stderr, "qlm-sign: {}\n", message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sign .qlm model files and verify their signatures (Ed25519 over BLAKE2b-512)"};
  app.require_subcommand(1);
  std::string name, key, file;
  auto* keygen = app.add_subcommand("keygen", "make a key pair: NAME.key (secret) and NAME.pub");
  keygen->add_option("-o,--output", name, "key name (path without extension)")->required();
  auto* sign = app.add_subcommand("sign", "append a signature to FILE (replacing one it has)");
  sign->add_option("--key", key, "secret key file (NAME.key)")->required();
  sign->add_option("file", file, ".qlm file")->required();
  auto* verify = app.add_subcommand("verify", "check that FILE is signed by the key, unchanged");
  verify->add_option("--key", key, "public key file (NAME.pub)")->required();
  verify->add_option("file", file, ".qlm file")->required();
  CLI11_PARSE(app, argc, argv);

  if (keygen->parsed()) {
    if (auto r = qlm::format::generate_key_pair(name); !r) return fail(r.error().message);
    fmt::print(stderr, "wrote {0}.key (secret, mode 0600) and {0}.pub\n", name);
    return 0;
  }
  if (sign->parsed()) {
    // Only a file the loader accepts as a .qlm is signed: a signature vouches for a model.
    if (auto f = qlm::format::ModelFile::open(file); !f) return fail(f.error().message);
    auto secret = qlm::format::read_secret_key(key);
    if (!secret) return fail(secret.error().message);
    if (auto r = qlm::format::sign_file(file, *secret); !r) return fail(r.error().message);
    fmt::print(stderr, "signed {}\n", file);
    return 0;
  }
  auto pub = qlm::format::read_public_key(key);
  if (!pub) return fail(pub.error().message);
  auto f = qlm::format::ModelFile::open(file);
  if (!f) return fail(f.error().message);
  const std::vector<qlm::format::PublicKey> trusted{*pub};
  if (auto r = qlm::format::verify_signature((*f)->bytes(), trusted, file); !r) {
    return fail(r.error().message);
  }
  fmt::print("{}: signature OK (key {})\n", file, qlm::format::key_fingerprint(*pub));
  return 0;
}
