#include "tools/store_sim/schema.h"

#include "common/status.h"
#include "common/strings.h"

namespace setdiag::store_sim {

absl::Status EnsureDatabases(const std::string& conninfo) {
  ASSIGN_OR_RETURN(auto admin, PgConn::Connect(conninfo, "postgres"));
  for (const char* db : {kSetDb, kOperdayDb}) {
    ASSIGN_OR_RETURN(
        auto r, admin.Query("SELECT 1 FROM pg_database WHERE datname = $1", {std::string(db)}));
    if (PQntuples(r.get()) > 0) continue;
    // Identifiers cannot be parameters; these two are constants.
    absl::Status st = admin.Exec(Cat("CREATE DATABASE ", db));
    // Created meanwhile (the goods loop's connection, another simulator):
    // 42P04 if it was committed first, 23505 if both ran at once.
    if (!st.ok() && SqlState(st) != "42P04" && SqlState(st) != "23505") return st;
  }
  return absl::OkStatus();
}

absl::Status EnsureSetTables(PgConn& set_db) {
  absl::Status st = set_db.Exec(
      "CREATE TABLE IF NOT EXISTS cash_cash ("
      " id bigserial PRIMARY KEY,"
      " number integer NOT NULL,"
      " shop_number integer NOT NULL,"
      " status varchar(32) NOT NULL,"
      " cash_ip varchar(64),"
      " fwversion varchar(64),"
      " hardwarename varchar(128),"
      " UNIQUE (shop_number, number))");
  // 23505/42P07: a concurrent creator won the race (two simulators at once).
  if (!st.ok() && SqlState(st) != "23505" && SqlState(st) != "42P07") return st;
  return absl::OkStatus();
}

namespace {
// 23505/42P07: a concurrent creator won the race (two simulators at once).
bool Raced(const absl::Status& st) { return SqlState(st) == "23505" || SqlState(st) == "42P07"; }
}  // namespace

absl::Status EnsureGoodsTables(PgConn& set_db) {
  // Column names as SET's own entity classes have them (domain.md): no
  // rejection message in erp_transport_package (FeedbackWS returns it), and
  // cashnumber/shopnumber in cash_activity but cash_number/shop_number in
  // un_cg_product_file_for_cashes.
  const char* tables[] = {
      "CREATE TABLE IF NOT EXISTS erp_transport_package ("
      " ti varchar(64) PRIMARY KEY,"
      " timedate timestamp NOT NULL,"
      " statusid integer NOT NULL,"
      " statusname varchar(64),"
      " importtype varchar(64))",
      "CREATE TABLE IF NOT EXISTS cash_activity ("
      " shopnumber integer NOT NULL,"
      " cashnumber integer NOT NULL,"
      " lastproductsloaddate timestamp,"
      " lastproductsloadcount integer NOT NULL DEFAULT 0,"
      " notloadedproductscount integer NOT NULL DEFAULT 0,"
      " lastprocessedid bigint NOT NULL DEFAULT 0,"
      " cashtemplatename varchar(128),"
      " PRIMARY KEY (shopnumber, cashnumber))",
      "CREATE TABLE IF NOT EXISTS un_cg_product_file_for_cashes ("
      " id bigserial PRIMARY KEY,"
      " file_name varchar(255) NOT NULL,"
      " import_date timestamp NOT NULL,"
      " cash_number integer NOT NULL,"
      " shop_number integer NOT NULL,"
      " objects_count integer NOT NULL DEFAULT 0)",
  };
  for (const char* sql : tables) {
    absl::Status st = set_db.Exec(sql);
    if (!st.ok() && !Raced(st)) return st;
  }
  return absl::OkStatus();
}

absl::Status EnsureActivityRows(PgConn& set_db, int store, int tills) {
  return set_db.Exec(
      "INSERT INTO cash_activity (shopnumber, cashnumber, lastproductsloaddate, "
      "lastproductsloadcount, "
      "notloadedproductscount, lastprocessedid, cashtemplatename) "
      "SELECT $1::integer, n, NULL, 0, 0, 0, 'default' FROM generate_series(1, $2::integer) AS n "
      "ON CONFLICT (shopnumber, cashnumber) DO NOTHING",
      {std::to_string(store), std::to_string(tills)});
}

absl::Status EnsureOperdayTables(PgConn& operday_db) {
  absl::Status st = operday_db.Exec(
      "CREATE TABLE IF NOT EXISTS od_cash_status ("
      " cashnum integer NOT NULL,"
      " shopnum integer NOT NULL,"
      " lastactivity timestamp,"
      " cashiername varchar(128),"
      " cashamount numeric(14,2),"
      " PRIMARY KEY (shopnum, cashnum))");
  if (!st.ok() && SqlState(st) != "23505" && SqlState(st) != "42P07") return st;
  return absl::OkStatus();
}

absl::Status UpsertRoster(PgConn& set_db, int store, const std::vector<Till>& tills) {
  std::vector<int> numbers;
  std::vector<std::string> status, ip, fw, hw;
  for (const Till& t : tills) {
    numbers.push_back(t.number);
    status.push_back(t.status);
    ip.push_back(t.cash_ip);
    fw.push_back(t.fwversion);
    hw.push_back(t.hardwarename);
  }
  return set_db.Exec(
      "INSERT INTO cash_cash (number, shop_number, status, cash_ip, fwversion, hardwarename) "
      "SELECT n, $2::integer, s, ip, fw, hw "
      "FROM unnest($1::integer[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[]) AS "
      "t(n, s, ip, fw, hw) "
      "ON CONFLICT (shop_number, number) DO UPDATE SET status = EXCLUDED.status, cash_ip = "
      "EXCLUDED.cash_ip, "
      "fwversion = EXCLUDED.fwversion, hardwarename = EXCLUDED.hardwarename",
      {PgArray(numbers), std::to_string(store), PgArray(status), PgArray(ip), PgArray(fw),
       PgArray(hw)});
}

absl::Status EnsureStatusRows(PgConn& operday_db, int store, const std::vector<Till>& tills) {
  std::vector<int> numbers;
  std::vector<std::string> cashiers;
  for (const Till& t : tills) {
    numbers.push_back(t.number);
    cashiers.push_back(t.cashier);
  }
  return operday_db.Exec(
      "INSERT INTO od_cash_status (cashnum, shopnum, lastactivity, cashiername, cashamount) "
      "SELECT n, $2::integer, NULL, c, 0 FROM unnest($1::integer[], $3::varchar[]) AS t(n, c) "
      "ON CONFLICT (shopnum, cashnum) DO NOTHING",
      {PgArray(numbers), std::to_string(store), PgArray(cashiers)});
}

absl::Status TouchLastActivity(PgConn& operday_db, int store, const std::vector<int>& numbers) {
  if (numbers.empty()) return absl::OkStatus();
  return operday_db.Exec(
      "INSERT INTO od_cash_status (cashnum, shopnum, lastactivity, cashamount) "
      "SELECT n, $2::integer, now()::timestamp, 0 FROM unnest($1::integer[]) AS n "
      "ON CONFLICT (shopnum, cashnum) DO UPDATE SET lastactivity = EXCLUDED.lastactivity",
      {PgArray(numbers), std::to_string(store)});
}

}  // namespace setdiag::store_sim
