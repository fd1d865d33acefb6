#include "kernel_host/client/sandbox.hpp"

#include "kernel_host/client/detail/client_state.hpp"

namespace kh::client {

namespace nl = nlohmann;
using detail::http::verb;


using detail::bytes_field;

// ---- sandbox_calls ------------------------------------------------------------------------------

sandbox_calls::sandbox_calls(std::shared_ptr<detail::client_state> state, std::string session)
    : state_(std::move(state)), session_(std::move(session)) {}

const std::string& sandbox_calls::sandbox_id() const { return state_->options.sandbox; }

namespace {

// The body with this handle's session, if it has one.
nl::json with_session(nl::json body, const std::string& session) {
  if (!session.empty()) body["sessionId"] = session;
  return body;
}

}  // namespace

exec_result sandbox_calls::exec(const std::string& command, const exec_options& options) const {
  nl::json body{{"command", command}};
  if (options.cwd) body["cwd"] = *options.cwd;
  if (!options.env.empty()) body["env"] = options.env;
  if (options.timeout) body["timeoutMs"] = options.timeout->count();
  if (options.stdin_data) body["stdin"] = *options.stdin_data;
  body = with_session(std::move(body), session_);

  exec_result r;
  r.command = command;
  if (!options.on_output) {
    auto j = state_->call(verb::post, state_->sandbox_target("/api/execute"), body, options.timeout);
    r.stdout_data = bytes_field(j, "stdout");
    r.stderr_data = bytes_field(j, "stderr");
    r.exit_code = detail::int_field(j, "exitCode", -1);
    r.success = r.exit_code == 0;
    r.duration = std::chrono::duration<double, std::milli>(j.value("duration", 0.0));
    return r;
  }
  bool complete = false;
  state_->stream(verb::post, state_->sandbox_target("/api/execute/stream"), body, [&](const nl::json& e) {
    const std::string type = detail::text_field(e, "type", "");
    if (type == "stdout" || type == "stderr") {
      const std::string data = bytes_field(e, "data");
      (type == "stdout" ? r.stdout_data : r.stderr_data) += data;
      options.on_output(type, data);
    } else if (type == "complete") {
      r.exit_code = detail::int_field(e, "exitCode", -1);
      r.success = r.exit_code == 0;
      r.duration = std::chrono::duration<double, std::milli>(e.value("duration", 0.0));
      complete = true;
      return false;
    } else if (type == "error") {
      const std::string code = detail::text_field(e, "code", "COMMAND_EXECUTION_ERROR");
      throw sandbox_error(code, detail::text_field(e, "error", "the command failed"), code == "TIMEOUT" ? 408 : 500,
                          e.contains("context") && e["context"].is_object() ? e["context"] : nl::json::object());
    }
    return true;
  });
  if (!complete) throw sandbox_error("CONNECTION_ERROR", "the command's stream ended before its exit code", 0, {{"command", command}});
  return r;
}

file_content sandbox_calls::read_file(const std::string& path, const read_options& options) const {
  nl::json body{{"path", path}};
  if (!options.encoding.empty()) body["encoding"] = options.encoding;
  auto j = state_->call(verb::post, state_->sandbox_target("/api/read"), with_session(std::move(body), session_));
  file_content f;
  f.path = detail::text_field(j, "path", path);
  f.encoding = detail::text_field(j, "encoding", "utf-8");
  f.content = detail::text_field(j, "content", "");
  if (f.encoding == "base64") f.content = detail::base64_decode(f.content);
  f.is_binary = j.value("isBinary", false);
  f.mime_type = detail::text_field(j, "mimeType", "");
  f.size = j.value("size", std::uint64_t{0});
  return f;
}

write_result sandbox_calls::write_file(const std::string& path, std::string_view content, const write_options& options) const {
  nl::json body{{"path", path}};
  if (options.encoding == "base64") {  // content is base64 text already, as in the reference
    body["content"] = std::string(content);
    body["encoding"] = "base64";
  } else if (options.encoding.empty() && !detail::is_utf8(content)) {
    body["content"] = detail::base64_encode(content);
    body["encoding"] = "base64";
  } else {
    body["content"] = std::string(content);
  }
  auto j = state_->call(verb::post, state_->sandbox_target("/api/write"), with_session(std::move(body), session_));
  return {detail::text_field(j, "path", path), j.value("bytesWritten", std::uint64_t{content.size()})};
}

std::vector<file_info> sandbox_calls::list_files(const std::string& path, const list_options& options) const {
  nl::json body{{"path", path}, {"options", {{"recursive", options.recursive}, {"includeHidden", options.include_hidden}}}};
  auto j = state_->call(verb::post, state_->sandbox_target("/api/list-files"), with_session(std::move(body), session_));
  std::vector<file_info> out;
  for (const auto& f : j.value("files", nl::json::array())) {
    file_info i;
    i.name = detail::text_field(f, "name", "");
    i.absolute_path = detail::text_field(f, "absolutePath", "");
    i.relative_path = detail::text_field(f, "relativePath", "");
    i.type = detail::text_field(f, "type", "");
    i.size = f.value("size", std::uint64_t{0});
    i.modified_at = detail::text_field(f, "modifiedAt", "");
    i.mode = detail::text_field(f, "mode", "");
    const auto perms = f.value("permissions", nl::json::object());
    i.readable = perms.value("readable", false);
    i.writable = perms.value("writable", false);
    i.executable = perms.value("executable", false);
    out.push_back(std::move(i));
  }
  return out;
}

void sandbox_calls::delete_file(const std::string& path, const delete_options& options) const {
  nl::json body{{"path", path}, {"recursive", options.recursive}};
  state_->call(verb::post, state_->sandbox_target("/api/delete"), with_session(std::move(body), session_));
}

void sandbox_calls::mkdir(const std::string& path, const mkdir_options& options) const {
  nl::json body{{"path", path}, {"recursive", options.recursive}};
  state_->call(verb::post, state_->sandbox_target("/api/mkdir"), with_session(std::move(body), session_));
}

bool sandbox_calls::exists(const std::string& path) const {
  auto j = state_->call(verb::post, state_->sandbox_target("/api/exists"), with_session({{"path", path}}, session_));
  return j.value("exists", false);
}

process sandbox_calls::start_process(const std::string& command, const process_options& options) const {
  nl::json body{{"command", command}};
  if (!options.process_id.empty()) body["processId"] = options.process_id;
  if (options.cwd) body["cwd"] = *options.cwd;
  if (!options.env.empty()) body["env"] = options.env;
  if (options.timeout) body["timeoutMs"] = options.timeout->count();
  auto j = state_->call(verb::post, state_->sandbox_target("/api/process/start"), with_session(std::move(body), session_));
  process_info info = detail::process_from_json(j);
  if (info.status.empty()) info.status = "running";
  if (info.command.empty()) info.command = command;
  info.session_id = session_;
  return process(state_, std::move(info));
}

std::vector<process> sandbox_calls::list_processes() const {
  auto j = state_->call(verb::get, state_->sandbox_target("/api/process/list"));
  std::vector<process> out;
  for (const auto& p : j.value("processes", nl::json::array())) out.push_back(process(state_, detail::process_from_json(p)));
  return out;
}

process sandbox_calls::get_process(const std::string& id) const {
  auto j = state_->call(verb::get, state_->sandbox_target("/api/process/" + detail::encode_component(id)));
  return process(state_, detail::process_from_json(j.value("process", nl::json::object())));
}

void sandbox_calls::stop_process(const std::string& id, const std::string& signal) const {
  std::string target = state_->sandbox_target("/api/process/" + detail::encode_component(id));
  if (!signal.empty()) target += "?signal=" + detail::encode_component(signal);
  state_->call(verb::delete_, target);
}

process_logs sandbox_calls::get_process_logs(const std::string& id) const {
  auto j = state_->call(verb::get, state_->sandbox_target("/api/process/" + detail::encode_component(id) + "/logs"));
  return {bytes_field(j, "stdout"), bytes_field(j, "stderr")};
}

// ---- sandbox ------------------------------------------------------------------------------------

session sandbox::create_session(const session_options& options) const {
  nl::json body = nl::json::object();
  if (!options.id.empty()) body["id"] = options.id;
  if (options.cwd) body["cwd"] = *options.cwd;
  if (!options.env.empty()) body["env"] = options.env;
  if (options.command_timeout) body["commandTimeoutMs"] = options.command_timeout->count();
  auto j = state_->call(verb::post, state_->sandbox_target("/api/session/create"), body);
  std::string id = detail::text_field(j, "sessionId", "");
  if (id.empty() && j.contains("data") && j["data"].is_object()) id = detail::text_field(j["data"], "id");
  if (id.empty()) id = options.id;
  return session(state_, std::move(id));
}

std::vector<std::string> sandbox::list_sessions() const {
  auto j = state_->call(verb::get, state_->sandbox_target("/api/session/list"));
  std::vector<std::string> out;
  for (const auto& s : j.value("data", nl::json::array()))
    if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

session sandbox::get_session(const std::string& id) const {
  for (const auto& s : list_sessions())
    if (s == id) return session(state_, id);
  throw sandbox_error("SESSION_NOT_FOUND", "no session '" + id + "' in sandbox " + sandbox_id(), 404, {{"sessionId", id}});
}

void sandbox::delete_session(const std::string& id) const {
  state_->call(verb::post, state_->sandbox_target("/api/session/delete"), {{"sessionId", id}});
}

namespace {

exposed_port port_from_json(const nl::json& j) {
  exposed_port p;
  p.port = detail::int_field(j, "port", 0);
  p.url = detail::text_field(j, "url", "");
  p.name = detail::text_field(j, "name", "");
  p.status = detail::text_field(j, "status", "active");
  p.token = detail::text_field(j, "token", "");
  p.path_url = detail::text_field(j, "pathUrl", "");
  return p;
}

}  // namespace

exposed_port sandbox::expose_port(int port, const expose_options& options) const {
  nl::json body{{"port", port}};
  if (!options.name.empty()) body["name"] = options.name;
  if (!options.hostname.empty()) body["hostname"] = options.hostname;
  if (!options.token.empty()) body["token"] = options.token;
  auto j = state_->call(verb::post, state_->sandbox_target("/api/expose-port"), body);
  auto p = port_from_json(j);
  if (p.port == 0) p.port = port;
  return p;
}

void sandbox::unexpose_port(int port) const {
  state_->call(verb::delete_, state_->sandbox_target("/api/exposed-ports/" + std::to_string(port)));
}

std::vector<exposed_port> sandbox::get_exposed_ports(const std::string& hostname) const {
  std::string target = state_->sandbox_target("/api/exposed-ports");
  if (!hostname.empty()) target += "?hostname=" + detail::encode_component(hostname);
  auto j = state_->call(verb::get, target);
  nl::json list = nl::json::array();
  for (const char* key : {"ports", "exposedPorts", "data"})
    if (j.contains(key) && j[key].is_array()) {
      list = j[key];
      break;
    }
  std::vector<exposed_port> out;
  for (const auto& p : list) out.push_back(port_from_json(p));
  return out;
}

bool sandbox::is_port_exposed(int port) const {
  for (const auto& p : get_exposed_ports())
    if (p.port == port) return true;
  return false;
}

code_context sandbox::create_code_context(const context_options& options) const {
  nl::json body{{"language", options.language}};
  if (options.variables.is_object() && !options.variables.empty()) body["variables"] = options.variables;
  if (options.cwd) body["cwd"] = *options.cwd;
  if (!options.env.empty()) body["env_vars"] = options.env;
  if (options.timeout) body["timeoutMs"] = options.timeout->count();
  auto j = state_->call(verb::post, state_->sandbox_target("/api/contexts"), body);
  return code_context(state_, detail::text_field(j, "contextId", ""), detail::text_field(j, "language", options.language), detail::text_field(j, "cwd", ""));
}

std::vector<code_context> sandbox::list_code_contexts() const {
  auto j = state_->call(verb::get, state_->sandbox_target("/api/contexts"));
  std::vector<code_context> out;
  for (const auto& c : j.value("contexts", nl::json::array()))
    out.push_back(code_context(state_, detail::text_field(c, "id", ""), detail::text_field(c, "language", ""), detail::text_field(c, "cwd", "")));
  return out;
}

void sandbox::delete_code_context(const std::string& id) const {
  state_->call(verb::delete_, state_->sandbox_target("/api/contexts/" + detail::encode_component(id)));
}

void sandbox::mount_bucket(const std::string& bucket, const std::string& mount_path, const mount_options& options) const {
  nl::json body{{"bucket", bucket}, {"mountPath", mount_path}, {"readOnly", options.read_only}};
  if (!options.endpoint.empty()) body["endpoint"] = options.endpoint;
  if (!options.provider.empty()) body["provider"] = options.provider;
  if (!options.prefix.empty()) body["prefix"] = options.prefix;
  if (!options.s3fs_options.empty()) body["s3fsOptions"] = options.s3fs_options;
  if (options.credentials)
    body["credentials"] = {{"accessKeyId", options.credentials->access_key_id},
                           {"secretAccessKey", options.credentials->secret_access_key}};
  state_->call(verb::post, state_->sandbox_target("/api/mount-bucket"), body);
}

void sandbox::unmount_bucket(const std::string& mount_path) const {
  state_->call(verb::post, state_->sandbox_target("/api/unmount-bucket"), {{"mountPath", mount_path}});
}

void sandbox::destroy() const {
  state_->call(verb::delete_, state_->host_target("/api/sandboxes/" + detail::encode_component(sandbox_id())));
}

sandbox connect(const std::string& base_url, const connect_options& options) {
  auto ep = detail::parse_base_url(base_url);
  connect_options o = options;
  if (o.sandbox.empty()) o.sandbox = "default";
  return sandbox(std::make_shared<detail::client_state>(std::move(ep), std::move(o)));
}

}  // namespace kh::client
