#pragma once
// Writes a .tar.gz (POSIX pax/ustar, gzip) with our own small tar writer and
// zlib, streaming: files are copied in 64 KiB chunks, so memory does not grow
// with the size of a file or of the archive. Computes the SHA-256 of each
// entry's content and of the whole compressed output as it goes. Errors
// become absl::Status naming the output and the errno text. Not thread-safe:
// one builder thread.
//
// Not libarchive: it is only needed here to write, and it maps ICU, libxml2,
// zstd, lzma, lz4, bz2 and acl into the agent (about 1.4 MiB resident);
// zlib is already loaded by gRPC. Readers (the CLI, the tests) still use
// libarchive.
//
// Format: ustar headers (mode 0640, uid/gid 0 "root", typeflag '0', name up
// to 100 bytes or prefix/name up to 256), with a pax 'x' record before an
// entry whose name is longer or not ASCII (path=), whose size is 8 GiB or
// more (size=) or whose mtime does not fit (mtime=); two zero blocks at the
// end, padded to a 10240-byte record; gzip level 6 (zlib's default, as
// libarchive used).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/digest.h"

struct z_stream_s;

namespace setdiag::agent::bundle {

// A member name the writer accepts: not empty, relative, no '..' or empty
// ('//') component, no NUL, not ending in '/' (readers take such a regular file for a
// directory and lose the rest of the archive). InvalidArgument naming the
// name and what is wrong otherwise. An extractor can then write every
// member below its own directory.
absl::Status CheckMemberName(std::string_view name);

// `path` (a collected file's path on the store server) as a member path
// that CheckMemberName accepts, resolved lexically: leading '/', empty and
// '.' components dropped, '..' removing the component before it (never
// climbing above the start). "/var/log/../../x" -> "x". Empty when nothing
// is left.
std::string MemberPathOf(std::string_view path);

class TarGzWriter {
 public:
  static constexpr size_t kChunkBytes = 64 * 1024;

  // Creates (truncates) `path`, mode 0640.
  static absl::StatusOr<std::unique_ptr<TarGzWriter>> Create(const std::string& path);
  ~TarGzWriter();
  TarGzWriter(const TarGzWriter&) = delete;
  TarGzWriter& operator=(const TarGzWriter&) = delete;

  // Adds a regular file with the content of `local_path`, read in chunks.
  // A name CheckMemberName refuses is InvalidArgument; nothing is written
  // and the archive stays usable.
  // Returns the SHA-256 of the content written; `size` gets its length.
  absl::StatusOr<std::string> AddFile(const std::string& name, const std::string& local_path,
                                      int64_t mtime_s, uint64_t* size);
  absl::StatusOr<std::string> AddBytes(const std::string& name, std::string_view content,
                                       int64_t mtime_s);
  // Ends the archive and fsyncs the file. The writer is unusable afterwards.
  absl::Status Close();

  // After Close(): bytes of the compressed file and their SHA-256.
  uint64_t compressed_bytes() const { return out_bytes_; }
  const std::string& compressed_sha256() const { return out_sha_hex_; }

 private:
  TarGzWriter(int fd, std::string path);
  // Fails with the first error once there was one, or after Close().
  absl::Status Usable(std::string_view what) const;
  // Builds the error for the output file and makes the writer unusable.
  absl::Status Fail(std::string_view what, int err, std::string_view detail = {});
  absl::Status Header(const std::string& name, uint64_t size, int64_t mtime_s);
  absl::Status Zeros(uint64_t n);           // n zero bytes into the tar stream
  absl::Status EndEntry(uint64_t size);     // pads the entry to a 512-byte block
  absl::Status Put(std::string_view data);  // tar bytes -> deflate
  absl::Status Deflate(int flush, std::string_view what);
  absl::Status WriteOut(const char* p, size_t n);  // to the file, hashed

  int fd_;
  std::string path_;
  z_stream_s* z_ = nullptr;
  std::unique_ptr<char[]> zbuf_;  // kChunkBytes of compressed output
  uint64_t tar_bytes_ = 0;        // uncompressed, for the final record padding
  Sha256 out_sha_;
  uint64_t out_bytes_ = 0;
  std::string out_sha_hex_;
  absl::Status error_;  // the first error; sticky
  bool closed_ = false;
};

}  // namespace setdiag::agent::bundle
