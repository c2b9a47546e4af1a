// Logits files (docs/perplexity.md): a 40-byte header, the model fingerprint strings, then one
// record per window (tokens, fp32 logits, XXH3-64 of both). The writer appends records through an
// AtomicFile and writes the header last; the reader checks the header against the file size before
// it allocates anything and verifies each record's checksum as it reads it.
#include "qlm/eval/logits_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "model_access.hpp"
#include "util/atomic_file.hpp"
#include "util/byte_io.hpp"
#include "util/fail.hpp"

namespace qlm {

using detail::fail;

namespace {

constexpr std::array<char, 8> kMagic = {'Q', 'L', 'M', 'L', 'O', 'G', 'I', 'T'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint64_t kHeaderSize = 40;

// Bytes of one window record: tokens, logits, checksum.
std::uint64_t record_size(const LogitsFileInfo& info) {
  return 4ull * info.window + 4ull * info.rows * info.vocab + 8;
}

std::uint64_t records_offset(const LogitsFileInfo& info) {
  return kHeaderSize + info.model.source_name.size() + info.model.shape.size();
}

// The layout rules both the writer and the reader enforce; errors name `file` and have `code`.
void check_layout(const LogitsFileInfo& info, const std::string& file, ErrorCode code) {
  if (info.window < 3 || info.window > kMaxLogitsWindow) {
    fail(code, "{}: window of {} tokens is out of range [3, {}]", file, info.window,
         kMaxLogitsWindow);
  }
  if (info.first == 0 || info.first > info.window - 2) {
    fail(code, "{}: first scored row {} is out of range [1, {}] for a window of {}", file,
         info.first, info.window - 2, info.window);
  }
  if (info.rows != info.window - 1 - info.first) {
    fail(code, "{}: {} logits rows per window, but a window of {} from row {} has {}", file,
         info.rows, info.window, info.first, info.window - 1 - info.first);
  }
  if (info.vocab == 0 || info.vocab > kMaxLogitsVocab) {
    fail(code, "{}: vocabulary of {} logits is out of range [1, {}]", file, info.vocab,
         kMaxLogitsVocab);
  }
  if (info.model.source_name.size() > kMaxFingerprintLength ||
      info.model.shape.size() > kMaxFingerprintLength) {
    fail(code, "{}: model fingerprint strings of {} and {} bytes (at most {})", file,
         info.model.source_name.size(), info.model.shape.size(), kMaxFingerprintLength);
  }
}

// XXH3-64 over a window record's token bytes followed by its logits bytes.
std::uint64_t record_checksum(std::span<const std::int32_t> tokens, std::span<const float> logits) {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, tokens.data(), tokens.size_bytes());
  XXH3_64bits_update(state, logits.data(), logits.size_bytes());
  const std::uint64_t sum = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return sum;
}

std::span<const std::uint8_t> as_bytes_u8(const void* p, std::size_t n) {
  return {static_cast<const std::uint8_t*>(p), n};
}

}  // namespace

std::string model_shape(const ModelConfig& c) {
  return fmt::format(
      "{} vocab={} hidden={} intermediate={} layers={} heads={} kv_heads={} "
      "head_dim={}",
      to_string(c.arch), c.vocab_size, c.hidden_size, c.intermediate_size, c.n_layers, c.n_heads,
      c.n_kv_heads, c.head_dim);
}

ModelFingerprint model_fingerprint(const Model& model) {
  const std::string* name =
      detail::model_file(model).metadata().find<std::string>("qlm.source.name");
  return {name != nullptr ? *name : std::string(), model_shape(model.config())};
}

// --- writer ------------------------------------------------------------------------------------

struct LogitsWriter::Impl {
  std::string path;
  LogitsFileInfo info;
  detail::AtomicFile file;
  std::uint64_t offset = 0;
  bool committed = false;

  Impl(const std::filesystem::path& p, LogitsFileInfo i)
      : path(p.string()), info(std::move(i)), file(p), offset(records_offset(info)) {}
};

Result<LogitsWriter> LogitsWriter::create(const std::filesystem::path& path, LogitsFileInfo info) {
  return detail::capture([&] {
    info.windows = 0;
    check_layout(info, path.string(), ErrorCode::InvalidArgument);
    return LogitsWriter(std::make_unique<Impl>(path, std::move(info)));
  });
}

LogitsWriter::LogitsWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LogitsWriter::LogitsWriter(LogitsWriter&&) noexcept = default;
LogitsWriter& LogitsWriter::operator=(LogitsWriter&&) noexcept = default;
LogitsWriter::~LogitsWriter() = default;

std::uint32_t LogitsWriter::windows_written() const {
  return impl_->info.windows;
}

Result<void> LogitsWriter::write_window(std::span<const std::int32_t> tokens,
                                        std::span<const float> logits) {
  return detail::capture([&] {
    Impl& w = *impl_;
    const LogitsFileInfo& i = w.info;
    if (w.committed) fail(ErrorCode::InvalidArgument, "{}: already committed", w.path);
    if (tokens.size() != i.window || logits.size() != std::size_t{i.rows} * i.vocab) {
      fail(ErrorCode::InvalidArgument,
           "{}: window of {} tokens and {} logits, expected {} tokens and {} x {} logits", w.path,
           tokens.size(), logits.size(), i.window, i.rows, i.vocab);
    }
    if (i.windows == UINT32_MAX) fail(ErrorCode::InvalidArgument, "{}: too many windows", w.path);
    const std::uint64_t sum = record_checksum(tokens, logits);
    w.file.write_at(as_bytes_u8(tokens.data(), tokens.size_bytes()), w.offset);
    w.offset += tokens.size_bytes();
    w.file.write_at(as_bytes_u8(logits.data(), logits.size_bytes()), w.offset);
    w.offset += logits.size_bytes();
    w.file.write_at(as_bytes_u8(&sum, sizeof sum), w.offset);
    w.offset += sizeof sum;
    ++w.info.windows;
  });
}

Result<void> LogitsWriter::commit() {
  return detail::capture([&] {
    Impl& w = *impl_;
    if (w.committed) fail(ErrorCode::InvalidArgument, "{}: already committed", w.path);
    if (w.info.windows == 0) fail(ErrorCode::InvalidArgument, "{}: no windows written", w.path);
    const LogitsFileInfo& i = w.info;
    detail::ByteWriter h;
    h.put_bytes(std::string_view(kMagic.data(), kMagic.size()));
    h.put<std::uint32_t>(kVersion);
    h.put<std::uint32_t>(i.window);
    h.put<std::uint32_t>(i.first);
    h.put<std::uint32_t>(i.rows);
    h.put<std::uint32_t>(i.vocab);
    h.put<std::uint32_t>(i.windows);
    h.put<std::uint32_t>(static_cast<std::uint32_t>(i.model.source_name.size()));
    h.put<std::uint32_t>(static_cast<std::uint32_t>(i.model.shape.size()));
    h.put_bytes(i.model.source_name);
    h.put_bytes(i.model.shape);
    w.file.write_at(h.bytes(), 0);
    w.file.commit(w.offset);
    w.committed = true;
  });
}

// --- reader ------------------------------------------------------------------------------------

struct LogitsReader::Impl {
  std::string path;
  int fd = -1;
  std::uint64_t size = 0;
  LogitsFileInfo info;
  std::vector<std::int32_t> tokens;
  std::vector<float> logits;

  ~Impl() {
    if (fd >= 0) ::close(fd);
  }

  // Reads exactly `n` bytes at `offset`, or fails naming the file.
  void read_exact(void* out, std::uint64_t n, std::uint64_t offset, std::string_view what) const {
    auto* p = static_cast<std::uint8_t*>(out);
    std::uint64_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        fail(ErrorCode::Io, "{}: read of {} failed at offset {}: {}", path, what, offset + done,
             std::strerror(errno));
      }
      if (r == 0) {
        fail(ErrorCode::Format, "{}: {} is truncated at offset {} (the file shrank?)", path, what,
             offset + done);
      }
      done += static_cast<std::uint64_t>(r);
    }
  }
};

Result<LogitsReader> LogitsReader::open(const std::filesystem::path& path) {
  return detail::capture([&] {
    auto impl = std::make_unique<Impl>();
    Impl& r = *impl;
    r.path = path.string();
    r.fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO must not block
    if (r.fd < 0) fail(ErrorCode::Io, "{}: cannot open: {}", r.path, std::strerror(errno));
    struct stat st {};
    if (::fstat(r.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      fail(ErrorCode::Io, "{}: not a regular file", r.path);
    }
    r.size = static_cast<std::uint64_t>(st.st_size);
    if (r.size < kHeaderSize) {
      fail(ErrorCode::Format,
           "{}: not a qlm logits file ({} bytes, shorter than the {}-byte header)", r.path, r.size,
           kHeaderSize);
    }
    std::array<std::uint8_t, kHeaderSize> raw{};
    r.read_exact(raw.data(), raw.size(), 0, "the header");
    detail::ByteReader h(raw, r.path, "the header");
    if (std::memcmp(h.take(kMagic.size()).data(), kMagic.data(), kMagic.size()) != 0) {
      fail(ErrorCode::Format, "{}: not a qlm logits file (bad magic)", r.path);
    }
    const auto version = h.get<std::uint32_t>();
    if (version != kVersion) {
      fail(version > kVersion ? ErrorCode::Unsupported : ErrorCode::Format,
           "{}: logits file version {} (this reader understands {})", r.path, version, kVersion);
    }
    LogitsFileInfo& i = r.info;
    i.window = h.get<std::uint32_t>();
    i.first = h.get<std::uint32_t>();
    i.rows = h.get<std::uint32_t>();
    i.vocab = h.get<std::uint32_t>();
    i.windows = h.get<std::uint32_t>();
    const auto name_length = h.get<std::uint32_t>();
    const auto shape_length = h.get<std::uint32_t>();
    if (name_length > kMaxFingerprintLength || shape_length > kMaxFingerprintLength) {
      fail(ErrorCode::Format, "{}: model fingerprint strings of {} and {} bytes (at most {})",
           r.path, name_length, shape_length, kMaxFingerprintLength);
    }
    check_layout(i, r.path, ErrorCode::Format);
    if (i.windows == 0) fail(ErrorCode::Format, "{}: holds no windows", r.path);
    const std::uint64_t strings = std::uint64_t{name_length} + shape_length;
    if (r.size < kHeaderSize + strings) {
      fail(ErrorCode::Format, "{}: truncated: {} bytes, the header and fingerprint need {}", r.path,
           r.size, kHeaderSize + strings);
    }
    i.model.source_name.resize(name_length);
    i.model.shape.resize(shape_length);
    r.read_exact(i.model.source_name.data(), name_length, kHeaderSize, "the model fingerprint");
    r.read_exact(i.model.shape.data(), shape_length, kHeaderSize + name_length,
                 "the model fingerprint");
    // Sizes from the header are at most 2^24, so one record is < 2^51 bytes; compare the window
    // count by division so that no product can overflow.
    const std::uint64_t record = record_size(i);
    const std::uint64_t body = r.size - kHeaderSize - strings;
    const std::uint64_t whole = body / record;
    if (whole < i.windows) {
      fail(ErrorCode::Format,
           "{}: truncated: {} bytes of window records hold {} whole windows of {} bytes, the "
           "header says {}",
           r.path, body, whole, record, i.windows);
    }
    if (body != i.windows * record) {
      fail(ErrorCode::Format, "{}: {} unexpected trailing bytes after {} windows", r.path,
           body - i.windows * record, i.windows);
    }
    return LogitsReader(std::move(impl));
  });
}

LogitsReader::LogitsReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LogitsReader::LogitsReader(LogitsReader&&) noexcept = default;
LogitsReader& LogitsReader::operator=(LogitsReader&&) noexcept = default;
LogitsReader::~LogitsReader() = default;

const LogitsFileInfo& LogitsReader::info() const {
  return impl_->info;
}

const std::string& LogitsReader::path() const {
  return impl_->path;
}

Result<LogitsReader::Window> LogitsReader::read_window(std::uint32_t index) {
  return detail::capture([&]() -> Window {
    Impl& r = *impl_;
    const LogitsFileInfo& i = r.info;
    if (index >= i.windows) {
      fail(ErrorCode::InvalidArgument, "{}: window {} requested, the file holds {}", r.path, index,
           i.windows);
    }
    r.tokens.resize(i.window);
    r.logits.resize(std::size_t{i.rows} * i.vocab);
    std::uint64_t offset = records_offset(i) + index * record_size(i);
    const std::string what = fmt::format("window {}", index);
    r.read_exact(r.tokens.data(), r.tokens.size() * 4, offset, what);
    offset += r.tokens.size() * 4;
    r.read_exact(r.logits.data(), r.logits.size() * 4, offset, what);
    offset += r.logits.size() * 4;
    std::uint64_t stored = 0;
    r.read_exact(&stored, sizeof stored, offset, what);
    if (stored != record_checksum(r.tokens, r.logits)) {
      fail(ErrorCode::Checksum, "{}: window {} fails its checksum (file corrupted)", r.path, index);
    }
    return Window{r.tokens, r.logits};
  });
}

}  // namespace qlm
