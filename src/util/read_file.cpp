// read_regular_file: open without blocking, check the type and size on the open descriptor (no
// race with a rename between the check and the read), then read.
#include "qlm/detail/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/fail.hpp"

namespace qlm::detail {

namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<std::string> read_regular_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                                      std::string_view what) {
  return capture([&] {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    const Fd f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    if (f.fd < 0)
      fail(ErrorCode::Io, "{}: cannot open {}: {}", path.string(), what, strerror(errno));
    struct stat st {};
    if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      fail(ErrorCode::Io, "{}: the {} is not a regular file", path.string(), what);
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > max_bytes) {
      fail(ErrorCode::InvalidArgument, "{}: the {} is {} bytes, more than the {} allowed",
           path.string(), what, size, max_bytes);
    }
    std::string out(size, '\0');
    std::uint64_t done = 0;
    while (done < size) {
      const ssize_t n = ::read(f.fd, out.data() + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        fail(ErrorCode::Io, "{}: cannot read {}: {}", path.string(), what, strerror(errno));
      if (n == 0) break;  // it got shorter: what was read is the file
      done += static_cast<std::uint64_t>(n);
    }
    out.resize(done);
    return out;
  });
}

}  // namespace qlm::detail
