#pragma once
// The transport-neutral request and response model the router and API handlers see.
// Nothing here includes Beast: only http_server.cpp does, so handler files compile quickly.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kh::server {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct http_request {
  std::string method;                        // "GET", "POST", ...
  std::string target;                        // as sent: "/api/contexts?token=x"
  std::string path;                          // percent-decoded, without the query
  std::map<std::string, std::string> query;  // decoded query parameters (last one wins)
  header_list headers;                       // names in lower case
  std::string body;
  std::string remote;                        // peer address, for the access log

  // The first header with this (lower-case) name, or "".
  std::string header(std::string_view name) const;
};

struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  header_list headers;
  std::string body;
};

// The way back to the client for one request. Thread-safe: every call is posted to the
// connection's strand. Either send() once, or begin_stream() then write()* then end().
// A responder dropped without a response answers 500, so every request gets exactly one response.
class responder {
 public:
  virtual ~responder() = default;
  virtual void send(http_response response) = 0;
  virtual void begin_stream(int status, std::string content_type, header_list headers = {}) = 0;
  virtual void write(std::string chunk) = 0;
  // Blocking (never on an I/O thread): writes a chunk and waits until the client took it, so a
  // producer of big streams holds at most one chunk in memory. False when the client is gone.
  virtual bool write_and_wait(std::string chunk) = 0;
  // Non-blocking: writes a chunk and later tells `taken` (on the connection's strand) whether the
  // client took it, so a producer that must not block can bound what waits for the client.
  virtual void write_then(std::string chunk, std::function<void(bool)> taken) {
    write(std::move(chunk));
    if (taken) taken(true);
  }
  virtual void end() = 0;
  // Called once, on the connection's strand, if the client goes away before end().
  virtual void on_disconnect(std::function<void()> handler) = 0;
};

// What a handler receives: the request, the route's parameters, the sandbox it addresses.
struct request_context {
  http_request request;
  std::map<std::string, std::string> params;  // {name} segments of the route pattern
  std::string sandbox_id;                      // "default" for /api/..., else /sandboxes/{id}/api/...
  std::shared_ptr<responder> out;
};

// An accepted WebSocket, as handlers see it. send_* and close are thread-safe (one write in
// flight, the rest queued). The handler sets on_message/on_close before it returns; they run on
// the connection's strand. Handlers capture the peer weakly to avoid cycles.
class websocket_peer {
 public:
  virtual ~websocket_peer() = default;
  virtual void send_text(std::string data) = 0;
  virtual void send_binary(std::string data) = 0;
  virtual void close() = 0;
  std::function<void(std::string data, bool binary)> on_message;
  std::function<void()> on_close;
  std::string subprotocol;  // chosen by the handler from Sec-WebSocket-Protocol; "" for none
};

// Percent-decoding ("+" is kept: it means a space only in forms).
std::string percent_decode(std::string_view in);

// Splits "path?query" into a decoded path and decoded parameters.
void parse_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query);

}  // namespace kh::server
