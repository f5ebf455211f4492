#pragma once
// Writes a .tar.gz (pax, gzip) with libarchive, streaming: files are copied
// in 64 KiB chunks, so memory does not grow with the size of a file or of the
// archive. Computes the SHA-256 of each entry's content and of the whole
// compressed output as it goes. libarchive errors become absl::Status here
// and nowhere else. Not thread-safe: one builder thread.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

struct archive;
struct evp_md_ctx_st;

namespace setdiag::agent::bundle {

// Incremental SHA-256 (OpenSSL EVP), lowercase hex.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  std::string HexDigest();  // once

 private:
  evp_md_ctx_st* ctx_;
};

class TarGzWriter {
 public:
  static constexpr size_t kChunkBytes = 64 * 1024;

  // Creates (truncates) `path`, mode 0640.
  static absl::StatusOr<std::unique_ptr<TarGzWriter>> Create(const std::string& path);
  ~TarGzWriter();
  TarGzWriter(const TarGzWriter&) = delete;
  TarGzWriter& operator=(const TarGzWriter&) = delete;

  // Adds a regular file with the content of `local_path`, read in chunks.
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
  static ssize_t Write(archive* a, void* self, const void* buf, size_t n);
  absl::Status Error(std::string_view what);
  absl::Status Header(const std::string& name, uint64_t size, int64_t mtime_s);

  int fd_;
  std::string path_;
  archive* a_ = nullptr;
  Sha256 out_sha_;
  uint64_t out_bytes_ = 0;
  std::string out_sha_hex_;
  int write_errno_ = 0;
  bool closed_ = false;
};

}  // namespace setdiag::agent::bundle
