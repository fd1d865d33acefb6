#include "kernel_host/api/interpreter_api.hpp"

#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "common/log.hpp"
#include "kernel_host/api/error_mapping.hpp"
#include "kernel_host/api/request_helpers.hpp"
#include "kernel_host/api/sse_event.hpp"

#if __has_include("renderers/typed_result.hpp")
#include "renderers/typed_result.hpp"
#define KH_HAVE_TYPED_RESULT 1
#endif

namespace kh::api {
namespace {

using server::request_context;
namespace ctx = kh::contexts;

std::string sse(const nl::json& event) { return sse_event(event); }

nl::json context_json(const host::context& c) {
  return {{"id", c.id()},
          {"language", c.language()},
          {"cwd", c.cwd()},
          {"kernel", c.kernel().spec().name},
          {"state", std::string(ctx::kernel_state_name(c.kernel().state()))},
          {"createdAt", c.created_at()},
          {"sandboxId", c.sandbox_id()},
          {"inSandbox", c.in_sandbox()}};
}

// A context of the request's sandbox: another sandbox's context is as unknown as a missing one.
result<std::shared_ptr<host::context>> find_context(host::context_manager& contexts, const std::string& id,
                                                    const request_context& rc) {
  auto c = contexts.get(id);
  if (c && (*c)->sandbox_id() != rc.sandbox_id)
    return fail(errc::context_not_found, fmt::format("no context with id '{}' in sandbox '{}'", id, rc.sandbox_id), {{"contextId", id}});
  return c;
}

// Runs a blocking manager call on the work pool and answers with its outcome.
template <class F>
void off_thread(server::work_pool& pool, request_context& rc, F&& fn) {
  pool.post([out = rc.out, fn = std::forward<F>(fn)]() mutable { fn(*out); });
}

// The state of one /api/execute/code stream, shared by the kernel callbacks.
struct execution_stream : std::enable_shared_from_this<execution_stream> {
  std::shared_ptr<server::responder> out;
  std::shared_ptr<host::context> context;
  std::atomic<bool> done{false};
  std::atomic<bool> saw_error{false};
  std::atomic<int> phase{0};  // 0 queued behind another cell, 1 started, 2 cancelled before starting

  // A kernel writes faster than a client may read: output events (stdout, stderr, results) that
  // would put more than max_unsent bytes in wait for the client are dropped and counted, and a
  // stderr marker says how much was dropped once the client caught up (or at the end). Errors
  // and the final event are never dropped.
  static constexpr std::size_t max_unsent = 16u << 20;
  std::atomic<std::size_t> unsent{0};
  std::mutex drop_mutex;  // guards the two below (kernel callbacks run on the reactor or a worker)
  std::uint64_t dropped_bytes = 0, dropped_events = 0;

  void send(std::string chunk) {
    const std::size_t size = chunk.size();
    unsent += size;
    out->write_then(std::move(chunk), [self = shared_from_this(), size](bool) { self->unsent -= size; });
  }
  // False (and counted) when the output event must be dropped.
  bool admit(std::size_t size) {
    std::lock_guard lock(drop_mutex);
    if (unsent.load() + size > max_unsent && unsent.load() > 0) {
      dropped_bytes += size;
      ++dropped_events;
      return false;
    }
    flush_marker_locked();
    return true;
  }
  void flush_marker() {
    std::lock_guard lock(drop_mutex);
    flush_marker_locked();
  }

 private:
  void flush_marker_locked() {
    if (!dropped_events) return;
    send(sse({{"type", "stderr"},
              {"text", fmt::format("\n[kernel-host: {} bytes of output in {} messages were dropped: the client read "
                                   "slower than the kernel wrote]\n",
                                   dropped_bytes, dropped_events)},
              {"timestamp", iso_timestamp()}}));
    dropped_bytes = dropped_events = 0;
  }
};

void handle_execute(request_context& rc, host::context_manager& contexts, server::work_pool& pool) {
  auto body = json_object_body(rc.request);
  if (!body) return send_error(*rc.out, body.error());
  auto id = optional_string(*body, "context_id");
  if (!id) return send_error(*rc.out, id.error());
  auto code = optional_string(*body, "code");
  if (!code) return send_error(*rc.out, code.error());
  auto language = optional_string(*body, "language");
  if (!language) return send_error(*rc.out, language.error());
  auto timeout_ms = optional_uint(*body, "timeout_ms");
  if (!timeout_ms) return send_error(*rc.out, timeout_ms.error());
  if (!*code) return send_error(*rc.out, error{errc::validation_failed, "field 'code' is required", {{"field", "code"}}});
  if (!*id || (*id)->empty())
    return send_error(*rc.out, error{errc::validation_failed, "field 'context_id' is required: create a context with POST /api/contexts",
                                     {{"field", "context_id"}}});
  auto target = find_context(contexts, **id, rc);
  if (!target) return send_error(*rc.out, target.error());
  auto& c = *target;
  if (*language && !(*language)->empty()) {
    auto asked = host::context_manager::canonical_language(**language);
    if (!asked) return send_error(*rc.out, asked.error());
    const bool js_family = (*asked == "javascript" || *asked == "typescript") &&
                           (c->language() == "javascript" || c->language() == "typescript");
    if (*asked != c->language() && !js_family)
      return send_error(*rc.out, error{errc::validation_failed,
                                       fmt::format("context {} runs {}, not {}", c->id(), c->language(), **language),
                                       {{"contextId", c->id()}, {"language", c->language()}}});
  }
  bool allow_stdin = false;
  for (const char* key : {"allow_stdin", "allowStdin"})
    if (auto it = body->find(key); it != body->end() && it->is_boolean()) allow_stdin = it->get<bool>();

  auto stream = std::make_shared<execution_stream>();
  stream->out = rc.out;
  stream->context = c;
  rc.out->begin_stream(200, "text/event-stream", {{"Connection", "keep-alive"}, {"X-Accel-Buffering", "no"}});
  // Weak: the connection keeps its disconnect handler, and the stream keeps the connection's
  // responder, so a strong capture is a cycle that leaks both when the daemon stops mid-cell.
  // The enqueued cell and the kernel's handlers own the stream while it can still matter.
  rc.out->on_disconnect([weak = std::weak_ptr(stream), &pool] {
    auto stream = weak.lock();
    if (!stream || stream->done.load()) return;
    int queued = 0;  // still waiting behind another cell: just never start it
    if (stream->phase.compare_exchange_strong(queued, 2)) return;
    kh::log::get("server")->info("client left mid-cell on context {}: interrupting", stream->context->id());
    pool.post([stream] {
      if (!stream->done.load()) (void)stream->context->kernel().interrupt();
    });
  });
  c->begin_execution();
  const long long asked_ms = timeout_ms->value_or(0);
  const auto timeout = asked_ms > 0 ? std::chrono::milliseconds(asked_ms) : c->default_timeout();
  ctx::request_handlers handlers;
  handlers.on_iopub = [stream](const ctx::message& msg) {
    auto event = iopub_to_event(msg);
    if (event.is_null()) return;
    if (event["type"] == "error") stream->saw_error = true;
    std::string chunk = sse(event);
    if (event["type"] != "error" && !stream->admit(chunk.size())) return;
    stream->send(std::move(chunk));
  };
  handlers.on_input_request = [stream](const ctx::message& msg) {
    stream->context->set_pending_input(msg);
    stream->out->write(sse({{"type", "input_request"},
                            {"prompt", msg.content.value("prompt", "")},
                            {"password", msg.content.value("password", false)},
                            {"timestamp", iso_timestamp()}}));
  };
  // The Cloudflare contract ends a cell with exactly one of `execution_complete` or `error`
  // (shared/reference/cloudflare-sandbox.md 3.4): after an error nothing else is sent.
  handlers.on_done = [stream](result<ctx::message> reply) {
    if (stream->done.exchange(true)) return;
    stream->context->set_pending_input(std::nullopt);
    stream->flush_marker();
    if (reply) {
      const auto& content = reply->content;
      const std::string status = content.value("status", "");
      if (status == "aborted")
        stream->out->write(sse({{"type", "error"},
                                {"ename", "ExecutionAborted"},
                                {"evalue", "the kernel aborted the cell (an earlier cell failed or was interrupted)"},
                                {"traceback", nl::json::array()},
                                {"timestamp", iso_timestamp()}}));
      else if (status != "ok" && !stream->saw_error)
        stream->out->write(sse({{"type", "error"},
                                {"ename", content.value("ename", "Error")},
                                {"evalue", content.value("evalue", "")},
                                {"traceback", content.value("traceback", nl::json::array())},
                                {"timestamp", iso_timestamp()}}));
      else if (status == "ok" && !stream->saw_error)
        stream->out->write(sse({{"type", "execution_complete"},
                                {"execution_count", content.value("execution_count", 0)},
                                {"status", "ok"},
                                {"timestamp", iso_timestamp()}}));
    } else if (!stream->saw_error) {
      const auto& err = reply.error();
      stream->out->write(sse({{"type", "error"},
                              {"ename", std::string(errc_name(err.code))},
                              {"evalue", err.message},
                              {"traceback", nl::json::array()},
                              {"code", std::string(errc_name(err.code))},
                              {"details", err.details},
                              {"timestamp", iso_timestamp()}}));
    }
    stream->context->end_execution();
    stream->out->end();
    stream->context->execution_finished();
  };
  c->enqueue_execution([c, stream, handlers = std::move(handlers), code = **code, allow_stdin, timeout]() mutable {
    int queued = 0;
    if (!stream->phase.compare_exchange_strong(queued, 1)) {  // the client left while queued
      stream->done = true;
      c->end_execution();
      return c->execution_finished();
    }
    c->kernel().execute({.code = std::move(code), .allow_stdin = allow_stdin}, std::move(handlers), timeout);
  });
}

void handle_create(request_context& rc, host::context_manager& contexts, server::work_pool& pool) {
  auto body = json_object_body(rc.request);
  if (!body) return send_error(*rc.out, body.error());
  host::context_request req;
  auto language = optional_string(*body, "language");
  auto kernel = optional_string(*body, "kernel");
  auto cwd = optional_string(*body, "cwd");
  auto timeout = optional_uint(*body, "timeoutMs");
  for (auto* r : {&language, &kernel, &cwd})
    if (!*r) return send_error(*rc.out, r->error());
  if (!timeout) return send_error(*rc.out, timeout.error());
  // The Cloudflare client sends env_vars; its SDK types say envVars.
  auto env = optional_string_map(*body, body->contains("envVars") ? "envVars" : "env_vars");
  if (!env) return send_error(*rc.out, env.error());
  req.language = language->value_or("");
  req.kernel = kernel->value_or("");
  req.cwd = cwd->value_or("");
  req.env = std::move(*env);
  req.timeout = std::chrono::milliseconds(timeout->value_or(0));
  if (auto it = body->find("variables"); it != body->end() && !it->is_null()) {
    if (!it->is_object())
      return send_error(*rc.out, error{errc::validation_failed, "field 'variables' must be an object", {{"field", "variables"}}});
    req.variables = *it;
  }
  if (!req.kernel.empty() || true) {
    if (req.kernel.empty()) {
      auto canonical = host::context_manager::canonical_language(req.language);
      if (!canonical) return send_error(*rc.out, canonical.error());
    }
  }
  req.sandbox_id = rc.sandbox_id;
  off_thread(pool, rc, [&contexts, req = std::move(req)](server::responder& out) {
    auto made = contexts.create(req);
    if (!made) return send_error(out, made.error());
    send_json(out, 200, {{"success", true},
                         {"contextId", (*made)->id()},
                         {"language", (*made)->language()},
                         {"cwd", (*made)->cwd()},
                         {"kernel", (*made)->kernel().spec().name},
                         {"timestamp", iso_timestamp()}});
  });
}

// Handlers of /api/contexts/{id}/... that run a blocking manager call on the context.
template <class F>
void with_context(request_context& rc, host::context_manager& contexts, server::work_pool& pool, F&& fn) {
  auto c = find_context(contexts, rc.params["id"], rc);
  if (!c) return send_error(*rc.out, c.error());
  off_thread(pool, rc, [c = *c, fn = std::forward<F>(fn)](server::responder& out) mutable { fn(out, c); });
}

}  // namespace

nl::json mime_bundle_to_fields(const nl::json& data) {
  static const std::pair<const char*, const char*> known[] = {
      {"text/plain", "text"},           {"text/html", "html"},        {"text/markdown", "markdown"},
      {"image/svg+xml", "svg"},         {"image/png", "png"},         {"image/jpeg", "jpeg"},
      {"application/pdf", "pdf"},       {"text/latex", "latex"},      {"application/json", "json"},
      {"application/javascript", "javascript"}, {"text/javascript", "javascript"},
      {"application/vnd.kernel-host.chart+json", "chart"},
  };
  nl::json out = nl::json::object();
  nl::json extra = nl::json::object();
  if (!data.is_object()) return out;
  for (const auto& [mime, value] : data.items()) {
    const char* field = nullptr;
    for (const auto& [m, f] : known)
      if (mime == m) field = f;
    if (!field) {
      extra[mime] = value;
      continue;
    }
    nl::json v = value;
    if (v.is_array() && std::all_of(v.begin(), v.end(), [](const nl::json& x) { return x.is_string(); })) {
      std::string joined;  // nbformat multi-line strings
      for (const auto& x : v) joined += x.get<std::string>();
      v = joined;
    }
    if ((std::string_view(field) == "png" || std::string_view(field) == "jpeg" || std::string_view(field) == "pdf") &&
        v.is_string()) {
      std::string s = v.get<std::string>();
      std::erase_if(s, [](char ch) { return ch == '\n' || ch == '\r'; });
      v = s;
    }
    out[field] = std::move(v);
  }
  if (!extra.empty()) out["extra"] = std::move(extra);
  return out;
}

nl::json iopub_to_event(const ctx::message& msg) {
  const std::string type = msg.msg_type();
  const auto& c = msg.content;
  if (type == "stream") {
    return {{"type", c.value("name", "stdout") == "stderr" ? "stderr" : "stdout"},
            {"text", c.value("text", "")},
            {"timestamp", iso_timestamp()}};
  }
  if (type == "execute_result" || type == "display_data" || type == "update_display_data") {
#ifdef KH_HAVE_TYPED_RESULT
    nl::json event = renderers::typed_result::from_message(type, c).to_json();
#else
    nl::json event = mime_bundle_to_fields(c.value("data", nl::json::object()));
    if (auto m = c.find("metadata"); m != c.end() && m->is_object() && !m->empty()) event["metadata"] = *m;
#endif
    event["type"] = "result";
    event["isMainResult"] = type == "execute_result";
    if (auto t = c.find("transient"); t != c.end() && t->is_object() && t->contains("display_id"))
      event["displayId"] = (*t)["display_id"];
    if (type == "update_display_data") event["update"] = true;
    event["timestamp"] = iso_timestamp();
    return event;
  }
  if (type == "error") {
    return {{"type", "error"},
            {"ename", c.value("ename", "Error")},
            {"evalue", c.value("evalue", "")},
            {"traceback", c.value("traceback", nl::json::array())}};
  }
  if (type == "clear_output") return {{"type", "clear_output"}, {"wait", c.value("wait", false)}};
  return nullptr;
}

void register_interpreter_api(server::router& routes, host::context_manager& contexts, server::work_pool& pool) {
  auto healthy = [](request_context& rc) {
    send_json(*rc.out, 200, {{"success", true}, {"status", "healthy"}, {"timestamp", iso_timestamp()}});
  };
  routes.add("GET", "/api/ping", healthy);
  routes.add("GET", "/api/interpreter/health", healthy);
  routes.add("GET", "/api/version", [](request_context& rc) {
    send_json(*rc.out, 200, {{"success", true}, {"version", KH_VERSION}, {"timestamp", iso_timestamp()}});
  });

  routes.add("POST", "/api/contexts", [&](request_context& rc) { handle_create(rc, contexts, pool); });
  routes.add("GET", "/api/contexts", [&](request_context& rc) {
    nl::json list = nl::json::array();
    for (const auto& c : contexts.list(rc.sandbox_id)) list.push_back(context_json(*c));
    send_json(*rc.out, 200, {{"success", true}, {"contexts", list}, {"timestamp", iso_timestamp()}});
  });
  routes.add("GET", "/api/contexts/{id}", [&](request_context& rc) {
    auto c = find_context(contexts, rc.params["id"], rc);
    if (!c) return send_error(*rc.out, c.error());
    send_json(*rc.out, 200, {{"success", true}, {"context", context_json(**c)}, {"timestamp", iso_timestamp()}});
  });
  routes.add("DELETE", "/api/contexts/{id}", [&](request_context& rc) {
    auto c = find_context(contexts, rc.params["id"], rc);
    if (!c) return send_error(*rc.out, c.error());
    off_thread(pool, rc, [&contexts, id = rc.params["id"]](server::responder& out) {
      auto removed = contexts.remove(id);
      if (!removed && removed.error().code == errc::context_not_found) return send_error(out, removed.error());
      send_json(out, 200, {{"success", true}, {"contextId", id}, {"timestamp", iso_timestamp()}});
    });
  });
  routes.add("POST", "/api/execute/code", [&](request_context& rc) { handle_execute(rc, contexts, pool); });

  routes.add("POST", "/api/contexts/{id}/interrupt", [&](request_context& rc) {
    with_context(rc, contexts, pool, [](server::responder& out, std::shared_ptr<host::context> c) {
      auto done = c->kernel().interrupt();
      if (!done) return send_error(out, done.error());
      send_json(out, 200, {{"success", true}, {"contextId", c->id()}, {"timestamp", iso_timestamp()}});
    });
  });
  routes.add("POST", "/api/contexts/{id}/restart", [&](request_context& rc) {
    with_context(rc, contexts, pool, [](server::responder& out, std::shared_ptr<host::context> c) {
      c->set_pending_input(std::nullopt);
      auto done = c->kernel().restart();
      if (!done) return send_error(out, done.error());
      c->touch();
      send_json(out, 200, {{"success", true}, {"contextId", c->id()}, {"restarts", c->kernel().restart_count()},
                           {"timestamp", iso_timestamp()}});
    });
  });
  routes.add("POST", "/api/contexts/{id}/variables", [&](request_context& rc) {
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    nl::json set = body->value("set", nl::json());
    nl::json get = body->value("get", nl::json());
    if (!set.is_null() && !set.is_object())
      return send_error(*rc.out, error{errc::validation_failed, "field 'set' must be an object of name -> JSON value", {{"field", "set"}}});
    std::vector<std::string> names;
    if (!get.is_null()) {
      if (!get.is_array() || !std::all_of(get.begin(), get.end(), [](const nl::json& x) { return x.is_string(); }))
        return send_error(*rc.out, error{errc::validation_failed, "field 'get' must be an array of names", {{"field", "get"}}});
      names = get.get<std::vector<std::string>>();
    }
    with_context(rc, contexts, pool, [&contexts, set, names](server::responder& out, std::shared_ptr<host::context> c) {
      if (set.is_object() && !set.empty())
        if (auto done = contexts.set_variables(*c, set); !done) return send_error(out, done.error());
      nl::json values = nl::json::object();
      if (!names.empty()) {
        auto got = contexts.get_variables(*c, names);
        if (!got) return send_error(out, got.error());
        values = std::move(*got);
      }
      send_json(out, 200, {{"success", true}, {"contextId", c->id()}, {"variables", values}, {"timestamp", iso_timestamp()}});
    });
  });
  routes.add("POST", "/api/contexts/{id}/input", [&](request_context& rc) {
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    auto value = optional_string(*body, "value");
    if (!value) return send_error(*rc.out, value.error());
    if (!*value) return send_error(*rc.out, error{errc::validation_failed, "field 'value' is required", {{"field", "value"}}});
    auto c = find_context(contexts, rc.params["id"], rc);
    if (!c) return send_error(*rc.out, c.error());
    auto pending = (*c)->take_pending_input();
    if (!pending)
      return send_error(*rc.out, error{errc::resource_busy, "no input is pending on this context", {{"contextId", (*c)->id()}}});
    (*c)->kernel().client()->send_input_reply(*pending, **value);
    send_json(*rc.out, 200, {{"success", true}, {"contextId", (*c)->id()}, {"timestamp", iso_timestamp()}});
  });
}

}  // namespace kh::api
