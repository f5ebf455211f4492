// The collector's database (collector/store/storage.h) against a real SQLite file.

#include "collector/store/storage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "collector/tickets/tickets.h"
#include "common/files.h"
#include "common/sqlite.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr int64_t kNow = 1'700'000'000'000;

std::vector<IncomingEvent> Events(uint64_t from, uint64_t to,
                                  const std::string& kind = "tills.stopped") {
  std::vector<IncomingEvent> out;
  for (uint64_t s = from; s <= to; ++s) {
    out.push_back({s, kind, 3, kNow - 10'000 + static_cast<int64_t>(s), Cat("{\"seq\":", s, "}")});
  }
  return out;
}

class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = sql::Db::Open(path_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
    ASSERT_TRUE(InitSchema(db_).ok());
  }

  int64_t Count(const std::string& sql) {
    auto v = db_.QueryInt(sql);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : -1;
  }

  IssuedToken MustCreateToken(const std::string& store, const std::string& partner) {
    auto t = CreateStoreToken(db_, store, partner, kNow);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : IssuedToken{};
  }

  User MustCreateUser(const std::string& name, Role role, const std::string& partner) {
    auto t = CreateUser(db_, name, role, partner, kNow);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return {};
    auto u = LookupUser(db_, t->secret);
    EXPECT_TRUE(u.ok() && u->has_value());
    return (u.ok() && u->has_value()) ? **u : User{};
  }

  void MustHello(const std::string& agent, const std::string& store) {
    auto r = RecordHello(db_, AgentHello{agent, store, "0.1.0", "ob-" + agent}, 1, kNow);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  void MustInsert(const std::string& agent, const std::string& store,
                  const std::vector<IncomingEvent>& ev) {
    auto r = InsertEvents(db_, agent, store, ev, kNow);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  testutil::TempDir dir_;
  std::string path_ = dir_.File("collector.db");
  sql::Db db_;
};

// ---- store tokens ----

TEST_F(StorageTest, CreatedTokenIsFoundByLookup) {
  IssuedToken t = MustCreateToken("store-1", "partner-a");
  EXPECT_FALSE(t.id.empty());
  EXPECT_TRUE(t.secret.starts_with("sdst_"));
  EXPECT_GE(t.secret.size(), 5u + 64u) << "32 random bytes in hex";

  auto g = LookupStoreToken(db_, t.secret);
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(g->has_value());
  EXPECT_EQ((*g)->token_id, t.id);
  EXPECT_EQ((*g)->store_id, "store-1");
  EXPECT_EQ((*g)->partner, "partner-a");

  auto wrong = LookupStoreToken(db_, t.secret + "x");
  ASSERT_TRUE(wrong.ok());
  EXPECT_FALSE(wrong->has_value());
  auto empty = LookupStoreToken(db_, "");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());
}

TEST_F(StorageTest, DatabaseHoldsOnlyTheHashOfSecrets) {
  IssuedToken t = MustCreateToken("store-1", "partner-a");
  auto ut = CreateUser(db_, "alice", Role::kPartner, "partner-a", kNow);
  ASSERT_TRUE(ut.ok());

  auto hash = db_.QueryText(Cat("SELECT token_hash FROM store_tokens WHERE token_id='", t.id, "'"));
  ASSERT_TRUE(hash.ok());
  EXPECT_EQ(*hash, Sha256Hex(t.secret));
  auto uhash = db_.QueryText(Cat("SELECT token_hash FROM users WHERE user_id='", ut->id, "'"));
  ASSERT_TRUE(uhash.ok());
  EXPECT_EQ(*uhash, Sha256Hex(ut->secret));

  // Close the connection so that the WAL is checkpointed into the main file,
  // then grep every file SQLite left behind.
  db_ = sql::Db();
  std::string all;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    all += testutil::ReadBytes(entry.path().string());
  }
  ASSERT_NE(all.find(*hash), std::string::npos) << "sanity: the grep must see the stored hash";
  // Neither the secrets nor their random hex part appear anywhere.
  EXPECT_EQ(all.find(t.secret), std::string::npos);
  EXPECT_EQ(all.find(t.secret.substr(5)), std::string::npos);
  EXPECT_EQ(all.find(ut->secret), std::string::npos);
  EXPECT_EQ(all.find(ut->secret.substr(4)), std::string::npos);
}

TEST_F(StorageTest, RevokedTokenNoLongerLooksUp) {
  IssuedToken t1 = MustCreateToken("store-1", "partner-a");
  IssuedToken t2 = MustCreateToken("store-1", "partner-a");
  EXPECT_NE(t1.secret, t2.secret);

  auto n = RevokeStoreTokens(db_, t1.id, "", kNow + 1);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  auto g1 = LookupStoreToken(db_, t1.secret);
  ASSERT_TRUE(g1.ok());
  EXPECT_FALSE(g1->has_value());
  auto g2 = LookupStoreToken(db_, t2.secret);
  ASSERT_TRUE(g2.ok());
  EXPECT_TRUE(g2->has_value()) << "revoking one token leaves the store's others alone";

  // Revoking again counts nothing.
  auto again = RevokeStoreTokens(db_, t1.id, "", kNow + 2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);

  auto tokens = ListStoreTokens(db_);
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 2u);
  for (const auto& row : *tokens) {
    if (row.id == t1.id) {
      EXPECT_EQ(row.revoked_at_ms, kNow + 1);
    } else {
      EXPECT_EQ(row.revoked_at_ms, std::nullopt);
    }
  }
}

TEST_F(StorageTest, RevokeByStoreRevokesAllOfThatStoreOnly) {
  IssuedToken a1 = MustCreateToken("store-1", "partner-a");
  IssuedToken a2 = MustCreateToken("store-1", "partner-a");
  IssuedToken b1 = MustCreateToken("store-2", "partner-a");
  auto n = RevokeStoreTokens(db_, "", "store-1", kNow);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  EXPECT_FALSE(LookupStoreToken(db_, a1.secret)->has_value());
  EXPECT_FALSE(LookupStoreToken(db_, a2.secret)->has_value());
  EXPECT_TRUE(LookupStoreToken(db_, b1.secret)->has_value());

  auto none = RevokeStoreTokens(db_, "", "", kNow);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0) << "empty selectors match nothing";
  EXPECT_TRUE(LookupStoreToken(db_, b1.secret)->has_value());
}

TEST_F(StorageTest, SecondTokenForAStoreWithAnotherPartnerFails) {
  IssuedToken t = MustCreateToken("store-1", "partner-a");
  auto other = CreateStoreToken(db_, "store-1", "partner-b", kNow);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.status().message()), HasSubstr("partner-a"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM store_tokens"), 1) << "nothing was written";
  auto partner = db_.QueryText("SELECT partner FROM stores WHERE store_id='store-1'");
  ASSERT_TRUE(partner.ok());
  EXPECT_EQ(*partner, "partner-a");
  // The same partner may get another one.
  EXPECT_TRUE(CreateStoreToken(db_, "store-1", "partner-a", kNow).ok());
  // And the failed attempt left no transaction open.
  EXPECT_TRUE(db_.Exec("BEGIN; COMMIT;").ok());
}

// ---- users ----

TEST_F(StorageTest, UsersLookUpByTokenAndNamesAreUnique) {
  auto t = CreateUser(db_, "bob", Role::kSupport, "", kNow);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->secret.starts_with("sdu_"));
  auto u = LookupUser(db_, t->secret);
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE(u->has_value());
  EXPECT_EQ((*u)->name, "bob");
  EXPECT_EQ((*u)->role, Role::kSupport);
  EXPECT_EQ((*u)->partner, "");
  auto dup = CreateUser(db_, "bob", Role::kPartner, "p", kNow);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  auto nobody = LookupUser(db_, "sdu_nope");
  ASSERT_TRUE(nobody.ok());
  EXPECT_FALSE(nobody->has_value());
}

TEST_F(StorageTest, UserNamesFollowTheStoreIdRuleAndOnlyPartnerUsersHaveAPartner) {
  struct Case {
    std::string name;
    Role role;
    std::string partner;
  };
  for (const Case& c : std::vector<Case>{
           {"", Role::kSupport, ""},
           {"ivan\nov", Role::kSupport, ""},
           {"ivan ov", Role::kSupport, ""},
           {std::string(129, 'a'), Role::kSupport, ""},
           {"petrov", Role::kSupport, "acme"},  // support sees every store
           {"petrov", Role::kPartner, ""},
           {"petrov", Role::kPartner, "beta "},
           {"petrov", Role::kPartner, "%"},
       }) {
    SCOPED_TRACE(Cat("name '", c.name, "' partner '", c.partner, "'"));
    auto t = CreateUser(db_, c.name, c.role, c.partner, kNow);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Count("SELECT COUNT(*) FROM users"), 0);
  EXPECT_TRUE(CreateUser(db_, std::string(128, 'a'), Role::kSupport, "", kNow).ok());
  EXPECT_TRUE(CreateUser(db_, "petrov.a-1_x", Role::kPartner, "acme", kNow).ok());
}

TEST_F(StorageTest, UsersAreListedWithoutSecretsRevokedAndDeleted) {
  auto anna = CreateUser(db_, "anna", Role::kSupport, "", kNow);
  auto boris = CreateUser(db_, "boris", Role::kPartner, "acme", kNow + 1);
  ASSERT_TRUE(anna.ok() && boris.ok());

  auto rows = ListUsers(db_);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].id, anna->id);
  EXPECT_EQ((*rows)[0].name, "anna");
  EXPECT_EQ((*rows)[0].role, Role::kSupport);
  EXPECT_EQ((*rows)[0].partner, "");
  EXPECT_EQ((*rows)[1].name, "boris");
  EXPECT_EQ((*rows)[1].role, Role::kPartner);
  EXPECT_EQ((*rows)[1].partner, "acme");
  EXPECT_EQ((*rows)[1].created_at_ms, kNow + 1);
  EXPECT_FALSE((*rows)[1].revoked_at_ms.has_value());

  // Revoked by name: the token no longer looks up; a second revoke finds nothing.
  auto n = RevokeUser(db_, "", "boris", kNow + 5);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  auto gone = LookupUser(db_, boris->secret);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  EXPECT_EQ(*RevokeUser(db_, "", "boris", kNow + 6), 0);
  rows = ListUsers(db_);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ((*rows)[1].revoked_at_ms, kNow + 5);
  auto still = LookupUser(db_, anna->secret);
  ASSERT_TRUE(still.ok());
  EXPECT_TRUE(still->has_value()) << "only boris was revoked";
  // A revoked user keeps its name until deleted.
  EXPECT_EQ(CreateUser(db_, "boris", Role::kPartner, "acme", kNow).status().code(),
            absl::StatusCode::kAlreadyExists);

  // Deleted by id: the name is free again.
  EXPECT_EQ(*DeleteUser(db_, boris->id, ""), 1);
  EXPECT_EQ(*DeleteUser(db_, boris->id, ""), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM users WHERE name='boris'"), 0);
  EXPECT_TRUE(CreateUser(db_, "boris", Role::kPartner, "acme", kNow).ok());

  // Deleting an active user revokes its token with it.
  EXPECT_EQ(*DeleteUser(db_, "", "anna"), 1);
  auto deleted = LookupUser(db_, anna->secret);
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(deleted->has_value());
}

TEST_F(StorageTest, AnEmptySelectorRevokesOrDeletesNoUserEvenOneNamedEmpty) {
  // A user with an empty name, as a version that did not check names made.
  ASSERT_TRUE(db_.Exec("INSERT INTO users(user_id, name, role, partner, token_hash, created_at_ms) "
                       "VALUES ('0badname', '', 'support', NULL, 'h', 1)")
                  .ok());
  auto other = CreateUser(db_, "anna", Role::kSupport, "", kNow);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*RevokeUser(db_, other->id, "", kNow), 1);
  EXPECT_EQ(*DeleteUser(db_, other->id, ""), 1);
  EXPECT_EQ(*RevokeUser(db_, "", "", kNow), 0);
  EXPECT_EQ(*DeleteUser(db_, "", ""), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM users WHERE name='' AND revoked_at_ms IS NULL"), 1);
  // It goes by its id.
  EXPECT_EQ(*DeleteUser(db_, "0badname", ""), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM users"), 0);
}

TEST_F(StorageTest, APartnerIsKnownFromItsStoresOrItsTariff) {
  ASSERT_TRUE(InitTicketSchema(db_).ok());
  MustCreateToken("store-1", "acme");
  ASSERT_TRUE(SetPartnerTariff(db_, "bolt", "free", kNow).ok());
  for (const char* known : {"acme", "bolt"}) EXPECT_TRUE(*PartnerIsKnown(db_, known)) << known;
  for (const char* unknown : {"beta", "", "acme ", "ACME", "%"}) {
    EXPECT_FALSE(*PartnerIsKnown(db_, unknown)) << unknown;
  }
}

// ---- agents and events ----

TEST_F(StorageTest, InsertEventsIsIdempotentAndAdvancesLastCommitted) {
  MustCreateToken("store-1", "partner-a");
  auto first = RecordHello(db_, AgentHello{"agent-1", "store-1", "0.1.0", "ob1"}, 1, kNow);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 0u) << "a new agent has nothing committed";

  auto batch = Events(1, 3);
  auto added = InsertEvents(db_, "agent-1", "store-1", batch, kNow);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(*added, 3);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM events"), 3);

  auto again = InsertEvents(db_, "agent-1", "store-1", batch, kNow + 5);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0) << "a re-sent batch stores nothing new";
  EXPECT_EQ(Count("SELECT COUNT(*) FROM events"), 3);

  auto overlap = InsertEvents(db_, "agent-1", "store-1", Events(2, 5), kNow + 6);
  ASSERT_TRUE(overlap.ok());
  EXPECT_EQ(*overlap, 2);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM events"), 5);

  auto resumed = RecordHello(db_, AgentHello{"agent-1", "store-1", "0.1.1", "ob1"}, 1, kNow + 7);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(*resumed, 5u) << "the agent resumes after its highest committed sequence";

  // Another agent's sequences are independent.
  MustHello("agent-2", "store-1");
  auto other = InsertEvents(db_, "agent-2", "store-1", Events(1, 3), kNow);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, 3);
  auto resumed2 = RecordHello(db_, AgentHello{"agent-2", "store-1", "0.1.0", "ob2"}, 1, kNow);
  ASSERT_TRUE(resumed2.ok());
  EXPECT_EQ(*resumed2, 3u);
}

TEST_F(StorageTest, LastCommittedNeverGoesBackwards) {
  MustCreateToken("store-1", "partner-a");
  MustHello("agent-1", "store-1");
  MustInsert("agent-1", "store-1", Events(10, 12));
  MustInsert("agent-1", "store-1", Events(1, 2));  // a late duplicate of older data
  auto r = RecordHello(db_, AgentHello{"agent-1", "store-1", "0.1.0", "ob1"}, 1, kNow);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 12u);
}

TEST_F(StorageTest, RecordHelloForAnAgentOfAnotherStoreIsDenied) {
  MustCreateToken("store-1", "partner-a");
  MustCreateToken("store-2", "partner-a");
  MustHello("agent-1", "store-1");
  auto r = RecordHello(db_, AgentHello{"agent-1", "store-2", "0.1.0", "ob"}, 1, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  auto store = db_.QueryText("SELECT store_id FROM agents WHERE agent_id='agent-1'");
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*store, "store-1") << "the agent was not moved";
}

TEST_F(StorageTest, RecordHelloUpdatesVersionAndConnectionState) {
  MustCreateToken("store-1", "partner-a");
  ASSERT_TRUE(RecordHello(db_, AgentHello{"agent-1", "store-1", "0.1.0", "ob1"}, 1, kNow).ok());
  ASSERT_TRUE(RecordDisconnect(db_, "agent-1", 1, kNow + 10).ok());
  ASSERT_TRUE(
      RecordHello(db_, AgentHello{"agent-1", "store-1", "0.2.0", "ob2"}, 2, kNow + 20).ok());
  User support{"u", "support", Role::kSupport, ""};
  auto agents = ListAgents(db_, support, "");
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].version, "0.2.0");
  EXPECT_TRUE((*agents)[0].connected);
  EXPECT_EQ((*agents)[0].first_seen_ms, kNow);
  EXPECT_EQ((*agents)[0].last_seen_ms, kNow + 20);
  // The old stream (connection 1) ending late does not mark the agent offline.
  ASSERT_TRUE(RecordDisconnect(db_, "agent-1", 1, kNow + 25).ok());
  agents = ListAgents(db_, support, "");
  ASSERT_TRUE(agents.ok());
  EXPECT_TRUE((*agents)[0].connected);
  ASSERT_TRUE(RecordDisconnect(db_, "agent-1", 2, kNow + 30).ok());
  agents = ListAgents(db_, support, "");
  ASSERT_TRUE(agents.ok());
  EXPECT_FALSE((*agents)[0].connected);
  // After a collector restart nobody is connected until they say hello.
  ASSERT_TRUE(
      RecordHello(db_, AgentHello{"agent-1", "store-1", "0.2.0", "ob2"}, 3, kNow + 40).ok());
  ASSERT_TRUE(ResetConnections(db_).ok());
  agents = ListAgents(db_, support, "");
  ASSERT_TRUE(agents.ok());
  EXPECT_FALSE((*agents)[0].connected);
}

class VisibilityTest : public StorageTest {
 protected:
  void SetUp() override {
    StorageTest::SetUp();
    MustCreateToken("store-a1", "partner-a");
    MustCreateToken("store-a2", "partner-a");
    MustCreateToken("store-b1", "partner-b");
    MustHello("agent-a1", "store-a1");
    MustHello("agent-a2", "store-a2");
    MustHello("agent-b1", "store-b1");
    MustInsert("agent-a1", "store-a1", Events(1, 2, "a.kind"));
    MustInsert("agent-b1", "store-b1", Events(1, 3, "b.kind"));
    MustInsert("agent-a2", "store-a2", Events(1, 1, "a.other"));
    partner_a_ = MustCreateUser("pa", Role::kPartner, "partner-a");
    partner_b_ = MustCreateUser("pb", Role::kPartner, "partner-b");
    support_ = MustCreateUser("sup", Role::kSupport, "");
  }

  std::vector<std::string> EventStores(const User& u, EventQuery q = {}) {
    auto ev = ListEvents(db_, u, q);
    EXPECT_TRUE(ev.ok()) << ev.status().ToString();
    std::vector<std::string> out;
    if (ev.ok()) {
      for (const auto& e : *ev) out.push_back(e.store_id);
    }
    return out;
  }

  std::vector<std::string> AgentIds(const User& u, const std::string& store = "") {
    auto ag = ListAgents(db_, u, store);
    EXPECT_TRUE(ag.ok()) << ag.status().ToString();
    std::vector<std::string> out;
    if (ag.ok()) {
      for (const auto& a : *ag) out.push_back(a.agent_id);
    }
    return out;
  }

  bool MaySee(const User& u, const std::string& store) {
    auto r = UserMaySeeStore(db_, u, store);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() && *r;
  }

  User partner_a_, partner_b_, support_;
};

TEST_F(VisibilityTest, PartnerSeesOnlyItsOwnStoresEvents) {
  EXPECT_THAT(EventStores(partner_a_), ElementsAre("store-a1", "store-a1", "store-a2"));
  EXPECT_THAT(EventStores(partner_b_), ElementsAre("store-b1", "store-b1", "store-b1"));
  EventQuery q;
  q.store_id = "store-b1";
  EXPECT_TRUE(EventStores(partner_a_, q).empty())
      << "asking for another partner's store yields nothing";
}

TEST_F(VisibilityTest, SupportSeesAllEvents) {
  auto stores = EventStores(support_);
  EXPECT_EQ(stores.size(), 6u);
  EXPECT_EQ(std::set<std::string>(stores.begin(), stores.end()),
            (std::set<std::string>{"store-a1", "store-a2", "store-b1"}));
  EventQuery q;
  q.store_id = "store-b1";
  EXPECT_EQ(EventStores(support_, q).size(), 3u);
}

TEST_F(VisibilityTest, EventQueryFiltersAndPages) {
  EventQuery by_kind;
  by_kind.kind = "a.other";
  auto ev = ListEvents(db_, support_, by_kind);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].agent_id, "agent-a2");
  EXPECT_EQ((*ev)[0].sequence, 1u);
  EXPECT_EQ((*ev)[0].payload, "{\"seq\":1}");
  EXPECT_EQ((*ev)[0].severity, 3);

  EventQuery page;
  page.limit = 4;
  auto p1 = ListEvents(db_, support_, page);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->size(), 4u);
  for (size_t i = 1; i < p1->size(); ++i) EXPECT_LT((*p1)[i - 1].id, (*p1)[i].id);
  page.after_id = p1->back().id;
  auto p2 = ListEvents(db_, support_, page);
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->size(), 2u);
  for (const auto& e : *p2) EXPECT_GT(e.id, p1->back().id);
}

TEST_F(VisibilityTest, PartnerSeesOnlyItsOwnAgents) {
  EXPECT_THAT(AgentIds(partner_a_), ElementsAre("agent-a1", "agent-a2"));
  EXPECT_THAT(AgentIds(partner_b_), ElementsAre("agent-b1"));
  EXPECT_TRUE(AgentIds(partner_a_, "store-b1").empty());
  EXPECT_THAT(AgentIds(support_), UnorderedElementsAre("agent-a1", "agent-a2", "agent-b1"));
  EXPECT_THAT(AgentIds(support_, "store-b1"), ElementsAre("agent-b1"));
  auto ag = ListAgents(db_, partner_b_, "");
  ASSERT_TRUE(ag.ok());
  ASSERT_EQ(ag->size(), 1u);
  EXPECT_EQ((*ag)[0].last_committed_seq, 3u);
  EXPECT_EQ((*ag)[0].partner, "partner-b");
}

TEST_F(VisibilityTest, UserMaySeeStoreFollowsThePartner) {
  EXPECT_TRUE(MaySee(partner_a_, "store-a1"));
  EXPECT_TRUE(MaySee(partner_a_, "store-a2"));
  EXPECT_FALSE(MaySee(partner_a_, "store-b1"));
  EXPECT_FALSE(MaySee(partner_a_, "store-unknown"));
  EXPECT_TRUE(MaySee(partner_b_, "store-b1"));
  EXPECT_FALSE(MaySee(partner_b_, "store-a1"));
  EXPECT_TRUE(MaySee(support_, "store-a1"));
  EXPECT_TRUE(MaySee(support_, "store-b1"));
}

TEST(SeverityTextTest, NamesAllSeverities) {
  EXPECT_STREQ(SeverityText(1), "info");
  EXPECT_STREQ(SeverityText(2), "normal");
  EXPECT_STREQ(SeverityText(3), "important");
  EXPECT_STREQ(SeverityText(4), "critical");
  EXPECT_STREQ(SeverityText(0), "unknown");
}

}  // namespace
}  // namespace setdiag::collector
