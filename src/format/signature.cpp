// Ed25519 over BLAKE2b-512 (libsodium). Trailer layout, at the very end of the file:
//   [0, 64)    Ed25519 signature of the 64-byte BLAKE2b digest of bytes [0, signed_bytes)
//   [64, 96)   the signer's public key (names the key; trust comes from the caller's list)
//   [96, 104)  signed_bytes, u64 little-endian (= the file's length before the trailer)
//   [104, 112) magic "QLMSIG01"
#include "qlm/format/signature.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "qlm/detail/read_file.hpp"
#include "util/fail.hpp"
#include "util/mapped_file.hpp"

namespace qlm::format {

using detail::fail;

namespace {

constexpr std::string_view kMagic = "QLMSIG01";
constexpr std::string_view kPublicHeader = "qlm-ed25519-public-key";
constexpr std::string_view kSecretHeader = "qlm-ed25519-secret-key";

void init_sodium() {
  if (sodium_init() < 0) fail(ErrorCode::Unsupported, "libsodium could not be initialized");
}

std::string to_hex(std::span<const std::uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (const std::uint8_t x : b) {
    s += kDigits[x >> 4];
    s += kDigits[x & 15];
  }
  return s;
}

// A key file: its header line, then the key in hex on the second line.
template <std::size_t N>
std::array<std::uint8_t, N> read_key(const std::filesystem::path& path, std::string_view header) {
  const std::string text = detail::unwrap(detail::read_regular_file(path, 4096, "key file"));
  const std::size_t nl = text.find('\n');
  std::string hex = nl == std::string::npos ? "" : text.substr(nl + 1);
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r')) hex.pop_back();
  std::array<std::uint8_t, N> key{};
  std::size_t len = 0;
  if (text.substr(0, nl) != header || hex.size() != 2 * N ||
      sodium_hex2bin(key.data(), N, hex.data(), hex.size(), nullptr, &len, nullptr) != 0 ||
      len != N) {
    fail(ErrorCode::Format, "{}: not a {} file", path.string(), header);
  }
  return key;
}

void write_key(const std::filesystem::path& path, std::string_view header,
               std::span<const std::uint8_t> key, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) fail(ErrorCode::Io, "{}: cannot create: {}", path.string(), std::strerror(errno));
  const std::string text = std::string(header) + "\n" + to_hex(key) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    std::filesystem::remove(path);
    fail(ErrorCode::Io, "{}: cannot write the key", path.string());
  }
}

std::array<std::uint8_t, 64> digest(std::span<const std::uint8_t> bytes) {
  std::array<std::uint8_t, 64> d{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, d.size());
  constexpr std::size_t kStep = std::size_t{1} << 24;  // the API takes chunks; any size works
  for (std::size_t at = 0; at < bytes.size(); at += kStep) {
    crypto_generichash_update(&st, bytes.data() + at, std::min(kStep, bytes.size() - at));
  }
  crypto_generichash_final(&st, d.data(), d.size());
  return d;
}

}  // namespace

Result<void> generate_key_pair(const std::filesystem::path& name) {
  return detail::capture([&] {
    init_sodium();
    PublicKey pk{};
    SecretKey sk{};
    crypto_sign_keypair(pk.data(), sk.data());
    const std::filesystem::path key = name.string() + ".key", pub = name.string() + ".pub";
    if (std::filesystem::exists(key) || std::filesystem::exists(pub)) {
      fail(ErrorCode::InvalidArgument, "{}: a key of this name exists; not overwritten",
           name.string());
    }
    write_key(key, kSecretHeader, sk, 0600);
    sodium_memzero(sk.data(), sk.size());
    write_key(pub, kPublicHeader, pk, 0644);
  });
}

Result<PublicKey> read_public_key(const std::filesystem::path& path) {
  return detail::capture([&] { return read_key<32>(path, kPublicHeader); });
}

Result<SecretKey> read_secret_key(const std::filesystem::path& path) {
  return detail::capture([&] { return read_key<64>(path, kSecretHeader); });
}

std::string key_fingerprint(const PublicKey& key) {
  return to_hex(std::span(key).first(8));
}

std::optional<SignatureInfo> find_signature(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < kSignatureTrailerBytes) return std::nullopt;
  const auto t = bytes.last(kSignatureTrailerBytes);
  if (std::memcmp(t.data() + 104, kMagic.data(), kMagic.size()) != 0) return std::nullopt;
  SignatureInfo info;
  std::memcpy(info.signer.data(), t.data() + 64, 32);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | t[96 + static_cast<std::size_t>(i)];
  info.signed_bytes = n;
  return info;
}

Result<void> verify_signature(std::span<const std::uint8_t> bytes,
                              std::span<const PublicKey> trusted, std::string_view file) {
  return detail::capture([&] {
    init_sodium();
    const auto info = find_signature(bytes);
    if (!info) fail(ErrorCode::Checksum, "{}: not signed (trusted keys were given)", file);
    if (info->signed_bytes != bytes.size() - kSignatureTrailerBytes) {
      fail(ErrorCode::Checksum, "{}: the signature covers {} bytes, the file has {} before it",
           file, info->signed_bytes, bytes.size() - kSignatureTrailerBytes);
    }
    if (std::none_of(trusted.begin(), trusted.end(),
                     [&](const PublicKey& k) { return k == info->signer; })) {
      fail(ErrorCode::Checksum, "{}: signed by key {}, which is not a trusted key", file,
           key_fingerprint(info->signer));
    }
    const auto d = digest(bytes.first(info->signed_bytes));
    const std::uint8_t* sig = bytes.data() + bytes.size() - kSignatureTrailerBytes;
    if (crypto_sign_verify_detached(sig, d.data(), d.size(), info->signer.data()) != 0) {
      fail(ErrorCode::Checksum,
           "{}: the signature does not verify: the file was changed after it was signed", file);
    }
  });
}

Result<void> sign_file(const std::filesystem::path& file, const SecretKey& key) {
  return detail::capture([&] {
    init_sodium();
    std::uint64_t length = 0;
    std::array<std::uint8_t, kSignatureTrailerBytes> trailer{};
    {
      const detail::MappedFile mapped(file);
      std::span<const std::uint8_t> bytes = mapped.bytes();
      if (find_signature(bytes)) bytes = bytes.first(bytes.size() - kSignatureTrailerBytes);
      length = bytes.size();
      const auto d = digest(bytes);
      crypto_sign_detached(trailer.data(), nullptr, d.data(), d.size(), key.data());
      crypto_sign_ed25519_sk_to_pk(trailer.data() + 64, key.data());
      for (int i = 0; i < 8; ++i)
        trailer[96 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(length >> (8 * i));
      std::memcpy(trailer.data() + 104, kMagic.data(), kMagic.size());
    }
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      fail(ErrorCode::Io, "{}: cannot open for writing: {}", file.string(), std::strerror(errno));
    }
    // Written right after the signed bytes (over an old trailer, if any), then made durable; if
    // that fails, the file is cut back to the signed bytes: never a half-written trailer.
    const bool ok = ::pwrite(fd, trailer.data(), trailer.size(), static_cast<off_t>(length)) ==
                        static_cast<ssize_t>(trailer.size()) &&
                    ::fsync(fd) == 0;
    const int err = errno;
    if (!ok && ::ftruncate(fd, static_cast<off_t>(length)) != 0) {
      // Nothing more to do: the error below names the file.
    }
    ::close(fd);
    if (!ok) {
      fail(ErrorCode::Io, "{}: cannot write the signature: {}", file.string(), std::strerror(err));
    }
  });
}

}  // namespace qlm::format
