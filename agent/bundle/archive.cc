#include "agent/bundle/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/strings.h"

namespace setdiag::agent::bundle {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) std::abort();
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(std::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }

std::string Sha256::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, md, &len);
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kDigits[md[i] >> 4];
    out += kDigits[md[i] & 15];
  }
  return out;
}

TarGzWriter::TarGzWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

absl::StatusOr<std::unique_ptr<TarGzWriter>> TarGzWriter::Create(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0)
    return absl::UnavailableError(Cat("cannot create ", path, ": ", std::strerror(errno)));
  std::unique_ptr<TarGzWriter> w(new TarGzWriter(fd, path));
  w->a_ = archive_write_new();
  if (w->a_ == nullptr) return absl::ResourceExhaustedError("libarchive: out of memory");
  if (archive_write_add_filter_gzip(w->a_) != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(w->a_) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(w->a_, 1) != ARCHIVE_OK) {
    return w->Error("set up tar.gz");
  }
  if (archive_write_open2(w->a_, w.get(), nullptr, &TarGzWriter::Write, nullptr, nullptr) !=
      ARCHIVE_OK) {
    return w->Error("open");
  }
  return w;
}

TarGzWriter::~TarGzWriter() {
  if (a_) {
    if (!closed_) archive_write_fail(a_);  // do not write a trailer into a broken file
    archive_write_free(a_);
  }
  if (fd_ >= 0) ::close(fd_);
}

ssize_t TarGzWriter::Write(archive*, void* self, const void* buf, size_t n) {
  auto* w = static_cast<TarGzWriter*>(self);
  const char* p = static_cast<const char*>(buf);
  size_t off = 0;
  while (off < n) {
    ssize_t k = ::write(w->fd_, p + off, n - off);
    if (k < 0) {
      if (errno == EINTR) continue;
      w->write_errno_ = errno;
      return -1;
    }
    off += static_cast<size_t>(k);
  }
  w->out_sha_.Update(std::string_view(p, n));
  w->out_bytes_ += n;
  return static_cast<ssize_t>(n);
}

absl::Status TarGzWriter::Error(std::string_view what) {
  std::string detail =
      write_errno_ != 0
          ? std::strerror(write_errno_)
          : (a_ && archive_error_string(a_) ? archive_error_string(a_) : "unknown error");
  std::string msg = Cat("writing ", path_, ": ", what, ": ", detail);
  return write_errno_ == ENOSPC ? absl::ResourceExhaustedError(msg) : absl::UnavailableError(msg);
}

absl::Status TarGzWriter::Header(const std::string& name, uint64_t size, int64_t mtime_s) {
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0640);
  archive_entry_set_size(e, static_cast<la_int64_t>(size));
  archive_entry_set_mtime(e, static_cast<time_t>(mtime_s), 0);
  archive_entry_set_uname(e, "setdiag");
  archive_entry_set_gname(e, "setdiag");
  int rc = archive_write_header(a_, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) return Error(Cat("header of ", name));
  return absl::OkStatus();
}

absl::StatusOr<std::string> TarGzWriter::AddBytes(const std::string& name, std::string_view content,
                                                  int64_t mtime_s) {
  if (auto st = Header(name, content.size(), mtime_s); !st.ok()) return st;
  Sha256 sha;
  while (!content.empty()) {
    size_t n = std::min(content.size(), kChunkBytes);
    if (archive_write_data(a_, content.data(), n) < 0) return Error(Cat("data of ", name));
    sha.Update(content.substr(0, n));
    content.remove_prefix(n);
  }
  if (archive_write_finish_entry(a_) != ARCHIVE_OK) return Error(Cat("end of ", name));
  return sha.HexDigest();
}

absl::StatusOr<std::string> TarGzWriter::AddFile(const std::string& name,
                                                 const std::string& local_path, int64_t mtime_s,
                                                 uint64_t* size) {
  int fd = ::open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  // Problems with our own scratch file concern one entry, not the archive.
  if (fd < 0)
    return absl::FailedPreconditionError(
        Cat("cannot read ", local_path, ": ", std::strerror(errno)));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  off_t end = ::lseek(fd, 0, SEEK_END);
  if (end < 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
    return absl::FailedPreconditionError(
        Cat("cannot read ", local_path, ": ", std::strerror(errno)));
  }
  const uint64_t total = static_cast<uint64_t>(end);
  if (auto st = Header(name, total, mtime_s); !st.ok()) return st;
  Sha256 sha;
  std::vector<char> buf(kChunkBytes);
  uint64_t done = 0;
  while (done < total) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), total - done));
    ssize_t n = ::read(fd, buf.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // Our own scratch file shrank: keep the archive well formed (libarchive
      // pads the entry), but say so.
      std::string why = n < 0 ? std::strerror(errno) : "file shrank while archiving";
      return absl::DataLossError(Cat("reading ", local_path, ": ", why));
    }
    if (archive_write_data(a_, buf.data(), static_cast<size_t>(n)) < 0)
      return Error(Cat("data of ", name));
    sha.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  if (archive_write_finish_entry(a_) != ARCHIVE_OK) return Error(Cat("end of ", name));
  *size = total;
  return sha.HexDigest();
}

absl::Status TarGzWriter::Close() {
  if (closed_) return absl::OkStatus();
  if (archive_write_close(a_) != ARCHIVE_OK) return Error("close");
  closed_ = true;
  if (::fsync(fd_) != 0) {
    write_errno_ = errno;
    return Error("fsync");
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    write_errno_ = errno;
    return Error("close");
  }
  fd_ = -1;
  out_sha_hex_ = out_sha_.HexDigest();
  return absl::OkStatus();
}

}  // namespace setdiag::agent::bundle
