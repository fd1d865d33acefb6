#pragma once
// router: method + path pattern -> handler. Patterns have literal segments and {name} segments.
// Paths under /sandboxes/{id}/... are routed as the same path without the prefix, with the
// sandbox id set; everything else addresses the "default" sandbox.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kernel_host/server/http_types.hpp"

namespace kh::server {

using handler = std::function<void(request_context&)>;
using websocket_handler = std::function<void(request_context&, std::shared_ptr<websocket_peer>)>;
// Runs before the upgrade: a response refuses it (e.g. 404 for an unknown kernel), nullopt accepts.
using websocket_admission = std::function<std::optional<http_response>(request_context&)>;

struct websocket_endpoint {
  std::vector<std::string> segments;
  websocket_handler open;
  websocket_admission admit;  // may be empty: always accepted
};

// A WebSocket upgrade for a route; the handler takes the socket over (see http_server).
struct route_result {
  const handler* found = nullptr;            // the handler, when method and path match
  bool path_known = false;                   // some route has this path (405 when the method differs)
  std::vector<std::string> allowed_methods;  // for 405 and OPTIONS
};

class router {
 public:
  void add(std::string method, std::string pattern, handler h);
  // A WebSocket endpoint (GET with Upgrade: websocket).
  void add_websocket(std::string pattern, websocket_handler h, websocket_admission admit = {});
  // The WebSocket endpoint for the path (fills params and sandbox_id), or nullptr.
  const websocket_endpoint* match_websocket(request_context& ctx) const;

  // Strips /sandboxes/{id}, matches, fills ctx.params and ctx.sandbox_id.
  route_result match(request_context& ctx) const;

  // Matches and runs the handler, or answers 404/405 (and 204 for OPTIONS preflights).
  void dispatch(request_context& ctx) const;

 private:
  struct route {
    std::string method;
    std::vector<std::string> segments;
    handler fn;
  };
  std::vector<route> routes_;
  std::vector<websocket_endpoint> websocket_routes_;
};

// Splits "/a/b/c" into {"a","b","c"} (empty segments dropped).
std::vector<std::string> split_path(std::string_view path);

}  // namespace kh::server
