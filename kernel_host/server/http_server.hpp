#pragma once
// http_server: the Beast HTTP/1.1 listener. One io_context run by a few threads, a strand per
// connection, TCP_NODELAY, keep-alive, bounded bodies (413), header and idle timeouts, token
// auth, CORS on every response, one access-log line per request, SSE streaming with client
// disconnect detection, and a graceful stop with a deadline.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/error.hpp"
#include "kernel_host/server/router.hpp"
#include "kernel_host/server/takeover.hpp"

namespace kh::server {

struct server_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 3000;  // 0: any free port (see http_server::port())
  std::string token;          // empty: no authentication
  std::size_t body_limit = 128ull << 20;
  std::chrono::milliseconds header_timeout{30'000};  // from the first byte of a request to its last header
  std::chrono::milliseconds idle_timeout{255'000};   // a keep-alive connection with no request; also a stalled body
  std::chrono::milliseconds write_timeout{30'000};   // one write (response, stream chunk, WebSocket frame) not taken by the client (+1 ms per KiB of body)
  int threads = 2;
  takeover_selector takeover;  // may be empty: the router serves every request
};

// A WebSocket upgrade request handed over to the handler registered for its path.
// Set by the composition root; the implementation lives in http_server.cpp.
struct server_counters {
  std::uint64_t requests = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t auth_failures = 0;
  std::uint64_t write_timeouts = 0;  // connections closed because the client took nothing in time
};

class http_server {
 public:
  http_server(server_config config, const router& routes);
  ~http_server();  // stops (without a deadline) if still running
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  // Binds, listens and starts the I/O threads.
  result<void> start();
  std::uint16_t port() const;

  // Stops accepting, lets in-flight requests finish until `deadline`, then closes every
  // connection (streams see a disconnect), and joins the I/O threads.
  void stop(std::chrono::milliseconds deadline);

  server_counters counters() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

// Constant-time comparison of a presented token with the expected one.
bool token_matches(std::string_view presented, std::string_view expected);

// The token a request presents: "Authorization: Bearer T", "Authorization: token T", or ?token=T.
std::string presented_token(const http_request& request);

}  // namespace kh::server
