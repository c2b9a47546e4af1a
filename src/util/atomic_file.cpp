// AtomicFile: O_TMPFILE when the file system supports it, else a named temporary removed on
// failure.
#include "util/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/fail.hpp"

namespace qlm::detail {

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  std::filesystem::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    temp_ = target_;
    temp_ += ".tmp" + std::to_string(::getpid());
    fd_ = ::open(temp_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
  }
  if (fd_ < 0) {
    fail(ErrorCode::Io, "{}: cannot create output file: {}", target_.string(),
         std::strerror(errno));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

void AtomicFile::write_at(std::span<const std::uint8_t> bytes, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fail(ErrorCode::Io, "{}: write failed at offset {}: {}", target_.string(), offset + done,
           std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit(std::uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0 || ::fsync(fd_) != 0) {
    fail(ErrorCode::Io, "{}: cannot flush output: {}", target_.string(), std::strerror(errno));
  }
  if (temp_.empty()) {  // give the unnamed file a temporary name, then rename it into place
    temp_ = target_;
    temp_ += ".tmp" + std::to_string(::getpid());
    ::unlink(temp_.c_str());
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, temp_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      const int err = errno;
      temp_.clear();
      fail(ErrorCode::Io, "{}: cannot link output: {}", target_.string(), std::strerror(err));
    }
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    fail(ErrorCode::Io, "{}: cannot rename output into place: {}", target_.string(),
         std::strerror(errno));
  }
  committed_ = true;
}

}  // namespace qlm::detail
