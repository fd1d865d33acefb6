#pragma once
// http_proxy: a reverse proxy for one request of a taken-over connection (see takeover.hpp).
// The request head goes upstream with X-Forwarded-For/-Host/-Proto and X-Original-URL, the body
// streams in 64 KiB slices as it arrives (chunked stays chunked), and the answer streams back the
// same way, untouched otherwise (a redirect's Location included). A close-delimited answer is
// re-framed as chunked so the client's connection stays open. A 101 answer turns the connection
// into a byte pipe both ways (WebSocket pass-through). After a whole exchange the client's
// connection goes back to the server (keep-alive) and the upstream connection to a pool.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "kernel_host/server/takeover.hpp"

namespace kh::server {

// Idle upstream connections by key (e.g. "sandbox/port"), for reuse. Thread-safe. A connection
// idle longer than max_idle is closed rather than reused: servers close idle keep-alive
// connections on their own (Node after 5 s), and one closed just as a request goes out on it is
// lost. (The proxy retries a request without a body on a fresh connection when that happens.)
class upstream_pool {
 public:
  explicit upstream_pool(std::chrono::milliseconds max_idle = std::chrono::milliseconds(4000)) : max_idle_(max_idle) {}
  ~upstream_pool();
  // An idle connection that the upstream has not closed and that is not too old, or -1.
  int take(const std::string& key);
  std::chrono::milliseconds max_idle() const noexcept { return max_idle_; }
  void give(const std::string& key, int fd);
  // Closes the idle connections of every key that starts with the prefix.
  void drop(std::string_view key_prefix);

 private:
  struct idle_connection {
    int fd;
    std::chrono::steady_clock::time_point since;
  };
  const std::chrono::milliseconds max_idle_;
  std::mutex mutex_;
  std::map<std::string, std::vector<idle_connection>, std::less<>> idle_;
};

struct proxy_route {
  std::string upstream_target;  // the request target sent upstream ("/path?query")
  std::uint16_t port = 0;       // on the upstream's 127.0.0.1
  std::string pool_key;         // upstream connections are reused within a key
  // Opens an unconnected, non-blocking TCP socket from which 127.0.0.1:port is the upstream
  // (e.g. inside a sandbox's network namespace); may call back on any thread.
  std::function<void(std::function<void(result<int>)>)> open_socket;
  // Held while the exchange lives (a WebSocket until it closes): e.g. the sandbox's activity.
  std::shared_ptr<void> hold;
};

// Serves the first request of `conn` through `route`.
void proxy_exchange(taken_connection conn, proxy_route route, std::shared_ptr<upstream_pool> pool);

}  // namespace kh::server
