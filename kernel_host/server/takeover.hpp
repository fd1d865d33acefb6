#pragma once
// Connection takeover: after a request's head is read, and before any of its body, a handler may
// take the raw connection (the preview reverse proxy, ws-connect). It gets the socket and every
// byte read but not consumed, starting with the request head itself (re-serialized), so it can
// parse the stream from the start, stream the body, and give the connection back for the next
// request of a keep-alive client.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include "kernel_host/server/http_types.hpp"

namespace kh::server {

// What a handler keeps with a client connection between its exchanges (the proxy: the upstream
// connection of the last one, so the next request to the same service skips the pool). The
// server holds it, opaque, until the connection's next takeover or its end.
struct connection_affinity {
  virtual ~connection_affinity() = default;
};

struct taken_connection {
  boost::asio::ip::tcp::socket socket;  // on the connection's strand
  std::string prelude;                  // the request head, then any bytes read after it
  std::string remote;                   // "ip:port" of the client
  std::shared_ptr<connection_affinity> affinity;  // what the last taker of this connection left, if any
  // Hands the socket back to the server, which reads the next request from `leftover` then the
  // socket, and keeps `affinity` for the next taker. Call at most once, from the socket's strand,
  // when a whole exchange is done.
  std::function<void(boost::asio::ip::tcp::socket socket, std::string leftover, std::shared_ptr<connection_affinity> affinity)> resume;
};

using takeover_handler = std::function<void(taken_connection)>;

// The go-ahead for a client that sent `Expect: 100-continue` and waits before its body.
inline constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";

// A response as the server writes its own (CORS headers, Server, Content-Length), for a handler
// that answers on a taken connection.
std::string serialize_response(const http_response& response, bool keep_alive);

// What to do with a request, decided from its head alone.
struct takeover_decision {
  takeover_handler take;                 // the handler that takes the connection
  std::optional<http_response> refusal;  // or: the server answers this (after reading the body)
  bool authenticated = true;             // take: the daemon's --token applies first
};

// Returns nullopt for requests the router serves as usual. Runs on an I/O thread: no blocking.
using takeover_selector = std::function<std::optional<takeover_decision>(const http_request& head)>;

}  // namespace kh::server
