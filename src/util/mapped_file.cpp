// MappedFile: open + fstat + mmap, with errors that name the file.
#include "util/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "util/fail.hpp"

namespace qlm::detail {

namespace {

constexpr std::uint64_t kHugePage = 2u << 20;

// Reads all of fd into `out`; false (errno set, or 0 when the file got shorter) on failure.
bool read_all(int fd, std::uint8_t* out, std::uint64_t size) {
  std::uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out + done, std::min<std::uint64_t>(size - done, 1u << 30),
                              static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = 0;
      return false;
    }
    done += static_cast<std::uint64_t>(n);
  }
  return true;
}

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path, MapMode mode) : path_(path.string()) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer (fstat then refuses it).
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(ErrorCode::Io, "{}: cannot open: {}", path_, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::Io, "{}: not a regular file", path_);
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  if (size_ == 0) {  // mmap rejects empty files; an empty span is the honest view
    ::close(fd);
    return;
  }
  if (mode != MapMode::Copy) {
    void* p = ::mmap(nullptr, size_, PROT_READ,
                     MAP_PRIVATE | (mode == MapMode::Populate ? MAP_POPULATE : 0), fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) fail(ErrorCode::Io, "{}: cannot map: {}", path_, std::strerror(err));
    data_ = static_cast<const std::uint8_t*>(p);
    region_ = p;
    region_size_ = size_;
    return;
  }
  // Whole 2 MiB pages from a 2 MiB boundary, so that the kernel can back all of it with huge
  // pages (fewer TLB misses while decode streams the weights).
  region_size_ = (size_ + kHugePage - 1) / kHugePage * kHugePage + kHugePage;
  void* p =
      ::mmap(nullptr, region_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    fail(ErrorCode::Io, "{}: cannot allocate {} bytes to read it into: {}", path_, size_,
         std::strerror(err));
  }
  region_ = p;
  auto* base = reinterpret_cast<std::uint8_t*>(
      (reinterpret_cast<std::uintptr_t>(p) + kHugePage - 1) & ~std::uintptr_t{kHugePage - 1});
#ifdef MADV_HUGEPAGE
  ::madvise(base, region_size_ - kHugePage, MADV_HUGEPAGE);  // advice only; failure is harmless
#endif
  const bool ok = read_all(fd, base, size_);
  const int err = errno;
  ::close(fd);
  if (!ok) {
    release();
    fail(ErrorCode::Io, "{}: cannot read: {}", path_,
         err != 0 ? std::strerror(err) : "the file got shorter while being read");
  }
  ::mprotect(base, region_size_ - kHugePage, PROT_READ);  // the weights are read-only hereafter
  data_ = base;
}

void MappedFile::release() noexcept {
  if (region_ != nullptr) ::munmap(region_, region_size_);
  region_ = nullptr;
  data_ = nullptr;
}

MappedFile::~MappedFile() {
  release();
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      region_(std::exchange(o.region_, nullptr)),
      region_size_(std::exchange(o.region_size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    region_ = std::exchange(o.region_, nullptr);
    region_size_ = std::exchange(o.region_size_, 0);
  }
  return *this;
}

}  // namespace qlm::detail
