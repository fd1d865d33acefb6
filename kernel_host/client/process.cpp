#include "kernel_host/client/detail/client_state.hpp"
#include "kernel_host/client/sandbox.hpp"

namespace kh::client {

namespace nl = nlohmann;
using detail::http::verb;

namespace {

// Finds a match line by line; the matcher gives the match groups of one line or nothing.
using line_matcher = std::function<std::optional<std::vector<std::string>>(const std::string& line)>;

// Looks for a match in text[from..]: from is moved back to the start of its line first.
std::optional<log_match> scan(const std::string& text, std::size_t from, const line_matcher& matcher) {
  from = std::min(from, text.size());
  if (from > 0) {
    const auto newline = text.rfind('\n', from - 1);
    from = newline == std::string::npos ? 0 : newline + 1;
  }
  while (from <= text.size()) {
    auto end = text.find('\n', from);
    const std::string line = text.substr(from, end == std::string::npos ? std::string::npos : end - from);
    if (auto m = matcher(line)) return log_match{line, std::move(*m)};
    if (end == std::string::npos) break;
    from = end + 1;
  }
  return std::nullopt;
}

sandbox_error ready_timeout(const std::string& id, const std::string& what) {
  return sandbox_error("PROCESS_READY_TIMEOUT", "process " + id + " was not ready in time: " + what, 408, {{"processId", id}});
}

sandbox_error exited_before_ready(const std::string& id, const nl::json& exit_code, const std::string& what) {
  return sandbox_error("PROCESS_EXITED_BEFORE_READY", "process " + id + " exited before " + what, 500,
                       {{"processId", id}, {"exitCode", exit_code}});
}

log_match wait_for_line(const std::shared_ptr<detail::client_state>& state, const std::string& id, const line_matcher& matcher,
                        const log_wait_options& options, const std::string& what) {
  const auto until = detail::deadline_after(options.timeout);
  const std::string base = "/api/process/" + detail::encode_component(id);
  auto logs = state->call(verb::get, state->sandbox_target(base + "/logs"));
  for (const char* name : {"stdout", "stderr"})
    if (auto m = scan(detail::bytes_field(logs, name), 0, matcher)) return *m;

  // Not there yet: the stream replays the buffered output, then follows the live output.
  std::string out, err;
  std::optional<log_match> found;
  std::optional<nl::json> exit_code;
  auto end = state->stream(verb::get, state->sandbox_target(base + "/stream"), nullptr, [&](const nl::json& e) {
    const std::string type = detail::text_field(e, "type", "");
    if (type == "stdout" || type == "stderr") {
      std::string& text = type == "stdout" ? out : err;
      const std::size_t from = text.size();
      text += detail::bytes_field(e, "data");
      found = scan(text, from, matcher);
      return !found;
    }
    if (type == "exit") {
      exit_code = e.value("exitCode", nl::json());
      return false;
    }
    return true;
  }, until);
  if (found) return *found;
  if (exit_code) throw exited_before_ready(id, *exit_code, "its output matched " + what);
  if (end == detail::stream_end::timed_out) throw ready_timeout(id, "no output line matched " + what);
  throw sandbox_error("CONNECTION_ERROR", "the log stream of process " + id + " ended early", 0, {{"processId", id}});
}

}  // namespace

const process_info& process::refresh() {
  auto j = state_->call(verb::get, state_->sandbox_target("/api/process/" + detail::encode_component(info_.id)));
  info_ = detail::process_from_json(j.value("process", nl::json::object()));
  return info_;
}

void process::wait_for_port(int port, const port_wait_options& options) const {
  nl::json body{{"port", port},
                {"mode", options.mode},
                {"path", options.path},
                {"statusMin", options.status.min},
                {"statusMax", options.status.max},
                {"processId", info_.id},
                {"interval", options.interval.count()}};
  detail::deadline until;
  if (options.timeout) {
    body["timeoutMs"] = options.timeout->count();
    until = detail::clock::now() + *options.timeout + std::chrono::seconds(5);  // the server's own answer first
  }
  bool ready = false;
  auto end = state_->stream(verb::post, state_->sandbox_target("/api/port-watch"), body, [&](const nl::json& e) {
    const std::string type = detail::text_field(e, "type", "");
    if (type == "ready") {
      ready = true;
      return false;
    }
    if (type == "process_exited") throw exited_before_ready(info_.id, e.value("exitCode", nl::json()), "port " + std::to_string(port) + " was ready");
    if (type == "error") {
      const std::string code = detail::text_field(e, "code", "");
      if (code == "TIMEOUT") throw ready_timeout(info_.id, "port " + std::to_string(port) + " did not answer");
      throw sandbox_error(code.empty() ? "PORT_OPERATION_ERROR" : code, detail::text_field(e, "error", "port watch failed"), 500,
                          {{"processId", info_.id}, {"port", port}});
    }
    return true;
  }, until);
  if (ready) return;
  if (end == detail::stream_end::timed_out) throw ready_timeout(info_.id, "port " + std::to_string(port) + " did not answer");
  throw sandbox_error("CONNECTION_ERROR", "the port watch ended without an answer", 0, {{"processId", info_.id}, {"port", port}});
}

log_match process::wait_for_log(const std::regex& pattern, const log_wait_options& options) const {
  return wait_for_line(state_, info_.id, [&](const std::string& line) -> std::optional<std::vector<std::string>> {
    std::smatch m;
    if (!std::regex_search(line, m, pattern)) return std::nullopt;
    std::vector<std::string> groups;
    for (const auto& g : m) groups.push_back(g.str());
    return groups;
  }, options, "the pattern");
}

log_match process::wait_for_log(const std::string& text, const log_wait_options& options) const {
  return wait_for_line(state_, info_.id, [&](const std::string& line) -> std::optional<std::vector<std::string>> {
    if (line.find(text) == std::string::npos) return std::nullopt;
    return std::vector<std::string>{text};
  }, options, "'" + text + "'");
}

exit_info process::wait_for_exit(const exit_wait_options& options) const {
  std::optional<exit_info> done;
  auto end = state_->stream(verb::get, state_->sandbox_target("/api/process/" + detail::encode_component(info_.id) + "/stream"), nullptr,
                            [&](const nl::json& e) {
                              if (detail::text_field(e, "type", "") != "exit") return true;
                              exit_info x;
                              if (auto it = e.find("exitCode"); it != e.end() && it->is_number_integer()) x.exit_code = it->get<int>();
                              x.status = detail::text_field(e, "status", "");
                              done = x;
                              return false;
                            },
                            detail::deadline_after(options.timeout));
  if (done) return *done;
  if (end == detail::stream_end::timed_out)
    throw sandbox_error("TIMEOUT", "process " + info_.id + " was still running at the deadline", 0, {{"processId", info_.id}});
  throw sandbox_error("CONNECTION_ERROR", "the stream of process " + info_.id + " ended before its exit", 0, {{"processId", info_.id}});
}

process_logs process::logs() const {
  auto j = state_->call(verb::get, state_->sandbox_target("/api/process/" + detail::encode_component(info_.id) + "/logs"));
  return {detail::bytes_field(j, "stdout"), detail::bytes_field(j, "stderr")};
}

void process::kill(const std::string& signal) const {
  std::string target = state_->sandbox_target("/api/process/" + detail::encode_component(info_.id));
  if (!signal.empty()) target += "?signal=" + detail::encode_component(signal);
  state_->call(verb::delete_, target);
}

}  // namespace kh::client
