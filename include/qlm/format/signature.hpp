// Signed model files: an Ed25519 signature (libsodium) over a BLAKE2b-512 digest of every byte
// before it, appended to a .qlm file as a 112-byte trailer (docs/format.md, "Signature"). Readers
// that do not know signatures ignore the trailer.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include "qlm/error.hpp"

namespace qlm::format {

using PublicKey = std::array<std::uint8_t, 32>;
using SecretKey = std::array<std::uint8_t, 64>;

inline constexpr std::size_t kSignatureTrailerBytes = 112;

/// Makes a new key pair and writes `name`.key (mode 0600) and `name`.pub; refuses to overwrite.
Result<void> generate_key_pair(const std::filesystem::path& name);

/// Reads a key file written by generate_key_pair (errors name the file).
Result<PublicKey> read_public_key(const std::filesystem::path& path);
Result<SecretKey> read_secret_key(const std::filesystem::path& path);

/// Short hex fingerprint of a public key (its first 8 bytes), for messages.
std::string key_fingerprint(const PublicKey& key);

/// Signs `file`: appends the trailer, or replaces an existing one. If writing fails the file is
/// cut back to the bytes it signs (unsigned), never left with a partial trailer.
Result<void> sign_file(const std::filesystem::path& file, const SecretKey& key);

/// The trailer of a signed file's bytes, or nullopt when the bytes carry none.
struct SignatureInfo {
  PublicKey signer{};              ///< the key the trailer says signed it (checked by verify)
  std::uint64_t signed_bytes = 0;  ///< bytes covered: everything before the trailer
};
std::optional<SignatureInfo> find_signature(std::span<const std::uint8_t> bytes);

/// Checks that `bytes` (a whole file, named `file` in errors) carry a valid signature by one of
/// `trusted`: an error if unsigned, tampered with, or signed by another key.
Result<void> verify_signature(std::span<const std::uint8_t> bytes,
                              std::span<const PublicKey> trusted, std::string_view file);

}  // namespace qlm::format
