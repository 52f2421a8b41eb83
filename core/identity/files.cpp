// Reading and atomically writing the small key and JWKS files of caller identity.
// Must not depend on protocols; plain POSIX file I/O, only at start-up or from the CLI.
#include "core/identity/files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gh::identity {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now so that a failing close(2) (deferred write errors on some filesystems) is seen.
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

}  // namespace

gh::Result<std::string> read_file(const std::filesystem::path& path, size_t bytes_max) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    return gh::fail(fmt::format("{}: cannot open: {}", path.string(), errno_text(errno)));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return gh::fail(fmt::format("{}: cannot stat: {}", path.string(), errno_text(errno)));
  }
  if (!S_ISREG(st.st_mode)) return gh::fail(fmt::format("{}: not a regular file", path.string()));
  if (static_cast<size_t>(st.st_size) > bytes_max) {
    return gh::fail(
        fmt::format("{}: {} bytes, over the limit of {}", path.string(), st.st_size, bytes_max));
  }
  std::string out;
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return gh::fail(fmt::format("{}: read failed: {}", path.string(), errno_text(errno)));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
    if (out.size() > bytes_max) {
      return gh::fail(fmt::format("{}: over the limit of {} bytes", path.string(), bytes_max));
    }
  }
  return out;
}

gh::Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view bytes,
                                   mode_t mode, bool replace) {
  const std::string target = path.string();
  if (!replace && ::access(target.c_str(), F_OK) == 0) {
    return gh::fail(fmt::format("{}: already exists; refusing to overwrite it", target));
  }
  const std::string temp = fmt::format("{}.tmp.{}", target, ::getpid());
  Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (fd.get() < 0) return gh::fail(fmt::format("{}: cannot create: {}", temp, errno_text(errno)));
  auto abandon = [&](std::string reason) {
    ::unlink(temp.c_str());
    return gh::fail(std::move(reason));
  };
  // The umask may have removed bits we asked for; it can never have added any.
  if (::fchmod(fd.get(), mode) != 0) {
    return abandon(fmt::format("{}: cannot chmod: {}", temp, errno_text(errno)));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return abandon(fmt::format("{}: write failed: {}", temp, errno_text(errno)));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    return abandon(fmt::format("{}: fsync failed: {}", temp, errno_text(errno)));
  }
  if (fd.close() != 0) return abandon(fmt::format("{}: close failed: {}", temp, errno_text(errno)));
  if (replace) {
    if (::rename(temp.c_str(), target.c_str()) != 0) {
      return abandon(fmt::format("{}: cannot move into place: {}", target, errno_text(errno)));
    }
  } else {
    // link(2) fails with EEXIST instead of replacing, closing the race left by access() above.
    if (::link(temp.c_str(), target.c_str()) != 0) {
      const int err = errno;
      return abandon(err == EEXIST
                         ? fmt::format("{}: already exists; refusing to overwrite it", target)
                         : fmt::format("{}: cannot create: {}", target, errno_text(err)));
    }
    ::unlink(temp.c_str());
  }
  // The new directory entry is only durable once the directory itself is synced.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() >= 0) ::fsync(dir_fd.get());
  return {};
}

}  // namespace gh::identity
