// The default queries of SET's database (agent/sources/set_db.h): the column names
// of SET's own entity classes (../shared/docs/domain.md), built from the
// schema a store really has, SET's naive timestamps read in the store's
// zone. No database here: the SQL text and the schema decisions.

#include "agent/sources/set_db.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace setdiag::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kNaive = "timestamp without time zone";

// The schema SET's entity classes describe.
SchemaColumns KnownSchema() {
  SchemaColumns s;
  for (const char* c :
       {"id", "number", "shop_number", "status", "cash_ip", "fwversion", "hardwarename"}) {
    s["cash_cash"][c] = "integer";
  }
  for (const char* c : {"ti", "statusid", "statusname", "importtype"})
    s["erp_transport_package"][c] = "text";
  s["erp_transport_package"]["timedate"] = kNaive;
  for (const char* c : {"shopnumber", "cashnumber", "lastproductsloadcount",
                        "notloadedproductscount", "lastprocessedid", "cashtemplatename"}) {
    s["cash_activity"][c] = "integer";
  }
  s["cash_activity"]["lastproductsloaddate"] = kNaive;
  for (const char* c : {"id", "file_name", "cash_number", "shop_number", "objects_count"}) {
    s["un_cg_product_file_for_cashes"][c] = "integer";
  }
  s["un_cg_product_file_for_cashes"]["import_date"] = kNaive;
  for (const char* c : {"cashnum", "shopnum", "cashiername", "cashamount"})
    s["od_cash_status"][c] = "integer";
  s["od_cash_status"]["lastactivity"] = kNaive;
  return s;
}

TEST(SetDbDefaultsTest, LoadingQueriesUseTheColumnsSetHas) {
  const std::string transport = DefaultTransportQuery(1042);
  for (const char* c :
       {"a.cashnumber", "a.shopnumber", "a.lastproductsloaddate", "a.notloadedproductscount",
        "a.lastprocessedid", "f.cash_number", "f.shop_number", "f.import_date", "f.id"}) {
    EXPECT_THAT(transport, HasSubstr(c));
  }
  for (const char* guess : {"cashnum ", "cashnum,", ".shopnum ", "created"}) {
    EXPECT_THAT(transport, Not(HasSubstr(guess))) << guess;
  }
  const std::string packages = DefaultPackagesQuery();
  EXPECT_THAT(packages, HasSubstr("FROM erp_transport_package"));
  EXPECT_THAT(packages, Not(HasSubstr("message")));
  // The full defaults are what a store with SET's known schema gets.
  SchemaColumns known = KnownSchema();
  for (SetSource s :
       {SetSource::kRoster, SetSource::kActivity, SetSource::kPackages, SetSource::kTransport}) {
    DefaultQuery q = BuildDefaultQuery(s, &known, 1042, "Europe/Moscow");
    EXPECT_TRUE(q.missing.empty()) << SetSourceKey(s);
    EXPECT_TRUE(q.dropped.empty()) << SetSourceKey(s);
    EXPECT_EQ(q.sql, BuildDefaultQuery(s, nullptr, 1042, "Europe/Moscow").sql) << SetSourceKey(s);
  }
}

TEST(SetDbDefaultsTest, NaiveTimestampsAreReadInTheGivenZone) {
  const std::string activity = DefaultActivityQuery(std::nullopt, "Europe/Moscow");
  EXPECT_THAT(activity, HasSubstr("(lastactivity) AT TIME ZONE 'Europe/Moscow'"));
  EXPECT_THAT(activity, Not(HasSubstr("timestamptz")));
  const std::string transport = DefaultTransportQuery(std::nullopt, "Europe/Moscow");
  EXPECT_THAT(transport, HasSubstr("(a.lastproductsloaddate) AT TIME ZONE 'Europe/Moscow'"));
  EXPECT_THAT(transport, HasSubstr("(MIN(f.import_date)) AT TIME ZONE 'Europe/Moscow'"));
  const std::string packages = DefaultPackagesQuery("Europe/Moscow");
  EXPECT_THAT(packages, HasSubstr("(timedate) AT TIME ZONE 'Europe/Moscow'"));
  EXPECT_THAT(packages, HasSubstr("(now() AT TIME ZONE 'Europe/Moscow') - interval '2 days'"));
  // No zone: the session's TimeZone, as before.
  EXPECT_THAT(DefaultActivityQuery(std::nullopt), HasSubstr("(lastactivity)::timestamptz"));
  EXPECT_THAT(DefaultPackagesQuery(), HasSubstr("localtimestamp - interval '2 days'"));
  // A column that already has a zone is not converted again.
  SchemaColumns zoned = KnownSchema();
  zoned["od_cash_status"]["lastactivity"] = "timestamp with time zone";
  DefaultQuery q = BuildDefaultQuery(SetSource::kActivity, &zoned, std::nullopt, "Europe/Moscow");
  EXPECT_THAT(q.sql, HasSubstr("EXTRACT(EPOCH FROM lastactivity)"));
  EXPECT_THAT(q.sql, Not(HasSubstr("AT TIME ZONE")));
}

TEST(SetDbDefaultsTest, AMissingRequiredColumnIsNamedAndNoQueryIsBuilt) {
  SchemaColumns old = KnownSchema();
  // An older SET: cash_activity spelled differently.
  old["cash_activity"].erase("cashnumber");
  old["cash_activity"]["cashnum"] = "integer";
  DefaultQuery q = BuildDefaultQuery(SetSource::kTransport, &old, std::nullopt, "");
  EXPECT_TRUE(q.sql.empty());
  EXPECT_EQ(q.missing, std::vector<std::string>{"cash_activity.cashnumber"});
  // A table that is not there at all.
  SchemaColumns none = KnownSchema();
  none.erase("erp_transport_package");
  q = BuildDefaultQuery(SetSource::kPackages, &none, std::nullopt, "");
  EXPECT_TRUE(q.sql.empty());
  EXPECT_EQ(q.missing, std::vector<std::string>{"erp_transport_package (table)"});
  // The shop filter needs the shop column.
  SchemaColumns no_shop = KnownSchema();
  no_shop["od_cash_status"].erase("shopnum");
  EXPECT_TRUE(BuildDefaultQuery(SetSource::kActivity, &no_shop, std::nullopt, "").missing.empty());
  EXPECT_EQ(BuildDefaultQuery(SetSource::kActivity, &no_shop, 1042, "").missing,
            std::vector<std::string>{"od_cash_status.shopnum"});
}

TEST(SetDbDefaultsTest, AMissingOptionalColumnIsLeftOutAndSaysWhatIsLost) {
  SchemaColumns s = KnownSchema();
  s["un_cg_product_file_for_cashes"].erase("import_date");
  s["erp_transport_package"].erase("importtype");
  s["cash_cash"].erase("cash_ip");
  s["cash_cash"].erase("shop_number");
  DefaultQuery t = BuildDefaultQuery(SetSource::kTransport, &s, std::nullopt, "");
  EXPECT_TRUE(t.missing.empty());
  EXPECT_THAT(t.sql, HasSubstr("NULL::bigint FROM cash_activity a"));
  ASSERT_EQ(t.dropped.size(), 1u);
  EXPECT_THAT(t.dropped[0], HasSubstr("un_cg_product_file_for_cashes.import_date"));
  DefaultQuery p = BuildDefaultQuery(SetSource::kPackages, &s, std::nullopt, "");
  EXPECT_THAT(p.sql, Not(HasSubstr("importtype")));
  ASSERT_EQ(p.dropped.size(), 1u);
  DefaultQuery r = BuildDefaultQuery(SetSource::kRoster, &s, std::nullopt, "");
  EXPECT_THAT(r.sql, HasSubstr("'', NULL::integer FROM cash_cash"));
  EXPECT_EQ(r.dropped.size(), 2u);
}

TEST(SetDbDefaultsTest, DefaultsStayWithinPostgreSql94) {
  // Nothing newer than 9.4 in what the agent sends: no ON CONFLICT (9.5),
  // no FILTER-less tricks needing 9.5+, no GENERATED/IDENTITY, no
  // ::regnamespace, no websearch or jsonb functions.
  for (const std::string& sql :
       {DefaultRosterQuery(1042), DefaultActivityQuery(1042, "Europe/Moscow"),
        DefaultPackagesQuery("Europe/Moscow"), DefaultTransportQuery(1042, "Europe/Moscow"),
        DefaultActivityQuery(std::nullopt), DefaultTransportQuery(std::nullopt)}) {
    for (const char* newer :
         {"ON CONFLICT", "GROUPING SETS", "TABLESAMPLE", "jsonb", "regnamespace", "IDENTITY",
          "GENERATED", "::regrole", "SKIP LOCKED"}) {
      EXPECT_THAT(sql, Not(HasSubstr(newer))) << sql;
    }
  }
}

TEST(SetDbDefaultsTest, SqlStateIsFoundInServerErrors) {
  EXPECT_EQ(SqlStateOf("ERROR: column \"message\" does not exist (SQLSTATE 42703)"), "42703");
  EXPECT_EQ(SqlStateOf("connection refused"), "");
}

TEST(SetDbDefaultsTest, EverySourceNamesItsConfigKey) {
  EXPECT_STREQ(SetSourceKey(SetSource::kRoster), "set_db.roster_query");
  EXPECT_STREQ(SetSourceKey(SetSource::kActivity), "set_db.activity_query");
  EXPECT_STREQ(SetSourceKey(SetSource::kPackages), "set_db.packages_query");
  EXPECT_STREQ(SetSourceKey(SetSource::kTransport), "set_db.transport_query");
}

}  // namespace
}  // namespace setdiag::agent
