#include "tools/store_sim/goods_db.h"

#include <cstdlib>

#include "common/clock.h"
#include "common/log.h"
#include "common/strings.h"
#include "tools/store_sim/goods_board.h"
#include "tools/store_sim/schema.h"

namespace setdiag::store_sim {

namespace {
int64_t WallMs() { return SystemClock().NowMs(); }

int64_t ToInt(const PGresult* r, int row, int col) {
  return PQgetisnull(r, row, col) ? 0 : std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

std::string PgArray64(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    Append(&out, values[i]);
  }
  out += '}';
  return out;
}
}  // namespace

GoodsDb::GoodsDb(std::string conninfo, int store, int tills, std::string time_zone)
    : conninfo_(std::move(conninfo)),
      store_(store),
      time_zone_(std::move(time_zone)),
      tills_(tills) {}

std::string GoodsDb::Ti(int64_t n) const { return Cat("TI-", store_, "-", n); }

bool GoodsDb::Check(const absl::Status& st) {
  if (st.ok()) return true;
  set_ = PgConn();  // an open transaction is rolled back with the connection
  if (!outage_since_ms_) {
    outage_since_ms_ = WallMs();
    log::Error("goods",
               Cat("database set unavailable: ", st.message(),
                   "; ERP packages, processing and product loads wait, retrying every second"));
  } else {
    log::Debug("goods", Cat("still unavailable: ", st.message()));
  }
  return false;
}

bool GoodsDb::Ensure(bool* reconnected) {
  *reconnected = false;
  if (connected()) return true;
  set_ = PgConn();
  if (!Check(EnsureDatabases(conninfo_))) return false;
  auto s = PgConn::Connect(conninfo_, kSetDb, time_zone_);
  if (!Check(s.status())) return false;
  set_ = std::move(*s);
  if (!Check(EnsureGoodsTables(set_)) || !Check(EnsureActivityRows(set_, store_, tills_)))
    return false;
  if (outage_since_ms_) {
    log::Info("goods",
              Cat("database set is back after ", (WallMs() - *outage_since_ms_) / 1000, " s"));
    outage_since_ms_.reset();
  } else if (first_connect_) {
    log::Info("goods",
              "connected; erp_transport_package, cash_activity and un_cg_product_file_for_cashes "
              "are ready");
  }
  first_connect_ = false;
  *reconnected = true;
  return true;
}

std::optional<int64_t> GoodsDb::LastPackageNumber() {
  auto r = set_.Query(
      "SELECT COALESCE(max(substring(ti FROM $1)::bigint), 0) FROM erp_transport_package WHERE ti "
      "LIKE $2",
      {Cat("^TI-", store_, "-([0-9]{1,18})$"), Cat("TI-", store_, "-%")});
  if (!Check(r.status())) return std::nullopt;
  return ToInt(r->get(), 0, 0);
}

std::optional<std::vector<PendingPackage>> GoodsDb::PendingPackages() {
  auto r = set_.Query(
      "SELECT ti, substring(ti FROM $1)::bigint FROM erp_transport_package "
      "WHERE statusid = 2 AND ti ~ $1 ORDER BY 2",
      {Cat("^TI-", store_, "-([0-9]{1,18})$")});
  if (!Check(r.status())) return std::nullopt;
  std::vector<PendingPackage> out;
  for (int i = 0; i < PQntuples(r->get()); ++i)
    out.push_back({PQgetvalue(r->get(), i, 0), ToInt(r->get(), i, 1)});
  return out;
}

std::optional<std::vector<ActivityRow>> GoodsDb::Activity() {
  // lastproductsloaddate is local time without zone, written in this
  // session's TimeZone: read it back the same way.
  auto r = set_.Query(
      "SELECT ca.cashnumber, ca.notloadedproductscount, "
      " (EXTRACT(EPOCH FROM ca.lastproductsloaddate::timestamptz) * 1000)::bigint, "
      " ca.lastproductsloaddate IS NULL, "
      " (SELECT COALESCE(max(f.id), 0) FROM un_cg_product_file_for_cashes f "
      "  WHERE f.shop_number = ca.shopnumber AND f.cash_number = ca.cashnumber) "
      "FROM cash_activity ca WHERE ca.shopnumber = $1 AND ca.cashnumber BETWEEN 1 AND $2 ORDER BY "
      "1",
      {std::to_string(store_), std::to_string(tills_)});
  if (!Check(r.status())) return std::nullopt;
  std::vector<ActivityRow> out;
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    ActivityRow row;
    row.cashnum = static_cast<int>(ToInt(r->get(), i, 0));
    row.notloaded = ToInt(r->get(), i, 1);
    if (std::string_view(PQgetvalue(r->get(), i, 3)) != "t")
      row.last_load_ms = ToInt(r->get(), i, 2);
    row.max_file_id = ToInt(r->get(), i, 4);
    out.push_back(row);
  }
  return out;
}

std::optional<bool> GoodsDb::InsertPackage(const std::string& ti, const std::string& importtype) {
  auto r = set_.Query(
      "INSERT INTO erp_transport_package (ti, timedate, statusid, statusname, importtype) "
      "VALUES ($1, now()::timestamp, $2::integer, $3, $4) ON CONFLICT (ti) DO NOTHING RETURNING ti",
      {ti, std::to_string(kPkgInProcess), std::string(PackageStatusName(kPkgInProcess)),
       importtype});
  if (!Check(r.status())) return std::nullopt;
  return PQntuples(r->get()) > 0;
}

std::optional<std::vector<ProducedFile>> GoodsDb::FinishPackage(const std::string& ti, int statusid,
                                                                const std::vector<int>& tills,
                                                                int objects) {
  if (!Check(set_.Exec("BEGIN"))) return std::nullopt;
  if (!Check(set_.Exec("UPDATE erp_transport_package SET statusid = $2::integer, statusname = $3 "
                       "WHERE ti = $1 AND statusid = 2",
                       {ti, std::to_string(statusid), std::string(PackageStatusName(statusid))}))) {
    return std::nullopt;
  }
  std::vector<ProducedFile> out;
  if (!tills.empty()) {
    std::string numbers = PgArray(tills), store = std::to_string(store_);
    auto files = set_.Query(
        "INSERT INTO un_cg_product_file_for_cashes (file_name, import_date, cash_number, "
        "shop_number, objects_count) "
        "SELECT $3 || '_cash' || n || '.xml', now()::timestamp, n, $2::integer, $4::integer "
        "FROM unnest($1::integer[]) AS n RETURNING cash_number, id",
        {numbers, store, Cat("products_", ti), std::to_string(objects)});
    if (!Check(files.status())) return std::nullopt;
    auto counts = set_.Query(
        "INSERT INTO cash_activity (cashnumber, shopnumber, notloadedproductscount) "
        "SELECT n, $2::integer, 1 FROM unnest($1::integer[]) AS n "
        "ON CONFLICT (shopnumber, cashnumber) DO UPDATE "
        "SET notloadedproductscount = cash_activity.notloadedproductscount + 1 "
        "RETURNING cashnumber, notloadedproductscount",
        {numbers, store});
    if (!Check(counts.status())) return std::nullopt;
    for (int i = 0; i < PQntuples(files->get()); ++i) {
      out.push_back({static_cast<int>(ToInt(files->get(), i, 0)), ToInt(files->get(), i, 1), 0});
    }
    for (int i = 0; i < PQntuples(counts->get()); ++i) {
      int n = static_cast<int>(ToInt(counts->get(), i, 0));
      for (auto& f : out) {
        if (f.cashnum == n) f.notloaded = ToInt(counts->get(), i, 1);
      }
    }
  }
  if (!Check(set_.Exec("COMMIT"))) return std::nullopt;
  return out;
}

bool GoodsDb::Load(const std::vector<int>& tills, const std::vector<int64_t>& file_ids) {
  if (tills.empty()) return true;
  return Check(
      set_.Exec("UPDATE cash_activity ca SET lastproductsloaddate = now()::timestamp, "
                "lastproductsloadcount = (SELECT COALESCE(sum(f.objects_count), 0) FROM "
                "un_cg_product_file_for_cashes f "
                "  WHERE f.shop_number = ca.shopnumber AND f.cash_number = ca.cashnumber "
                "  AND f.id > ca.lastprocessedid AND f.id <= t.id), "
                "notloadedproductscount = 0, lastprocessedid = GREATEST(ca.lastprocessedid, t.id) "
                "FROM unnest($1::integer[], $3::bigint[]) AS t(n, id) "
                "WHERE ca.shopnumber = $2::integer AND ca.cashnumber = t.n",
                {PgArray(tills), std::to_string(store_), PgArray64(file_ids)}));
}

}  // namespace setdiag::store_sim
