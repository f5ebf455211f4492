#include "common/http_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "common/log.h"
#include "common/strings.h"

namespace setdiag {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// Beast's own cap on a request head, only a backstop: the limits people are
// told of are checked exactly below (Beast counts the request line and the
// fields apart, or the whole head, depending on how the bytes arrived).
constexpr size_t kHeadLimit = kMaxRequestTargetBytes + kMaxHeaderFieldsBytes + 256;

std::string TargetTooLong() {
  return Cat(R"({"error":"request target (URL) over )", kMaxRequestTargetBytes, R"( bytes"})");
}
std::string FieldsTooLarge() {
  return Cat(R"({"error":"request header fields over )", kMaxHeaderFieldsBytes, R"( bytes"})");
}

// Whether a request line at the start of `head` ("GET /x HTTP/1.1\r\n", maybe
// cut short) has a target over the limit.
bool TargetOverLimit(std::string_view head) {
  const size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return line.size() > kMaxRequestTargetBytes;
  std::string_view rest = line.substr(sp + 1);
  if (eol != std::string_view::npos) rest = rest.substr(0, std::min(rest.size(), rest.rfind(' ')));
  return rest.size() > kMaxRequestTargetBytes;
}

// Where a live stream's bytes go once the connection left the I/O thread:
// the raw socket (plain HTTP) or the TLS stream, written with blocking calls.
struct EventSink {
  int fd = -1;                                  // shut down to stop the stream
  std::function<bool(std::string_view)> write;  // false when the client is gone
  std::function<void()> close;
};

// The Server-Sent Events streams: a thread each, writing with blocking
// sends; a client that stops reading is cut after 30 s (CutStalledClients).
class EventStreams {
 public:
  explicit EventStreams(size_t max) : max_(max) {}
  ~EventStreams() { StopAll(); }

  bool Full() {
    std::lock_guard<std::mutex> lock(mu_);
    Reap();
    return stopping_ || streams_.size() >= max_;
  }

  // Runs the stream (its head not sent yet) on a thread of its own.
  // False when no thread could be made (the sink is closed then).
  bool Start(EventSink sink, const HttpResponse& out) {
    std::lock_guard<std::mutex> lock(mu_);
    Reap();
    auto s = std::make_shared<Stream>();
    s->sink = std::move(sink);
    try {
      s->thread = std::thread([this, s, out] { Run(*s, out); });
    } catch (const std::system_error& e) {
      log::Error("http", Cat("cannot start a live stream: ", e.what()));
      s->sink.close();
      return false;
    }
    streams_.push_back(std::move(s));
    return true;
  }

  void StopAll() {
    std::vector<std::shared_ptr<Stream>> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      all.swap(streams_);
      // A blocked send returns. A stream that ended closed its fd (the
      // number may belong to another socket now): skipped.
      for (const auto& s : all)
        if (!s->done && s->sink.fd >= 0) shutdown(s->sink.fd, SHUT_RDWR);
    }
    for (const auto& s : all) s->thread.join();
  }

 private:
  struct Stream {
    EventSink sink;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  // Joins the streams that ended (under mu_).
  void Reap() {
    for (auto it = streams_.begin(); it != streams_.end();) {
      if ((*it)->done) {
        (*it)->thread.join();
        it = streams_.erase(it);
      } else {
        ++it;
      }
    }
  }

  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  void Run(Stream& s, const HttpResponse& out) {
    std::string head =
        "HTTP/1.1 200 OK\r\nServer: setdiag-collector\r\nContent-Type: text/event-stream; "
        "charset=utf-8\r\nCache-Control: no-store\r\nConnection: close\r\n";
    for (const auto& [name, value] : out.headers) Append(&head, name, ": ", value, "\r\n");
    Append(&head, "\r\nretry: 3000\n\n");
    using SteadyClock = std::chrono::steady_clock;
    auto last_sent = SteadyClock::now();
    bool ok = s.sink.write(head);
    while (ok && !Stopping()) {
      std::optional<std::string> chunk;
      try {
        chunk = out.events(std::chrono::seconds(1));
      } catch (const std::exception& e) {
        log::Error("http", Cat("event stream: ", e.what()));
        break;
      }
      if (!chunk) break;
      if (chunk->empty()) {
        if (SteadyClock::now() - last_sent < std::chrono::seconds(15)) continue;
        *chunk = ": still here\n\n";
      }
      ok = s.sink.write(*chunk);
      last_sent = SteadyClock::now();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      s.sink.fd = -1;  // StopAll must not shut down a number closed below
      s.done = true;
    }
    s.sink.close();
  }

  const size_t max_;
  std::mutex mu_;
  bool stopping_ = false;
  std::vector<std::shared_ptr<Stream>> streams_;
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Data unacknowledged for 30 s ends the connection (a client that vanished,
// or one that keeps its receive window shut): the blocking writes of a live
// stream return then, on plain sockets and on TLS alike.
void CutStalledClients(int fd) {
  unsigned timeout_ms = 30'000;
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
}

// The raw socket leaves asio: blocking sends with a timeout.
EventSink SinkOf(beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().non_blocking(false, ec);
  const int fd = stream.socket().release(ec);
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  CutStalledClients(fd);
  EventSink sink;
  sink.fd = fd;
  sink.write = [fd](std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  };
  sink.close = [fd] { ::close(fd); };
  return sink;
}

// The TLS stream moves to the sink; asio's blocking writes go through it.
EventSink SinkOf(TlsStream& stream) {
  auto tls = std::make_shared<TlsStream>(std::move(stream));
  beast::error_code ec;
  beast::get_lowest_layer(*tls).socket().non_blocking(false, ec);
  EventSink sink;
  sink.fd = beast::get_lowest_layer(*tls).socket().native_handle();
  CutStalledClients(sink.fd);
  sink.write = [tls](std::string_view data) {
    beast::error_code wec;
    asio::write(*tls, asio::buffer(data.data(), data.size()), wec);
    return !wec;
  };
  sink.close = [tls] {
    beast::error_code ignored;
    beast::get_lowest_layer(*tls).socket().close(ignored);
  };
  return sink;
}

// One client connection, plain (beast::tcp_stream) or TLS (TlsStream).
template <class Stream>
class Connection : public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(Stream stream, const HttpServer::Handler& handler, const HttpServer::Options& options,
             asio::thread_pool* workers, EventStreams* streams)
      : stream_(std::move(stream)),
        handler_(handler),
        options_(options),
        workers_(workers),
        streams_(streams) {}

  void Start() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      Lowest().expires_after(std::chrono::seconds(30));
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->Read();  // a failed handshake just closes
                              });
    } else {
      Read();
    }
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(kHeadLimit));
    Lowest().expires_after(std::chrono::seconds(30));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream) {
      beast::error_code ignored;
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    if (ec) {
      if (ec == http::error::body_limit) {
        Reply(413, R"({"error":"request body too large"})", false);
      } else if (ec == http::error::header_limit) {
        // The request line is still in the buffer unless Beast parsed it
        // (then its target is known and the fields are what is too large).
        const auto target = parser_->get().target();
        const auto data = buffer_.cdata();
        const bool too_long =
            !target.empty() ? target.size() > kMaxRequestTargetBytes
                            : TargetOverLimit({static_cast<const char*>(data.data()), data.size()});
        Reply(too_long ? 414 : 431, too_long ? TargetTooLong() : FieldsTooLarge(), false);
      } else if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
                 ec != asio::error::connection_reset) {
        Reply(400, R"({"error":"malformed HTTP request"})", false);
      }
      return;
    }
    auto& req = parser_->get();
    if (req.target().size() > kMaxRequestTargetBytes) return Reply(414, TargetTooLong(), false);
    size_t fields = 0;
    for (const auto& f : req) fields += f.name_string().size() + f.value().size() + 4;
    if (fields > kMaxHeaderFieldsBytes) return Reply(431, FieldsTooLarge(), false);
    HttpRequest in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    in.authorization = std::string(req[http::field::authorization]);
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      in.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    in.body = std::move(req.body());
    in.tls = std::is_same_v<Stream, TlsStream>;
    const bool keep_alive = req.keep_alive();
    if (options_.inline_handler) {
      if (auto out = Run(options_.inline_handler, in)) return Respond(std::move(*out), keep_alive);
    }
    if (workers_ == nullptr) return Respond(*Run(handler_, in), keep_alive);
    // On a worker; the answer is written from the I/O thread again. Nothing
    // else is read from this connection meanwhile (HTTP/1.1 answers in order).
    asio::post(*workers_, [self = this->shared_from_this(), in = std::move(in), keep_alive] {
      std::optional<HttpResponse> out = Run(self->handler_, in);
      asio::post(self->stream_.get_executor(), [self, out = std::move(out), keep_alive]() mutable {
        self->Respond(std::move(*out), keep_alive);
      });
    });
  }

  // The handler's answer; an exception is a logged 500.
  template <typename Fn>
  static std::optional<HttpResponse> Run(const Fn& fn, const HttpRequest& in) {
    try {
      return fn(in);
    } catch (const std::exception& e) {
      log::Error("http", Cat(in.method, " ", in.target, ": ", e.what()));
      return HttpResponse{500, R"({"error":"internal error"})"};
    }
  }

  void Respond(HttpResponse out, bool keep_alive) {
    // The read's deadline may have passed while a worker ran the handler:
    // the answer gets its own.
    Lowest().expires_after(std::chrono::seconds(30));
    if (out.events) {
      if (streams_->Full())
        return Reply(503, R"({"error":"too many live streams; try again later"})", false);
      Lowest().expires_never();
      streams_->Start(SinkOf(stream_), out);  // the stream's thread has the connection now
      return;  // (or it could not be made, and the connection is closed)
    }
    if (!out.file_path.empty()) return ReplyFile(out, keep_alive);
    Reply(out.status, std::move(out.body), keep_alive, out.body_type, out.headers);
  }

  // Streams a file: Beast's file_body reads it piece by piece as the socket
  // takes it, so a 100 MB bundle costs no more memory than a small one.
  void ReplyFile(const HttpResponse& out, bool keep_alive) {
    http::file_body::value_type body;
    beast::error_code ec;
    body.open(out.file_path.c_str(), beast::file_mode::scan, ec);
    if (ec) {
      log::Warn("http", Cat("cannot open ", out.file_path, ": ", ec.message()));
      return Reply(404, R"({"error":"the file is no longer there"})", keep_alive);
    }
    auto res = std::make_shared<http::response<http::file_body>>();
    res->version(11);
    res->result(http::status::ok);
    res->set(http::field::server, "setdiag-collector");
    res->set(http::field::content_type, out.content_type);
    res->set(http::field::cache_control, "no-store");
    if (!out.download_name.empty()) {
      res->set(http::field::content_disposition,
               Cat("attachment; filename=\"", out.download_name, "\""));
    }
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    // A large body goes out at the client's pace; only a stalled one is cut.
    Lowest().expires_after(std::chrono::hours(1));
    http::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res, keep_alive](beast::error_code wec, size_t) {
          if (!wec && keep_alive) self->Read();
        });
  }

  void Reply(int status, std::string body, bool keep_alive,
             std::string_view type = "application/json; charset=utf-8",
             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<http::status>(status));
    res->set(http::field::server, "setdiag-collector");
    res->set(http::field::content_type, std::string(type));
    res->set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : headers) {
      // Set-Cookie may come more than once; the others replace a default.
      if (beast::iequals(name, "set-cookie"))
        res->insert(name, value);
      else
        res->set(name, value);
    }
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
          if (!ec && keep_alive)
            self->Read();
          else if (!ec)
            self->Linger();
        });
  }

  // Closing a socket with unread bytes (the rest of a refused request)
  // resets it, and the client may lose the answer: stop sending, then read
  // and drop what still comes, for a moment, before closing.
  void Linger() {
    beast::error_code ignored;
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);  // no TLS close_notify dance
      return;
    }
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().expires_after(std::chrono::seconds(2));
    Drain(0);
  }
  void Drain(size_t dropped) {
    if (dropped > kLingerBytes) return;
    stream_.async_read_some(asio::buffer(drain_), [self = this->shared_from_this(), dropped](
                                                      beast::error_code ec, size_t n) {
      if (!ec) self->Drain(dropped + n);
    });
  }
  static constexpr size_t kLingerBytes = 1024 * 1024;

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  std::array<char, 4096> drain_{};
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const HttpServer::Handler& handler_;
  const HttpServer::Options& options_;
  asio::thread_pool* workers_;  // null: handlers run on the I/O thread
  EventStreams* streams_;
};

}  // namespace

struct HttpServer::Impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  Handler handler;
  Options options;
  std::unique_ptr<asio::thread_pool> workers;
  std::unique_ptr<EventStreams> streams;
  std::unique_ptr<asio::ssl::context> tls;  // set when serving HTTPS
  std::thread thread;

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec && tls) {
        std::make_shared<Connection<TlsStream>>(TlsStream(std::move(socket), *tls), handler,
                                                options, workers.get(), streams.get())
            ->Start();
      } else if (!ec) {
        std::make_shared<Connection<beast::tcp_stream>>(
            beast::tcp_stream(std::move(socket)), handler, options, workers.get(), streams.get())
            ->Start();
      }
      Accept();
    });
  }
};

namespace {
HttpServer::Options WithBodyLimit(size_t max_body_bytes) {
  HttpServer::Options o;
  o.max_body_bytes = max_body_bytes;
  return o;
}
}  // namespace

HttpServer::HttpServer(Handler handler, size_t max_body_bytes)
    : HttpServer(std::move(handler), WithBodyLimit(max_body_bytes)) {}

HttpServer::HttpServer(Handler handler, Options options) : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
  impl_->options = std::move(options);
  if (impl_->options.workers > 0)
    impl_->workers = std::make_unique<asio::thread_pool>(impl_->options.workers);
  impl_->streams = std::make_unique<EventStreams>(impl_->options.max_event_streams);
}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start(const std::string& host, uint16_t port) {
  beast::error_code ec;
  if (!impl_->options.tls_cert_pem.empty()) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    ctx->use_certificate_chain(asio::buffer(impl_->options.tls_cert_pem), ec);
    if (!ec)
      ctx->use_private_key(asio::buffer(impl_->options.tls_key_pem), asio::ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError(Cat("TLS certificate or key: ", ec.message()));
    impl_->tls = std::move(ctx);
  }
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return absl::InvalidArgumentError(Cat("listen address '", host, "': ", ec.message()));
  tcp::endpoint ep(addr, port);
  std::string listen = Cat(host, ":", port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(Cat("cannot listen on ", listen, ": ", ec.message()));
  port_ = impl_->acceptor.local_endpoint().port();
  impl_->Accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->io.stop();
  impl_->thread.join();
  // Requests still running finish before the handler's owner may go away;
  // their answers are dropped with the stopped I/O context.
  if (impl_->workers) impl_->workers->join();
  impl_->streams->StopAll();
}

std::string HttpRequest::Header(std::string_view lowercase_name) const {
  for (const auto& [name, value] : headers)
    if (name == lowercase_name) return value;
  return "";
}

}  // namespace setdiag
