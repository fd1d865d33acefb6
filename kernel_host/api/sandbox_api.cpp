#include "kernel_host/api/sandbox_api.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "common/log.hpp"
#include "kernel_host/api/error_mapping.hpp"
#include "kernel_host/api/request_helpers.hpp"
#include "kernel_host/api/sse_event.hpp"
#include "kernel_host/server/upload_body.hpp"
#include "renderers/base64.hpp"
#include "sandbox_bridge/mime.hpp"
#include "sandbox_bridge/sandbox_path.hpp"

namespace kh::api {

namespace sb = kh::sandbox_bridge;
using server::request_context;
using namespace std::chrono_literals;

void put_bytes(nl::json& out, const char* field, const std::string& bytes) {
  out[field] = bytes;  // dumped with U+FFFD for invalid sequences
  // Invalid UTF-8 or NUL bytes (valid JSON, but binary): the exact bytes too.
  if (!sb::is_utf8_text(bytes)) out[std::string(field) + "Base64"] = renderers::base64_encode(bytes);
}

result<std::string> request_session_id(const server::http_request& request, const nl::json& body) {
  std::string id;
  if (auto it = body.find("sessionId"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return fail(errc::validation_failed, "field 'sessionId' must be a string", {{"field", "sessionId"}});
    id = it->get<std::string>();
  } else if (auto h = request.header("x-session-id"); !h.empty()) {
    id = h;
  } else if (auto q = request.query.find("sessionId"); q != request.query.end()) {
    id = q->second;
  } else if (auto q2 = request.query.find("session"); q2 != request.query.end()) {
    id = q2->second;
  } else {
    return std::string("default");
  }
  if (id.find_first_not_of(" \t\r\n") == std::string::npos)
    return fail(errc::validation_failed, "the session id is empty: omit it for the default session", {{"field", "sessionId"}});
  return id;
}

namespace {

std::string sse(const nl::json& event) { return sse_event(event); }

nl::json ok(nl::json body = nl::json::object()) {
  body["success"] = true;
  body["timestamp"] = iso_timestamp();
  return body;
}

// Fields a handler reads, with typed errors.
struct fields {
  const nl::json& body;
  std::optional<error> err;

  std::optional<std::string> str(const char* name) {
    if (err) return std::nullopt;
    auto r = optional_string(body, name);
    if (!r) return err = r.error(), std::nullopt;
    return *r;
  }
  std::string required(const char* name) {
    auto v = str(name);
    if (!err && (!v || v->empty())) err = error{errc::validation_failed, fmt::format("field '{}' is required", name), {{"field", name}}};
    return v.value_or("");
  }
  std::optional<long long> uint(const char* name) {
    if (err) return std::nullopt;
    auto r = optional_uint(body, name);
    if (!r) return err = r.error(), std::nullopt;
    return *r;
  }
  bool flag(const char* name, bool fallback = false) {
    if (err) return fallback;
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) {
      err = error{errc::validation_failed, fmt::format("field '{}' must be a boolean", name), {{"field", name}}};
      return fallback;
    }
    return it->get<bool>();
  }
  std::map<std::string, std::string> env(const char* name) {
    if (err) return {};
    auto r = optional_string_map(body, name);
    if (!r) return err = r.error(), std::map<std::string, std::string>{};
    return *r;
  }
};

nl::json process_json(const sb::process_snapshot& p) {
  nl::json j{{"id", p.id},
             {"pid", p.pid},
             {"command", p.command},
             {"status", std::string(sb::process_status_name(p.status))},
             {"startTime", iso_time(p.start_time)}};
  if (p.end_time) j["endTime"] = iso_time(*p.end_time);
  if (!p.end_reason.empty()) j["endReason"] = p.end_reason;
  if (p.exit_code) j["exitCode"] = *p.exit_code;
  if (!p.session_id.empty()) j["sessionId"] = p.session_id;
  return j;
}

nl::json summary_json(const sb::sandbox_summary& s) {
  return {{"id", s.id},
          {"network", s.network == sb::network_mode::host ? "host" : "none"},
          {"limits", {{"memoryBytes", s.limits.memory_bytes}, {"maxProcesses", s.limits.max_processes}, {"cpuShares", s.limits.cpu_shares}}},
          {"limitMechanism", s.limit_mechanism},
          {"running", s.running},
          {"createdAt", iso_time(s.created_at)},
          {"sessions", s.sessions},
          {"processes", s.processes},
          {"state", s.state},
          {"sleepAfterSeconds", s.sleep_after.count()},
          {"keepAlive", s.keep_alive}};
}

const char* file_type_name(sb::file_type t) {
  switch (t) {
    case sb::file_type::file: return "file";
    case sb::file_type::directory: return "directory";
    case sb::file_type::symlink: return "symlink";
    case sb::file_type::other: return "other";
  }
  return "other";
}

nl::json file_info_json(const sb::file_info& f) {
  return {{"name", f.name},
          {"absolutePath", f.absolute_path},
          {"relativePath", f.relative_path},
          {"type", file_type_name(f.type)},
          {"size", f.size},
          {"modifiedAt", sb::sandbox_files::iso_time(f.modified)},
          {"mode", sb::sandbox_files::mode_string(f.mode)},
          {"permissions", {{"readable", (f.mode & 0400) != 0}, {"writable", (f.mode & 0200) != 0}, {"executable", (f.mode & 0100) != 0}}}};
}

// Everything a handler needs, shared by the route lambdas.
struct api_state {
  sb::sandbox_manager* sandboxes;
  std::optional<error> unavailable;
  server::elastic_pool& pool;
  const sandbox_api_hooks* hooks;
};

using sandbox_ptr = std::shared_ptr<sb::sandbox_runtime>;
// The body is the handler's to take from (a file's content is moved, not copied).
using body_handler = std::function<void(request_context&, nl::json&, const sandbox_ptr&)>;

// Parses the body, finds (or creates) the request's sandbox, runs fn on the pool.
server::handler in_sandbox(std::shared_ptr<api_state> st, body_handler fn) {
  return [st, fn = std::move(fn)](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    rc.request.body.clear();  // parsed: the raw copy (up to the body limit) is not carried along
    rc.request.body.shrink_to_fit();
    st->pool.post([st, fn, rc = std::move(rc), body = std::move(*body)]() mutable {
      auto box = st->sandboxes->get_or_create(rc.sandbox_id);  // wakes a sleeping one
      if (!box) return send_error(*rc.out, box.error());
      sb::sandbox_runtime::activity_guard busy(**box);  // a long command or stream keeps it awake
      fn(rc, body, *box);
    });
  };
}

// ---- sandboxes --------------------------------------------------------------------------------

result<sb::sandbox_options> parse_sandbox_options(const nl::json& body, const sb::manager_options& defaults) {
  fields f{body};
  sb::sandbox_options o;
  o.id = f.str("id").value_or("");
  o.env = f.env("env");
  auto network = f.str("network").value_or("none");
  if (f.err) return std::unexpected(*f.err);
  if (network == "host") o.network = sb::network_mode::host;
  else if (network != "none")
    return fail(errc::validation_failed, "field 'network' must be \"none\" or \"host\"", {{"field", "network"}});
  o.limits = defaults.default_limits;
  o.sleep_after = defaults.default_sleep_after;
  o.keep_alive = f.flag("keepAlive");
  if (f.err) return std::unexpected(*f.err);
  if (auto it = body.find("sleepAfter"); it != body.end() && !it->is_null()) {
    // Seconds, or "30s", "10m", "1h" as the Cloudflare SDK takes it; 0 never sleeps.
    long long secs = -1;
    if (it->is_number_integer() || it->is_number_unsigned()) secs = it->get<long long>();
    else if (it->is_string())
      if (auto d = sb::parse_duration(it->get<std::string>())) secs = d->count();
    if (secs < 0)
      return fail(errc::validation_failed, "field 'sleepAfter' must be seconds or a duration like \"30s\", \"10m\", \"1h\"",
                  {{"field", "sleepAfter"}});
    o.sleep_after = std::chrono::seconds(secs);
  }
  if (auto it = body.find("limits"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return fail(errc::validation_failed, "field 'limits' must be an object", {{"field", "limits"}});
    fields l{*it};
    if (auto v = l.uint("memoryBytes")) o.limits.memory_bytes = static_cast<std::uint64_t>(*v);
    if (auto v = l.uint("memoryMb")) o.limits.memory_bytes = static_cast<std::uint64_t>(*v) << 20;
    if (auto v = l.uint("maxProcesses")) o.limits.max_processes = static_cast<int>(std::min<long long>(*v, 1 << 22));
    if (auto v = l.uint("cpuShares")) o.limits.cpu_shares = static_cast<int>(std::min<long long>(*v, 262144));
    if (l.err) return std::unexpected(*l.err);
    if (o.limits.memory_bytes != 0 && o.limits.memory_bytes < (16ull << 20))
      return fail(errc::validation_failed, "limits.memoryBytes must be 0 (unlimited) or at least 16 MiB", {{"field", "limits.memoryBytes"}});
  }
  return o;
}

void register_sandboxes(server::router& routes, std::shared_ptr<api_state> st) {
  routes.add("POST", "/api/sandboxes", [st](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    auto body = json_object_body(rc.request);
    if (!body) return send_error(*rc.out, body.error());
    auto o = parse_sandbox_options(*body, st->sandboxes->options());
    if (!o) return send_error(*rc.out, o.error());
    st->pool.post([st, out = rc.out, o = std::move(*o)]() mutable {
      auto started = std::chrono::steady_clock::now();
      auto box = st->sandboxes->create_sandbox(std::move(o));
      if (!box) return send_error(*out, box.error());
      auto s = st->sandboxes->describe((*box)->id());
      if (!s) return send_error(*out, s.error());
      nl::json j = summary_json(*s);
      j["startMs"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
      send_json(*out, 201, ok({{"sandbox", j}}));
    });
  });
  routes.add("GET", "/api/sandboxes", [st](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    st->pool.post([st, out = rc.out] {
      nl::json list = nl::json::array();
      for (auto& s : st->sandboxes->list()) list.push_back(summary_json(s));
      send_json(*out, 200, ok({{"sandboxes", list}}));
    });
  });
  routes.add("GET", "/api/sandboxes/{id}", [st](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    st->pool.post([st, out = rc.out, id = rc.params["id"]] {
      auto s = st->sandboxes->describe(id);
      if (!s) {
        // On disk but not started since the host restarted: start it, as any request would.
        auto box = st->sandboxes->get(id);
        if (!box) return send_error(*out, box.error());
        s = st->sandboxes->describe(id);
        if (!s) return send_error(*out, s.error());
      }
      nl::json j = summary_json(*s);
      if (auto box = st->sandboxes->get(id)) {
        j["sessionIds"] = (*box)->list_sessions();
        nl::json procs = nl::json::array();
        for (auto& p : (*box)->processes().list()) procs.push_back(process_json(p));
        j["processList"] = procs;
      }
      if (st->hooks)
        for (auto& d : st->hooks->describe) d(id, j);
      send_json(*out, 200, ok({{"sandbox", j}}));
    });
  });
  routes.add("DELETE", "/api/sandboxes/{id}", [st](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    st->pool.post([st, out = rc.out, id = rc.params["id"]] {
      if (st->hooks)
        for (auto& h : st->hooks->on_destroy) h(id);
      auto r = st->sandboxes->destroy(id);
      if (!r) return send_error(*out, r.error());
      send_json(*out, 200, ok({{"sandboxId", id}}));
    });
  });
}

// ---- sessions -----------------------------------------------------------------------------------

std::string new_session_id() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  static std::atomic<unsigned> n{0};
  return fmt::format("session_{}_{:06x}{:06x}", ms, ::getpid() & 0xffffff, ++n & 0xffffff);
}

void register_sessions(server::router& routes, std::shared_ptr<api_state> st) {
  routes.add("POST", "/api/session/create", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    sb::session_options o;
    o.id = f.str("id").value_or("");
    o.env = f.env("env");
    o.cwd = f.str("cwd").value_or("/workspace");
    auto timeout = f.uint("commandTimeoutMs");
    if (f.err) return send_error(*rc.out, *f.err);
    if (o.id.empty()) o.id = new_session_id();
    if (timeout && *timeout > 0) o.command_timeout = std::chrono::milliseconds(*timeout);
    auto cwd = sb::normalize_sandbox_path(o.cwd);
    if (!cwd) return send_error(*rc.out, cwd.error());
    o.cwd = *cwd;
    auto s = box->create_session(o);
    if (!s) {
      auto e = s.error();
      if (e.code == errc::session_already_exists) e.details["containerPlacementId"] = nullptr;
      return send_error(*rc.out, e);
    }
    send_json(*rc.out, 200, ok({{"data", {{"id", o.id}, {"cwd", o.cwd}, {"env", o.env}}},
                                {"sessionId", o.id},
                                {"containerPlacementId", nullptr}}));
  }));
  routes.add("GET", "/api/session/list", in_sandbox(st, [](request_context& rc, const nl::json&, const sandbox_ptr& box) {
    send_json(*rc.out, 200, ok({{"data", box->list_sessions()}}));
  }));
  routes.add("POST", "/api/session/delete", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto id = f.required("sessionId");
    if (f.err) return send_error(*rc.out, *f.err);
    if (auto r = box->delete_session(id); !r) return send_error(*rc.out, r.error());
    send_json(*rc.out, 200, ok({{"sessionId", id}}));
  }));
}

// ---- commands -----------------------------------------------------------------------------------

struct command_request {
  std::string session;
  sb::exec_request exec;
  bool background = false;
};

result<command_request> parse_command(const request_context& rc, const nl::json& body) {
  fields f{body};
  command_request c;
  auto command = f.str("command");
  c.exec.env = f.env("env");
  c.exec.cwd = f.str("cwd");
  c.exec.stdin_data = f.str("stdin");
  auto timeout = f.uint("timeoutMs");
  c.background = f.flag("background");
  if (f.err) return std::unexpected(*f.err);
  if (!command || command->find_first_not_of(" \t\r\n") == std::string::npos)
    return fail(errc::invalid_command, "field 'command' is required and must not be empty", {{"field", "command"}});
  c.exec.command = *command;
  if (timeout && *timeout > 0) c.exec.timeout = std::chrono::milliseconds(*timeout);
  auto session = request_session_id(rc.request, body);
  if (!session) return std::unexpected(session.error());
  c.session = *session;
  return c;
}

void start_background(request_context& rc, const command_request& c, const sandbox_ptr& box) {
  sb::process_start p;
  p.command = c.exec.command;
  p.env = c.exec.env;
  p.cwd = c.exec.cwd.value_or("");
  p.timeout = c.exec.timeout;
  auto snap = box->start_process(c.session, std::move(p));
  if (!snap) return send_error(*rc.out, snap.error());
  send_json(*rc.out, 200, ok({{"processId", snap->id}, {"pid", snap->pid}, {"command", snap->command}}));
}

void register_commands(server::router& routes, std::shared_ptr<api_state> st) {
  routes.add("POST", "/api/execute", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    auto c = parse_command(rc, body);
    if (!c) return send_error(*rc.out, c.error());
    if (c->background) return start_background(rc, *c, box);
    auto r = box->exec(c->session, c->exec);
    if (!r) {
      auto e = r.error();
      e.details["command"] = c->exec.command;
      if (c->session != sb::kNoSession) e.details["sessionId"] = c->session;
      return send_error(*rc.out, e);
    }
    nl::json j{{"exitCode", r->exit_code},
               {"command", c->exec.command},
               {"duration", std::chrono::duration<double, std::milli>(r->duration).count()}};
    put_bytes(j, "stdout", r->stdout_data);
    put_bytes(j, "stderr", r->stderr_data);
    if (c->session != sb::kNoSession) j["sessionId"] = c->session;
    j = ok(std::move(j));
    j["success"] = r->exit_code == 0;
    send_json(*rc.out, 200, j);
  }));

  routes.add("POST", "/api/execute/stream", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    auto c = parse_command(rc, body);
    if (!c) return send_error(*rc.out, c.error());
    auto out = rc.out;
    // A client that leaves the stream stops its command (else a `yes` would hold the session forever).
    c->exec.cancel = std::make_shared<std::atomic<bool>>(false);
    out->on_disconnect([cancel = c->exec.cancel] { cancel->store(true); });
    out->begin_stream(200, "text/event-stream", {{"Connection", "keep-alive"}, {"X-Accel-Buffering", "no"}});
    out->write(sse({{"type", "start"}, {"command", c->exec.command}, {"timestamp", iso_timestamp()}}));
    auto r = box->exec(c->session, c->exec, [out](sb::stream_kind k, std::string_view data) {
      nl::json ev{{"type", k == sb::stream_kind::stdout_stream ? "stdout" : "stderr"}, {"timestamp", iso_timestamp()}};
      put_bytes(ev, "data", std::string(data));
      out->write(sse(ev));
    });
    if (r) {
      out->write(sse({{"type", "complete"},
                      {"exitCode", r->exit_code},
                      {"duration", std::chrono::duration<double, std::milli>(r->duration).count()},
                      {"timestamp", iso_timestamp()}}));
    } else {
      out->write(sse({{"type", "error"},
                      {"error", r.error().message},
                      {"code", std::string(errc_name(r.error().code))},
                      {"context", r.error().details},
                      {"timestamp", iso_timestamp()}}));
    }
    out->end();
  }));
}

// ---- files --------------------------------------------------------------------------------------

std::string cwd_for(const sandbox_ptr& box, const nl::json& body) {
  auto it = body.find("sessionId");
  if (it == body.end() || !it->is_string()) return box->cwd_of("default");
  return box->cwd_of(it->get<std::string>());
}

// A file call's error, with the contract's `operation`.
void send_file_error(request_context& rc, error e, const char* operation) {
  e.details["operation"] = operation;
  send_error(*rc.out, e);
}

constexpr std::size_t kStreamChunk = 65535;
// read/stream waits for the socket every few chunks, not after each: reading and encoding the next
// chunks overlaps the write, and at most this many chunks wait in the connection's queue.
constexpr std::size_t kStreamWindow = 4;

void register_files(server::router& routes, std::shared_ptr<api_state> st) {
  routes.add("POST", "/api/read", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto path = f.required("path");
    auto encoding = f.str("encoding").value_or("");
    if (f.err) return send_error(*rc.out, *f.err);
    if (!encoding.empty() && encoding != "utf-8" && encoding != "utf8" && encoding != "base64" && encoding != "auto")
      return send_error(*rc.out, error{errc::validation_failed, "field 'encoding' must be utf-8, base64 or auto", {{"field", "encoding"}}});
    auto c = box->files().read(path, cwd_for(box, body));
    if (!c) return send_file_error(rc, c.error(), "file.read");
    bool as_base64 = encoding == "base64" || ((encoding.empty() || encoding == "auto") && c->is_binary);
    if ((encoding == "utf-8" || encoding == "utf8") && !sb::is_utf8_text(c->bytes))
      as_base64 = false;  // asked for text: invalid sequences become U+FFFD
    nl::json j{{"path", c->path},
               {"content", as_base64 ? renderers::base64_encode(c->bytes) : std::move(c->bytes)},
               {"encoding", as_base64 ? "base64" : "utf-8"},
               {"isBinary", as_base64 || c->is_binary},
               {"mimeType", c->mime_type},
               {"size", c->size}};
    send_json(*rc.out, 200, ok(std::move(j)));
  }));

  routes.add("POST", "/api/read/stream", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto path = f.required("path");
    if (f.err) return send_error(*rc.out, *f.err);
    auto out = rc.out;
    auto in_stream_error = [&](const error& e) {
      out->begin_stream(200, "text/event-stream", {{"Connection", "keep-alive"}});
      out->write(sse({{"type", "error"}, {"error", e.message}, {"code", std::string(errc_name(e.code))}, {"timestamp", iso_timestamp()}}));
      out->end();
    };
    auto n = box->files().normalize(path, cwd_for(box, body));
    if (!n) return in_stream_error(n.error());
    auto fd = box->files().open(*n, O_RDONLY);
    if (!fd) return in_stream_error(fd.error());
    sb::unique_fd file(*fd);
    struct stat st {};
    ::fstat(file.get(), &st);
    if (S_ISDIR(st.st_mode)) return in_stream_error(sb::file_error(EISDIR, "read", *n));
    std::string head(4096, '\0');
    ssize_t h = ::pread(file.get(), head.data(), head.size(), 0);
    head.resize(h > 0 ? static_cast<std::size_t>(h) : 0);
    const std::string mime = sb::detect_mime(*n, head);
    const bool binary = !sb::mime_is_text(mime);
    out->begin_stream(200, "text/event-stream", {{"Connection", "keep-alive"}});
    out->write(sse({{"type", "metadata"}, {"mimeType", mime}, {"size", st.st_size}, {"isBinary", binary},
                    {"encoding", binary ? "base64" : "utf-8"}}));
    std::uint64_t total = 0;
    std::size_t events = 0;
    std::string carry;  // a UTF-8 character cut at a chunk edge goes with the next chunk
    for (;;) {
      std::string piece = std::move(carry);
      carry.clear();
      const std::size_t kept = piece.size();
      piece.resize(kept + kStreamChunk);
      ssize_t r = ::read(file.get(), piece.data() + kept, kStreamChunk);
      if (r < 0 && errno == EINTR) {
        carry.assign(piece, 0, kept);
        continue;
      }
      if (r < 0) {
        out->write(sse({{"type", "error"}, {"error", sb::file_error(errno, "read", *n).message}}));
        return out->end();
      }
      piece.resize(kept + static_cast<std::size_t>(r));
      if (r == 0) {
        carry = std::move(piece);
        break;
      }
      total += static_cast<std::uint64_t>(r);
      if (!binary) {
        std::size_t keep = piece.size();
        std::size_t back = 0;
        while (back < 3 && back < keep && (static_cast<unsigned char>(piece[keep - 1 - back]) & 0xC0) == 0x80) ++back;
        if (back < keep) {
          unsigned char lead = static_cast<unsigned char>(piece[keep - 1 - back]);
          std::size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
          if (need > back + 1) {
            carry = piece.substr(keep - 1 - back);
            piece.resize(keep - 1 - back);
          }
        }
      }
      auto event = sse({{"type", "chunk"}, {"data", binary ? renderers::base64_encode(piece) : std::move(piece)}});
      if (++events % kStreamWindow != 0) out->write(std::move(event));
      else if (!out->write_and_wait(std::move(event))) return;
    }
    if (!carry.empty()) out->write(sse({{"type", "chunk"}, {"data", carry}}));
    out->write(sse({{"type", "complete"}, {"bytesRead", total}}));
    out->end();
  }));

  routes.add("POST", "/api/write", in_sandbox(st, [](request_context& rc, nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto path = f.required("path");
    std::optional<std::string> content;
    if (auto it = body.find("content"); it != body.end() && it->is_string()) content = std::move(it->get_ref<std::string&>());
    else content = f.str("content");  // missing, or the type error
    auto encoding = f.str("encoding").value_or("utf-8");
    if (f.err) return send_error(*rc.out, *f.err);
    if (!content) return send_error(*rc.out, error{errc::validation_failed, "field 'content' is required", {{"field", "content"}}});
    std::string bytes;
    if (encoding == "base64") {
      auto decoded = renderers::base64_decode(*content);
      if (!decoded)
        return send_error(*rc.out, error{errc::validation_failed, "field 'content' is not valid base64", {{"field", "content"}}});
      bytes = std::move(*decoded);
    } else {
      bytes = std::move(*content);
    }
    auto w = box->files().write(path, cwd_for(box, body), bytes);
    if (!w) return send_file_error(rc, w.error(), "file.write");
    send_json(*rc.out, 200, ok({{"path", *w}, {"bytesWritten", bytes.size()}}));
  }));

  routes.add("POST", "/api/delete", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto path = f.required("path");
    bool recursive = f.flag("recursive");
    if (f.err) return send_error(*rc.out, *f.err);
    auto r = box->files().remove(path, cwd_for(box, body), recursive);
    if (!r) return send_file_error(rc, r.error(), "file.delete");
    send_json(*rc.out, 200, ok({{"path", *r}}));
  }));

  auto rename_route = [st](const char* from_field, const char* to_field, const char* operation) {
    return in_sandbox(st, [=](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
      fields f{body};
      auto from = f.required(from_field);
      auto to = f.required(to_field);
      if (f.err) return send_error(*rc.out, *f.err);
      auto cwd = cwd_for(box, body);
      auto r = box->files().rename(from, to, cwd);
      if (!r) return send_file_error(rc, r.error(), operation);
      auto src = box->files().normalize(from, cwd);
      send_json(*rc.out, 200, ok({{"path", src ? *src : from}, {"newPath", *r}}));
    });
  };
  routes.add("POST", "/api/rename", rename_route("oldPath", "newPath", "file.rename"));
  routes.add("POST", "/api/move", rename_route("sourcePath", "destinationPath", "file.move"));

  routes.add("POST", "/api/mkdir", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto path = f.required("path");
    bool recursive = f.flag("recursive");
    if (f.err) return send_error(*rc.out, *f.err);
    auto r = box->files().mkdir(path, cwd_for(box, body), recursive);
    if (!r) return send_file_error(rc, r.error(), "directory.create");
    send_json(*rc.out, 200, ok({{"path", *r}, {"recursive", recursive}}));
  }));

  routes.add("POST", "/api/list-files", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto path = f.required("path");
    bool recursive = false, hidden = false;
    if (auto it = body.find("options"); it != body.end() && !it->is_null()) {
      if (!it->is_object()) return send_error(*rc.out, error{errc::validation_failed, "field 'options' must be an object", {{"field", "options"}}});
      fields o{*it};
      recursive = o.flag("recursive");
      hidden = o.flag("includeHidden");
      if (o.err) return send_error(*rc.out, *o.err);
    }
    if (f.err) return send_error(*rc.out, *f.err);
    auto cwd = cwd_for(box, body);
    auto list = box->files().list(path, cwd, recursive, hidden);
    if (!list) return send_file_error(rc, list.error(), "directory.list");
    nl::json files = nl::json::array();
    for (auto& fi : *list) files.push_back(file_info_json(fi));
    auto n = box->files().normalize(path, cwd);
    send_json(*rc.out, 200, ok({{"path", n ? *n : path}, {"files", files}, {"count", list->size()}}));
  }));

  routes.add("POST", "/api/exists", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto path = f.required("path");
    if (f.err) return send_error(*rc.out, *f.err);
    auto r = box->files().exists(path, cwd_for(box, body));
    if (!r) return send_file_error(rc, r.error(), "file.stat");
    send_json(*rc.out, 200, ok({{"path", path}, {"exists", *r}}));
  }));

  // Raw bytes, no base64, no JSON: GET streams the file with flow control (one chunk in memory);
  // PUT writes the body atomically (bounded by the server's body limit).
  routes.add("GET", "/api/files/raw", in_sandbox(st, [](request_context& rc, const nl::json&, const sandbox_ptr& box) {
    auto q = rc.request.query.find("path");
    if (q == rc.request.query.end() || q->second.empty())
      return send_error(*rc.out, error{errc::validation_failed, "query parameter 'path' is required", {{"field", "path"}}});
    auto session = rc.request.query.count("sessionId") ? rc.request.query.at("sessionId") : "default";
    auto n = box->files().normalize(q->second, box->cwd_of(session));
    if (!n) return send_file_error(rc, n.error(), "file.read");
    auto fd = box->files().open(*n, O_RDONLY);
    if (!fd) return send_file_error(rc, fd.error(), "file.read");
    sb::unique_fd file(*fd);
    struct stat st {};
    ::fstat(file.get(), &st);
    if (S_ISDIR(st.st_mode)) return send_file_error(rc, sb::file_error(EISDIR, "read", *n), "file.read");
    auto out = rc.out;
    out->begin_stream(200, "application/octet-stream",
                      {{"X-File-Size", std::to_string(st.st_size)}, {"Content-Disposition", "attachment"}});
    std::string buf(1u << 20, '\0');
    for (;;) {
      ssize_t r = ::read(file.get(), buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;  // an error mid-stream can only cut the body: the client sees a short file
      if (!out->write_and_wait(buf.substr(0, static_cast<std::size_t>(r)))) return;
    }
    out->end();
  }));
  routes.add("PUT", "/api/files/raw", [st](request_context& rc) {
    if (st->unavailable) return send_error(*rc.out, *st->unavailable);
    auto q = rc.request.query.find("path");
    if (q == rc.request.query.end() || q->second.empty())
      return send_error(*rc.out, error{errc::validation_failed, "query parameter 'path' is required", {{"field", "path"}}});
    st->pool.post([st, rc = std::move(rc)]() mutable {
      auto box = st->sandboxes->get_or_create(rc.sandbox_id);
      if (!box) return send_error(*rc.out, box.error());
      auto session = rc.request.query.count("sessionId") ? rc.request.query.at("sessionId") : "default";
      auto w = (*box)->files().write(rc.request.query.at("path"), (*box)->cwd_of(session), rc.request.body);
      if (!w) return send_file_error(rc, w.error(), "file.write");
      send_json(*rc.out, 200, ok({{"path", *w}, {"bytesWritten", rc.request.body.size()}}));
    });
  });
}

// The body of PUT /api/files/raw, streamed from the taken connection into an atomic write.
void receive_raw_upload(const api_state& st, const std::string& sandbox_id, const server::http_request& head,
                        server::taken_connection conn) {
  server::upload_body body(std::move(conn), 60s);
  auto refuse = [&](error e, const char* operation = nullptr) {
    if (operation) e.details["operation"] = operation;
    body.respond(error_response(e));
  };
  if (st.unavailable) return refuse(*st.unavailable);
  auto q = head.query.find("path");
  if (q == head.query.end() || q->second.empty())
    return refuse(error{errc::validation_failed, "query parameter 'path' is required", {{"field", "path"}}});
  auto box = st.sandboxes->get_or_create(sandbox_id);
  if (!box) return refuse(box.error());
  sb::sandbox_runtime::activity_guard busy(**box);
  auto session = head.query.count("sessionId") ? head.query.at("sessionId") : "default";
  auto file = (*box)->files().begin_write(q->second, (*box)->cwd_of(session));
  if (!file) return refuse(file.error(), "file.write");
  for (;;) {
    auto piece = body.next();
    if (!piece) return;  // the client left: the temp file goes, the old file stays
    if (piece->empty()) break;
    if (auto w = file->append(*piece); !w) return refuse(w.error(), "file.write");
  }
  auto written = file->commit();
  if (!written) return refuse(written.error(), "file.write");
  body.respond(json_response(200, ok({{"path", *written}, {"bytesWritten", file->size()}})));
}

// ---- processes ----------------------------------------------------------------------------------

void register_processes(server::router& routes, std::shared_ptr<api_state> st) {
  routes.add("POST", "/api/process/start", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto command = f.str("command");
    auto id = f.str("processId");
    auto env = f.env("env");
    auto cwd = f.str("cwd");
    auto timeout = f.uint("timeoutMs");
    if (f.err) return send_error(*rc.out, *f.err);
    if (!command || command->find_first_not_of(" \t\r\n") == std::string::npos)
      return send_error(*rc.out, error{errc::invalid_command, "field 'command' is required and must not be empty", {{"field", "command"}}});
    auto session = request_session_id(rc.request, body);
    if (!session) return send_error(*rc.out, session.error());
    sb::process_start p;
    p.command = *command;
    if (id && !id->empty()) p.id = *id;
    p.env = std::move(env);
    p.cwd = cwd.value_or("");
    if (timeout && *timeout > 0) p.timeout = std::chrono::milliseconds(*timeout);
    auto snap = box->start_process(*session, std::move(p));
    if (!snap) {
      auto e = snap.error();
      e.details["operation"] = "process.start";
      return send_error(*rc.out, e);
    }
    send_json(*rc.out, 200, ok({{"processId", snap->id}, {"pid", snap->pid}, {"command", snap->command}, {"status", "running"}}));
  }));

  routes.add("GET", "/api/process/list", in_sandbox(st, [](request_context& rc, const nl::json&, const sandbox_ptr& box) {
    std::optional<std::string> session;
    if (auto h = rc.request.header("x-session-id"); !h.empty()) session = h;
    if (auto q = rc.request.query.find("sessionId"); q != rc.request.query.end()) session = q->second;
    std::optional<std::string> status;
    if (auto q = rc.request.query.find("status"); q != rc.request.query.end() && !q->second.empty()) status = q->second;
    nl::json list = nl::json::array();
    for (auto& p : box->processes().list(session))
      if (!status || *status == sb::process_status_name(p.status)) list.push_back(process_json(p));
    send_json(*rc.out, 200, ok({{"processes", list}, {"count", list.size()}}));
  }));

  routes.add("DELETE", "/api/process/kill-all", in_sandbox(st, [](request_context& rc, const nl::json&, const sandbox_ptr& box) {
    const std::size_t n = box->processes().kill_all();
    send_json(*rc.out, 200, ok({{"cleanedCount", n}}));
  }));

  routes.add("GET", "/api/process/{id}", in_sandbox(st, [](request_context& rc, const nl::json&, const sandbox_ptr& box) {
    auto p = box->processes().get(rc.params["id"]);
    if (!p) return send_error(*rc.out, p.error());
    send_json(*rc.out, 200, ok({{"process", process_json(*p)}}));
  }));

  routes.add("DELETE", "/api/process/{id}", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    int signo = SIGTERM;
    std::string name;
    if (auto q = rc.request.query.find("signal"); q != rc.request.query.end()) name = q->second;
    if (auto it = body.find("signal"); it != body.end() && it->is_string()) name = it->get<std::string>();
    if (auto it = body.find("signal"); it != body.end() && it->is_number_integer()) name = std::to_string(it->get<int>());
    if (!name.empty()) {
      static const std::map<std::string, int> names{{"SIGTERM", SIGTERM}, {"SIGKILL", SIGKILL}, {"SIGINT", SIGINT},
                                                    {"SIGHUP", SIGHUP}, {"SIGQUIT", SIGQUIT}, {"SIGUSR1", SIGUSR1},
                                                    {"SIGUSR2", SIGUSR2}, {"SIGSTOP", SIGSTOP}, {"SIGCONT", SIGCONT}};
      std::string upper = name;
      for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (upper.rfind("SIG", 0) != 0 && !std::isdigit(static_cast<unsigned char>(upper[0]))) upper = "SIG" + upper;
      if (auto it = names.find(upper); it != names.end()) signo = it->second;
      else if (std::all_of(upper.begin(), upper.end(), ::isdigit) && std::stoi(upper) > 0 && std::stoi(upper) < 65) signo = std::stoi(upper);
      else return send_error(*rc.out, error{errc::validation_failed, fmt::format("unknown signal '{}'", name), {{"field", "signal"}}});
    }
    auto r = box->processes().kill(rc.params["id"], signo);
    if (!r) return send_error(*rc.out, r.error());
    send_json(*rc.out, 200, ok({{"processId", rc.params["id"]}, {"signal", signo}}));
  }));

  routes.add("GET", "/api/process/{id}/logs", in_sandbox(st, [](request_context& rc, const nl::json&, const sandbox_ptr& box) {
    auto p = box->processes().get(rc.params["id"], true);
    if (!p) return send_error(*rc.out, p.error());
    nl::json j{{"processId", p->id}, {"status", std::string(sb::process_status_name(p->status))}};
    put_bytes(j, "stdout", p->stdout_log.data);
    put_bytes(j, "stderr", p->stderr_log.data);
    j["droppedBytes"] = {{"stdout", p->stdout_log.dropped}, {"stderr", p->stderr_log.dropped}};
    send_json(*rc.out, 200, ok(std::move(j)));
  }));

  routes.add("GET", "/api/process/{id}/stream", in_sandbox(st, [](request_context& rc, const nl::json&, const sandbox_ptr& box) {
    const std::string id = rc.params["id"];
    if (auto known = box->processes().get(id); !known) return send_error(*rc.out, known.error());
    auto out = rc.out;
    // Live events wait in `early` until the snapshot (info + buffered logs) is written, so the
    // client sees every byte once and in order.
    struct relay {
      std::mutex mutex;
      bool ready = false, ended = false;
      std::vector<sb::process_event> early;
      sandbox_ptr box;  // an open stream keeps its sandbox awake (and alive) until it ends
      std::optional<sb::sandbox_runtime::activity_guard> busy;
    };
    auto r = std::make_shared<relay>();
    r->box = box;
    r->busy.emplace(*box);
    auto emit = [out, id](const sb::process_event& ev, relay& rl) {
      if (rl.ended) return;
      if (ev.type == sb::process_event::kind::exit) {
        rl.ended = true;
        rl.busy.reset();
        out->write(sse({{"type", "exit"},
                        {"processId", id},
                        {"exitCode", ev.exit_code ? nl::json(*ev.exit_code) : nl::json(nullptr)},
                        {"status", std::string(sb::process_status_name(ev.status))},
                        {"data", fmt::format("Process {} with exit code {}", sb::process_status_name(ev.status), ev.exit_code.value_or(-1))},
                        {"timestamp", iso_timestamp()}}));
        out->end();
        return;
      }
      if (ev.data.empty()) return;
      nl::json j{{"type", ev.type == sb::process_event::kind::stdout_data ? "stdout" : "stderr"}, {"processId", id},
                 {"timestamp", iso_timestamp()}};
      put_bytes(j, "data", ev.data);
      out->write(sse(j));
    };
    auto sub = box->processes().subscribe(id, [r, emit](const sb::process_event& ev) {
      std::lock_guard lock(r->mutex);
      if (!r->ready) r->early.push_back(ev);
      else emit(ev, *r);
    });
    if (!sub) return send_error(*rc.out, sub.error());
    auto& [snap, handle] = *sub;
    out->begin_stream(200, "text/event-stream", {{"Connection", "keep-alive"}, {"X-Accel-Buffering", "no"}});
    std::weak_ptr<sb::sandbox_runtime> weak = box;
    out->on_disconnect([weak, id, handle = handle, r] {
      if (auto b = weak.lock()) b->processes().unsubscribe(id, handle);
      std::lock_guard lock(r->mutex);
      r->busy.reset();
      r->box.reset();
    });
    std::unique_lock lock(r->mutex);
    out->write(sse({{"type", "process_info"}, {"processId", id}, {"command", snap.command}, {"pid", snap.pid},
                    {"status", std::string(sb::process_status_name(snap.status))}, {"timestamp", iso_timestamp()}}));
    emit({sb::process_event::kind::stdout_data, snap.stdout_log.data, std::nullopt, snap.status}, *r);
    emit({sb::process_event::kind::stderr_data, snap.stderr_log.data, std::nullopt, snap.status}, *r);
    if (snap.status != sb::process_status::running)
      emit({sb::process_event::kind::exit, "", snap.exit_code, snap.status}, *r);
    for (auto& ev : r->early) emit(ev, *r);
    r->early.clear();
    r->ready = true;
    const bool ended = r->ended;
    lock.unlock();
    if (ended) box->processes().unsubscribe(id, handle);
  }));
}

// ---- port readiness ------------------------------------------------------------------------------

// One probe from inside the sandbox's network namespace: bash's /dev/tcp, and for http a GET
// whose status line is printed. Returns the HTTP status (http), 1 (tcp open), 0 (nothing there).
int probe_port(const sandbox_ptr& box, int port, const std::string& mode, const std::string& path) {
  sb::exec_request req;
  req.timeout = 3s;
  if (mode == "tcp") {
    req.command = fmt::format("exec 3<>/dev/tcp/127.0.0.1/{} && echo open", port);
  } else {
    req.command = fmt::format(
        "exec 3<>/dev/tcp/127.0.0.1/{0} || exit 0; printf 'GET %s HTTP/1.0\\r\\nHost: localhost:{0}\\r\\nConnection: close\\r\\n\\r\\n' {1} >&3; "
        "IFS=' ' read -r proto code rest <&3; echo \"$code\"",
        port, sb::shell_quote(path));
  }
  auto r = box->exec(std::string(sb::kNoSession), req);
  if (!r) return 0;
  auto text = r->stdout_data;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (mode == "tcp") return text == "open" ? 1 : 0;
  try {
    return text.empty() ? 0 : std::stoi(text);
  } catch (...) {
    return 0;
  }
}

void register_port_watch(server::router& routes, std::shared_ptr<api_state> st) {
  routes.add("POST", "/api/port-watch", in_sandbox(st, [](request_context& rc, const nl::json& body, const sandbox_ptr& box) {
    fields f{body};
    auto port = f.uint("port");
    auto mode = f.str("mode").value_or("http");
    auto path = f.str("path").value_or("/");
    auto status_min = f.uint("statusMin").value_or(200);
    auto status_max = f.uint("statusMax").value_or(399);
    auto process_id = f.str("processId");
    auto interval = f.uint("interval").value_or(500);
    auto timeout = f.uint("timeoutMs");
    if (f.err) return send_error(*rc.out, *f.err);
    if (!port || *port < 1 || *port > 65535)
      return send_error(*rc.out, error{errc::validation_failed, "field 'port' must be 1-65535", {{"field", "port"}}});
    if (mode != "http" && mode != "tcp")
      return send_error(*rc.out, error{errc::validation_failed, "field 'mode' must be http or tcp", {{"field", "mode"}}});
    if (path.empty() || path[0] != '/') path = "/" + path;
    interval = std::clamp<long long>(interval, 100, 10000);
    auto out = rc.out;
    auto gone = std::make_shared<std::atomic<bool>>(false);
    out->begin_stream(200, "text/event-stream", {{"Connection", "keep-alive"}, {"X-Accel-Buffering", "no"}});
    out->on_disconnect([gone] { gone->store(true); });
    const int p = static_cast<int>(*port);
    out->write(sse({{"type", "watching"}, {"port", p}, {"mode", mode}, {"timestamp", iso_timestamp()}}));
    const auto deadline = timeout && *timeout > 0 ? std::chrono::steady_clock::now() + std::chrono::milliseconds(*timeout)
                                                  : std::chrono::steady_clock::time_point::max();
    while (!gone->load()) {
      if (process_id && !process_id->empty()) {
        auto proc = box->processes().get(*process_id);
        if (!proc) {
          out->write(sse({{"type", "error"}, {"port", p}, {"error", proc.error().message}, {"timestamp", iso_timestamp()}}));
          break;
        }
        if (proc->status != sb::process_status::running) {
          out->write(sse({{"type", "process_exited"}, {"port", p}, {"processId", *process_id},
                          {"exitCode", proc->exit_code ? nl::json(*proc->exit_code) : nl::json(nullptr)}, {"timestamp", iso_timestamp()}}));
          break;
        }
      }
      const int got = probe_port(box, p, mode, path);
      if (mode == "tcp" ? got == 1 : (got >= status_min && got <= status_max)) {
        nl::json ev{{"type", "ready"}, {"port", p}, {"timestamp", iso_timestamp()}};
        if (mode == "http") ev["statusCode"] = got;
        out->write(sse(ev));
        break;
      }
      if (!box->box().alive()) {
        out->write(sse({{"type", "error"}, {"port", p}, {"error", "the sandbox stopped"}, {"timestamp", iso_timestamp()}}));
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        out->write(sse({{"type", "error"}, {"port", p}, {"code", "TIMEOUT"},
                        {"error", fmt::format("port {} was not ready within {} ms", p, *timeout)}, {"timestamp", iso_timestamp()}}));
        break;
      }
      for (long long waited = 0; waited < interval && !gone->load(); waited += 20) std::this_thread::sleep_for(20ms);
    }
    out->end();
  }));
}

}  // namespace

server::takeover_selector raw_upload_selector(sb::sandbox_manager* sandboxes, std::optional<error> unavailable,
                                              server::elastic_pool& blocking) {
  if (!sandboxes && !unavailable) unavailable = error{errc::internal_error, "sandboxes are not available on this host"};
  auto st = std::make_shared<api_state>(api_state{sandboxes, std::move(unavailable), blocking, nullptr});
  return [st](const server::http_request& head) -> std::optional<server::takeover_decision> {
    if (head.method != "PUT") return std::nullopt;
    // The router's rule: /api/... is the sandbox "default", /sandboxes/{id}/api/... sandbox {id}.
    std::string id = "default";
    std::string_view path = head.path;
    if (path.starts_with("/sandboxes/")) {
      path.remove_prefix(std::string_view("/sandboxes/").size());
      const auto slash = path.find('/');
      if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
      id = std::string(path.substr(0, slash));
      path.remove_prefix(slash);
    }
    if (path != "/api/files/raw") return std::nullopt;
    return server::takeover_decision{
        .take = [st, id, head](server::taken_connection conn) {
          auto taken = std::make_shared<server::taken_connection>(std::move(conn));
          st->pool.post([st, id, head, taken] { receive_raw_upload(*st, id, head, std::move(*taken)); });
        },
        .authenticated = true};
  };
}

void register_sandbox_api(server::router& routes, sb::sandbox_manager* sandboxes, std::optional<error> unavailable,
                          server::elastic_pool& blocking, const sandbox_api_hooks* hooks) {
  if (!sandboxes && !unavailable) unavailable = error{errc::internal_error, "sandboxes are not available on this host"};
  auto st = std::make_shared<api_state>(api_state{sandboxes, std::move(unavailable), blocking, hooks});
  register_sandboxes(routes, st);
  register_sessions(routes, st);
  register_commands(routes, st);
  register_files(routes, st);
  register_processes(routes, st);
  register_port_watch(routes, st);
}

}  // namespace kh::api
