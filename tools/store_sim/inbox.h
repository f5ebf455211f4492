#pragma once
// The file exchange variant of the import: the ERP drops
// catalog-goods_<n>.xml into the inbox (SET's products/source/), the server
// deletes each file once it has processed the package. Files are written
// under a hidden temporary name and renamed, so a reader never sees half a
// file. Used by the goods loop (writes, deletes) and the control API
// (Scan, on the I/O thread).

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace setdiag::store_sim {

// "catalog-goods_7.xml".
std::string InboxFileName(int64_t n);
// A small valid goods catalog for package `ti`.
std::string CatalogXml(const std::string& ti, int store, int64_t n);
// Goods in each catalog (and in each product file made from it: objects_count).
inline constexpr int kCatalogGoods = 2;

struct InboxScan {
  int64_t count = 0;                     // catalog-goods_*.xml files
  std::optional<int64_t> oldest_age_ms;  // by modification time
};

class Inbox {
 public:
  explicit Inbox(std::string dir) : dir_(std::move(dir)) {}

  bool enabled() const { return !dir_.empty(); }
  const std::string& dir() const { return dir_; }
  // Creates the folder (and parents) if missing.
  absl::Status Prepare() const;
  absl::Status Drop(const std::string& ti, int store, int64_t n) const;
  // Deleting a file that is already gone is fine.
  absl::Status Consume(int64_t n) const;
  bool Has(int64_t n) const;
  InboxScan Scan() const;

 private:
  std::string dir_;
};

}  // namespace setdiag::store_sim
