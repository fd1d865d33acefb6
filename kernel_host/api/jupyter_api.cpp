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

// A kernel message as the legacy Jupyter WebSocket JSON protocol carries it.
std::string to_wire(const ctx::message& m, std::string_view channel) {
  nl::json j = {{"header", m.header},       {"parent_header", m.parent_header}, {"metadata", m.metadata},
                {"content", m.content},     {"buffers", nl::json::array()},     {"channel", channel},
                {"msg_id", m.msg_id()},     {"msg_type", m.msg_type()}};
  return j.dump(-1, ' ', false, nl::json::error_handler_t::replace);
}

constexpr std::string_view ws_v1 = "v1.kernel.websocket.jupyter.org";

// The v1.kernel.websocket.jupyter.org frame: offset count, offsets (little-endian u64), then
// channel, header, parent_header, metadata, content and the buffers (as jupyter_server).
std::string to_wire_v1(const ctx::message& m, std::string_view channel) {
  std::vector<std::string> parts = {m.header.dump(), m.parent_header.dump(), m.metadata.dump(),
                                    m.content.dump(-1, ' ', false, nl::json::error_handler_t::replace)};
  for (const auto& b : m.buffers) parts.push_back(b);
  std::vector<std::uint64_t> offsets;
  offsets.push_back(8 * (parts.size() + 3));
  offsets.push_back(offsets.back() + channel.size());
  for (const auto& p : parts) offsets.push_back(offsets.back() + p.size());
  std::string out;
  auto put = [&out](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(offsets.size());
  for (auto o : offsets) put(o);
  out += channel;
  for (const auto& p : parts) out += p;
  return out;
}

// Parses a v1 frame into the JSON shape of the legacy protocol (buffers dropped into the message).
bool from_wire_v1(const std::string& data, std::string& channel, ctx::message& msg) {
  auto get = [&data](std::size_t at) -> std::uint64_t {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data[at + i]);
    return v;
  };
  if (data.size() < 8) return false;
  const auto count = get(0);
  if (count < 6 || count > 1024 || data.size() < 8 * (count + 1)) return false;
  std::vector<std::uint64_t> offsets;
  for (std::uint64_t i = 0; i < count; ++i) offsets.push_back(get(8 * (i + 1)));
  for (std::size_t i = 1; i < offsets.size(); ++i)
    if (offsets[i] < offsets[i - 1] || offsets[i] > data.size()) return false;
  auto part = [&](std::size_t i) { return data.substr(offsets[i], offsets[i + 1] - offsets[i]); };
  channel = part(0);
  auto parse = [](const std::string& text) {
    auto j = nl::json::parse(text, nullptr, false);
    return j.is_object() ? j : nl::json::object();
  };
  msg.header = parse(part(1));
  msg.parent_header = parse(part(2));
  msg.metadata = parse(part(3));
  msg.content = parse(part(4));
  for (std::size_t i = 5; i + 1 < offsets.size(); ++i) msg.buffers.push_back(part(i));
  return msg.header.is_object() && !msg.header.empty();
}

// /api/kernels/{id}/channels: shell, control and stdin from the frontend to the kernel; every
// IOPub message, replies and input requests back. (Legacy JSON protocol; binary frames ignored.)
void open_channels(host::context_manager& contexts, server::request_context& rc,
                   std::shared_ptr<server::websocket_peer> peer) {
  auto found = contexts.get(rc.params["id"]);
  if (!found) {
    peer->close();
    return;
  }
  auto context = *found;
  auto client = context->kernel().client();
  const bool v1 = rc.request.header("sec-websocket-protocol").find(ws_v1) != std::string::npos;
  if (v1) peer->subprotocol = std::string(ws_v1);
  std::weak_ptr<server::websocket_peer> weak = peer;
  // One function sends a kernel message in the negotiated protocol.
  auto emit = [weak, v1](const ctx::message& m, std::string_view channel) {
    auto p = weak.lock();
    if (!p) return;
    if (v1) p->send_binary(to_wire_v1(m, channel));
    else p->send_text(to_wire(m, channel));
  };
  const auto token = client->subscribe([emit](const ctx::message& m) { emit(m, "iopub"); });
  peer->on_message = [emit, context, client, v1](std::string data, bool binary) {
    ctx::message msg;
    std::string channel;
    if (v1) {
      if (!binary || !from_wire_v1(data, channel, msg)) return;
    } else {
      if (binary) return;
      auto j = nl::json::parse(data, nullptr, false);
      if (!j.is_object() || !j.contains("header") || !j["header"].is_object()) return;
      msg.header = j["header"];
      msg.parent_header = j.value("parent_header", nl::json::object());
      msg.metadata = j.value("metadata", nl::json::object());
      msg.content = j.value("content", nl::json::object());
      channel = j.value("channel", "shell");
    }
    if (msg.parent_header.is_null()) msg.parent_header = nl::json::object();
    if (msg.metadata.is_null()) msg.metadata = nl::json::object();
    context->touch();
    if (channel == "stdin") {
      client->send(ctx::channel::input, std::move(msg));
      return;
    }
    if (channel != "shell" && channel != "control") return;
    const auto ch = channel == "control" ? ctx::channel::control : ctx::channel::shell;
    ctx::request_handlers handlers;
    handlers.on_input_request = [emit](const ctx::message& m) { emit(m, "stdin"); };
    handlers.on_done = [emit, channel](result<ctx::message> reply) {
      if (reply) emit(*reply, channel);
    };
    client->request(ch, std::move(msg), std::move(handlers), {.wait_for_idle = false});
  };
  peer->on_close = [client, token] { client->unsubscribe(token); };
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
                          std::vector<std::filesystem::path> data_path) {
  register_sessions(routes, contexts, sessions, pool);
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

  routes.add_websocket("/api/kernels/{id}/channels",
                       [&contexts](request_context& rc, std::shared_ptr<server::websocket_peer> peer) {
                         open_channels(contexts, rc, std::move(peer));
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
