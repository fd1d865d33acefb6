#include "kernel_host/server/http_proxy.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <limits>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "common/log.hpp"
#include "kernel_host/api/error_mapping.hpp"

namespace kh::server {

namespace {

// No EOF or error waiting on an idle connection: the upstream has not closed it.
bool still_open(int fd) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

// ---- upstream_pool ------------------------------------------------------------------------------

upstream_pool::~upstream_pool() {
  for (auto& [key, idle] : idle_)
    for (const auto& c : idle) ::close(c.fd);
}

int upstream_pool::take(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return -1;
  const auto oldest = std::chrono::steady_clock::now() - max_idle_;
  while (!it->second.empty()) {
    const auto c = it->second.back();
    it->second.pop_back();
    // Closed by the upstream while idle (EOF or an error pending), or about to be? Then it is of no use.
    if (c.since >= oldest && still_open(c.fd)) return c.fd;
    ::close(c.fd);
  }
  return -1;
}

void upstream_pool::give(const std::string& key, int fd) {
  std::lock_guard lock(mutex_);
  auto& idle = idle_[key];
  if (idle.size() >= 64) {
    ::close(fd);
    return;
  }
  idle.push_back({fd, std::chrono::steady_clock::now()});
}

void upstream_pool::drop(std::string_view key_prefix) {
  std::lock_guard lock(mutex_);
  for (auto it = idle_.lower_bound(key_prefix); it != idle_.end() && it->first.starts_with(key_prefix);) {
    for (const auto& c : it->second) ::close(c.fd);
    it = idle_.erase(it);
  }
}

// ---- one exchange -------------------------------------------------------------------------------

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using net::awaitable;
using net::redirect_error;
using net::use_awaitable;
constexpr std::size_t kSlice = 64 * 1024;

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

// Errors are built outside the coroutines: GCC 12 mishandles initializer lists in coroutine frames.
error upstream_error(errc code, std::uint16_t port, std::string message) {
  return error{code, std::move(message), nl::json{{"port", port}}};
}

error closed_without_answer(std::uint16_t port, const std::string& why) {
  return upstream_error(errc::service_not_responding, port,
                        fmt::format("the service on port {} closed the connection without an answer ({})", port, why));
}

std::shared_ptr<spdlog::logger> access_log() {
  static auto logger = kh::log::get("access");
  return logger;
}

// The upstream connection of a client connection's last exchange, kept with the client
// connection: its next request to the same service goes out on it without the pool (no
// re-registration with the reactor, no lock). Same strand as the client connection.
struct upstream_affinity final : connection_affinity {
  upstream_affinity(tcp::socket s, std::string key) : socket(std::move(s)), pool_key(std::move(key)) {}
  tcp::socket socket;
  std::string pool_key;
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
};

class exchange : public std::enable_shared_from_this<exchange> {
 public:
  exchange(taken_connection conn, proxy_route route, std::shared_ptr<upstream_pool> pool)
      : client_(std::move(conn.socket)),
        upstream_(client_.get_executor()),
        remote_(std::move(conn.remote)),
        affinity_(std::dynamic_pointer_cast<upstream_affinity>(conn.affinity)),
        resume_(std::move(conn.resume)),
        route_(std::move(route)),
        pool_(std::move(pool)),
        started_(std::chrono::steady_clock::now()) {
    cbuf_.commit(net::buffer_copy(cbuf_.prepare(conn.prelude.size()), net::buffer(conn.prelude)));
    req_.header_limit(64 * 1024);
    req_.body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  void start() {
    net::co_spawn(client_.get_executor(), [self = shared_from_this()] { return self->run(); }, net::detached);
  }

 private:
  awaitable<void> run() {
    beast::error_code ec;
    co_await http::async_read_header(client_, cbuf_, req_, redirect_error(use_awaitable, ec));
    if (ec) co_return close_all();
    auto& req = req_.get();
    method_ = sv(req.method_string());
    target_ = sv(req.target());
    client_keep_alive_ = req.keep_alive();
    upgrade_ = !req[http::field::upgrade].empty();
    bodyless_ = req_.is_done() && !upgrade_;

    if (auto connected = co_await connect_upstream(true); !connected) {
      co_await answer_error(connected.error());
      co_return;
    }

    // The request as the upstream sees it: its own target and Host, where it came from in X-Forwarded-*.
    const std::string host(sv(req[http::field::host]));
    const std::string client_ip = remote_.substr(0, remote_.rfind(':'));
    if (auto xff = req["X-Forwarded-For"]; !xff.empty()) req.set("X-Forwarded-For", fmt::format("{}, {}", sv(xff), client_ip));
    else req.set("X-Forwarded-For", client_ip);
    req.set("X-Forwarded-Host", host);
    req.set("X-Forwarded-Proto", "http");
    req.set("X-Original-URL", fmt::format("http://{}{}", host, target_));
    req.set(http::field::host, fmt::format("localhost:{}", route_.port));
    req.target(route_.upstream_target);
    req.version(11);
    if (!upgrade_) req.keep_alive(true);

    // A request without a body goes out whole before its answer is read, so it can go again on a
    // fresh connection. With a body, both directions at once: an upstream may answer before it
    // has read the whole body.
    if (!bodyless_)
      net::co_spawn(client_.get_executor(), [self = shared_from_this()] { return self->relay_request(); }, net::detached);
    co_await relay_response();
  }

  // A pooled connection (when allowed), or a new one from route_.open_socket, connected to
  // 127.0.0.1:port.
  awaitable<result<void>> connect_upstream(bool pooled) {
    reused_ = false;
    if (auto kept = std::exchange(affinity_, nullptr); kept && pooled) {
      if (kept->pool_key == route_.pool_key && kept->socket.is_open() &&
          std::chrono::steady_clock::now() - kept->since < pool_->max_idle() && (bodyless_ || still_open(kept->socket.native_handle()))) {
        upstream_ = std::move(kept->socket);
        reused_ = true;
        co_return result<void>{};
      }
      give_to_pool(kept->socket, kept->pool_key);  // another service's: for whoever wants it
    }
    if (int fd = pooled ? pool_->take(route_.pool_key) : -1; fd >= 0) {
      beast::error_code ec;
      upstream_.assign(tcp::v4(), fd, ec);
      reused_ = !ec;
      if (!ec) co_return result<void>{};
    }
    // open_socket may call back on another thread: hand the result to this strand, wake up.
    auto got = std::make_shared<std::optional<result<int>>>();
    auto wake = std::make_shared<net::steady_timer>(client_.get_executor(), net::steady_timer::time_point::max());
    route_.open_socket([ex = client_.get_executor(), got, wake](result<int> r) {
      net::post(ex, [got, wake, r = std::move(r)]() mutable {
        *got = std::move(r);
        wake->cancel();
      });
    });
    beast::error_code ec;
    while (!*got) co_await wake->async_wait(redirect_error(use_awaitable, ec));
    if (!**got) co_return std::unexpected((**got).error());
    upstream_.assign(tcp::v4(), (**got).value(), ec);
    if (ec) {
      ::close((**got).value());
      co_return std::unexpected(upstream_error(errc::io_error, route_.port, fmt::format("upstream socket: {}", ec.message())));
    }
    co_await upstream_.async_connect(tcp::endpoint(net::ip::address_v4::loopback(), route_.port), redirect_error(use_awaitable, ec));
    if (ec)
      co_return std::unexpected(upstream_error(errc::service_not_responding, route_.port,
                                               fmt::format("nothing answers on port {}: {}", route_.port, ec.message())));
    upstream_.set_option(tcp::no_delay(true), ec);
    co_return result<void>{};
  }

  awaitable<void> relay_request() {
    auto self = shared_from_this();
    http::request_serializer<http::buffer_body> sr{req_.get()};
    bool upstream_failed = false;
    auto ec = co_await relay_body(client_, cbuf_, req_, upstream_, sr, upstream_failed);
    request_done_ = !ec;
    if (!ec || response_done_) co_return;
    // The upstream stopped taking the body: without an answer yet, closing it makes the answer
    // an error (502); with one, the answer goes on and the client's connection closes after it.
    if (upstream_failed) {
      if (!answered_) upstream_.close(ec);
      co_return;
    }
    close_all();  // the client went away
  }

  // A request without a body, sent whole. False when the upstream connection failed.
  awaitable<bool> send_bodyless_request() {
    auto& body = req_.get().body();
    body.data = nullptr;
    body.size = 0;
    body.more = false;
    http::request_serializer<http::buffer_body> sr{req_.get()};
    beast::error_code ec;
    co_await http::async_write(upstream_, sr, redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    request_done_ = !ec;
    co_return !ec;
  }

  // A pooled connection may have been closed by the upstream just as the request went out on it
  // (its idle timeout): nothing of an answer came. A request without a body goes again, once, on
  // a fresh connection.
  bool may_retry() const { return bodyless_ && reused_ && !retried_ && !answered_ && ubuf_.size() == 0; }

  awaitable<result<void>> retry_on_fresh_connection() {
    retried_ = true;
    beast::error_code ec;
    upstream_.close(ec);
    if (auto connected = co_await connect_upstream(false); !connected) co_return connected;
    if (!co_await send_bodyless_request())
      co_return std::unexpected(closed_without_answer(route_.port, "the request could not be sent"));
    co_return result<void>{};
  }

  awaitable<void> relay_response() {
    auto self = shared_from_this();
    beast::error_code ec;
    if (bodyless_ && !co_await send_bodyless_request()) {
      auto retried = may_retry() ? co_await retry_on_fresh_connection()
                                 : result<void>(std::unexpected(closed_without_answer(route_.port, "the request could not be sent")));
      if (!retried) {
        co_await answer_error(retried.error());
        co_return;
      }
    }
    for (;;) {
      res_.emplace();
      res_->header_limit(64 * 1024);
      res_->body_limit(std::numeric_limits<std::uint64_t>::max());
      if (method_ == "HEAD") res_->skip(true);
      co_await http::async_read_header(upstream_, ubuf_, *res_, redirect_error(use_awaitable, ec));
      if (ec && may_retry()) {
        auto retried = co_await retry_on_fresh_connection();
        if (retried) continue;
        co_await answer_error(retried.error());
        co_return;
      }
      if (ec) {
        if (!answered_) {
          co_await answer_error(closed_without_answer(route_.port, ec.message()));
        } else {
          close_all();
        }
        co_return;
      }
      auto& res = res_->get();
      status_ = res.result_int();
      answered_ = true;
      if (status_ == 101) co_return co_await pipe_after_upgrade();
      if (status_ >= 100 && status_ < 200) {  // 100 Continue, 103 Early Hints: pass on, then the real answer
        http::response_serializer<http::buffer_body> sr{res};
        co_await http::async_write_header(client_, sr, redirect_error(use_awaitable, ec));
        if (ec) co_return close_all();
        continue;
      }
      break;
    }
    auto& res = res_->get();
    const bool upstream_reusable = res_->keep_alive();
    const bool has_body = !(method_ == "HEAD" || status_ == 204 || status_ == 304);
    // Close-delimited (HTTP/1.0 style): re-frame as chunked so the client's connection survives.
    if (has_body && !res_->chunked() && !res_->content_length()) res.chunked(true);
    res.version(11);
    res.keep_alive(client_keep_alive_);
    http::response_serializer<http::buffer_body> sr{res};
    bool client_failed = false;
    ec = co_await relay_body(upstream_, ubuf_, *res_, client_, sr, client_failed);
    response_done_ = true;
    log_access();
    if (ec) co_return close_all();
    finish(upstream_reusable);
  }

  // Beast's relay, asynchronous and with read_some so a slow stream (SSE) flows as it comes.
  // out_failed tells a failure to write to `out` from one to read from `in`.
  template <bool isRequest>
  awaitable<beast::error_code> relay_body(tcp::socket& in, beast::flat_buffer& buf, http::parser<isRequest, http::buffer_body>& p,
                                          tcp::socket& out, http::serializer<isRequest, http::buffer_body>& sr, bool& out_failed) {
    beast::error_code ec;
    std::unique_ptr<char[]> slice(new char[kSlice]);
    // With body bytes already read (a small answer is usually whole), the head goes out with the
    // first piece in one write; with none yet (a stream), the head goes now, alone.
    if (!p.is_done() && buf.size() == 0) {
      co_await http::async_write_header(out, sr, redirect_error(use_awaitable, ec));
      out_failed = static_cast<bool>(ec);
      if (ec) co_return ec;
    }
    do {
      if (!p.is_done()) {
        p.get().body().data = slice.get();
        p.get().body().size = kSlice;
        co_await http::async_read_some(in, buf, p, redirect_error(use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return ec;
        p.get().body().size = kSlice - p.get().body().size;
        // An empty buffer with data set would go out as a zero-size chunk: the end of the body.
        p.get().body().data = p.get().body().size ? slice.get() : nullptr;
        p.get().body().more = !p.is_done();
        if (p.get().body().size == 0 && !p.is_done()) continue;
      } else {
        p.get().body().data = nullptr;
        p.get().body().size = 0;
        p.get().body().more = false;
      }
      co_await http::async_write(out, sr, redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      out_failed = static_cast<bool>(ec);
      if (ec) co_return ec;
    } while (!p.is_done() && !sr.is_done());  // as Beast's relay: one more write would repeat the last chunk
    co_return ec;
  }

  // After a 101: the answer's head goes to the client, then bytes flow both ways until both end.
  awaitable<void> pipe_after_upgrade() {
    beast::error_code ec;
    http::response_serializer<http::buffer_body> sr{res_->get()};
    co_await http::async_write_header(client_, sr, redirect_error(use_awaitable, ec));
    log_access();
    if (ec || !request_done_) co_return close_all();
    net::co_spawn(client_.get_executor(), [self = shared_from_this()] { return self->pipe(self->client_, self->cbuf_, self->upstream_); },
                  net::detached);
    co_await pipe(upstream_, ubuf_, client_);
  }

  awaitable<void> pipe(tcp::socket& from, beast::flat_buffer& pending, tcp::socket& to) {
    auto self = shared_from_this();
    beast::error_code ec;
    if (pending.size() > 0) {
      co_await net::async_write(to, pending.data(), redirect_error(use_awaitable, ec));
      pending.consume(pending.size());
    }
    std::unique_ptr<char[]> slice(new char[kSlice]);
    while (!ec) {
      const std::size_t n = co_await from.async_read_some(net::buffer(slice.get(), kSlice), redirect_error(use_awaitable, ec));
      if (ec) break;
      co_await net::async_write(to, net::buffer(slice.get(), n), redirect_error(use_awaitable, ec));
    }
    if (ec == net::error::eof) {
      to.shutdown(tcp::socket::shutdown_send, ec);  // half-close: the other direction may go on
      if (++pipes_ended_ == 2) close_all();
    } else {
      close_all();
    }
  }

  // An error before any answer from upstream: our JSON error, then the connection closes (the
  // request body may still be on the wire).
  awaitable<void> answer_error(const error& err) {
    auto r = api::error_response(err);
    auto msg = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), 11);
    msg->set(http::field::server, "kernel-host");
    msg->set(http::field::content_type, r.content_type);
    msg->set(http::field::access_control_allow_origin, "*");
    msg->body() = std::move(r.body);
    msg->keep_alive(false);
    msg->prepare_payload();
    status_ = r.status;
    answered_ = response_done_ = true;
    log_access();
    beast::error_code ec;
    co_await http::async_write(client_, *msg, redirect_error(use_awaitable, ec));
    client_.shutdown(tcp::socket::shutdown_send, ec);
    close_all();
  }

  // A whole exchange: the client's connection back to the server, with the upstream connection
  // kept beside it for its next request (else to the pool).
  void finish(bool upstream_reusable) {
    beast::error_code ec;
    const bool reusable = request_done_ && upstream_reusable && ubuf_.size() == 0;
    if (request_done_ && client_keep_alive_ && resume_) {
      std::shared_ptr<connection_affinity> kept;
      if (reusable) kept = std::make_shared<upstream_affinity>(std::move(upstream_), route_.pool_key);
      else upstream_.close(ec);
      auto resume = std::exchange(resume_, nullptr);
      resume(std::move(client_), beast::buffers_to_string(cbuf_.data()), std::move(kept));
      return;
    }
    if (reusable) give_to_pool(upstream_, route_.pool_key);
    else upstream_.close(ec);
    client_.shutdown(tcp::socket::shutdown_send, ec);
    client_.close(ec);
  }

  void give_to_pool(tcp::socket& socket, const std::string& key) {
    beast::error_code ec;
    const int fd = socket.release(ec);
    if (ec) socket.close(ec);
    else pool_->give(key, fd);
  }

  void close_all() {
    beast::error_code ec;
    if (client_.is_open()) client_.close(ec);
    if (upstream_.is_open()) upstream_.close(ec);
  }

  void log_access() {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_).count();
    access_log()->info("{} {} {} {:.3f}ms remote={} proxy=:{}", method_, target_.substr(0, target_.find('?')), status_, us / 1000.0,
                       remote_, route_.port);
  }

  tcp::socket client_;
  tcp::socket upstream_;
  beast::flat_buffer cbuf_, ubuf_;
  http::request_parser<http::buffer_body> req_;
  std::optional<http::response_parser<http::buffer_body>> res_;
  std::string remote_;
  std::shared_ptr<upstream_affinity> affinity_;  // the upstream connection this client's last exchange used
  std::function<void(tcp::socket, std::string, std::shared_ptr<connection_affinity>)> resume_;
  proxy_route route_;
  std::shared_ptr<upstream_pool> pool_;
  std::chrono::steady_clock::time_point started_;
  std::string method_, target_;
  int status_ = 0;
  int pipes_ended_ = 0;
  bool client_keep_alive_ = false;
  bool upgrade_ = false;
  bool bodyless_ = false;  // the request has no body: sent whole, may go again on a fresh connection
  bool reused_ = false;    // the upstream connection came from the pool
  bool retried_ = false;
  bool answered_ = false;
  bool request_done_ = false;
  bool response_done_ = false;
};

}  // namespace

void proxy_exchange(taken_connection conn, proxy_route route, std::shared_ptr<upstream_pool> pool) {
  std::make_shared<exchange>(std::move(conn), std::move(route), std::move(pool))->start();
}

}  // namespace kh::server
