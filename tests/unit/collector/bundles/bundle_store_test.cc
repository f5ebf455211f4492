// Diagnostic bundles at the collector (collector/bundles/bundle_store.h): the files
// thread that assembles what agents stream (resume at the held offset, gaps,
// overlaps, checksum, restart), the bundles table (offers, completion on a
// ticket, retention) and the bundle endpoints of the admin API (who may
// request and download), against real files and a real SQLite database.

#include "collector/bundles/bundle_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "collector/api/admin_api.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/sqlite.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'764'000'000'000;

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + static_cast<char>(i * 7 % 251));
  return s;
}

// ---- BundleFiles ----

class BundleFilesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(files_->Start().ok()); }

  BundleFiles::AppendResult Append(const std::string& id, uint64_t offset, const std::string& data,
                                   const std::string& whole) {
    std::promise<BundleFiles::AppendResult> done;
    files_->Append(id, offset, data, whole.size(), Sha256Hex(whole),
                   [&done](const BundleFiles::AppendResult& r) { done.set_value(r); });
    return done.get_future().get();
  }
  uint64_t Held(const std::string& id) {
    std::promise<uint64_t> done;
    files_->Held(id, [&done](uint64_t h) { done.set_value(h); });
    return done.get_future().get();
  }
  void Restart() {
    files_.reset();
    files_ = std::make_unique<BundleFiles>(dir_.File("bundles"));
    ASSERT_TRUE(files_->Start().ok());
  }

  testutil::TempDir dir_;
  std::unique_ptr<BundleFiles> files_ = std::make_unique<BundleFiles>(dir_.File("bundles"));
};

TEST_F(BundleFilesTest, InOrderChunksFinishWithTheWholeFileVerified) {
  std::string whole = Pattern(1000, 'a');
  auto r1 = Append("b1", 0, whole.substr(0, 400), whole);
  EXPECT_TRUE(r1.status.ok());
  EXPECT_EQ(r1.held, 400u);
  EXPECT_FALSE(r1.finished);
  EXPECT_EQ(files_->LiveBytes("b1"), 400u);
  auto r2 = Append("b1", 400, whole.substr(400), whole);
  EXPECT_TRUE(r2.finished);
  EXPECT_FALSE(r2.mismatch);
  EXPECT_EQ(ReadWholeFile(files_->FinalPath("b1")).value(), whole);
  EXPECT_FALSE(std::filesystem::exists(files_->PartPath("b1")));
  EXPECT_EQ(Held("b1"), 1000u);
}

TEST_F(BundleFilesTest, AGapIsRefusedAndAnOverlapWritesOnlyTheNewTail) {
  std::string whole = Pattern(900, 'x');
  Append("b1", 0, whole.substr(0, 300), whole);
  auto gap = Append("b1", 600, whole.substr(600), whole);
  EXPECT_TRUE(gap.gap);
  EXPECT_EQ(gap.held, 300u);
  auto dup = Append("b1", 0, whole.substr(0, 300), whole);  // wholly held: skipped
  EXPECT_FALSE(dup.gap);
  EXPECT_EQ(dup.held, 300u);
  auto overlap = Append("b1", 200, whole.substr(200, 400), whole);
  EXPECT_EQ(overlap.held, 600u);
  auto last = Append("b1", 600, whole.substr(600), whole);
  EXPECT_TRUE(last.finished);
  EXPECT_EQ(ReadWholeFile(files_->FinalPath("b1")).value(), whole);
}

TEST_F(BundleFilesTest, AResumeAfterRestartHashesWhatIsHeldAndVerifies) {
  std::string whole = Pattern(5000, 'q');
  Append("b1", 0, whole.substr(0, 2000), whole);
  Restart();
  EXPECT_EQ(Held("b1"), 2000u);
  auto r = Append("b1", 2000, whole.substr(2000), whole);
  EXPECT_TRUE(r.finished);
  EXPECT_FALSE(r.mismatch);
}

TEST_F(BundleFilesTest, AChecksumMismatchEmptiesThePart) {
  std::string whole = Pattern(500, 'm');
  std::string other = Pattern(500, 'n');
  std::promise<BundleFiles::AppendResult> done;
  files_->Append("b1", 0, other, 500, Sha256Hex(whole),
                 [&done](const BundleFiles::AppendResult& r) { done.set_value(r); });
  auto r = done.get_future().get();
  EXPECT_TRUE(r.mismatch);
  EXPECT_FALSE(r.finished);
  EXPECT_EQ(Held("b1"), 0u);
  EXPECT_FALSE(std::filesystem::exists(files_->FinalPath("b1")));
  EXPECT_TRUE(Append("b1", 0, whole, whole).finished);
}

TEST_F(BundleFilesTest, AnEmptyLastChunkAfterARenameReportsFinished) {
  std::string whole = Pattern(100, 'z');
  ASSERT_TRUE(Append("b1", 0, whole, whole).finished);
  // The acknowledgement was lost; the agent sends the end again.
  auto again = Append("b1", 100, "", whole);
  EXPECT_TRUE(again.finished);
  EXPECT_EQ(again.held, 100u);
}

TEST_F(BundleFilesTest, SweepRemovesExpiredFilesAndKeepsOthers) {
  std::string whole = Pattern(100, 'k');
  Append("keep", 0, whole, whole);
  Append("gone", 0, whole, whole);
  std::promise<uint64_t> done;
  files_->Sweep({"gone"}, std::set<std::string>{"keep"},
                [&done](uint64_t freed) { done.set_value(freed); });
  EXPECT_EQ(done.get_future().get(), 100u);
  EXPECT_TRUE(std::filesystem::exists(files_->FinalPath("keep")));
  EXPECT_FALSE(std::filesystem::exists(files_->FinalPath("gone")));
}

// ---- bundle ids ----

TEST(BundleIdForOfferTest, IdsThatAreNotFlightRecorderIdsAreKeptAsTheyAre) {
  for (const char* id :
       {"b1764000000000-0a1b2c3d", "sneaky", "fr", "frx-1", "FR-ep-7-raised", "f-r-x"}) {
    EXPECT_EQ(BundleIdForOffer("1042", id), id);
    EXPECT_EQ(BundleIdForOffer("2001", id), id);
  }
}

TEST(BundleIdForOfferTest, AFlightRecorderIdIsNamespacedByItsStore) {
  EXPECT_EQ(BundleIdForOffer("1042", "fr-ep-7-raised"), "fr-1042-ep-7-raised");
  EXPECT_EQ(BundleIdForOffer("2001", "fr-ep-7-raised"), "fr-2001-ep-7-raised");
  EXPECT_NE(BundleIdForOffer("1042", "fr-ep-7-raised"), BundleIdForOffer("2001", "fr-ep-7-raised"));
  // Already namespaced by someone else: namespaced again, never the other store's id.
  EXPECT_EQ(BundleIdForOffer("2001", "fr-1042-ep-7-raised"), "fr-2001-1042-ep-7-raised");
  EXPECT_NE(BundleIdForOffer("2001", "fr-1042-ep-7-raised"),
            BundleIdForOffer("1042", "fr-ep-7-raised"));
  EXPECT_EQ(BundleIdForOffer("1042", "fr-"), "fr-1042-");
  // Deterministic: a re-offer after a reconnect or restart finds its row.
  EXPECT_EQ(BundleIdForOffer("1042", "fr-ep-7-raised"), BundleIdForOffer("1042", "fr-ep-7-raised"));
}

TEST(BundleIdForOfferTest, AStoreIdWithADashIsHashedSoThatNoTwoStoresShareAnId) {
  // "fr-a-b-x" would be store "a" with "fr-b-x" as well as store "a-b" with "fr-x".
  EXPECT_EQ(BundleIdForOffer("a", "fr-b-x"), "fr-a-b-x");
  const std::string dashed = BundleIdForOffer("a-b", "fr-x");
  EXPECT_EQ(dashed, Cat("fr-", Sha256Hex("a-b\nfr-x").substr(0, 40)));
  EXPECT_NE(dashed, BundleIdForOffer("a", "fr-b-x"));
  EXPECT_TRUE(IsValidIdentifier(dashed));
}

TEST(BundleIdForOfferTest, AnIdTooLongOrInvalidWithItsStoreIsHashedToAValidIdentifier) {
  const std::string longest = "fr-" + std::string(125, 'e');  // 128 bytes: valid on the wire
  ASSERT_TRUE(IsValidIdentifier(longest));
  const std::string a = BundleIdForOffer("1042", longest);
  const std::string b = BundleIdForOffer("2001", longest);
  EXPECT_EQ(a, Cat("fr-", Sha256Hex(Cat("1042\n", longest)).substr(0, 40)));
  EXPECT_EQ(a.size(), 43u);
  EXPECT_TRUE(IsValidIdentifier(a));
  EXPECT_TRUE(IsValidIdentifier(b));
  EXPECT_NE(a, b);
  EXPECT_EQ(a, BundleIdForOffer("1042", longest));
  // The limit is the result's length: 128 bytes stay readable, 129 are hashed.
  const std::string fits = "fr-" + std::string(128 - 8, 'e');  // "fr-1042-" + 120
  EXPECT_EQ(BundleIdForOffer("1042", fits), "fr-1042-" + std::string(120, 'e'));
  EXPECT_EQ(BundleIdForOffer("1042", fits + "e").size(), 43u);
  // A store id that is not an identifier cannot make an invalid bundle id.
  const std::string odd = BundleIdForOffer("a b/..", "fr-x");
  EXPECT_TRUE(IsValidIdentifier(odd)) << odd;
  EXPECT_EQ(odd.size(), 43u);
}

// ---- the table ----

class BundleTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = sql::Db::Open(dir_.File("c.db"));
    ASSERT_TRUE(db.ok());
    db_ = std::move(*db);
    ASSERT_TRUE(InitSchema(db_).ok());
    ASSERT_TRUE(InitTicketSchema(db_).ok());
    ASSERT_TRUE(InitBundleSchema(db_).ok());
    ASSERT_TRUE(CreateStoreToken(db_, "1042", "acme", kNow).ok());
    ASSERT_TRUE(CreateStoreToken(db_, "2001", "beta", kNow).ok());
  }
  BundleRow Request(const std::string& store, int64_t at = kNow) {
    NewBundleRequest r;
    r.store_id = store;
    auto row = CreateBundleRequest(db_, r, "alice", at);
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    return row.ok() ? *row : BundleRow{};
  }
  testutil::TempDir dir_;
  sql::Db db_;
};

TEST_F(BundleTableTest, ARequestWaitsAndAPartnerSeesOnlyItsOwn) {
  BundleRow a = Request("1042");
  Request("2001");
  EXPECT_EQ(a.state, "requested");
  EXPECT_TRUE(IsValidIdentifier(a.id));
  EXPECT_EQ(BundleIdForOffer("1042", a.id), a.id);  // the agent's id is the collector's
  EXPECT_EQ(PendingBundles(db_, "1042")->size(), 1u);
  User acme{"u1", "p", Role::kPartner, "acme"};
  auto mine = ListBundles(db_, acme, {});
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].store_id, "1042");
  User support{"u2", "s", Role::kSupport, ""};
  EXPECT_EQ(ListBundles(db_, support, {})->size(), 2u);
}

TEST_F(BundleTableTest, AnOfferIsAnsweredByWhatTheCollectorHolds) {
  BundleRow a = Request("1042");
  IncomingOffer offer{a.id, std::string(64, 'a'), "request", "", "", 1000};
  auto d = DecideOffer(db_, "1042", offer, 1 << 20, kNow);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, OfferDecision::kRequest);
  EXPECT_FALSE(d->reset);
  EXPECT_EQ(GetBundle(db_, a.id).value()->state, "transferring");
  // Rebuilt on the store (another checksum): the held bytes are void.
  offer.sha256 = std::string(64, 'b');
  EXPECT_TRUE(DecideOffer(db_, "1042", offer, 1 << 20, kNow)->reset);
  // Another store cannot claim it.
  EXPECT_EQ(DecideOffer(db_, "2001", offer, 1 << 20, kNow)->kind, OfferDecision::kCancel);
  // An unknown request id is not wanted.
  IncomingOffer unknown{"b-nope", std::string(64, 'a'), "request", "", "", 10};
  EXPECT_EQ(DecideOffer(db_, "1042", unknown, 1 << 20, kNow)->kind, OfferDecision::kCancel);
  // Too large: failed.
  BundleRow big = Request("1042");
  IncomingOffer huge{big.id, std::string(64, 'c'), "request", "", "", 2 << 20};
  EXPECT_EQ(DecideOffer(db_, "1042", huge, 1 << 20, kNow)->kind, OfferDecision::kCancel);
  EXPECT_EQ(GetBundle(db_, big.id).value()->state, "failed");
}

TEST_F(BundleTableTest, AFlightRecorderBundleLandsOnTheTicketOfItsEpisode) {
  ASSERT_TRUE(db_.Exec("INSERT INTO ticket_episodes(store_id, episode, ticket_id) VALUES ('1042', "
                       "'ep-7', 42)")
                  .ok());
  IncomingOffer offer{"fr-ep-7-raised", std::string(64, 'd'),     "flight_recorder",
                      "ep-7",           "tills.majority_stopped", 300};
  auto d = DecideOffer(db_, "1042", offer, 1 << 20, kNow);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, OfferDecision::kRequest);
  EXPECT_EQ(d->row.ticket_id, 42);
  EXPECT_EQ(d->row.id, "fr-1042-ep-7-raised");
  EXPECT_FALSE(GetBundle(db_, offer.request_id).value().has_value());
  ASSERT_TRUE(
      MarkBundleComplete(db_, d->row.id, 300, offer.sha256, R"({"format":"setdiag-bundle"})", kNow)
          .ok());
  auto row = GetBundle(db_, d->row.id).value();
  EXPECT_EQ(row->state, "complete");
  EXPECT_EQ(row->origin, "flight_recorder");
  auto timeline = GetTimeline(db_, 42);
  ASSERT_TRUE(timeline.ok());
  ASSERT_FALSE(timeline->empty());
  EXPECT_EQ(timeline->back().type, "bundle");
  EXPECT_THAT(timeline->back().text, HasSubstr("fr-1042-ep-7-raised"));
  // Offered again after a lost acknowledgement: complete.
  EXPECT_EQ(DecideOffer(db_, "1042", offer, 1 << 20, kNow)->kind, OfferDecision::kComplete);
  // A flight recorder id needs the "fr-" prefix to create a row.
  IncomingOffer bad{"sneaky", std::string(64, 'd'), "flight_recorder", "ep-7", "x", 1};
  EXPECT_EQ(DecideOffer(db_, "1042", bad, 1 << 20, kNow)->kind, OfferDecision::kCancel);
}

// Issue 13: flight recorder ids are the agent's choice, so store 2001 can
// send the id store 1042's agent will use; 1042's own bundle must still get
// its row on its own ticket.
TEST_F(BundleTableTest, AFlightRecorderIdAnotherStoreOfferedFirstDoesNotBlockTheStoresOwn) {
  ASSERT_TRUE(db_.Exec("INSERT INTO ticket_episodes(store_id, episode, ticket_id) VALUES "
                       "('1042', 'ep-7', 42), ('2001', 'ep-7', 43)")
                  .ok());
  const std::string sha_a(64, 'a'), sha_b(64, 'b');
  IncomingOffer from_b{"fr-ep-7-raised",         sha_b, "flight_recorder", "ep-7",
                       "tills.majority_stopped", 200};
  auto b = DecideOffer(db_, "2001", from_b, 1 << 20, kNow);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->kind, OfferDecision::kRequest);
  EXPECT_EQ(b->row.store_id, "2001");
  EXPECT_EQ(b->row.ticket_id, 43);

  IncomingOffer from_a{"fr-ep-7-raised",         sha_a, "flight_recorder", "ep-7",
                       "tills.majority_stopped", 300};
  auto a = DecideOffer(db_, "1042", from_a, 1 << 20, kNow + 1);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->kind, OfferDecision::kRequest) << a->why;
  EXPECT_FALSE(a->reset);
  EXPECT_EQ(a->row.store_id, "1042");
  EXPECT_EQ(a->row.ticket_id, 42);
  EXPECT_EQ(a->row.sha256, sha_a);
  EXPECT_NE(a->row.id, b->row.id);
  EXPECT_THAT(a->row.id, HasSubstr("1042"));
  EXPECT_THAT(b->row.id, HasSubstr("2001"));

  // Store 2001 offering 1042's collector id gets a row of its own, too: it
  // cannot reach 1042's row (its checksum and state stay).
  IncomingOffer poach{a->row.id, sha_b, "flight_recorder", "ep-7", "tills.majority_stopped", 200};
  auto p = DecideOffer(db_, "2001", poach, 1 << 20, kNow + 2);
  ASSERT_TRUE(p.ok());
  EXPECT_NE(p->row.id, a->row.id);
  EXPECT_EQ(p->row.store_id, "2001");
  EXPECT_EQ(GetBundle(db_, a->row.id).value()->sha256, sha_a);

  // Each completes on its own ticket.
  ASSERT_TRUE(MarkBundleComplete(db_, b->row.id, 200, sha_b, "{}", kNow + 3).ok());
  ASSERT_TRUE(MarkBundleComplete(db_, a->row.id, 300, sha_a, "{}", kNow + 4).ok());
  auto row_a = GetBundle(db_, a->row.id).value();
  auto row_b = GetBundle(db_, b->row.id).value();
  EXPECT_EQ(row_a->state, "complete");
  EXPECT_EQ(row_a->ticket_id, 42);
  EXPECT_EQ(row_b->state, "complete");
  EXPECT_EQ(row_b->ticket_id, 43);
  EXPECT_THAT(GetTimeline(db_, 42)->back().text, HasSubstr(a->row.id));
  EXPECT_THAT(GetTimeline(db_, 43)->back().text, HasSubstr(b->row.id));
  // Each store's re-offer (a lost acknowledgement) finds its own row.
  EXPECT_EQ(DecideOffer(db_, "1042", from_a, 1 << 20, kNow + 5)->kind, OfferDecision::kComplete);
  EXPECT_EQ(DecideOffer(db_, "2001", from_b, 1 << 20, kNow + 5)->kind, OfferDecision::kComplete);
  User support{"u2", "s", Role::kSupport, ""};
  BundleQuery of_1042;
  of_1042.store_id = "1042";
  auto listed = ListBundles(db_, support, of_1042);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, a->row.id);
}

// A 0.1.0 database holds flight recorder rows under the agent's id: they
// stay readable; the same id offered again gets a namespaced row.
TEST_F(BundleTableTest, AFlightRecorderRowOfTheFirstReleaseKeepsItsId) {
  ASSERT_TRUE(
      db_.Exec("INSERT INTO bundles(id, store_id, origin, requested_by, episode, state, size, "
               "sha256, "
               "created_at_ms, updated_at_ms) VALUES ('fr-ep-1-raised', '1042', 'flight_recorder', "
               "'flight recorder', 'ep-1', 'transferring', 10, '" +
               std::string(64, 'c') + "', 1, 1)")
          .ok());
  User support{"u2", "s", Role::kSupport, ""};
  auto listed = ListBundles(db_, support, {});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, "fr-ep-1-raised");
  IncomingOffer again{"fr-ep-1-raised", std::string(64, 'c'), "flight_recorder", "ep-1", "x", 10};
  auto d = DecideOffer(db_, "1042", again, 1 << 20, kNow);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, OfferDecision::kRequest);
  EXPECT_EQ(d->row.id, "fr-1042-ep-1-raised");
  EXPECT_EQ(GetBundle(db_, "fr-ep-1-raised").value()->state, "transferring");
}

TEST_F(BundleTableTest, RetentionExpiresOldBundlesThenTheOldestOverTheTotal) {
  BundleRetention policy;
  policy.keep_for_ms = 10 * 86'400'000LL;
  policy.max_total_bytes = 250;
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    BundleRow b = Request("1042", kNow + i);
    ASSERT_TRUE(MarkBundleComplete(db_, b.id, 100, std::string(64, 'e'), "",
                                   kNow - (20 - i * 5) * 86'400'000LL + i)
                    .ok());
    ids.push_back(b.id);
  }
  // Completed 20, 15, 10 and 5 days ago: the first two are too old; of the
  // rest only 2 x 100 bytes fit under 250.
  BundleRow waiting = Request("1042");
  auto plan = ExpireBundles(db_, policy, kNow);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_THAT(plan->remove, ::testing::UnorderedElementsAre(ids[0], ids[1]));
  EXPECT_TRUE(plan->keep.contains(ids[2]));
  EXPECT_TRUE(plan->keep.contains(ids[3]));
  EXPECT_TRUE(plan->keep.contains(waiting.id));
  EXPECT_EQ(GetBundle(db_, ids[0]).value()->state, "expired");
  policy.max_total_bytes = 150;
  plan = ExpireBundles(db_, policy, kNow);
  EXPECT_THAT(plan->remove, ::testing::ElementsAre(ids[2]));
  // A request the store never answered within keep_for fails.
  plan = ExpireBundles(db_, policy, kNow + 11 * 86'400'000LL);
  EXPECT_EQ(GetBundle(db_, waiting.id).value()->state, "failed");
}

// ---- the API ----

class BundleApiTest : public BundleTableTest {
 protected:
  void SetUp() override {
    BundleTableTest::SetUp();
    support_ = CreateUser(db_, "desk", Role::kSupport, "", kNow)->secret;
    acme_ = CreateUser(db_, "acme-eng", Role::kPartner, "acme", kNow)->secret;
    beta_ = CreateUser(db_, "beta-eng", Role::kPartner, "beta", kNow)->secret;
    auto reader = sql::Db::Open(dir_.File("c.db"));
    ASSERT_TRUE(reader.ok());
    api_ = std::make_unique<AdminApi>(std::move(*reader), clock_);
    AdminApi::BundleHooks hooks;
    hooks.request = [this](const User& user,
                           const NewBundleRequest& r) -> absl::StatusOr<BundleRow> {
      auto row = CreateBundleRequest(db_, r, user.name, kNow);
      if (row.ok()) dispatched_.push_back(row->id);
      return row;
    };
    hooks.file_path = [this](const std::string& id) { return dir_.File(id + ".tar.gz"); };
    api_->set_bundles(hooks);
  }
  HttpResponse Call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "") {
    return api_->Handle({method, target, "Bearer " + token, body});
  }
  FakeClock clock_{kNow};
  std::string support_, acme_, beta_;
  std::unique_ptr<AdminApi> api_;
  std::vector<std::string> dispatched_;
};

TEST_F(BundleApiTest, OnlySupportOrTheStoresOwnPartnerMayRequestSeeAndDownload) {
  auto own = Call("POST", "/api/v1/stores/1042/bundles", acme_, R"({"window": "6h"})");
  ASSERT_EQ(own.status, 200) << own.body;
  json b = json::parse(own.body)["bundle"];
  std::string id = b["id"];
  EXPECT_EQ(b["state"], "requested");
  EXPECT_EQ(b["window_ms"], 6 * 3'600'000);
  EXPECT_EQ(dispatched_, std::vector<std::string>{id});

  // Another partner: its store is "not there", and so is this bundle.
  auto other = Call("POST", "/api/v1/stores/1042/bundles", beta_, "{}");
  EXPECT_EQ(other.status, 404);
  EXPECT_THAT(other.body, HasSubstr("no store 1042 visible to you"));
  EXPECT_EQ(Call("GET", "/api/v1/bundles/" + id, beta_).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/bundles/" + id + "/content", beta_).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/bundles?store=1042", beta_).status, 404);
  EXPECT_EQ(json::parse(Call("GET", "/api/v1/bundles", beta_).body)["bundles"].size(), 0u);
  EXPECT_EQ(json::parse(Call("GET", "/api/v1/bundles", acme_).body)["bundles"].size(), 1u);
  EXPECT_EQ(Call("POST", "/api/v1/stores/nope/bundles", support_, "{}").status, 404);

  // Not complete yet: 409; once complete, the file.
  EXPECT_EQ(Call("GET", "/api/v1/bundles/" + id + "/content", acme_).status, 409);
  std::string content = "tar.gz bytes";
  ASSERT_TRUE(WriteFileAtomically(dir_.File(id + ".tar.gz"), content, 0640).ok());
  ASSERT_TRUE(MarkBundleComplete(db_, id, content.size(), Sha256Hex(content), "{}", kNow).ok());
  auto file = Call("GET", "/api/v1/bundles/" + id + "/content", support_);
  EXPECT_EQ(file.status, 200);
  EXPECT_EQ(file.file_path, dir_.File(id + ".tar.gz"));
  EXPECT_EQ(file.content_type, "application/gzip");
  json shown = json::parse(Call("GET", "/api/v1/bundles/" + id, acme_).body)["bundle"];
  EXPECT_EQ(shown["state"], "complete");
  EXPECT_EQ(shown["sha256"], Sha256Hex(content));
  EXPECT_TRUE(shown["manifest"].is_object());
}

TEST_F(BundleApiTest, BadRequestsAreRefused) {
  EXPECT_EQ(Call("POST", "/api/v1/stores/1042/bundles", support_, R"({"window": "5s"})").status,
            400);
  EXPECT_EQ(Call("POST", "/api/v1/stores/1042/bundles", support_, R"({"colour": "red"})").status,
            400);
  EXPECT_EQ(Call("POST", "/api/v1/stores/1042/bundles", support_, R"({"ticket_id": 999})").status,
            404);
  EXPECT_EQ(Call("GET", "/api/v1/stores/1042/bundles", support_).status, 405);
  EXPECT_EQ(Call("GET", "/api/v1/bundles/a%20b", support_).status, 400);
  EXPECT_TRUE(dispatched_.empty());
}

}  // namespace
}  // namespace setdiag::collector
