#include "sandbox_bridge/sandbox_runtime.hpp"

#include <sys/wait.h>

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.hpp"

namespace kh::sandbox_bridge {

sandbox_runtime::sandbox_runtime(std::unique_ptr<sandbox> box, std::filesystem::path run_dir, runtime_options options)
    : sandbox_(std::move(box)),
      run_dir_(std::move(run_dir)),
      options_(options),
      files_(*sandbox_, options.max_read_bytes),
      processes_(std::make_unique<process_table>(*sandbox_, options.log_capacity, options.kill_grace)) {
  processes_->set_journal(state_dir() / "processes.json");
}

sandbox_runtime::~sandbox_runtime() { stop("host_stopped"); }

void sandbox_runtime::stop(const std::string& reason) {
  std::map<std::string, std::shared_ptr<shell_session>> sessions;
  {
    std::lock_guard lock(mutex_);
    sessions.swap(sessions_);
  }
  if (!reason.empty()) processes_->mark_running(reason);
  sandbox_->stop();  // every process of the sandbox dies here
  for (auto& [id, s] : sessions) s->close();
  processes_.reset();  // joins the reader threads (their processes are gone)
  processes_ = std::make_unique<process_table>(*sandbox_, options_.log_capacity, options_.kill_grace);
  processes_->set_journal(state_dir() / "processes.json");
}

void sandbox_runtime::save_sessions() {
  nlohmann::json all = nlohmann::json::array();
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, s] : sessions_) {
      const auto& o = s->options();
      nlohmann::json j{{"id", o.id}, {"env", o.env}, {"cwd", o.cwd}};
      if (o.command_timeout) j["commandTimeoutMs"] = o.command_timeout->count();
      all.push_back(std::move(j));
    }
  }
  (void)write_file_atomically(state_dir() / "sessions.json", all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void sandbox_runtime::restore(const std::string& reason) {
  processes_->restore(state_dir() / "processes.json", reason);
  std::ifstream in(state_dir() / "sessions.json");
  auto all = in ? nlohmann::json::parse(in, nullptr, false) : nlohmann::json();
  if (!all.is_array()) return;
  for (const auto& j : all) {
    if (!j.is_object()) continue;
    session_options o;
    o.id = j.value("id", "");
    o.cwd = j.value("cwd", "/workspace");
    if (j.contains("env") && j["env"].is_object())
      for (auto& [k, v] : j["env"].items())
        if (v.is_string()) o.env[k] = v.get<std::string>();
    if (j.contains("commandTimeoutMs") && j["commandTimeoutMs"].is_number_integer())
      o.command_timeout = std::chrono::milliseconds(j["commandTimeoutMs"].get<long long>());
    (void)create_session(std::move(o));  // a fresh shell with the session's first env and cwd
  }
}

result<std::shared_ptr<shell_session>> sandbox_runtime::create_session(session_options o) {
  if (!valid_id(o.id) || o.id == kNoSession)
    return fail(errc::validation_failed, "a session id is 1-128 characters of [A-Za-z0-9_.-]", {{"sessionId", o.id}});
  for (auto& [k, v] : o.env)
    if (!valid_env_name(k)) return fail(errc::validation_failed, fmt::format("invalid environment variable name '{}'", k));
  std::shared_ptr<shell_session> s;
  {
    std::lock_guard lock(mutex_);
    if (!sandbox_->alive()) return fail(errc::sandbox_not_found, "the sandbox is not running", {{"sandboxId", id()}});
    if (sessions_.count(o.id))
      return fail(errc::session_already_exists, fmt::format("session '{}' already exists", o.id), {{"sessionId", o.id}});
    std::string dir = fmt::format("s{}", next_session_dir_++);
    std::string sid = o.id;
    s = std::make_shared<shell_session>(*sandbox_, std::move(o), run_dir_ / dir, "/run/kh/" + dir, options_.kill_grace);
    sessions_[sid] = s;
  }
  save_sessions();
  return s;
}

result<std::shared_ptr<shell_session>> sandbox_runtime::get_session(const std::string& sid) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(sid);
  if (it == sessions_.end())
    return fail(errc::shell_session_not_found, fmt::format("session '{}' not found", sid), {{"sessionId", sid}});
  return it->second;
}

result<std::shared_ptr<shell_session>> sandbox_runtime::get_or_create_session(const std::string& sid,
                                                                              const std::optional<std::string>& cwd) {
  if (auto s = get_session(sid)) return s;
  session_options o;
  o.id = sid;
  if (cwd) o.cwd = *cwd;
  auto s = create_session(std::move(o));
  if (!s && s.error().code == errc::session_already_exists) return get_session(sid);
  return s;
}

result<void> sandbox_runtime::delete_session(const std::string& sid) {
  std::shared_ptr<shell_session> s;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(sid);
    if (it == sessions_.end())
      return fail(errc::shell_session_not_found, fmt::format("session '{}' not found", sid), {{"sessionId", sid}});
    s = it->second;
    sessions_.erase(it);
  }
  s->close();
  save_sessions();
  return {};
}

std::vector<std::string> sandbox_runtime::list_sessions() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (auto& [id, s] : sessions_) out.push_back(id);
  return out;
}

std::string sandbox_runtime::cwd_of(const std::string& sid) const {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(sid);
  return it == sessions_.end() ? "/workspace" : it->second->cwd();
}

result<exec_result> sandbox_runtime::exec(const std::string& sid, const exec_request& req, const output_sink& sink) {
  if (req.command.find_first_not_of(" \t\r\n") == std::string::npos)
    return fail(errc::invalid_command, "the command is empty");
  if (sid != kNoSession) {
    auto s = get_or_create_session(sid);
    if (!s) return std::unexpected(s.error());
    return (*s)->exec(req, sink);
  }
  // Sessionless: bash -c in its own process group.
  run_spec spec;
  spec.argv = {"/bin/bash", "-c", req.command};
  spec.env = sandbox_->base_env();
  for (auto& [k, v] : req.env) {
    if (!valid_env_name(k)) return fail(errc::validation_failed, fmt::format("invalid environment variable name '{}'", k));
    spec.env[k] = v;
  }
  spec.cwd = req.cwd.value_or("/workspace");
  spec.pipe_stdin = req.stdin_data.has_value();
  auto started = std::chrono::steady_clock::now();
  auto child = sandbox_->run(spec);
  if (!child) return std::unexpected(child.error());
  std::function<void(int, std::string_view)> raw;
  if (sink) raw = [&](int which, std::string_view d) { sink(which == 1 ? stream_kind::stdout_stream : stream_kind::stderr_stream, d); };
  auto out = collect_output(*child, req.stdin_data.value_or(""), req.timeout, raw, options_.kill_grace);
  exec_result r;
  r.duration = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  r.stdout_data = std::move(out.stdout_data);
  r.stderr_data = std::move(out.stderr_data);
  r.exit_code = exit_code_of(out.wait_status);
  if (out.timed_out)
    return fail(errc::timeout, fmt::format("the command ran longer than {} ms and was killed", req.timeout->count()),
                {{"timeoutMs", req.timeout->count()}, {"stdout", r.stdout_data}, {"stderr", r.stderr_data}});
  // A cwd that cannot be entered is the command's error: exit 1, "kernel-host: cannot change directory to ...".
  return r;
}

result<process_snapshot> sandbox_runtime::start_process(const std::string& sid, process_start req) {
  auto env = sandbox_->base_env();
  std::string cwd = "/workspace";
  if (sid != kNoSession && !sid.empty()) {
    auto s = get_or_create_session(sid);
    if (!s) return std::unexpected(s.error());
    for (auto& [k, v] : (*s)->options().env) env[k] = v;
    cwd = (*s)->cwd();
  }
  for (auto& [k, v] : req.env) {
    if (!valid_env_name(k)) return fail(errc::validation_failed, fmt::format("invalid environment variable name '{}'", k));
    env[k] = v;
  }
  req.env = std::move(env);
  if (req.cwd.empty()) req.cwd = cwd;
  req.session_id = sid == kNoSession ? "" : sid;
  return processes_->start(req);
}

}  // namespace kh::sandbox_bridge
