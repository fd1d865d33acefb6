#pragma once
// Ports and preview URLs: POST /api/expose-port, GET /api/exposed-ports,
// DELETE /api/exposed-ports/{port} (per sandbox, like every /api route), the reverse proxy behind
// preview URLs (Host `<port>-<sandboxId>-<token>.<preview domain>[:port]`, or the path form
// `/sandboxes/<id>/preview/<port>-<token>/...`), and GET /api/ws-connect/{port} (a WebSocket to
// a sandbox port, passed through). The preview token is the credential of a preview URL: the
// daemon's --token does not apply there; it does apply to every /api route, ws-connect included.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "kernel_host/api/sandbox_api.hpp"
#include "kernel_host/server/elastic_pool.hpp"
#include "kernel_host/server/router.hpp"
#include "kernel_host/server/takeover.hpp"
#include "sandbox_bridge/sandbox_manager.hpp"

namespace kh::server {
class upstream_pool;
}
namespace kh::sandbox_bridge {
class exposed_ports;
class sandbox_sockets;
}  // namespace kh::sandbox_bridge

namespace kh::api {

struct ports_options {
  std::string preview_domain = "localhost";
  std::function<std::uint16_t()> daemon_port;  // the listening port (known once listening)
};

class ports_api {
 public:
  // Registers the routes and the sandbox hooks (unexpose on destroy, ports in describe).
  // `sandboxes` may be null (sandboxes unavailable): the routes answer `unavailable`.
  ports_api(server::router& routes, sandbox_bridge::sandbox_manager* sandboxes, std::optional<error> unavailable,
            server::elastic_pool& blocking, sandbox_api_hooks& hooks, ports_options options);
  ~ports_api();
  ports_api(const ports_api&) = delete;
  ports_api& operator=(const ports_api&) = delete;

  // For server_config::takeover: preview requests and ws-connect upgrades.
  server::takeover_selector selector();

 private:
  struct state;
  std::shared_ptr<state> st_;
};

}  // namespace kh::api
