#include "kernel_host/api/ports_api.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "kernel_host/api/error_mapping.hpp"
#include "kernel_host/api/request_helpers.hpp"
#include "kernel_host/server/http_proxy.hpp"
#include "sandbox_bridge/exposed_ports.hpp"
#include "sandbox_bridge/sandbox_sockets.hpp"

namespace kh::api {

namespace sb = kh::sandbox_bridge;
using server::request_context;

struct ports_api::state {
  sb::sandbox_manager* sandboxes;
  std::optional<error> unavailable;
  server::elastic_pool& blocking;
  ports_options options;
  std::unique_ptr<sb::exposed_ports> exposed;
  std::unique_ptr<sb::sandbox_sockets> sockets;
  std::shared_ptr<server::upstream_pool> pool = std::make_shared<server::upstream_pool>();

  std::uint16_t daemon_port() const { return options.daemon_port ? options.daemon_port() : 0; }

  // http://<port>-<sandboxId>-<token>.<domain>:<daemon port>/
  std::string url(const std::string& sandbox_id, const sb::exposed_port& p) const {
    const auto own = daemon_port();
    return fmt::format("http://{}-{}-{}.{}{}/", p.port, sandbox_id, p.token, options.preview_domain,
                       own == 80 || own == 0 ? std::string() : fmt::format(":{}", own));
  }
  nl::json port_json(const std::string& sandbox_id, const sb::exposed_port& p) const {
    return {{"url", url(sandbox_id, p)},
            {"port", p.port},
            {"name", p.name.empty() ? nl::json(nullptr) : nl::json(p.name)},
            {"status", "active"},
            {"exposedAt", iso_time(p.exposed_at)}};
  }
  static std::string pool_key(const std::string& sandbox_id, std::uint16_t port) { return fmt::format("{}/{}/", sandbox_id, port); }
};

namespace {

nl::json ok(nl::json body) {
  body["success"] = true;
  body["timestamp"] = iso_timestamp();
  return body;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A preview address: which sandbox, port and token, and the target the service sees.
struct preview_address {
  std::string sandbox_id;
  std::uint16_t port = 0;
  std::string token;
  std::string upstream_target;
};

// Host "<port>-<sandboxId>-<token>.<domain>[:port]" (the token has no '-', the id may).
std::optional<preview_address> from_host(const server::http_request& head, const std::string& domain) {
  std::string host = lower(head.header("host"));
  if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(']') == std::string::npos) host.resize(colon);
  const std::string suffix = "." + domain;
  if (host.size() <= suffix.size() || !host.ends_with(suffix)) return std::nullopt;
  const std::string label = host.substr(0, host.size() - suffix.size());
  const auto first = label.find('-'), last = label.rfind('-');
  if (label.find('.') != std::string::npos || first == std::string::npos || last <= first + 1) return std::nullopt;
  auto port = parse_port(std::string_view(label).substr(0, first));
  if (!port) return std::nullopt;
  return preview_address{label.substr(first + 1, last - first - 1), *port, label.substr(last + 1), head.target};
}

// "/sandboxes/<id>/preview/<port>-<token>[/rest][?query]": the service sees "/rest?query".
std::optional<preview_address> from_path(const server::http_request& head) {
  std::string_view t = head.target;
  if (!t.starts_with("/sandboxes/")) return std::nullopt;
  const auto query = std::min(t.find('?'), t.size());
  std::string_view path = t.substr(0, query);
  std::vector<std::string_view> parts;  // sandboxes, id, preview, port-token
  std::size_t pos = 1;
  while (parts.size() < 4 && pos <= path.size()) {
    auto slash = std::min(path.find('/', pos), path.size());
    parts.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  if (parts.size() < 4 || parts[2] != "preview") return std::nullopt;
  const auto dash = parts[3].find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto port = parse_port(parts[3].substr(0, dash));
  if (!port) return std::nullopt;
  std::string rest(pos - 1 < path.size() ? path.substr(pos - 1) : std::string_view("/"));
  rest += t.substr(query);
  return preview_address{server::percent_decode(parts[1]), *port, std::string(parts[3].substr(dash + 1)), std::move(rest)};
}

// "/api/ws-connect/<port>" or "/sandboxes/<id>/api/ws-connect/<port>".
std::optional<preview_address> from_ws_connect(const server::http_request& head) {
  auto segments = server::split_path(head.path);
  std::string id = "default";
  if (segments.size() == 5 && segments[0] == "sandboxes") {
    id = segments[1];
    segments.erase(segments.begin(), segments.begin() + 2);
  }
  if (segments.size() != 3 || segments[0] != "api" || segments[1] != "ws-connect") return std::nullopt;
  auto port = parse_port(segments[2]);
  if (!port || *port == 0) return std::nullopt;
  const auto q = head.target.find('?');
  return preview_address{id, *port, "", q == std::string::npos ? "/" : "/" + head.target.substr(q)};
}

bool is_websocket_upgrade(const server::http_request& head) {
  return lower(head.header("upgrade")) == "websocket";
}

}  // namespace

ports_api::ports_api(server::router& routes, sb::sandbox_manager* sandboxes, std::optional<error> unavailable,
                     server::elastic_pool& blocking, sandbox_api_hooks& hooks, ports_options options)
    : st_(std::make_shared<state>(state{sandboxes, std::move(unavailable), blocking, std::move(options)})) {
  if (!st_->sandboxes && !st_->unavailable) st_->unavailable = error{errc::internal_error, "sandboxes are not available on this host"};
  if (st_->sandboxes) {
    st_->exposed = std::make_unique<sb::exposed_ports>(st_->sandboxes->sandbox_dir("_").parent_path());
    st_->sockets = std::make_unique<sb::sandbox_sockets>(*st_->sandboxes);
  }
  auto st = st_;

  routes.add("POST", "/api/expose-port", [st](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    auto it = body->find("port");
    const long long port = it != body->end() && it->is_number_integer() ? it->get<long long>() : -1;
    if (port < 1024 || port > 65535)
      return send_error(*rc.out, error{errc::invalid_port, "field 'port' must be an integer from 1024 to 65535", {{"port", it != body->end() ? *it : nl::json()}}});
    if (port == st->daemon_port())
      return send_error(*rc.out, error{errc::invalid_port, fmt::format("port {} is the daemon's own port", port), {{"port", port}}});
    auto name = optional_string(*body, "name");
    if (!name) return send_error(*rc.out, name.error());
    auto token = optional_string(*body, "token");
    if (!token) return send_error(*rc.out, token.error());
    if (*token && !sb::exposed_ports::valid_token(**token))
      return send_error(*rc.out, error{errc::validation_failed, "field 'token' must be 1-16 characters of [a-z0-9_]", {{"field", "token"}}});
    sb::exposed_port p{static_cast<std::uint16_t>(port), name->value_or(""), token->value_or(sb::exposed_ports::new_token()),
                       std::chrono::system_clock::now()};
    st->blocking.post([st, rc, p]() mutable {
      auto box = st->sandboxes->get_or_create(rc.sandbox_id);
      if (!box) return send_error(*rc.out, box.error());
      auto exposed = st->exposed->expose(rc.sandbox_id, p);
      if (!exposed) return send_error(*rc.out, exposed.error());
      st->pool->drop(state::pool_key(rc.sandbox_id, p.port));
      auto j = st->port_json(rc.sandbox_id, *exposed);
      j.erase("status");
      j["token"] = exposed->token;
      j["pathUrl"] = fmt::format("http://{}/sandboxes/{}/preview/{}-{}/", rc.request.header("host"), rc.sandbox_id, p.port, p.token);
      send_json(*rc.out, 200, ok(std::move(j)));
    });
  });

  routes.add("GET", "/api/exposed-ports", [st](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    nl::json ports = nl::json::array();
    for (const auto& p : st->exposed->list(rc.sandbox_id)) ports.push_back(st->port_json(rc.sandbox_id, p));
    send_json(*rc.out, 200, ok({{"ports", ports}}));
  });

  routes.add("DELETE", "/api/exposed-ports/{port}", [st](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    auto port = parse_port(rc.params["port"]);
    if (!port) return send_error(*rc.out, error{errc::invalid_port, "the port must be a number from 1 to 65535", {{"port", rc.params["port"]}}});
    st->blocking.post([st, out = rc.out, id = rc.sandbox_id, port = *port] {
      if (auto r = st->exposed->unexpose(id, port); !r) return send_error(*out, r.error());
      st->pool->drop(state::pool_key(id, port));
      send_json(*out, 200, ok({{"port", port}}));
    });
  });

  // The upgrade itself is taken over by selector(); a plain GET lands here.
  routes.add("GET", "/api/ws-connect/{port}", [](request_context& rc) {
    send_error(*rc.out, error{errc::invalid_request, "ws-connect is a WebSocket endpoint: send 'Upgrade: websocket'"});
  });

  hooks.on_destroy.push_back([st](const std::string& id) {
    if (!st->exposed) return;
    st->exposed->forget(id);
    st->pool->drop(id + "/");
  });
  hooks.describe.push_back([st](const std::string& id, nl::json& out) {
    nl::json ports = nl::json::array();
    if (st->exposed)
      for (const auto& p : st->exposed->list(id)) ports.push_back(st->port_json(id, p));
    out["exposedPorts"] = ports;
  });
}

ports_api::~ports_api() = default;

server::takeover_selector ports_api::selector() {
  return [st = st_](const server::http_request& head) -> std::optional<server::takeover_decision> {
    if (st->unavailable) return std::nullopt;
    bool authenticated = false;
    auto address = from_host(head, st->options.preview_domain);
    if (!address) address = from_path(head);
    if (address) {
      auto exposure = st->exposed->find(address->sandbox_id, address->port);
      if (!exposure)
        return server::takeover_decision{.refusal = error_response(error{
            errc::port_not_exposed, fmt::format("port {} of sandbox '{}' is not exposed", address->port, address->sandbox_id),
            {{"port", address->port}, {"sandboxId", address->sandbox_id}}})};
      if (exposure->token != address->token)
        return server::takeover_decision{.refusal = error_response(error{
            errc::invalid_token, "the preview URL's token is wrong", {{"port", address->port}, {"sandboxId", address->sandbox_id}}})};
    } else if (is_websocket_upgrade(head) && (address = from_ws_connect(head))) {
      authenticated = true;  // an /api route: the daemon's token applies
    } else {
      return std::nullopt;
    }
    server::proxy_route route{
        .upstream_target = address->upstream_target,
        .port = address->port,
        .pool_key = state::pool_key(address->sandbox_id, address->port),
        .open_socket = [st, id = address->sandbox_id](std::function<void(result<int>)> done) {
          st->sockets->open(id, [done = std::move(done)](result<sb::unique_fd> fd) {
            if (!fd) return done(std::unexpected(fd.error()));
            done(fd->release());
          });
        }};
    // A preview request or an open proxied WebSocket is activity: the sandbox does not sleep under it.
    if (auto box = st->sandboxes->find_running(address->sandbox_id)) {
      struct busy_box {
        std::shared_ptr<sb::sandbox_runtime> box;
        sb::sandbox_runtime::activity_guard guard;
      };
      route.hold = std::make_shared<busy_box>(busy_box{box, sb::sandbox_runtime::activity_guard(*box)});
    }
    return server::takeover_decision{
        .take = [st, route = std::move(route)](server::taken_connection conn) { server::proxy_exchange(std::move(conn), route, st->pool); },
        .authenticated = authenticated};
  };
}

}  // namespace kh::api
