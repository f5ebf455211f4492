#pragma once
// Hashing and encodings the binaries share, over OpenSSL: lowercase hex,
// base64, and SHA-256 fed in pieces (bundles are hashed as they are written,
// received and downloaded, never read twice).

#include <optional>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace setdiag {

// Lowercase hex of raw bytes.
std::string Hex(std::string_view raw);
// Standard base64 with padding.
std::string Base64(std::string_view raw);
// Padded standard base64; nullopt when malformed.
std::optional<std::string> Unbase64(std::string_view text);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  // Of everything passed to Update so far, lowercase hex; more may follow.
  std::string HexDigest() const;

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace setdiag
