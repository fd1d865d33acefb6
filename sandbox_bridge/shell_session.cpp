#include "sandbox_bridge/shell_session.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "common/log.hpp"
#include "sandbox_bridge/sandbox.hpp"

namespace kh::sandbox_bridge {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  out += '\'';
  return out;
}

std::string marker_scanner::feed(std::string_view in) {
  if (found_) {
    trailer_.append(in);
    return {};
  }
  pending_.append(in);
  auto pos = pending_.find(marker_);
  if (pos != std::string::npos) {
    std::string out = pending_.substr(0, pos);
    trailer_ = pending_.substr(pos + marker_.size());
    pending_.clear();
    found_ = true;
    return out;
  }
  // Keep the longest tail that could start the marker.
  std::size_t keep = std::min(pending_.size(), marker_.size() - 1);
  while (keep > 0 && pending_.compare(pending_.size() - keep, keep, marker_, 0, keep) != 0) --keep;
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

namespace {

std::string random_token() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

bool write_host_file(const fs::path& p, std::string_view data) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return false;
  unique_fd f(fd);
  ::fchmod(fd, 0644);
  return static_cast<bool>(write_all(fd, data));
}

}  // namespace

shell_session::shell_session(sandbox& owner, session_options options, fs::path run_dir_host,
                             std::string run_dir_inside, std::chrono::milliseconds kill_grace)
    : sandbox_(owner),
      options_(std::move(options)),
      run_dir_host_(std::move(run_dir_host)),
      run_dir_inside_(std::move(run_dir_inside)),
      kill_grace_(kill_grace),
      cwd_(options_.cwd) {
  std::error_code ec;
  fs::create_directories(run_dir_host_, ec);
  ::chmod(run_dir_host_.c_str(), 0755);
}

shell_session::~shell_session() {
  close();
  std::error_code ec;
  fs::remove_all(run_dir_host_, ec);
}

std::string shell_session::cwd() const {
  std::lock_guard lock(state_mutex_);
  return cwd_;
}

pid_t shell_session::shell_pid() const {
  std::lock_guard lock(state_mutex_);
  return bash_pid_;
}

void shell_session::close() {
  {
    std::lock_guard lock(state_mutex_);
    if (closed_) return;
    closed_ = true;
    if (shell_) kill_tree(shell_->pid(), true, std::chrono::milliseconds(0), true);
  }
  std::lock_guard lock(exec_mutex_);  // waits for a command in flight to see the shell die
  kill_shell();
}

void shell_session::kill_shell() {
  std::unique_ptr<child_process> old;
  {
    std::lock_guard lock(state_mutex_);
    old = std::move(shell_);
    bash_pid_ = -1;
  }
  if (old) {
    kill_tree(old->pid(), true, std::chrono::milliseconds(0), true);
    old->wait();
  }
}

result<void> shell_session::ensure_shell() {
  {
    std::lock_guard lock(state_mutex_);
    if (closed_) return fail(errc::session_destroyed, "the session was deleted", {{"sessionId", options_.id}});
    if (shell_ && !shell_->try_wait()) return {};
  }
  kill_shell();
  run_spec spec;
  spec.argv = {"/bin/bash", "--norc", "--noprofile"};
  spec.env = sandbox_.base_env();
  for (auto& [k, v] : options_.env) spec.env[k] = v;
  spec.cwd = cwd();
  spec.pipe_stdin = true;
  auto child = sandbox_.run(spec);
  if (!child) return std::unexpected(child.error());
  auto c = std::make_unique<child_process>(std::move(*child));
  if (auto w = write_all(c->stdin_fd(), "exec 8>&1 9>&2\n"); !w) return std::unexpected(w.error());
  set_nonblocking(c->stdout_fd());
  set_nonblocking(c->stderr_fd());
  std::lock_guard lock(state_mutex_);
  shell_ = std::move(c);
  return {};
}

result<exec_result> shell_session::exec(const exec_request& req, const output_sink& sink) {
  std::lock_guard exec_lock(exec_mutex_);
  for (auto& [k, v] : req.env) {
    if (!valid_env_name(k)) return fail(errc::validation_failed, fmt::format("invalid environment variable name '{}'", k));
    if (v.find('\0') != std::string::npos) return fail(errc::validation_failed, fmt::format("the value of {} contains a NUL byte", k));
  }
  if (req.cwd && req.cwd->find('\0') != std::string::npos) return fail(errc::validation_failed, "cwd contains a NUL byte");
  if (auto r = ensure_shell(); !r) return std::unexpected(r.error());
  auto started = clock_type::now();

  std::uint64_t n = ++counter_;
  fs::path cmd_host = run_dir_host_ / "cmd";
  if (!write_host_file(cmd_host, req.command)) return fail_errno("write the command file", errno);
  std::string stdin_redirect = "</dev/null";
  if (req.stdin_data) {
    if (!write_host_file(run_dir_host_ / "stdin", *req.stdin_data)) return fail_errno("write the stdin file", errno);
    stdin_redirect = "<" + shell_quote(run_dir_inside_ + "/stdin");
  }
  std::string token = random_token();
  std::string pre, post;
  int i = 0;
  for (auto& [k, v] : req.env) {
    ++i;
    pre += fmt::format("if [ \"${{{0}+x}}\" = x ]; then __kh_o{1}=${0}; __kh_h{1}=1; else __kh_h{1}=0; fi; export {0}={2}; ",
                       k, i, shell_quote(v));
    post += fmt::format("if [ $__kh_h{1} = 1 ]; then {0}=$__kh_o{1}; else unset {0}; fi; unset __kh_o{1} __kh_h{1}; ", k, i);
  }
  std::string group = fmt::format("{{ eval \"$__kh_c\"; }} {} >&8 2>&9 8>&- 9>&-; __kh_rc=$?; ", stdin_redirect);
  if (req.cwd)
    group = fmt::format("__kh_d=$PWD; if builtin cd -- {} 2>&9; then {} builtin cd -- \"$__kh_d\"; else __kh_rc=1; fi; ",
                        shell_quote(*req.cwd), group);
  std::string line = fmt::format(
      "IFS= read -r -d '' __kh_c <{}; {}{}{}printf '\\0KH%s:%d:%s\\0' {} \"$__kh_rc\" \"$PWD\" >&8; printf '\\0KH%s\\0' {} >&9\n",
      shell_quote(run_dir_inside_ + "/cmd"), pre, group, post, token, token);
  (void)n;

  int out_fd, err_fd, pidfd;
  pid_t shell_host_pid;
  {
    std::lock_guard lock(state_mutex_);
    out_fd = shell_->stdout_fd();
    err_fd = shell_->stderr_fd();
    pidfd = shell_->pidfd();
    shell_host_pid = shell_->pid();
  }
  if (auto w = write_all(shell_->stdin_fd(), line); !w) {
    // The shell is gone: report how it ended.
  }

  marker_scanner out_scan(std::string("\0KH", 3) + token + ":");
  marker_scanner err_scan(std::string("\0KH", 3) + token + "\0");
  exec_result res;
  auto timeout = req.timeout ? req.timeout : options_.command_timeout;
  auto deadline = timeout ? started + *timeout : clock_type::time_point::max();
  bool timed_out = false, shell_died = false, cancelled = false;
  clock_type::time_point give_up = clock_type::time_point::max();
  auto stdout_done = [&] { return out_scan.found() && out_scan.trailer().find('\0') != std::string::npos; };
  auto stderr_done = [&] { return err_scan.found(); };
  bool out_eof = false, err_eof = false;

  while (!(stdout_done() && stderr_done())) {
    pollfd fds[3] = {{out_eof ? -1 : out_fd, POLLIN, 0}, {err_eof ? -1 : err_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int wait_ms = -1;
    auto limit = timed_out ? give_up : deadline;
    if (limit != clock_type::time_point::max())
      wait_ms = static_cast<int>(std::max<long long>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(limit - clock_type::now()).count() + 1));
    if (req.cancel && !timed_out && (wait_ms < 0 || wait_ms > 100)) wait_ms = 100;  // look at the cancel flag
    int r = ::poll(fds, 3, wait_ms);
    if (r < 0 && errno == EINTR) continue;
    char buf[65536];
    for (int k = 0; k < 2; ++k) {
      if (!fds[k].revents) continue;
      while (true) {
        ssize_t got = ::read(fds[k].fd, buf, sizeof buf);
        if (got > 0) {
          std::string_view chunk(buf, static_cast<std::size_t>(got));
          std::string safe = (k == 0 ? out_scan : err_scan).feed(chunk);
          if (!safe.empty()) {
            (k == 0 ? res.stdout_data : res.stderr_data) += safe;
            if (sink) sink(k == 0 ? stream_kind::stdout_stream : stream_kind::stderr_stream, safe);
          }
          continue;
        }
        if (got == 0) (k == 0 ? out_eof : err_eof) = true;
        break;
      }
    }
    if (!(stdout_done() && stderr_done()) && (out_eof || err_eof || fds[2].revents)) {
      shell_died = true;
      break;
    }
    auto now = clock_type::now();
    const bool cancel_now = !timed_out && req.cancel && req.cancel->load();
    if (!timed_out && (now >= deadline || cancel_now)) {
      timed_out = true;
      cancelled = cancel_now && now < deadline;
      if (shell_host_pid > 0) kill_tree(shell_host_pid, false, kill_grace_);  // the command, not bash
      give_up = clock_type::now() + std::chrono::milliseconds(500) + kill_grace_;
    } else if (timed_out && now >= give_up) {
      break;  // bash itself does not come back: it is replaced below
    }
  }
  res.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - started);

  if (shell_died) {
    bool closed;
    {
      std::lock_guard lock(state_mutex_);
      closed = closed_;
    }
    int status = shell_->wait();
    int code = exit_code_of(status);
    kill_shell();
    if (closed)
      return fail(errc::session_destroyed, "the session was deleted while the command ran", {{"sessionId", options_.id}});
    return fail(errc::session_terminated,
                fmt::format("the shell of session '{}' exited with code {}; the next command starts a fresh shell",
                            options_.id, code),
                {{"sessionId", options_.id}, {"exitCode", code}, {"stdout", res.stdout_data}, {"stderr", res.stderr_data}});
  }
  if (timed_out) {
    bool restarted = !(stdout_done() && stderr_done());
    if (restarted) kill_shell();
    if (cancelled)
      return fail(errc::cancelled, "the command was cancelled (its caller went away) and killed",
                  {{"sessionId", options_.id}, {"shellRestarted", restarted}, {"stdout", res.stdout_data}, {"stderr", res.stderr_data}});
    return fail(errc::timeout,
                fmt::format("the command ran longer than {} ms and was killed{}", timeout->count(),
                            restarted ? "; the session's shell was restarted" : ""),
                {{"sessionId", options_.id}, {"timeoutMs", timeout->count()}, {"shellRestarted", restarted},
                 {"stdout", res.stdout_data}, {"stderr", res.stderr_data}});
  }
  // Trailer: "<code>:<pwd>\0".
  const std::string& t = out_scan.trailer();
  auto colon = t.find(':');
  auto nul = t.find('\0');
  try {
    res.exit_code = std::stoi(t.substr(0, colon));
  } catch (...) {
    res.exit_code = -1;
  }
  if (colon != std::string::npos && nul != std::string::npos && nul > colon) {
    std::lock_guard lock(state_mutex_);
    cwd_ = t.substr(colon + 1, nul - colon - 1);
  }
  {
    std::lock_guard lock(state_mutex_);
    if (bash_pid_ < 0 && shell_) bash_pid_ = shell_->pid();
  }
  return res;
}

}  // namespace kh::sandbox_bridge
