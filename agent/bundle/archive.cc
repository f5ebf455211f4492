#include "agent/bundle/archive.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "common/utf8.h"

namespace setdiag::agent::bundle {

namespace {

constexpr size_t kBlock = 512;
constexpr uint64_t kRecord = 10240;       // 20 blocks, as tar pads the end
constexpr int kGzipLevel = 6;             // Z_DEFAULT_COMPRESSION, libarchive's default
constexpr int kGzipWindowBits = 15 + 16;  // 32 KiB window, gzip wrapper
constexpr int kGzipMemLevel = 8;
constexpr char kOwner[] = "root";
constexpr uint32_t kFileMode = 0640;

// ustar header field offsets and widths (POSIX.1-1988 + ustar).
struct Field {
  size_t off;
  size_t len;
};
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12},
    kMtime{136, 12}, kChksum{148, 8}, kType{156, 1}, kMagic{257, 6}, kVersion{263, 2},
    kUname{265, 32}, kGname{297, 32}, kDevMajor{329, 8}, kDevMinor{337, 8}, kPrefix{345, 155};

using Block = std::array<char, kBlock>;

void PutString(Block& b, Field f, std::string_view s) {
  if (!s.empty()) std::memcpy(b.data() + f.off, s.data(), std::min(s.size(), f.len));
}

// `digits` octal digits, zero-filled, then `tail` (" " or " \0"), as
// libarchive and GNU tar write them. False when the value does not fit.
bool PutOctal(Block& b, Field f, uint64_t v, size_t digits, std::string_view tail) {
  if (digits < 22 && v >> (3 * digits) != 0) return false;
  char* p = b.data() + f.off;
  for (size_t i = digits; i-- > 0;) {
    p[i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  std::memcpy(p + digits, tail.data(), tail.size());
  return true;
}

// GNU base-256: high bit of the first byte set, big-endian two's complement
// over the whole field. For values that octal cannot hold (a pax record
// carries them too).
void PutBase256(Block& b, Field f, int64_t v) {
  auto u = static_cast<uint64_t>(v);
  char* p = b.data() + f.off;
  for (size_t i = f.len; i-- > 0;) {
    p[i] = static_cast<char>(static_cast<unsigned char>(u & 0xff));
    u = v < 0 ? (u >> 8) | (uint64_t{0xff} << 56) : u >> 8;
  }
  p[0] = static_cast<char>(static_cast<unsigned char>(p[0]) | 0x80);
}

// One pax record: "<len> <key>=<value>\n", where <len> counts itself.
void AppendPaxRecord(std::string* out, std::string_view key, std::string_view value) {
  const size_t body = 1 + key.size() + 1 + value.size() + 1;  // " key=value\n"
  size_t len = body + 1;
  while (Cat(len).size() + body != len) len = Cat(len).size() + body;
  Append(out, len, " ", key, "=", value, "\n");
}

bool IsAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c != '\0' && static_cast<unsigned char>(c) < 0x80; });
}

// Splits `name` into ustar prefix and name fields; false if it cannot be.
bool SplitUstar(std::string_view name, std::string_view* prefix, std::string_view* base) {
  if (name.size() <= kName.len) {
    *prefix = {};
    *base = name;
    return !name.empty();
  }
  // The shortest prefix that leaves at most 100 bytes for the name.
  for (size_t i = name.find('/'); i != std::string_view::npos && i <= kPrefix.len;
       i = name.find('/', i + 1)) {
    size_t rest = name.size() - i - 1;
    if (rest == 0) break;
    if (rest <= kName.len && i > 0) {
      *prefix = name.substr(0, i);
      *base = name.substr(i + 1);
      return true;
    }
  }
  return false;
}

Block HeaderBlock(std::string_view prefix, std::string_view name, char type, uint64_t size,
                  int64_t mtime_s) {
  Block b{};
  PutString(b, kName, name);
  PutString(b, kPrefix, prefix);
  PutOctal(b, kMode, kFileMode, 6, std::string_view(" \0", 2));
  PutOctal(b, kUid, 0, 6, std::string_view(" \0", 2));
  PutOctal(b, kGid, 0, 6, std::string_view(" \0", 2));
  if (!PutOctal(b, kSize, size, 11, " ")) PutBase256(b, kSize, static_cast<int64_t>(size));
  if (mtime_s < 0 || !PutOctal(b, kMtime, static_cast<uint64_t>(mtime_s), 11, " "))
    PutBase256(b, kMtime, mtime_s);
  b[kType.off] = type;
  PutString(b, kMagic, std::string_view("ustar\0", 6));
  PutString(b, kVersion, "00");
  PutString(b, kUname, kOwner);
  PutString(b, kGname, kOwner);
  PutOctal(b, kDevMajor, 0, 6, std::string_view(" \0", 2));
  PutOctal(b, kDevMinor, 0, 6, std::string_view(" \0", 2));
  // Checksum: the unsigned sum of the header with the field itself as spaces.
  std::memset(b.data() + kChksum.off, ' ', kChksum.len);
  uint64_t sum = 0;
  for (char c : b) sum += static_cast<unsigned char>(c);
  PutOctal(b, kChksum, sum, 6, std::string_view("\0 ", 2));
  return b;
}

bool IsDiskFull(int err) { return err == ENOSPC || err == EDQUOT; }

}  // namespace

absl::Status CheckMemberName(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(Cat("archive member name \"", name, "\" ", why));
  };
  if (name.empty()) return bad("is empty");
  if (name.find('\0') != std::string_view::npos) return bad("holds a NUL byte");
  if (name.front() == '/') return bad("is absolute");
  if (name.back() == '/') return bad("ends in '/' (a reader takes it for a directory)");
  for (std::string_view part : Split(name, '/', /*skip_empty=*/false)) {
    if (part == "..") return bad("has a '..' component");
    // "a//b": readers join the ustar prefix and name with one '/' or fold
    // them, so such a name would not read back as written.
    if (part.empty()) return bad("has an empty component ('//')");
  }
  return absl::OkStatus();
}

std::string MemberPathOf(std::string_view path) {
  std::vector<std::string_view> parts;
  for (std::string_view part : Split(path, '/')) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (std::string_view part : parts) Append(&out, out.empty() ? "" : "/", part);
  return out;
}

TarGzWriter::TarGzWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

absl::StatusOr<std::unique_ptr<TarGzWriter>> TarGzWriter::Create(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", path);
  std::unique_ptr<TarGzWriter> w(new TarGzWriter(fd, path));
  w->zbuf_ = std::make_unique<char[]>(kChunkBytes);
  auto* z = new z_stream{};
  int rc =
      deflateInit2(z, kGzipLevel, Z_DEFLATED, kGzipWindowBits, kGzipMemLevel, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) {
    delete z;
    absl::Status st =
        w->Fail("set up gzip", rc == Z_MEM_ERROR ? ENOMEM : 0, Cat("zlib error ", rc));
    w.reset();  // closes the file, which is empty: nobody else would remove it
    ::unlink(path.c_str());
    return st;
  }
  w->z_ = z;
  w->z_->next_out = reinterpret_cast<Bytef*>(w->zbuf_.get());
  w->z_->avail_out = static_cast<uInt>(kChunkBytes);
  return w;
}

TarGzWriter::~TarGzWriter() {
  // Unfinished or broken: no trailer is written, the caller removes the file.
  if (z_) {
    deflateEnd(z_);
    delete z_;
  }
  if (fd_ >= 0) ::close(fd_);
}

absl::Status TarGzWriter::Usable(std::string_view what) const {
  if (!error_.ok()) return error_;
  if (closed_)
    return absl::UnavailableError(Cat("writing ", path_, ": ", what, ": archive already closed"));
  return absl::OkStatus();
}

absl::Status TarGzWriter::Fail(std::string_view what, int err, std::string_view detail) {
  std::string msg = Cat("writing ", path_, ": ", what, ": ",
                        err != 0 ? std::string_view(std::strerror(err))
                                 : (detail.empty() ? std::string_view("unknown error") : detail));
  absl::Status st =
      IsDiskFull(err) ? absl::ResourceExhaustedError(msg) : absl::UnavailableError(msg);
  if (error_.ok()) error_ = st;
  return st;
}

absl::Status TarGzWriter::WriteOut(const char* p, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t k = ::write(fd_, p + off, n - off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return Fail("write", errno);
    }
    if (k == 0) return Fail("write", EIO);
    off += static_cast<size_t>(k);
  }
  out_sha_.Update(std::string_view(p, n));
  out_bytes_ += n;
  return absl::OkStatus();
}

absl::Status TarGzWriter::Deflate(int flush, std::string_view what) {
  for (;;) {
    if (z_->avail_out == 0) {
      RETURN_IF_ERROR(WriteOut(zbuf_.get(), kChunkBytes));
      z_->next_out = reinterpret_cast<Bytef*>(zbuf_.get());
      z_->avail_out = static_cast<uInt>(kChunkBytes);
    }
    if (flush == Z_NO_FLUSH && z_->avail_in == 0) return absl::OkStatus();
    int rc = deflate(z_, flush);
    if (rc == Z_STREAM_END) break;
    // Z_BUF_ERROR only means no progress was possible: more output room or
    // more input is needed, which the loop provides.
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      return Fail(what, 0, Cat("gzip: ", z_->msg ? z_->msg : "deflate failed", " (", rc, ")"));
  }
  // Finished: write what is left in the buffer.
  return WriteOut(zbuf_.get(), kChunkBytes - z_->avail_out);
}

absl::Status TarGzWriter::Put(std::string_view data) {
  tar_bytes_ += data.size();
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), 1u << 30);
    // zlib does not write through next_in; its type is not const.
    z_->next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(data.data()));
    z_->avail_in = static_cast<uInt>(n);
    RETURN_IF_ERROR(Deflate(Z_NO_FLUSH, "compress"));
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status TarGzWriter::Zeros(uint64_t n) {
  static const char kZeros[kBlock * 8] = {};
  while (n > 0) {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof kZeros));
    RETURN_IF_ERROR(Put(std::string_view(kZeros, k)));
    n -= k;
  }
  return absl::OkStatus();
}

absl::Status TarGzWriter::EndEntry(uint64_t size) {
  return Zeros((kBlock - size % kBlock) % kBlock);
}

absl::Status TarGzWriter::Header(const std::string& name, uint64_t size, int64_t mtime_s) {
  RETURN_IF_ERROR(Usable(Cat("header of ", name)));
  // Refused before anything is written: the archive stays usable.
  RETURN_IF_ERROR(CheckMemberName(name));
  std::string_view prefix, base;
  const bool plain = IsAscii(name) && SplitUstar(name, &prefix, &base);
  const bool big = size >> 33 != 0;  // 8 GiB: does not fit 11 octal digits
  const bool odd_time = mtime_s < 0 || static_cast<uint64_t>(mtime_s) >> 33 != 0;
  if (!plain || big || odd_time) {
    std::string records;
    if (!plain) {
      // pax says path= is UTF-8; a name that is not says so, and readers
      // (bsdtar, GNU tar) then keep its bytes instead of complaining.
      if (!IsValidUtf8(name)) AppendPaxRecord(&records, "hdrcharset", "BINARY");
      AppendPaxRecord(&records, "path", name);
    }
    if (big) AppendPaxRecord(&records, "size", Cat(size));
    if (odd_time) AppendPaxRecord(&records, "mtime", Cat(mtime_s));
    // The ustar fields keep what fits, for readers that ignore pax.
    std::string_view whole(name);
    size_t slash = whole.rfind('/');
    std::string_view dir =
        slash == std::string_view::npos ? std::string_view() : whole.substr(0, slash);
    std::string_view file = slash == std::string_view::npos ? whole : whole.substr(slash + 1);
    if (!SplitUstar(name, &prefix, &base)) {
      prefix = Utf8PrefixBytes(dir, kPrefix.len);
      base = Utf8PrefixBytes(file, kName.len);
    }
    // Its own name, as libarchive makes it: <dir>/PaxHeader/<file>.
    std::string pax_name = dir.empty() ? Cat("PaxHeader/", file) : Cat(dir, "/PaxHeader/", file);
    std::string_view pax_prefix, pax_base;
    if (!SplitUstar(pax_name, &pax_prefix, &pax_base)) {
      pax_name = std::string(Utf8PrefixBytes(Cat("PaxHeader/", file), kName.len));
      pax_prefix = {};
      pax_base = pax_name;
    }
    Block x = HeaderBlock(pax_prefix, pax_base, 'x', records.size(), odd_time ? 0 : mtime_s);
    RETURN_IF_ERROR(Put(std::string_view(x.data(), x.size())));
    RETURN_IF_ERROR(Put(records));
    RETURN_IF_ERROR(EndEntry(records.size()));
  }
  Block h = HeaderBlock(prefix, base, '0', size, mtime_s);
  return Put(std::string_view(h.data(), h.size()));
}

absl::StatusOr<std::string> TarGzWriter::AddBytes(const std::string& name, std::string_view content,
                                                  int64_t mtime_s) {
  const uint64_t total = content.size();
  RETURN_IF_ERROR(Header(name, total, mtime_s));
  Sha256 sha;
  while (!content.empty()) {
    size_t n = std::min(content.size(), kChunkBytes);
    RETURN_IF_ERROR(Put(content.substr(0, n)));
    sha.Update(content.substr(0, n));
    content.remove_prefix(n);
  }
  RETURN_IF_ERROR(EndEntry(total));
  return sha.HexDigest();
}

absl::StatusOr<std::string> TarGzWriter::AddFile(const std::string& name,
                                                 const std::string& local_path, int64_t mtime_s,
                                                 uint64_t* size) {
  RETURN_IF_ERROR(Usable(Cat("header of ", name)));
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
  // The header declares this size: a file that grows is cut to it, one that
  // shrinks is padded with zeros to it.
  const uint64_t total = static_cast<uint64_t>(end);
  RETURN_IF_ERROR(Header(name, total, mtime_s));
  Sha256 sha;
  std::vector<char> buf(kChunkBytes);
  uint64_t done = 0;
  while (done < total) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), total - done));
    ssize_t n = ::read(fd, buf.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // Our own scratch file shrank (or cannot be read): keep the archive well
      // formed, the entry padded with zeros to its declared size, but say so
      // (the caller leaves it out of the manifest).
      std::string why = n < 0 ? std::strerror(errno) : "file shrank while archiving";
      RETURN_IF_ERROR(Zeros(total - done));
      RETURN_IF_ERROR(EndEntry(total));
      return absl::DataLossError(Cat("reading ", local_path, ": ", why));
    }
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    RETURN_IF_ERROR(Put(chunk));
    sha.Update(chunk);
    done += static_cast<uint64_t>(n);
  }
  RETURN_IF_ERROR(EndEntry(total));
  *size = total;
  return sha.HexDigest();
}

absl::Status TarGzWriter::Close() {
  if (!error_.ok()) return error_;
  if (closed_) return absl::OkStatus();
  // Two zero blocks end the archive; zeros up to the 10240-byte record.
  uint64_t end = tar_bytes_ + 2 * kBlock;
  end += (kRecord - end % kRecord) % kRecord;
  RETURN_IF_ERROR(Zeros(end - tar_bytes_));
  z_->next_in = nullptr;
  z_->avail_in = 0;
  RETURN_IF_ERROR(Deflate(Z_FINISH, "close"));
  deflateEnd(z_);
  delete z_;
  z_ = nullptr;
  closed_ = true;
  if (::fsync(fd_) != 0) return Fail("fsync", errno);
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) return Fail("close", errno);
  out_sha_hex_ = out_sha_.HexDigest();
  return absl::OkStatus();
}

}  // namespace setdiag::agent::bundle
