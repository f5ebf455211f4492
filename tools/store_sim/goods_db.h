#pragma once
// The goods and prices side's database work in `set`: import packages
// (erp_transport_package), product files for tills
// (un_cg_product_file_for_cashes) and the tills' loading progress
// (cash_activity). Its own connection, owned by the goods loop's thread, so
// the tills' pings never wait for it. Creates what is missing on every
// (re)connect. When the database is down it logs once per outage (as
// "goods: database set unavailable", apart from the tills' own
// "PostgreSQL unavailable") and the callers try again later.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/store_sim/pg.h"

namespace setdiag::store_sim {

struct PendingPackage {
  std::string ti;
  int64_t n = 0;  // the number in "TI-<store>-<n>" and catalog-goods_<n>.xml
};

struct ActivityRow {
  int cashnum = 0;
  int64_t notloaded = 0;
  std::optional<int64_t> last_load_ms;  // lastproductsloaddate as Unix ms
  int64_t max_file_id = 0;              // newest product file for the till, 0 if none
};

struct ProducedFile {
  int cashnum = 0;
  int64_t file_id = 0;
  int64_t notloaded = 0;  // the till's count after this file
};

class GoodsDb {
 public:
  GoodsDb(std::string conninfo, int store, int tills, std::string time_zone = "");

  // Connects and prepares the schema if needed. False while the database is
  // down; *reconnected is true when this call (re)connected.
  bool Ensure(bool* reconnected);
  bool connected() const { return set_.ok(); }

  // "TI-1042-" + n.
  std::string Ti(int64_t n) const;

  // Right after a (re)connect: the highest package number of this store
  // already in the table, the packages still in process, each till's row.
  std::optional<int64_t> LastPackageNumber();
  std::optional<std::vector<PendingPackage>> PendingPackages();
  std::optional<std::vector<ActivityRow>> Activity();

  // A new package in status 2 ("in process"), timedate = now()::timestamp.
  // nullopt on a database error; false if the TI exists already.
  std::optional<bool> InsertPackage(const std::string& ti, const std::string& importtype);
  // In one transaction: the package's final status (SET keeps no rejection
  // message in the table), and (when `tills` is not empty) one product file
  // per till (`objects` goods in it) with its not-loaded count bumped.
  std::optional<std::vector<ProducedFile>> FinishPackage(const std::string& ti, int statusid,
                                                         const std::vector<int>& tills,
                                                         int objects);
  // The tills loaded everything up to the given file ids:
  // lastproductsloaddate = now()::timestamp, lastproductsloadcount = the
  // goods in the files loaded, notloadedproductscount = 0,
  // lastprocessedid = the file id.
  bool Load(const std::vector<int>& tills, const std::vector<int64_t>& file_ids);

 private:
  bool Check(const absl::Status& st);

  std::string conninfo_;
  int store_;
  std::string time_zone_;
  int tills_;
  PgConn set_;
  bool first_connect_ = true;
  std::optional<int64_t> outage_since_ms_;
};

}  // namespace setdiag::store_sim
