// SET servers run PostgreSQL as old as 9.4, which cannot run here. So the
// agent's default queries are checked as text against the constructs that
// came after 9.4: every variant the agent can build (shop filter or not, a
// store zone or the session's, timestamps with and without zone, optional
// columns present or missing) must use none of them.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "agent/sources/set_db.h"

namespace setdiag::agent {
namespace {

struct Construct {
  const char* text;  // upper case, matched on word boundaries
  const char* since;
};

// SQL that PostgreSQL 9.4 does not know (release notes 9.5 .. 16).
constexpr Construct kNewerThan94[] = {
    {"ON CONFLICT", "9.5"},
    {"SKIP LOCKED", "9.5"},
    {"TABLESAMPLE", "9.5"},
    {"GROUPING SETS", "9.5"},
    {"CUBE", "9.5"},
    {"ROLLUP", "9.5"},
    {"ARRAY_POSITION", "9.5"},
    {"ARRAY_POSITIONS", "9.5"},
    {"JSONB_SET", "9.5"},
    {"JSONB_PRETTY", "9.5"},
    {"JSONB_STRIP_NULLS", "9.5"},
    {"::REGROLE", "9.5"},
    {"::REGNAMESPACE", "9.5"},
    {"NUM_NULLS", "9.6"},
    {"NUM_NONNULLS", "9.6"},
    {"PARALLEL", "9.6"},
    {"PG_CURRENT_WAL_LSN", "10"},
    {"GENERATED", "10"},
    {"XMLTABLE", "10"},
    {"WEBSEARCH_TO_TSQUERY", "11"},
    {"CALL", "11"},
    {"JSONB_PATH_QUERY", "12"},
    {"JSONB_PATH_EXISTS", "12"},
    {"MATERIALIZED", "12"},
    {"GEN_RANDOM_UUID", "13"},
    {"WITH TIES", "13"},
    {"DATE_BIN", "14"},
    {"SEARCH DEPTH FIRST", "14"},
    {"SEARCH BREADTH FIRST", "14"},
    {"CYCLE", "14"},
    {"MERGE", "15"},
    {"ANY_VALUE", "16"},
    {"IS JSON", "16"},
    {"JSON_ARRAY", "16"},
    {"JSON_OBJECT", "16"},
    {"STRING_TO_TABLE", "14"},
    {"TRIM_ARRAY", "14"},
    {"BIT_COUNT", "14"},
    {"GCD", "13"},
    {"LCM", "13"},
    {"MIN_SCALE", "13"},
    {"TRIM_SCALE", "13"},
};

bool IsWord(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The constructs of kNewerThan94 that `sql` uses, outside string literals.
std::vector<std::string> NewerThan94(const std::string& sql) {
  std::string text;
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    text += quoted ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  std::vector<std::string> found;
  for (const auto& k : kNewerThan94) {
    const std::string needle = k.text;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
      bool starts = at == 0 || !IsWord(text[at - 1]) || !IsWord(needle[0]);
      size_t end = at + needle.size();
      bool ends = end >= text.size() || !IsWord(text[end]);
      if (starts && ends) {
        found.push_back(std::string(k.text) + " (PostgreSQL " + k.since + ")");
        break;
      }
    }
  }
  return found;
}

// The schema SET's entity classes describe; `zoned` gives every timestamp a zone.
SchemaColumns Schema(bool zoned, bool optional_columns) {
  const char* ts = zoned ? "timestamp with time zone" : "timestamp without time zone";
  SchemaColumns s;
  for (const char* c : {"number", "status"}) s["cash_cash"][c] = "text";
  s["cash_cash"]["shop_number"] = "integer";
  if (optional_columns) s["cash_cash"]["cash_ip"] = "text";
  for (const char* c : {"cashnum", "shopnum"}) s["od_cash_status"][c] = "integer";
  s["od_cash_status"]["lastactivity"] = ts;
  for (const char* c : {"ti", "statusid"}) s["erp_transport_package"][c] = "text";
  if (optional_columns) {
    for (const char* c : {"statusname", "importtype"}) s["erp_transport_package"][c] = "text";
  }
  s["erp_transport_package"]["timedate"] = ts;
  for (const char* c : {"shopnumber", "cashnumber", "notloadedproductscount"})
    s["cash_activity"][c] = "integer";
  s["cash_activity"]["lastproductsloaddate"] = ts;
  if (optional_columns) {
    s["cash_activity"]["lastprocessedid"] = "bigint";
    for (const char* c : {"id", "cash_number", "shop_number"})
      s["un_cg_product_file_for_cashes"][c] = "integer";
    s["un_cg_product_file_for_cashes"]["import_date"] = ts;
  }
  return s;
}

TEST(SetDbPostgres94Test, TheCheckerFindsConstructsNewerThan94) {
  EXPECT_EQ(NewerThan94("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING").size(), 1u);
  EXPECT_EQ(NewerThan94("SELECT * FROM q FOR UPDATE SKIP LOCKED").size(), 1u);
  EXPECT_EQ(NewerThan94("select array_position(a, 1) from t").size(), 1u);
  // Not inside literals or other words.
  EXPECT_TRUE(NewerThan94("SELECT 'on conflict' FROM cubes WHERE callback = 1").empty());
  EXPECT_TRUE(
      NewerThan94("SELECT cashnum, lastactivity AT TIME ZONE 'Europe/Moscow' FROM od_cash_status")
          .empty());
}

TEST(SetDbPostgres94Test, EveryDefaultQueryUsesNothingNewerThan94) {
  int checked = 0;
  for (std::optional<int> shop : {std::optional<int>(), std::optional<int>(1042)}) {
    for (const std::string tz : {"", "Europe/Moscow"}) {
      for (const std::string& sql : {DefaultRosterQuery(shop), DefaultActivityQuery(shop, tz),
                                     DefaultPackagesQuery(tz), DefaultTransportQuery(shop, tz)}) {
        ASSERT_FALSE(sql.empty());
        EXPECT_EQ(NewerThan94(sql), std::vector<std::string>{}) << sql;
        ++checked;
      }
      for (bool zoned : {false, true}) {
        for (bool optional_columns : {false, true}) {
          const SchemaColumns schema = Schema(zoned, optional_columns);
          for (SetSource source : {SetSource::kRoster, SetSource::kActivity, SetSource::kPackages,
                                   SetSource::kTransport}) {
            DefaultQuery q = BuildDefaultQuery(source, &schema, shop, tz);
            ASSERT_FALSE(q.sql.empty())
                << SetSourceKey(source) << " misses " << (q.missing.empty() ? "" : q.missing[0]);
            EXPECT_EQ(NewerThan94(q.sql), std::vector<std::string>{}) << q.sql;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 2 * (4 + 2 * 2 * 4));
}

}  // namespace
}  // namespace setdiag::agent
