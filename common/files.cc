#include "common/files.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/digest.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot read", path);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "cannot read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

namespace {

// The folder holding `path`, to be synced after a rename into it.
std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open the directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot sync a directory (EINVAL): the rename is then
  // as durable as they make it.
  if (rc != 0 && err != EINVAL) return ErrnoStatus(err, "cannot sync the directory", dir);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& content, int mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus(errno, "cannot write", tmp);
  auto fail = [&](int err, std::string_view what, const std::string& which) {
    ::unlink(tmp.c_str());  // no half-written file left behind
    return ErrnoStatus(err, what, which);
  };
  size_t off = 0;
  while (off < content.size()) {
    const ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(err, "cannot write", tmp);
    }
    off += static_cast<size_t>(n);
  }
  // The content reaches the disk before the name does: a crash leaves the
  // old file or the new one, never an empty one.
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(err, "cannot sync", tmp);
  }
  if (::close(fd) != 0) return fail(errno, "cannot write", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail(errno, Cat("cannot rename ", tmp, " to"), path);
  return SyncDirectory(DirectoryOf(path));
}

std::string RandomHex(size_t bytes) {
  std::string buf(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(buf.data()), static_cast<int>(bytes)) != 1) {
    std::abort();  // no entropy: never hand out a guessable token
  }
  return Hex(buf);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return Hex(std::string_view(reinterpret_cast<const char*>(md), sizeof md));
}

}  // namespace setdiag
