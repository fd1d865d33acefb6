#include "kernel_host/api/jupyter_api.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "contexts/kernelspec.hpp"
#include "kernel_host/api/error_mapping.hpp"
#include "kernel_host/api/kernel_channels.hpp"
#include "kernel_host/api/request_helpers.hpp"

namespace kh::api {
namespace {

using server::request_context;
namespace ctx = kh::contexts;

std::string jupyter_state(ctx::kernel_state state) {
  switch (state) {
    case ctx::kernel_state::starting: return "starting";
    case ctx::kernel_state::idle: return "idle";
    case ctx::kernel_state::busy: return "busy";
    case ctx::kernel_state::restarting: return "restarting";
    default: return "dead";
  }
}

nl::json kernel_model(const host::context& c) {
  return {{"id", c.id()},
          {"name", c.kernel().spec().name},
          {"last_activity", iso_timestamp()},
          {"execution_state", jupyter_state(c.kernel().state())},
          {"connections", c.connections()}};
}

nl::json spec_model(const ctx::kernelspec& spec) {
  nl::json resources = nl::json::object();
  std::error_code ec;
  for (const char* f : {"logo-32x32.png", "logo-64x64.png", "logo-svg.svg", "kernel.js"})
    if (std::filesystem::exists(spec.resource_dir / f, ec))
      resources[std::filesystem::path(f).stem().string()] = fmt::format("/kernelspecs/{}/{}", spec.name, f);
  return {{"name", spec.name}, {"spec", spec.to_json()}, {"resources", resources}};
}

constexpr std::string_view ws_v1 = "v1.kernel.websocket.jupyter.org";

std::string content_type_for(const std::string& file) {
  auto ext = std::filesystem::path(file).extension().string();
  if (ext == ".png") return "image/png";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".json") return "application/json";
  if (ext == ".js") return "application/javascript";
  if (ext == ".css") return "text/css";
  return "application/octet-stream";
}

}  // namespace

namespace {

nl::json session_model(const host::notebook_session& s, host::context_manager& contexts) {
  auto kernel = contexts.get(s.kernel_id);
  return {{"id", s.id},
          {"path", s.path},
          {"name", s.name},
          {"type", s.type},
          {"kernel", kernel ? kernel_model(**kernel) : nl::json(nullptr)},
          {"notebook", {{"path", s.path}, {"name", s.name}}}};
}

// The kernel a session asks for: an existing id, or a new kernel of a name (default: Python).
result<std::string> session_kernel(host::context_manager& contexts, const nl::json& kernel, const std::string& path) {
  if (kernel.is_object() && kernel.contains("id") && kernel["id"].is_string()) {
    auto c = contexts.get(kernel["id"].get<std::string>());
    if (!c) return std::unexpected(c.error());
    return (*c)->id();
  }
  host::context_request req;
  if (kernel.is_object() && kernel.contains("name") && kernel["name"].is_string()) req.kernel = kernel["name"];
  if (req.kernel.empty()) {
    auto python = contexts.spec_for("python");
    if (!python) return std::unexpected(python.error());
    req.kernel = python->name;
  }
  (void)path;
  auto made = contexts.create(req);
  if (!made) return std::unexpected(made.error());
  return (*made)->id();
}

void register_sessions(server::router& routes, host::context_manager& contexts, host::notebook_session_manager& sessions,
                       server::work_pool& pool) {
  auto prune = [&contexts, &sessions] { sessions.prune([&](const std::string& id) { return contexts.get(id).has_value(); }); };
  routes.add("GET", "/api/sessions", [&contexts, &sessions, prune](request_context& rc) {
    prune();
    nl::json list = nl::json::array();
    for (const auto& s : sessions.list()) list.push_back(session_model(s, contexts));
    send_json(*rc.out, 200, list);
  });
  routes.add("GET", "/api/sessions/{id}", [&contexts, &sessions, prune](request_context& rc) {
    prune();
    auto s = sessions.get(rc.params["id"]);
    if (!s) return send_error(*rc.out, s.error());
    send_json(*rc.out, 200, session_model(*s, contexts));
  });
  routes.add("POST", "/api/sessions", [&contexts, &sessions, &pool, prune](request_context& rc) {
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    host::notebook_session s;
    for (auto [field, target] : {std::pair{"path", &s.path}, std::pair{"name", &s.name}, std::pair{"type", &s.type}}) {
      auto v = optional_string(*body, field);
      if (!v) return send_error(*rc.out, v.error());
      if (*v) *target = **v;
    }
    if (s.path.empty() && body->contains("notebook") && (*body)["notebook"].is_object())
      s.path = (*body)["notebook"].value("path", "");
    nl::json kernel = body->value("kernel", nl::json::object());
    if (!kernel.is_object()) return send_error(*rc.out, error{errc::validation_failed, "field 'kernel' must be an object", {{"field", "kernel"}}});
    prune();
    if (!s.path.empty() && !kernel.contains("id"))
      if (auto existing = sessions.find_by_path(s.path)) {
        auto response = json_response(201, session_model(*existing, contexts));
        response.headers.emplace_back("Location", "/api/sessions/" + existing->id);
        return rc.out->send(std::move(response));
      }
    pool.post([out = rc.out, &contexts, &sessions, s, kernel]() mutable {
      auto kernel_id = session_kernel(contexts, kernel, s.path);
      if (!kernel_id) return send_error(*out, kernel_id.error());
      s.kernel_id = *kernel_id;
      auto added = sessions.add(s);
      auto response = json_response(201, session_model(added, contexts));
      response.headers.emplace_back("Location", "/api/sessions/" + added.id);
      out->send(std::move(response));
    });
  });
  routes.add("PATCH", "/api/sessions/{id}", [&contexts, &sessions, &pool](request_context& rc) {
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    auto s = sessions.get(rc.params["id"]);
    if (!s) return send_error(*rc.out, s.error());
    for (auto [field, target] : {std::pair{"path", &s->path}, std::pair{"name", &s->name}, std::pair{"type", &s->type}}) {
      auto v = optional_string(*body, field);
      if (!v) return send_error(*rc.out, v.error());
      if (*v) *target = **v;
    }
    nl::json kernel = body->value("kernel", nl::json());
    if (!kernel.is_null() && !kernel.is_object())
      return send_error(*rc.out, error{errc::validation_failed, "field 'kernel' must be an object", {{"field", "kernel"}}});
    pool.post([out = rc.out, &contexts, &sessions, s = *s, kernel]() mutable {
      std::string old_kernel;
      if (kernel.is_object()) {
        auto current = contexts.get(s.kernel_id);
        const bool same_name = current && kernel.contains("name") && !kernel.contains("id") &&
                               kernel["name"] == (*current)->kernel().spec().name;
        if (!same_name) {
          auto kernel_id = session_kernel(contexts, kernel, s.path);
          if (!kernel_id) return send_error(*out, kernel_id.error());
          if (*kernel_id != s.kernel_id) old_kernel = std::exchange(s.kernel_id, *kernel_id);
        }
      }
      auto updated = sessions.update(s);
      if (!updated) return send_error(*out, updated.error());
      if (!old_kernel.empty()) (void)contexts.remove(old_kernel);
      send_json(*out, 200, session_model(*updated, contexts));
    });
  });
  routes.add("DELETE", "/api/sessions/{id}", [&contexts, &sessions, &pool](request_context& rc) {
    auto removed = sessions.remove(rc.params["id"]);
    if (!removed) return send_error(*rc.out, removed.error());
    pool.post([out = rc.out, &contexts, kernel_id = removed->kernel_id] {
      (void)contexts.remove(kernel_id);
      out->send(server::http_response{.status = 204, .content_type = ""});
    });
  });
}

}  // namespace

void register_jupyter_api(server::router& routes, host::context_manager& contexts,
                          host::notebook_session_manager& sessions, server::work_pool& pool,
                          std::vector<std::filesystem::path> data_path, iopub_limits limits) {
  auto channels = std::make_shared<kernel_channels_registry>(limits);
  register_sessions(routes, contexts, sessions, pool);
  const std::string started = iso_timestamp();
  routes.add("GET", "/api", [](request_context& rc) { send_json(*rc.out, 200, {{"version", "2.0.0"}}); });
  routes.add("GET", "/api/status", [&contexts, started, channels = channels](request_context& rc) {
    send_json(*rc.out, 200, {{"started", started}, {"last_activity", iso_timestamp()},
                             {"connections", channels->total_connections()},
                             {"kernels", contexts.list().size()}});
  });
  routes.add("GET", "/api/kernelspecs", [&contexts, data_path](request_context& rc) {
    nl::json specs = nl::json::object();
    for (const auto& spec : ctx::find_kernelspecs(data_path)) specs[spec.name] = spec_model(spec);
    auto python = contexts.spec_for("python");
    send_json(*rc.out, 200, {{"default", python ? python->name : std::string("python3")}, {"kernelspecs", specs}});
  });
  routes.add("GET", "/api/kernelspecs/{name}", [data_path](request_context& rc) {
    auto spec = ctx::find_kernelspec(rc.params["name"], data_path);
    if (!spec) return send_error(*rc.out, spec.error());
    send_json(*rc.out, 200, spec_model(*spec));
  });
  routes.add("GET", "/kernelspecs/{name}/{file}", [data_path](request_context& rc) {
    auto spec = ctx::find_kernelspec(rc.params["name"], data_path);
    if (!spec) return send_error(*rc.out, spec.error());
    const std::string file = rc.params["file"];
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos)
      return send_error(*rc.out, error{errc::validation_failed, "the file name must be a plain name"});
    std::ifstream in(spec->resource_dir / file, std::ios::binary);
    if (!in)
      return send_error(*rc.out, error{errc::file_not_found, fmt::format("kernelspec {} has no file '{}'", spec->name, file),
                                       {{"path", file}}});
    std::ostringstream body;
    body << in.rdbuf();
    rc.out->send(server::http_response{.status = 200, .content_type = content_type_for(file), .body = body.str()});
  });

  // /api/kernels/{id}/channels: an unknown kernel is a 404 before the upgrade (as jupyter_server).
  routes.add_websocket(
      "/api/kernels/{id}/channels",
      [&contexts, channels](request_context& rc, std::shared_ptr<server::websocket_peer> peer) {
        auto found = contexts.get(rc.params["id"]);
        if (!found) return peer->close();
        channels->prune(contexts);
        const bool v1 = rc.request.header("sec-websocket-protocol").find(ws_v1) != std::string::npos;
        if (v1) peer->subprotocol = std::string(ws_v1);
        auto session = rc.request.query.find("session_id");
        channels->for_context(*found)->attach(std::move(peer), session == rc.request.query.end() ? "" : session->second, v1);
      },
      [&contexts](request_context& rc) -> std::optional<server::http_response> {
        auto found = contexts.get(rc.params["id"]);
        if (!found) return error_response(found.error());
        return std::nullopt;
      });
  routes.add("GET", "/api/kernels", [&contexts](request_context& rc) {
    nl::json list = nl::json::array();
    for (const auto& c : contexts.list()) list.push_back(kernel_model(*c));
    send_json(*rc.out, 200, list);
  });
  routes.add("POST", "/api/kernels", [&contexts, &pool](request_context& rc) {
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    auto name = optional_string(*body, "name");
    if (!name) return send_error(*rc.out, name.error());
    auto path = optional_string(*body, "path");
    if (!path) return send_error(*rc.out, path.error());
    host::context_request req;
    req.kernel = name->value_or("");
    if (req.kernel.empty()) {
      auto python = contexts.spec_for("python");
      if (!python) return send_error(*rc.out, python.error());
      req.kernel = python->name;
    }
    req.cwd = path->value_or("");
    pool.post([out = rc.out, &contexts, req] {
      auto made = contexts.create(req);
      if (!made) return send_error(*out, made.error());
      auto response = json_response(201, kernel_model(**made));
      response.headers.emplace_back("Location", "/api/kernels/" + (*made)->id());
      out->send(std::move(response));
    });
  });
  routes.add("GET", "/api/kernels/{id}", [&contexts](request_context& rc) {
    auto c = contexts.get(rc.params["id"]);
    if (!c) return send_error(*rc.out, c.error());
    send_json(*rc.out, 200, kernel_model(**c));
  });
  routes.add("DELETE", "/api/kernels/{id}", [&contexts, &pool, channels](request_context& rc) {
    auto c = contexts.get(rc.params["id"]);
    if (!c) return send_error(*rc.out, c.error());
    pool.post([out = rc.out, &contexts, channels, id = rc.params["id"]] {
      auto removed = contexts.remove(id);
      channels->prune(contexts);  // its sockets close
      if (!removed && removed.error().code == errc::context_not_found) return send_error(*out, removed.error());
      out->send(server::http_response{.status = 204, .content_type = ""});
    });
  });
  routes.add("POST", "/api/kernels/{id}/interrupt", [&contexts, &pool](request_context& rc) {
    auto c = contexts.get(rc.params["id"]);
    if (!c) return send_error(*rc.out, c.error());
    pool.post([out = rc.out, c = *c] {
      auto done = c->kernel().interrupt();
      if (!done) return send_error(*out, done.error());
      out->send(server::http_response{.status = 204, .content_type = ""});
    });
  });
  routes.add("POST", "/api/kernels/{id}/restart", [&contexts, &pool, channels](request_context& rc) {
    auto c = contexts.get(rc.params["id"]);
    if (!c) return send_error(*rc.out, c.error());
    // The asking client awaits this restart itself: no `restarting` announcement (jupyter_server).
    auto hub = channels->find(c->get()->id());
    if (hub) hub->expect_requested_restart();
    pool.post([out = rc.out, c = *c, hub] {
      auto done = c->kernel().restart();
      if (hub) hub->requested_restart_done();
      if (!done) return send_error(*out, done.error());
      c->touch();
      send_json(*out, 200, kernel_model(*c));
    });
  });
}

}  // namespace kh::api
