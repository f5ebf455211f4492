// Fuzz target: the agent's PostgreSQL client (agent/sources/pg_wire.h) decoding
// what a server sends. The input is the server's whole byte stream.
//
// 1. The pure decoders, as PgConnection uses them: TakeMessage frames the
//    stream (both limits), then each message goes to its parser: DataRow
//    (ParseDataRow), ErrorResponse/NoticeResponse (ParseErrorResponse),
//    AuthenticationSASLContinue/Final (ScramSha256::ClientFinal and
//    VerifyServerFinal with a fixed client nonce).
// 2. The state machine itself (Startup and SimpleQuery are private and
//    read from a socket): a real PgConnection::Connect to a Unix socket in
//    a scratch directory, where a thread of ours plays the server and
//    writes the input, then up to three SimpleQuery calls. Unix sockets
//    never use TLS, so everything after the (absent) SSLRequest is reached:
//    authentication (cleartext, MD5, SASL/SCRAM), ParameterStatus,
//    BackendKeyData, ErrorResponse, RowDescription, DataRow, COPY...
//
// Oracles beyond the sanitizers: framing consumes exactly 1 + length bytes
// and never returns a body over the limit; a parsed DataRow accounts for
// every byte of its body; a result's rows all have `columns` values; an
// error's text starts with its severity.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "agent/sources/pg_wire.h"
#include "fuzz_util.h"

namespace {

using setdiag::agent::PgConnection;
using setdiag::agent::PgConnectParams;
namespace pgwire = setdiag::agent::pgwire;
using setdiag::fuzz::Fail;

constexpr int kPort = 5432;

void CheckDataRow(std::string_view body) {
  auto row = pgwire::ParseDataRow(body);
  if (!row.ok()) return;
  size_t expected = 2;
  for (const auto& v : *row) expected += 4 + (v ? v->size() : 0);
  if (expected != body.size()) Fail("ParseDataRow accepted a body it did not account for", body);
}

void CheckErrorResponse(std::string_view body) {
  pgwire::ServerError e = pgwire::ParseErrorResponse(body);
  if (e.severity.empty() || !e.text.starts_with(e.severity + ": "))
    Fail("ParseErrorResponse text does not start with its severity", e.text);
}

// The SASL messages of one stream, through one SCRAM exchange.
void CheckAuth(std::string_view body, std::optional<pgwire::ScramSha256>* scram) {
  if (body.size() < 4) return;
  const uint32_t code = (uint32_t{static_cast<unsigned char>(body[0])} << 24) |
                        (uint32_t{static_cast<unsigned char>(body[1])} << 16) |
                        (uint32_t{static_cast<unsigned char>(body[2])} << 8) |
                        uint32_t{static_cast<unsigned char>(body[3])};
  std::string_view rest = body.substr(4);
  if (code == 11) {
    scram->emplace("setdiag", "Kassa2024secret", "rOprNGfwEbeRWgbNEkqO");
    auto final_msg = (*scram)->ClientFinal(rest);
    if (final_msg.ok() && !final_msg->starts_with("c=biws,r=rOprNGfwEbeRWgbNEkqO"))
      Fail("SCRAM client-final does not carry our nonce", *final_msg);
  } else if (code == 12 && *scram) {
    (void)(*scram)->VerifyServerFinal(rest);
  }
}

void FuzzDecoders(std::string_view stream) {
  for (uint32_t limit : {pgwire::kMaxStartupMessageLength, pgwire::kMaxMessageLength}) {
    std::string_view buf = stream;
    std::optional<pgwire::ScramSha256> scram;
    while (true) {
      const size_t before = buf.size();
      char type = 0;
      std::string_view body;
      auto got = pgwire::TakeMessage(&buf, limit, &type, &body);
      if (!got.ok() || !*got) {
        if (buf.size() != before) Fail("TakeMessage consumed bytes without a message");
        break;
      }
      if (body.size() + 4 > limit) Fail("TakeMessage returned a body over the limit");
      if (before - buf.size() != 5 + body.size()) Fail("TakeMessage consumed the wrong length");
      switch (type) {
        case 'D':
          CheckDataRow(body);
          break;
        case 'E':
        case 'N':
          CheckErrorResponse(body);
          break;
        case 'R':
          CheckAuth(body, &scram);
          break;
        default:
          break;
      }
    }
  }
}

// The listening socket, made once per process: <scratch>/.s.PGSQL.5432.
int ListenFd() {
  static const int fd = [] {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) Fail("socket(AF_UNIX) failed");
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::string path = setdiag::fuzz::ScratchDir() + "/.s.PGSQL." + std::to_string(kPort);
    std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    if (::bind(s, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0 || ::listen(s, 4) != 0)
      Fail("cannot listen on the scratch Unix socket");
    return s;
  }();
  return fd;
}

// The "server": sends the whole input, ends its side, and reads (drops)
// what the client sends until it closes, so nothing is cut by a reset.
void Serve(int listen_fd, std::string_view bytes) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) <= 0) return;  // the client gave up before connecting
  int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return;
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(c, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::shutdown(c, SHUT_WR);
  char sink[4096];
  while (true) {
    pollfd q{c, POLLIN, 0};
    if (::poll(&q, 1, 10000) <= 0) break;
    if (::recv(c, sink, sizeof sink, 0) <= 0) break;
  }
  ::close(c);
}

void FuzzConnection(std::string_view stream) {
  const int listen_fd = ListenFd();
  std::thread server([listen_fd, stream] { Serve(listen_fd, stream); });
  PgConnectParams params;
  params.host = setdiag::fuzz::ScratchDir();
  params.port = kPort;
  params.user = "setdiag";
  params.password = "Kassa2024secret";
  params.database = "set";
  params.connect_timeout_ms = 5000;
  {
    auto conn = PgConnection::Connect(params);
    if (conn.ok()) {
      for (int i = 0; i < 3 && (*conn)->ok(); ++i) {
        auto r =
            (*conn)->SimpleQuery("SELECT 1", PgConnection::Clock::now() + std::chrono::seconds(5));
        if (!r.ok()) continue;
        for (const auto& row : r->rows) {
          if (static_cast<int>(row.size()) != r->columns)
            Fail("a result row does not match its columns");
        }
      }
    }
  }  // closed here: the server's drain ends
  server.join();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view stream = setdiag::fuzz::AsText(data, size);
  FuzzDecoders(stream);
  FuzzConnection(stream);
  return 0;
}
