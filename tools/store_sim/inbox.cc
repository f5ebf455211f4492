#include "tools/store_sim/inbox.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "common/strings.h"

namespace setdiag::store_sim {

namespace fs = std::filesystem;

std::string InboxFileName(int64_t n) { return Cat("catalog-goods_", n, ".xml"); }

std::string CatalogXml(const std::string& ti, int store, int64_t n) {
  // Two goods with a price each, in the shape of SET's goods catalog import.
  std::string out = Cat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<goods-catalog ti=\"", ti,
                        "\" shop=\"", store, "\">\n");
  for (int i = 1; i <= kCatalogGoods; ++i) {
    int64_t item = n * 10 + i;
    Append(&out, "  <good marking-of-the-good=\"", 100000 + item, "\">\n", "    <name>Товар ", item,
           "</name>\n", "    <measure-type id=\"1\"><name>шт</name></measure-type>\n",
           "    <price-entry price=\"", 49 + item % 50, ".90\"><number>1</number></price-entry>\n",
           "  </good>\n");
  }
  Append(&out, "</goods-catalog>\n");
  return out;
}

absl::Status Inbox::Prepare() const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return absl::UnavailableError(Cat("inbox ", dir_, ": ", ec.message()));
  if (!fs::is_directory(dir_, ec))
    return absl::UnavailableError(Cat("inbox ", dir_, " is not a directory"));
  return absl::OkStatus();
}

absl::Status Inbox::Drop(const std::string& ti, int store, int64_t n) const {
  fs::path final_path = fs::path(dir_) / InboxFileName(n);
  fs::path tmp = fs::path(dir_) / Cat(".", InboxFileName(n), ".part");
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << CatalogXml(ti, store, n);
    f.close();
    if (!f) return absl::UnavailableError(Cat("cannot write ", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, final_path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return absl::UnavailableError(
        Cat("cannot rename to ", final_path.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status Inbox::Consume(int64_t n) const {
  std::error_code ec;
  fs::remove(fs::path(dir_) / InboxFileName(n), ec);
  if (ec)
    return absl::UnavailableError(
        Cat("cannot delete ", InboxFileName(n), " in ", dir_, ": ", ec.message()));
  return absl::OkStatus();
}

bool Inbox::Has(int64_t n) const {
  std::error_code ec;
  return fs::exists(fs::path(dir_) / InboxFileName(n), ec);
}

InboxScan Inbox::Scan() const {
  InboxScan scan;
  std::error_code ec;
  auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.starts_with("catalog-goods_") || !name.ends_with(".xml")) continue;
    std::error_code ec2;
    if (!it->is_regular_file(ec2)) continue;
    auto mtime = it->last_write_time(ec2);
    if (ec2) continue;  // deleted meanwhile
    ++scan.count;
    int64_t age = std::chrono::duration_cast<std::chrono::milliseconds>(now - mtime).count();
    if (age < 0) age = 0;
    if (!scan.oldest_age_ms || age > *scan.oldest_age_ms) scan.oldest_age_ms = age;
  }
  return scan;
}

}  // namespace setdiag::store_sim
