#include "kernel_host/server/upload_body.hpp"

#include <poll.h>

#include <algorithm>
#include <limits>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/log.hpp"

namespace kh::server {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::size_t kPiece = 1u << 20;
constexpr std::uint64_t kSkippable = 16u << 20;  // an unread rest up to this size is read and dropped to keep the connection

// Beast's SyncReadStream over a non-blocking socket that gives up after `idle` without a byte.
class idle_limited_reader {
 public:
  using executor_type = tcp::socket::executor_type;
  idle_limited_reader(tcp::socket& socket, std::chrono::milliseconds idle) : socket_(socket), idle_(idle) {}
  executor_type get_executor() { return socket_.get_executor(); }

  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    for (;;) {
      const std::size_t n = socket_.read_some(buffers, ec);
      if (ec != net::error::would_block && ec != net::error::try_again) return n;
      pollfd p{socket_.native_handle(), POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(idle_.count()));
      if (r == 0) {
        ec = net::error::timed_out;
        return 0;
      }
      if (r < 0 && errno != EINTR) {
        ec = beast::error_code(errno, beast::system_category());
        return 0;
      }
    }
  }

 private:
  tcp::socket& socket_;
  std::chrono::milliseconds idle_;
};

}  // namespace

struct upload_body::impl {
  impl(taken_connection c, std::chrono::milliseconds i) : conn(std::move(c)), idle(i) {}
  taken_connection conn;
  std::chrono::milliseconds idle;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::uint64_t received = 0;  // body bytes handed out by next()
  beast::flat_buffer buffer;
  http::request_parser<http::buffer_body> parser;
  std::vector<char> piece = std::vector<char>(kPiece);
  bool failed = false;
  bool given_back = false;
  // A Content-Length body is read straight into `piece` (no copy through the parser, reads of up to
  // 1 MiB); a chunked one goes through Beast's parser.
  bool direct = false;
  std::uint64_t remaining = 0;

  bool body_done() const { return direct ? remaining == 0 : parser.is_done(); }
};

upload_body::upload_body(taken_connection conn, std::chrono::milliseconds idle)
    : impl_(std::make_unique<impl>(std::move(conn), idle)) {
  auto& i = *impl_;
  const auto& prelude = i.conn.prelude;
  i.buffer.commit(net::buffer_copy(i.buffer.prepare(prelude.size()), net::buffer(prelude)));
  i.parser.header_limit(64 * 1024);
  i.parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  beast::error_code ec;
  i.conn.socket.non_blocking(true, ec);
  idle_limited_reader reader(i.conn.socket, i.idle);
  if (!ec) http::read_header(reader, i.buffer, i.parser, ec);
  // A client that waits for a go-ahead before the body (curl does above 1 MiB) gets it at once.
  if (!ec && !i.parser.is_done() && beast::iequals(i.parser.get()[http::field::expect], "100-continue")) {
    i.conn.socket.non_blocking(false, ec);
    if (!ec) net::write(i.conn.socket, net::buffer(kContinueResponse), ec);
    if (!ec) i.conn.socket.non_blocking(true, ec);
  }
  i.failed = static_cast<bool>(ec);
  if (!i.failed && !i.parser.chunked() && i.parser.content_length()) {
    i.direct = true;
    i.remaining = *i.parser.content_length();
  }
}

upload_body::~upload_body() {
  if (impl_->given_back) return;
  beast::error_code ec;
  impl_->conn.socket.shutdown(tcp::socket::shutdown_both, ec);
  impl_->conn.socket.close(ec);
}

result<std::string_view> upload_body::next() {
  auto& i = *impl_;
  if (i.failed) return fail(errc::invalid_request, "the upload was cut or malformed");
  idle_limited_reader reader(i.conn.socket, i.idle);
  if (i.direct) {
    std::size_t filled = 0;
    if (const std::size_t early = std::min<std::uint64_t>({i.buffer.size(), i.remaining, i.piece.size()})) {  // came with the head
      net::buffer_copy(net::buffer(i.piece.data(), early), i.buffer.data());
      i.buffer.consume(early);
      filled = early;
      i.remaining -= early;
    }
    while (filled < i.piece.size() && i.remaining > 0) {
      beast::error_code ec;
      const std::size_t want = std::min<std::uint64_t>(i.piece.size() - filled, i.remaining);
      const std::size_t n = reader.read_some(net::buffer(i.piece.data() + filled, want), ec);
      if (ec) {
        i.failed = true;
        return fail(errc::invalid_request, "the upload was cut: " + ec.message());
      }
      filled += n;
      i.remaining -= n;
    }
    i.received += filled;
    return std::string_view(i.piece.data(), filled);
  }
  while (!i.parser.is_done()) {
    i.parser.get().body().data = i.piece.data();
    i.parser.get().body().size = i.piece.size();
    beast::error_code ec;
    http::read(reader, i.buffer, i.parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      i.failed = true;
      return fail(errc::invalid_request, "the upload was cut or malformed: " + ec.message());
    }
    const std::size_t n = i.piece.size() - i.parser.get().body().size;
    i.received += n;
    if (n > 0) return std::string_view(i.piece.data(), n);
  }
  return std::string_view{};
}

void upload_body::respond(const http_response& response) {
  auto& i = *impl_;
  // What the handler did not read: skipped when small, so a keep-alive client keeps its connection
  // (and reads this response rather than a reset).
  for (std::uint64_t skipped = 0; !i.failed && !i.body_done() && skipped <= kSkippable;) {
    auto piece = next();
    if (!piece) break;
    skipped += piece->size();
  }
  const bool keep = !i.failed && i.body_done() && i.parser.get().keep_alive();
  const std::string wire = serialize_response(response, keep);
  beast::error_code ec;
  i.conn.socket.non_blocking(false, ec);
  net::write(i.conn.socket, net::buffer(wire), ec);
  // The access log line the server writes for the requests it reads itself.
  static const auto access_log = kh::log::get("access");
  const auto& head = i.parser.get();
  const std::string_view target(head.target().data(), head.target().size());
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - i.started).count();
  access_log->info("{} {} {} {:.3f}ms remote={} bytes={}", std::string_view(head.method_string().data(), head.method_string().size()),
                   target.substr(0, target.find('?')), response.status, us / 1000.0, i.conn.remote, i.received);
  if (ec || !keep) return;
  i.given_back = true;
  auto& socket = i.conn.socket;
  net::post(socket.get_executor(), [resume = std::move(i.conn.resume), socket = std::move(socket),
                                    leftover = beast::buffers_to_string(i.buffer.data())]() mutable {
    resume(std::move(socket), std::move(leftover), nullptr);
  });
}

}  // namespace kh::server
