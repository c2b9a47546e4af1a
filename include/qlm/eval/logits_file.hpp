// Logits files: the fp32 logits a perplexity run scored, with the tokens, window layout and a
// fingerprint of the model, so that a later run (another quantization of the same checkpoint) can
// be compared with them. Written atomically and read window by window; the byte layout is in
// docs/perplexity.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "qlm/config.hpp"
#include "qlm/error.hpp"
#include "qlm/model.hpp"

namespace qlm {

/// What identifies the model that produced logits: the checkpoint it was converted from and its
/// architecture and sizes. Different weight types of one checkpoint share a fingerprint.
struct ModelFingerprint {
  std::string source_name;  ///< metadata "qlm.source.name" ("" when absent)
  std::string shape;        ///< model_shape() of the config
  friend bool operator==(const ModelFingerprint&, const ModelFingerprint&) = default;
};

/// "llama vocab=512 hidden=64 intermediate=172 layers=5 heads=8 kv_heads=4 head_dim=8".
std::string model_shape(const ModelConfig& config);

/// The fingerprint of an opened model.
ModelFingerprint model_fingerprint(const Model& model);

/// Everything a logits file records besides the tokens and logits.
struct LogitsFileInfo {
  std::uint32_t window = 0;   ///< tokens per window
  std::uint32_t first = 0;    ///< first logits row saved per window
  std::uint32_t rows = 0;     ///< logits rows per window: window - 1 - first
  std::uint32_t vocab = 0;    ///< logits per row
  std::uint32_t windows = 0;  ///< window records (set by the writer when it commits)
  ModelFingerprint model;
};

/// Largest window and vocabulary a logits file may record, and longest fingerprint string.
inline constexpr std::uint32_t kMaxLogitsWindow = 1u << 24;
inline constexpr std::uint32_t kMaxLogitsVocab = 1u << 24;
inline constexpr std::uint32_t kMaxFingerprintLength = 4096;

/// Writes a logits file window by window. Nothing appears at the path until commit() succeeds;
/// a writer destroyed before that leaves no file behind.
class LogitsWriter {
 public:
  /// Starts `path` for windows of the given layout (`info.windows` is ignored). InvalidArgument
  /// on an inconsistent layout, Io when the file cannot be created.
  static Result<LogitsWriter> create(const std::filesystem::path& path, LogitsFileInfo info);
  LogitsWriter(LogitsWriter&&) noexcept;
  LogitsWriter& operator=(LogitsWriter&&) noexcept;
  ~LogitsWriter();

  /// Appends one window: its `window` input tokens and its `rows` x `vocab` logits.
  Result<void> write_window(std::span<const std::int32_t> tokens, std::span<const float> logits);
  /// Writes the header (with the number of windows written, at least one), flushes and renames
  /// the file into place.
  Result<void> commit();

  std::uint32_t windows_written() const;
  struct Impl;

 private:
  explicit LogitsWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Reads a logits file window by window. open() checks the header and that the file size is
/// exactly what it implies (so a truncated file is refused before anything large is allocated);
/// read_window() checks each window's checksum.
class LogitsReader {
 public:
  /// Opens and validates `path`; errors (Io, Format, Unsupported) name the file.
  static Result<LogitsReader> open(const std::filesystem::path& path);
  LogitsReader(LogitsReader&&) noexcept;
  LogitsReader& operator=(LogitsReader&&) noexcept;
  ~LogitsReader();

  const LogitsFileInfo& info() const;
  /// The path as given to open().
  const std::string& path() const;

  /// One window record: views into the reader's buffers, valid until the next read_window().
  struct Window {
    std::span<const std::int32_t> tokens;  ///< info().window ids
    std::span<const float> logits;         ///< info().rows x info().vocab
  };
  /// Reads window `index` (< info().windows); Format error naming the file on a checksum mismatch
  /// or a short read.
  Result<Window> read_window(std::uint32_t index);

  struct Impl;

 private:
  explicit LogitsReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qlm
