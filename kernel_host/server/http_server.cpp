// The only translation unit of the HTTP server that includes Beast.
#include "kernel_host/server/http_server.hpp"

#include <fcntl.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <variant>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

#include "common/log.hpp"
#include "kernel_host/api/error_mapping.hpp"

namespace kh::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock = std::chrono::steady_clock;

// Bodies at least this large with a Content-Length are read in big pieces (read_sized_body).
constexpr std::size_t kSizedBodyRead = 64 * 1024;

const char* const cors_headers[][2] = {
    {"Access-Control-Allow-Origin", "*"},
    {"Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS"},
    {"Access-Control-Allow-Headers", "Content-Type, Authorization, X-Session-Id, X-Sandbox-Id, X-Trace-Id, X-XSRFToken"},
    {"Access-Control-Max-Age", "600"},
};

template <class Body>
void decorate_response(http::response<Body>& msg, bool keep_alive) {
  for (const auto& h : cors_headers) msg.set(h[0], h[1]);
  msg.set(http::field::server, "kernel-host");
  msg.keep_alive(keep_alive);
}

std::shared_ptr<spdlog::logger> access_log() {
  static auto logger = kh::log::get("access");
  return logger;
}

}  // namespace

struct server_shared;

// One TCP connection: reads requests one at a time, writes one thing at a time.
class http_connection : public std::enable_shared_from_this<http_connection> {
 public:
  // `prelude`: bytes already read from the socket, `remote`: the client's address (a connection
  // given back after a takeover, already set up).
  http_connection(tcp::socket&& socket, server_shared& server, std::string_view prelude = {}, std::string remote = {},
                  std::shared_ptr<connection_affinity> affinity = nullptr);
  ~http_connection();
  void run();
  // From any thread: close now (stop deadline passed) or after the current response.
  void close_now();
  void close_when_idle();

  // Responder entry points, always on the strand.
  void respond(std::uint64_t serial, http_response response);
  void begin_stream(std::uint64_t serial, int status, std::string content_type, header_list headers);
  void write_chunk(std::uint64_t serial, std::string chunk, std::function<void(bool)> written = {});
  void end_stream(std::uint64_t serial);
  void set_disconnect_handler(std::uint64_t serial, std::function<void()> handler);
  net::any_io_executor executor() { return stream_.get_executor(); }

 private:
  struct full_response { std::shared_ptr<http::response<http::string_body>> msg; };
  struct stream_header { std::shared_ptr<http::response<http::empty_body>> msg; };
  struct stream_chunk {
    std::shared_ptr<std::string> data;
    std::function<void(bool)> written;  // optional: told whether the client took the chunk
  };
  struct stream_last {};
  using out_item = std::variant<full_response, stream_header, stream_chunk, stream_last>;

  void do_read();
  void on_first_bytes(beast::error_code ec, std::size_t n);
  void do_read_request();
  void on_read(beast::error_code ec, std::size_t n);
  void read_body();
  void read_sized_body(std::size_t length);
  void handle_request();
  bool try_takeover();
  void fail_request(const error& err, bool close);
  template <class Body>
  void decorate(http::response<Body>& msg);
  void enqueue(out_item item);
  void do_write();
  void on_write(bool last, beast::error_code ec, std::size_t n);
  void finish_exchange();
  void drop_queue();  // tells waiting writers their chunks were not taken
  void do_probe();
  void on_probe(beast::error_code ec, std::size_t n);
  void do_close();
  void do_drain();
  void log_access();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  server_shared& server_;
  std::string remote_;

  // the current exchange (one request at a time)
  std::uint64_t serial_ = 0;
  bool in_exchange_ = false;
  bool responded_ = false;
  bool streaming_ = false;
  bool stream_ended_ = false;
  bool keep_alive_ = true;
  bool closing_ = false;
  bool closed_ = false;
  bool probe_pending_ = false;
  bool client_gone_ = false;
  int status_ = 0;
  std::string method_, target_;
  clock::time_point started_;
  std::function<void()> on_disconnect_;
  std::optional<http_response> refusal_;  // decided from the head (takeover), sent once the body is in
  std::optional<std::string> sized_body_;  // a body read by read_sized_body
  std::shared_ptr<connection_affinity> affinity_;  // left by the last takeover handler

  std::deque<out_item> queue_;
  bool writing_ = false;
  std::optional<http::serializer<false, http::empty_body>> header_serializer_;
};

struct server_shared {
  server_config config;
  const router& routes;
  std::mutex connections_mutex;
  std::list<std::weak_ptr<http_connection>> connections;
  std::condition_variable connections_cv;
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> auth_failures{0};
  std::atomic<std::uint64_t> write_timeouts{0};
  std::atomic<bool> stopping{false};
  net::io_context ioc;  // last: destroyed first, with the handlers that still hold connections

  server_shared(server_config c, const router& r) : config(std::move(c)), routes(r) {}
};

namespace {

// Registers and starts a connection (accepted, or given back after a takeover).
void start_connection(server_shared& server, tcp::socket socket, std::string_view prelude = {}, std::string remote = {},
                      std::shared_ptr<connection_affinity> affinity = nullptr) {
  auto conn = std::make_shared<http_connection>(std::move(socket), server, prelude, std::move(remote), std::move(affinity));
  {
    std::lock_guard lock(server.connections_mutex);
    server.connections.remove_if([](const auto& w) { return w.expired(); });
    server.connections.push_back(conn);
  }
  conn->run();
}

// The request fields a handler sees: method, target, path, query, lower-case headers.
template <class Fields>
http_request request_head(const http::request_header<Fields>& msg, const std::string& remote) {
  http_request out;
  out.method = std::string(msg.method_string());
  out.target = std::string(msg.target());
  out.remote = remote;
  parse_target(out.target, out.path, out.query);
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  return out;
}

// The daemon's token check; nullopt when the request may pass. Preflights carry no credentials.
std::optional<error> auth_error(const server_shared& server, const http_request& request) {
  if (request.method == "OPTIONS" || server.config.token.empty()) return std::nullopt;
  const std::string presented = presented_token(request);
  if (!presented.empty() && token_matches(presented, server.config.token)) return std::nullopt;
  if (presented.empty())
    return error{errc::unauthorized, "a token is required: send 'Authorization: Bearer <token>' or ?token=<token>"};
  return error{errc::permission_denied, "the token is wrong"};
}

}  // namespace


namespace {

namespace websocket = beast::websocket;

// One accepted WebSocket: a read loop and a write queue (one write in flight) on its strand.
class ws_connection final : public websocket_peer, public std::enable_shared_from_this<ws_connection> {
 public:
  ws_connection(tcp::socket&& socket, server_shared& server)
      : ws_(std::move(socket)), server_(server), write_timer_(ws_.get_executor()) {}

  void run(http::request<http::string_body> request) {
    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator([protocol = subprotocol](websocket::response_type& res) {
      res.set(http::field::server, "kernel-host");
      if (!protocol.empty()) res.set(http::field::sec_websocket_protocol, protocol);
    }));
    ws_.read_message_max(server_.config.body_limit);
    auto req = std::make_shared<http::request<http::string_body>>(std::move(request));
    ws_.async_accept(*req, [self = shared_from_this(), req](beast::error_code ec) {
      if (ec) return self->finish();
      self->accepted_ = true;  // what the handler sent meanwhile (a replay) goes out now
      if (!self->writing_ && !self->queue_.empty()) self->do_write();
      else if (self->closing_ && !self->writing_) self->do_close();
      self->do_read();
    });
  }
  void send_text(std::string data) override { enqueue(std::move(data), false); }
  void send_binary(std::string data) override { enqueue(std::move(data), true); }
  void close() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      if (self->closed_) return;
      self->closing_ = true;
      if (!self->writing_ && self->accepted_) self->do_close();
    });
  }

 private:
  void enqueue(std::string data, bool binary) {
    net::post(ws_.get_executor(), [self = shared_from_this(), data = std::move(data), binary]() mutable {
      if (self->closed_ || self->closing_) return;
      self->queued_bytes_ += data.size();
      if (self->queued_bytes_ > max_queued_bytes) {  // the client stopped reading
        kh::log::get("server")->warn("WebSocket client is {} bytes behind: closing", self->queued_bytes_);
        return self->finish();
      }
      self->queue_.emplace_back(std::move(data), binary);
      if (!self->writing_ && self->accepted_) self->do_write();
    });
  }
  void do_write() {
    if (queue_.empty()) {
      writing_ = false;
      if (closing_) do_close();
      return;
    }
    writing_ = true;
    ws_.binary(queue_.front().second);
    const auto serial = ++write_serial_;
    write_timer_.expires_after(server_.config.write_timeout);
    write_timer_.async_wait([self = shared_from_this(), serial](beast::error_code ec) {
      if (ec || !self->writing_ || self->write_serial_ != serial) return;
      ++self->server_.write_timeouts;
      beast::error_code ignored;  // the write in flight fails and finishes the connection
      beast::get_lowest_layer(self->ws_).socket().close(ignored);
    });
    ws_.async_write(net::buffer(queue_.front().first), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->write_timer_.cancel();
      if (!self->queue_.empty()) {
        self->queued_bytes_ -= self->queue_.front().first.size();
        self->queue_.pop_front();
      }
      self->writing_ = false;
      if (ec) return self->finish();
      self->do_write();
    });
  }
  void do_read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->finish();
      std::string data = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (self->on_message) self->on_message(std::move(data), !self->ws_.got_text());
      self->do_read();
    });
  }
  void do_close() {
    // close() and the end of a write can both get here; Beast allows one close in flight.
    if (close_started_) return;
    close_started_ = true;
    ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code) { self->finish(); });
  }
  void finish() {
    if (closed_) return;
    closed_ = true;
    if (!writing_) queue_.clear();  // an async_write in flight still reads the front buffer
    auto on_close_handler = std::exchange(on_close, nullptr);
    on_message = nullptr;
    if (on_close_handler) on_close_handler();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  websocket::stream<beast::tcp_stream> ws_;
  server_shared& server_;
  beast::flat_buffer buffer_;
  static constexpr std::size_t max_queued_bytes = 64ull << 20;
  std::deque<std::pair<std::string, bool>> queue_;
  std::size_t queued_bytes_ = 0;
  net::steady_timer write_timer_;
  std::uint64_t write_serial_ = 0;
  bool accepted_ = false;  // no frame goes out before the handshake answer
  bool writing_ = false;
  bool closing_ = false;
  bool close_started_ = false;
  bool closed_ = false;
};

}  // namespace

namespace {

// The responder handed to handlers: posts every call to the connection's strand.
class connection_responder final : public responder {
 public:
  connection_responder(std::shared_ptr<http_connection> conn, std::uint64_t serial)
      : conn_(std::move(conn)), serial_(serial) {}
  ~connection_responder() override {
    if (!answered_.load())
      post([c = conn_, s = serial_] {
        c->respond(s, api::error_response(error{errc::internal_error, "the handler produced no response"}));
      });
  }
  void send(http_response response) override {
    if (answered_.exchange(true)) return;
    post([c = conn_, s = serial_, r = std::move(response)]() mutable { c->respond(s, std::move(r)); });
  }
  void begin_stream(int status, std::string content_type, header_list headers) override {
    if (answered_.exchange(true)) return;
    post([c = conn_, s = serial_, status, t = std::move(content_type), h = std::move(headers)]() mutable {
      c->begin_stream(s, status, std::move(t), std::move(h));
    });
  }
  void write(std::string chunk) override {
    post([c = conn_, s = serial_, d = std::move(chunk)]() mutable { c->write_chunk(s, std::move(d)); });
  }
  void write_then(std::string chunk, std::function<void(bool)> taken) override {
    post([c = conn_, s = serial_, d = std::move(chunk), t = std::move(taken)]() mutable {
      c->write_chunk(s, std::move(d), std::move(t));
    });
  }
  bool write_and_wait(std::string chunk) override {
    auto taken = std::make_shared<std::promise<bool>>();
    auto fut = taken->get_future();
    post([c = conn_, s = serial_, d = std::move(chunk), taken]() mutable {
      c->write_chunk(s, std::move(d), [taken](bool ok) { taken->set_value(ok); });
    });
    return fut.get();
  }
  void end() override {
    post([c = conn_, s = serial_] { c->end_stream(s); });
  }
  void on_disconnect(std::function<void()> handler) override {
    post([c = conn_, s = serial_, h = std::move(handler)]() mutable { c->set_disconnect_handler(s, std::move(h)); });
  }

 private:
  template <class F>
  void post(F&& fn) { net::post(conn_->executor(), std::forward<F>(fn)); }

  std::shared_ptr<http_connection> conn_;
  std::uint64_t serial_;
  std::atomic<bool> answered_{false};
};

}  // namespace

http_connection::http_connection(tcp::socket&& socket, server_shared& server, std::string_view prelude, std::string remote,
                                 std::shared_ptr<connection_affinity> affinity)
    : stream_(std::move(socket)), server_(server), remote_(std::move(remote)), affinity_(std::move(affinity)) {
  if (!prelude.empty()) buffer_.commit(net::buffer_copy(buffer_.prepare(prelude.size()), net::buffer(prelude)));
  ++server_.open;
  if (!remote_.empty()) return;  // given back: the socket was set up when it was accepted
  beast::error_code ec;
  // Kernels are spawned while connections are open: a socket inherited by a kernel would stay
  // open after we close it (no FIN to the client). Asio does not accept with SOCK_CLOEXEC.
  ::fcntl(stream_.socket().native_handle(), F_SETFD, FD_CLOEXEC);
  stream_.socket().set_option(tcp::no_delay(true), ec);
  auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec) remote_ = fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

http_connection::~http_connection() {
  --server_.open;
  server_.connections_cv.notify_all();
}

void http_connection::run() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
}

void http_connection::close_now() {
  net::post(stream_.get_executor(), [self = shared_from_this()] { self->do_close(); });
}

void http_connection::close_when_idle() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    self->closing_ = true;
    self->keep_alive_ = false;
    if (!self->in_exchange_) self->do_close();
  });
}

void http_connection::do_read() {
  if (closing_ || closed_) return do_close();
  in_exchange_ = false;
  // Wait for the first byte of the next request with the idle deadline, then read the
  // header with the (shorter) header deadline.
  if (buffer_.size() > 0) return do_read_request();
  stream_.expires_after(server_.config.idle_timeout);
  stream_.async_read_some(buffer_.prepare(8192), beast::bind_front_handler(&http_connection::on_first_bytes, shared_from_this()));
}

void http_connection::on_first_bytes(beast::error_code ec, std::size_t n) {
  if (ec) return do_close();
  buffer_.commit(n);
  do_read_request();
}

void http_connection::do_read_request() {
  if (closing_) return do_close();
  in_exchange_ = true;
  started_ = clock::now();
  refusal_.reset();
  sized_body_.reset();
  parser_.emplace();
  parser_->header_limit(64 * 1024);
  // A taken connection (a streamed upload) has no body limit: the limit applies after the takeover check.
  parser_->body_limit(server_.config.takeover ? std::numeric_limits<std::uint64_t>::max() : server_.config.body_limit);
  stream_.expires_after(server_.config.header_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) return self->on_read(ec, 0);
                            if (self->server_.config.takeover) {
                              if (self->try_takeover()) return;
                              const auto limit = self->server_.config.body_limit;
                              if (self->parser_->content_length().value_or(0) > limit) return self->on_read(http::error::body_limit, 0);
                              self->parser_->body_limit(limit);  // a chunked body is counted as it comes
                            }
                            // The header is in: give the body the idle deadline.
                            self->stream_.expires_after(self->server_.config.idle_timeout);
                            if (self->parser_->is_done()) return self->on_read({}, 0);
                            // A client that waits for a go-ahead before the body (curl does above 1 MiB) gets it now,
                            // not after its own wait of a second.
                            if (beast::iequals(self->parser_->get()[http::field::expect], "100-continue"))
                              return net::async_write(self->stream_, net::buffer(kContinueResponse), [self](beast::error_code ec, std::size_t) {
                                if (ec) return self->on_read(ec, 0);
                                self->read_body();
                              });
                            self->read_body();
                          });
}

void http_connection::read_body() {
  if (const auto length = parser_->content_length(); length && *length >= kSizedBodyRead) return read_sized_body(*length);
  http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&http_connection::on_read, shared_from_this()));
}

// A large body of known length is read straight into one buffer, as much per read as the socket
// has: Beast's reads through the parser take 8 KiB at a time here, each a reactor round trip
// (~130 of them for 1 MiB), and the parser would copy it once more.
void http_connection::read_sized_body(std::size_t length) {
  if (length > server_.config.body_limit) return on_read(http::error::body_limit, 0);
  auto body = std::make_shared<std::string>();
  body->resize_and_overwrite(length, [](char*, std::size_t n) { return n; });  // filled below
  const std::size_t have = net::buffer_copy(net::buffer(*body), buffer_.data());
  buffer_.consume(have);
  net::async_read(stream_, net::buffer(body->data() + have, length - have),
                  [self = shared_from_this(), body](beast::error_code ec, std::size_t) {
                    if (!ec) self->sized_body_ = std::move(*body);  // the request's body (the parser saw the head only)
                    self->on_read(ec, 0);
                  });
}

void http_connection::on_read(beast::error_code ec, std::size_t) {
  ++serial_;
  responded_ = streaming_ = stream_ended_ = client_gone_ = false;
  on_disconnect_ = nullptr;
  status_ = 0;
  if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
      ec == net::error::operation_aborted || ec == net::error::connection_reset) {
    in_exchange_ = false;
    return do_close();
  }
  const auto& head = parser_->get();
  method_ = std::string(head.method_string());
  target_ = std::string(head.target());
  if (ec == http::error::body_limit) {
    keep_alive_ = false;  // the rest of the body is still on the wire
    return fail_request(error{errc::payload_too_large,
                              fmt::format("the request body is larger than the limit of {} bytes", server_.config.body_limit),
                              {{"limit", server_.config.body_limit}}},
                        true);
  }
  if (ec) {
    keep_alive_ = false;
    if (method_.empty()) method_ = "-";
    return fail_request(error{errc::invalid_request, fmt::format("malformed HTTP request: {}", ec.message())}, true);
  }
  keep_alive_ = head.keep_alive() && !closing_;
  handle_request();
}

void http_connection::handle_request() {
  ++server_.requests;
  stream_.expires_never();
  auto msg = parser_->release();
  request_context ctx;
  ctx.request = request_head(msg.base(), remote_);
  ctx.request.body = sized_body_ ? std::move(*std::exchange(sized_body_, std::nullopt)) : std::move(msg.body());
  ctx.out = std::make_shared<connection_responder>(shared_from_this(), serial_);
  if (refusal_) return ctx.out->send(*std::exchange(refusal_, std::nullopt));

  if (auto denied = auth_error(server_, ctx.request)) {
    ++server_.auth_failures;
    return ctx.out->send(api::error_response(*denied));
  }
  if (beast::websocket::is_upgrade(msg)) {
    if (const auto* endpoint = server_.routes.match_websocket(ctx)) {
      if (endpoint->admit)
        if (auto refusal = endpoint->admit(ctx)) return ctx.out->send(std::move(*refusal));
      auto ws = std::make_shared<ws_connection>(stream_.release_socket(), server_);
      closed_ = true;  // the socket now belongs to the WebSocket
      status_ = 101;
      log_access();
      endpoint->open(ctx, ws);
      ws->run(std::move(msg));
      return;
    }
  }
  try {
    server_.routes.dispatch(ctx);
  } catch (const std::exception& e) {
    ctx.out->send(api::error_response(error{errc::internal_error, fmt::format("unhandled exception: {}", e.what())}));
  }
}

// Runs once a request's head is in, before its body: the takeover selector may hand the raw
// connection to a handler (preview proxy, ws-connect), which then owns the socket and the bytes
// read so far; the head goes first, re-serialized. A refusal (unknown preview, missing token) is
// answered the usual way once the body is read. Returns true when the connection was taken.
bool http_connection::try_takeover() {
  const auto& msg = parser_->get();
  const http_request head = request_head(msg.base(), remote_);
  auto decision = server_.config.takeover(head);
  if (!decision) return false;
  if (!decision->take) {
    refusal_ = std::move(decision->refusal);
    return false;
  }
  if (decision->authenticated)
    if (auto denied = auth_error(server_, head)) {
      ++server_.auth_failures;
      refusal_ = api::error_response(*denied);
      return false;
    }
  ++server_.requests;
  std::string prelude = fmt::format("{} {} HTTP/{}.{}\r\n", std::string(msg.method_string()), std::string(msg.target()),
                                    msg.version() / 10, msg.version() % 10);
  for (const auto& field : msg) prelude += fmt::format("{}: {}\r\n", std::string(field.name_string()), std::string(field.value()));
  prelude += "\r\n";
  prelude += beast::buffers_to_string(buffer_.data());
  stream_.expires_never();
  closed_ = true;  // the socket now belongs to the handler
  in_exchange_ = false;
  taken_connection taken{stream_.release_socket(), std::move(prelude), remote_, std::move(affinity_),
                         [&server = server_, remote = remote_](tcp::socket socket, std::string leftover,
                                                               std::shared_ptr<connection_affinity> affinity) {
                           if (!server.stopping) start_connection(server, std::move(socket), leftover, remote, std::move(affinity));
                         }};
  decision->take(std::move(taken));
  return true;
}

void http_connection::fail_request(const error& err, bool close) {
  ++server_.requests;
  if (close) keep_alive_ = false;
  respond(serial_, api::error_response(err));
}

template <class Body>
void http_connection::decorate(http::response<Body>& msg) {
  decorate_response(msg, keep_alive_);
}

std::string serialize_response(const http_response& response, bool keep_alive) {
  http::response<http::string_body> msg{static_cast<http::status>(response.status), 11};
  decorate_response(msg, keep_alive);
  if (!response.content_type.empty()) msg.set(http::field::content_type, response.content_type);
  for (const auto& [k, v] : response.headers) msg.set(k, v);
  msg.body() = response.body;
  msg.prepare_payload();
  std::ostringstream wire;
  wire << msg;
  return wire.str();
}

void http_connection::respond(std::uint64_t serial, http_response response) {
  if (serial != serial_ || responded_ || closed_) return;
  responded_ = true;
  status_ = response.status;
  auto msg = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(response.status), 11);
  decorate(*msg);
  if (!response.content_type.empty()) msg->set(http::field::content_type, response.content_type);
  for (auto& [k, v] : response.headers) msg->set(k, v);
  msg->body() = std::move(response.body);
  if (response.status != 204 && response.status != 304) msg->prepare_payload();
  enqueue(full_response{std::move(msg)});
}

void http_connection::begin_stream(std::uint64_t serial, int status, std::string content_type, header_list headers) {
  if (serial != serial_ || responded_ || closed_) return;
  responded_ = streaming_ = true;
  status_ = status;
  auto msg = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(status), 11);
  decorate(*msg);
  msg->set(http::field::content_type, content_type);
  msg->set(http::field::cache_control, "no-cache");
  for (auto& [k, v] : headers) msg->set(k, v);
  msg->chunked(true);
  enqueue(stream_header{std::move(msg)});
  do_probe();
}

void http_connection::write_chunk(std::uint64_t serial, std::string chunk, std::function<void(bool)> written) {
  if (serial != serial_ || !streaming_ || stream_ended_ || closed_) {
    if (written) written(false);
    return;
  }
  if (chunk.empty()) {
    if (written) written(true);
    return;
  }
  enqueue(stream_chunk{std::make_shared<std::string>(std::move(chunk)), std::move(written)});
}

void http_connection::end_stream(std::uint64_t serial) {
  if (serial != serial_ || !streaming_ || stream_ended_ || closed_) return;
  stream_ended_ = true;
  enqueue(stream_last{});
}

void http_connection::set_disconnect_handler(std::uint64_t serial, std::function<void()> handler) {
  if (serial != serial_) return;
  if (client_gone_ && !stream_ended_) {
    if (handler) handler();
    return;
  }
  on_disconnect_ = std::move(handler);
}

void http_connection::enqueue(out_item item) {
  queue_.push_back(std::move(item));
  if (!writing_) do_write();
}

void http_connection::do_write() {
  if (queue_.empty() || closed_) {
    writing_ = false;
    return;
  }
  writing_ = true;
  // A client that stops reading cannot hold the connection (and the cell behind it) forever.
  // Big bodies get extra time at a floor rate of 1 MiB/s, so a slow but live client is not cut.
  std::size_t bytes = 0;
  if (auto* full = std::get_if<full_response>(&queue_.front())) bytes = full->msg->body().size();
  if (auto* chunk = std::get_if<stream_chunk>(&queue_.front())) bytes = chunk->data->size();
  stream_.expires_after(server_.config.write_timeout + std::chrono::milliseconds(bytes >> 10));
  auto self = shared_from_this();
  std::visit(
      [&](auto& item) {
        using T = std::decay_t<decltype(item)>;
        if constexpr (std::is_same_v<T, full_response>) {
          auto msg = item.msg;
          http::async_write(stream_, *msg, [self, msg](beast::error_code ec, std::size_t n) { self->on_write(true, ec, n); });
        } else if constexpr (std::is_same_v<T, stream_header>) {
          auto msg = item.msg;
          header_serializer_.emplace(*msg);
          http::async_write_header(stream_, *header_serializer_,
                                   [self, msg](beast::error_code ec, std::size_t n) { self->on_write(false, ec, n); });
        } else if constexpr (std::is_same_v<T, stream_chunk>) {
          auto data = item.data;
          net::async_write(stream_, http::make_chunk(net::buffer(*data)),
                           [self, data, written = std::move(item.written)](beast::error_code ec, std::size_t n) {
                             if (written) written(!ec);
                             self->on_write(false, ec, n);
                           });
        } else {
          net::async_write(stream_, http::make_chunk_last(),
                           [self](beast::error_code ec, std::size_t n) { self->on_write(true, ec, n); });
        }
      },
      queue_.front());
  queue_.pop_front();
}

void http_connection::on_write(bool last, beast::error_code ec, std::size_t) {
  writing_ = false;
  if (!ec) stream_.expires_never();
  if (ec == beast::error::timeout) {
    ++server_.write_timeouts;
    kh::log::get("server")->warn("{} {}: the client took nothing for {} ms: closing", method_, target_.substr(0, target_.find('?')),
                                 server_.config.write_timeout.count());
  }
  if (ec) {
    client_gone_ = true;
    if (streaming_ && !stream_ended_ && on_disconnect_) std::exchange(on_disconnect_, nullptr)();
    log_access();
    return do_close();
  }
  if (last) return finish_exchange();
  do_write();
}

void http_connection::drop_queue() {
  for (auto& item : queue_)
    if (auto* chunk = std::get_if<stream_chunk>(&item); chunk && chunk->written) chunk->written(false);
  queue_.clear();
}

void http_connection::finish_exchange() {
  log_access();
  drop_queue();
  header_serializer_.reset();
  on_disconnect_ = nullptr;
  if (!keep_alive_ || closing_) return do_close();
  if (probe_pending_) {
    // The probe read continues the connection when it completes (cancelled or with data).
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  do_read();
}

// While a stream is open, a pending read tells us when the client goes away.
void http_connection::do_probe() {
  if (probe_pending_) return;
  probe_pending_ = true;
  stream_.socket().async_read_some(buffer_.prepare(8192),
                                   beast::bind_front_handler(&http_connection::on_probe, shared_from_this()));
}

void http_connection::on_probe(beast::error_code ec, std::size_t n) {
  probe_pending_ = false;
  if (!ec) buffer_.commit(n);
  const bool exchange_open = streaming_ && !stream_ended_ && !closed_;
  if (ec && ec != net::error::operation_aborted) {
    client_gone_ = true;
    if (exchange_open) {
      if (on_disconnect_) std::exchange(on_disconnect_, nullptr)();
      log_access();
    }
    return do_close();
  }
  if (exchange_open) return do_probe();   // pipelined bytes: keep them, keep watching
  if (ec == net::error::operation_aborted && writing_) return;  // should not happen
  if (!in_exchange_ || (streaming_ && stream_ended_ && !writing_ && queue_.empty())) {
    if (closed_) return;
    return do_read();
  }
}

void http_connection::do_close() {
  if (closed_) return;
  closed_ = true;
  drop_queue();
  if (in_exchange_ && !responded_) status_ = 0;
  if (streaming_ && !stream_ended_ && on_disconnect_) std::exchange(on_disconnect_, nullptr)();
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec || server_.stopping || probe_pending_) {
    stream_.socket().close(ec);
    return;
  }
  // Lingering close: read and drop what the client still sends (an unread oversized body)
  // for a moment, so the kernel does not answer it with a reset that loses our response.
  stream_.expires_after(std::chrono::seconds(2));
  do_drain();
}

void http_connection::do_drain() {
  auto scratch = std::make_shared<std::array<char, 16384>>();
  stream_.async_read_some(net::buffer(*scratch), [self = shared_from_this(), scratch](beast::error_code ec, std::size_t) {
    if (ec) {
      beast::error_code ignored;
      self->stream_.socket().close(ignored);
      return;
    }
    self->do_drain();
  });
}

void http_connection::log_access() {
  if (status_ == 0) return;
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started_).count();
  access_log()->info("{} {} {} {:.3f}ms remote={}", method_, target_.substr(0, target_.find('?')), status_, us / 1000.0, remote_);
  status_ = 0;
}

// ---- the listener ---------------------------------------------------------------------------

struct http_server::impl {
  server_shared shared;
  tcp::acceptor acceptor{shared.ioc};
  std::vector<std::thread> threads;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  bool running = false;

  impl(server_config c, const router& r) : shared(std::move(c), r) {}

  void do_accept() {
    acceptor.async_accept(net::make_strand(shared.ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        kh::log::get("server")->warn("accept failed: {}", ec.message());
      } else {
        start_connection(shared, std::move(socket));
      }
      do_accept();
    });
  }

  std::vector<std::shared_ptr<http_connection>> live_connections() {
    std::vector<std::shared_ptr<http_connection>> out;
    std::lock_guard lock(shared.connections_mutex);
    for (auto& w : shared.connections)
      if (auto c = w.lock()) out.push_back(std::move(c));
    return out;
  }
};

http_server::http_server(server_config config, const router& routes)
    : impl_(std::make_unique<impl>(std::move(config), routes)) {}

http_server::~http_server() { stop(std::chrono::milliseconds(0)); }

result<void> http_server::start() {
  auto& cfg = impl_->shared.config;
  beast::error_code ec;
  std::string host = cfg.host == "localhost" ? "127.0.0.1" : cfg.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto address = net::ip::make_address(host, ec);
  if (ec) return fail(errc::invalid_request, fmt::format("cannot listen on '{}': not an IP address", cfg.host));
  tcp::endpoint endpoint(address, cfg.port);
  auto& acc = impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) ::fcntl(acc.native_handle(), F_SETFD, FD_CLOEXEC);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail(errc::io_error, fmt::format("cannot listen on {}:{}: {}", cfg.host, cfg.port, ec.message()));
  impl_->work.emplace(impl_->shared.ioc.get_executor());
  impl_->do_accept();
  for (int i = 0; i < std::max(1, cfg.threads); ++i)
    impl_->threads.emplace_back([this] { impl_->shared.ioc.run(); });
  impl_->running = true;
  return {};
}

std::uint16_t http_server::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void http_server::stop(std::chrono::milliseconds deadline) {
  if (!impl_->running) return;
  impl_->running = false;
  impl_->shared.stopping = true;
  net::post(impl_->shared.ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  for (auto& c : impl_->live_connections()) c->close_when_idle();
  {
    std::unique_lock lock(impl_->shared.connections_mutex);
    impl_->shared.connections_cv.wait_for(lock, deadline, [this] { return impl_->shared.open.load() == 0; });
  }
  for (auto& c : impl_->live_connections()) c->close_now();
  {
    std::unique_lock lock(impl_->shared.connections_mutex);
    impl_->shared.connections_cv.wait_for(lock, std::chrono::seconds(2), [this] { return impl_->shared.open.load() == 0; });
  }
  impl_->work.reset();
  impl_->shared.ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
}

server_counters http_server::counters() const {
  return {impl_->shared.requests.load(), impl_->shared.open.load(), impl_->shared.auth_failures.load(),
          impl_->shared.write_timeouts.load()};
}

}  // namespace kh::server
