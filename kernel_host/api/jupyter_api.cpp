#include "kernel_host/api/jupyter_api.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "contexts/kernelspec.hpp"
#include "kernel_host/api/error_mapping.hpp"
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
          {"connections", 0}};
}

nl::json spec_model(const ctx::kernelspec& spec) {
  nl::json resources = nl::json::object();
  std::error_code ec;
  for (const char* f : {"logo-32x32.png", "logo-64x64.png", "logo-svg.svg", "kernel.js"})
    if (std::filesystem::exists(spec.resource_dir / f, ec))
      resources[std::filesystem::path(f).stem().string()] = fmt::format("/kernelspecs/{}/{}", spec.name, f);
  return {{"name", spec.name}, {"spec", spec.to_json()}, {"resources", resources}};
}

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

void register_jupyter_api(server::router& routes, host::context_manager& contexts, server::work_pool& pool,
                          std::vector<std::filesystem::path> data_path) {
  const std::string started = iso_timestamp();
  routes.add("GET", "/api", [](request_context& rc) { send_json(*rc.out, 200, {{"version", "2.0.0"}}); });
  routes.add("GET", "/api/status", [&contexts, started](request_context& rc) {
    send_json(*rc.out, 200, {{"started", started}, {"last_activity", iso_timestamp()}, {"connections", 0},
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
  routes.add("DELETE", "/api/kernels/{id}", [&contexts, &pool](request_context& rc) {
    auto c = contexts.get(rc.params["id"]);
    if (!c) return send_error(*rc.out, c.error());
    pool.post([out = rc.out, &contexts, id = rc.params["id"]] {
      auto removed = contexts.remove(id);
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
  routes.add("POST", "/api/kernels/{id}/restart", [&contexts, &pool](request_context& rc) {
    auto c = contexts.get(rc.params["id"]);
    if (!c) return send_error(*rc.out, c.error());
    pool.post([out = rc.out, c = *c] {
      auto done = c->kernel().restart();
      if (!done) return send_error(*out, done.error());
      c->touch();
      send_json(*out, 200, kernel_model(*c));
    });
  });
}

}  // namespace kh::api
