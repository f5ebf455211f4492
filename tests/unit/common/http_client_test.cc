// common/http_client.h against common/http_server.h on loopback: requests,
// headers, kept-alive connections, downloads and the errors a caller sees.

#include "common/http_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "common/files.h"
#include "common/http_server.h"

namespace setdiag {
namespace {

using ::testing::HasSubstr;

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/setdiag-http-client-XXXXXX";
    dir_ = mkdtemp(tmpl);
    file_ = dir_ + "/payload.bin";
    std::ofstream(file_) << std::string(300'000, 'x') << "end";
    server_ = std::make_unique<HttpServer>([this](const HttpRequest& r) {
      ++requests_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_authorization_ = r.authorization;
      }
      if (r.target == "/file") {
        HttpResponse res;
        res.file_path = file_;
        return res;
      }
      if (r.target == "/missing") return HttpResponse{404, R"({"error":"no such thing"})"};
      return HttpResponse{200, "{\"method\":\"" + r.method + "\",\"body\":\"" + r.body + "\"}"};
    });
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_, file_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<int> requests_{0};
  std::string LastAuthorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_authorization_;
  }
  std::mutex mu_;
  std::string last_authorization_;
};

TEST_F(HttpClientTest, GetsAndPostsWithTheGivenHeadersOnOneConnection) {
  HttpClient http("127.0.0.1", server_->port(),
                  {.headers = {{"Authorization", "Bearer sdu_secret"}}});
  auto get = http.Request("GET", "/a");
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->status, 200);
  EXPECT_THAT(get->body, HasSubstr("\"method\":\"GET\""));
  EXPECT_EQ(LastAuthorization(), "Bearer sdu_secret");
  auto post = http.Request("POST", "/b", "hello");
  ASSERT_TRUE(post.ok()) << post.status();
  EXPECT_THAT(post->body, HasSubstr("\"body\":\"hello\""));
  EXPECT_EQ(requests_, 2);
}

TEST_F(HttpClientTest, AnErrorAnswerIsAReplyNotAFailure) {
  HttpClient http("127.0.0.1", server_->port(), {});
  auto r = http.Request("GET", "/missing");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_THAT(r->body, HasSubstr("no such thing"));
}

TEST_F(HttpClientTest, AServerThatRestartedIsReachedOnAFreshConnection) {
  HttpClient http("127.0.0.1", server_->port(), {});
  ASSERT_TRUE(http.Request("GET", "/1").ok());
  const uint16_t port = server_->port();
  server_->Stop();  // the kept-alive connection is closed by the server
  server_ = std::make_unique<HttpServer>([](const HttpRequest&) {
    return HttpResponse{200, R"({"again":true})"};
  });
  ASSERT_TRUE(server_->Start("127.0.0.1", port).ok());
  auto r = http.Request("GET", "/2");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->body, HasSubstr("again"));
}

TEST_F(HttpClientTest, DownloadsStreamIntoTheFileAndAnErrorLeavesNone) {
  HttpClient http("127.0.0.1", server_->port(), {});
  uint64_t bytes = 0;
  const std::string out = dir_ + "/out.bin";
  auto ok = http.Download("/file", out, &bytes);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(bytes, 300'003u);
  EXPECT_EQ(*ReadWholeFile(out), *ReadWholeFile(file_));
  EXPECT_FALSE(std::filesystem::exists(out + ".part"));
  const std::string none = dir_ + "/none.bin";
  auto missing = http.Download("/missing", none, &bytes);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->status, 404);
  EXPECT_THAT(missing->body, HasSubstr("no such thing"));
  EXPECT_FALSE(std::filesystem::exists(none));
  EXPECT_FALSE(std::filesystem::exists(none + ".part"));
}

TEST(HttpClientErrors, APortThatAcceptsAndNeverAnswersTimesOut) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  HttpClient http("127.0.0.1", ntohs(addr.sin_port), {.timeout = std::chrono::milliseconds(200)});
  auto r = http.Request("GET", "/x");
  close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("cannot reach http://127.0.0.1:"));
  EXPECT_THAT(r.status().message(), HasSubstr("/x: timed out"));
}

TEST(HttpClientErrors, ANameNeedsAResolver) {
  HttpClient http("collector.invalid", 80, {});
  auto r = http.Request("GET", "/");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("'collector.invalid' is not an IP address"));
  int asked = 0;
  HttpClient resolved(
      "collector.invalid", 80,
      {.resolve = [&](const std::string& host,
                      std::chrono::milliseconds) -> absl::StatusOr<std::vector<std::string>> {
        ++asked;
        return absl::UnavailableError("cannot resolve " + host);
      }});
  auto r2 = resolved.Request("GET", "/");
  EXPECT_EQ(asked, 1);
  EXPECT_THAT(r2.status().message(), HasSubstr("cannot resolve collector.invalid"));
}

}  // namespace
}  // namespace setdiag
