// The local provisioner: kernels as child processes of this daemon, spawned with posix_spawn.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/ids.hpp"
#include "common/log.hpp"
#include "contexts/provisioner.hpp"

extern char** environ;

namespace kh::contexts {
namespace fs = std::filesystem;

std::string exit_status::to_string() const {
  if (signal == 0) return "exit code " + std::to_string(code);
  const char* description = ::sigdescr_np(signal);  // thread-safe, unlike strsignal
  return "signal " + std::to_string(signal) + " (" + (description ? description : "unknown signal") + ")";
}

namespace {

std::unexpected<error> start_failed(const launch_request& request, std::string message, nl::json details = {}) {
  if (!details.is_object()) details = nl::json::object();
  details["kernel_name"] = request.spec.name;
  details["kernel_id"] = request.kernel_id;
  return fail(errc::kernel_start_failed,
              "cannot start kernel '" + request.spec.name + "': " + std::move(message), std::move(details));
}

std::map<std::string, std::string> current_environment() {
  std::map<std::string, std::string> out;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view text(*entry);
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return out;
}

bool is_executable_file(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// argv[0] as an absolute path. Resolved here rather than with posix_spawnp because the kernel's
// PATH (from the spec and the request) may differ from ours, and because a missing executable
// would otherwise only show up as exit status 127. Relative paths are relative to the kernel's cwd.
std::optional<fs::path> resolve_executable(const std::string& program, const std::string& path_var,
                                           const fs::path& cwd) {
  const fs::path base = cwd.empty() ? fs::current_path() : cwd;
  if (program.find('/') != std::string::npos) {
    fs::path candidate = fs::path(program).is_absolute() ? fs::path(program) : base / program;
    return is_executable_file(candidate) ? std::optional(candidate) : std::nullopt;
  }
  std::stringstream entries(path_var);
  for (std::string dir; std::getline(entries, dir, ':');) {
    fs::path candidate = fs::path(dir.empty() ? "." : dir) / program;  // an empty entry means "."
    if (candidate.is_relative()) candidate = base / candidate;
    if (is_executable_file(candidate)) return candidate;
  }
  return std::nullopt;
}

// The RAII owners of posix_spawn's attribute objects.
struct spawn_attributes {
  posix_spawnattr_t attr{};
  posix_spawn_file_actions_t actions{};
  spawn_attributes() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  spawn_attributes(const spawn_attributes&) = delete;
  spawn_attributes& operator=(const spawn_attributes&) = delete;
  ~spawn_attributes() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

exit_status decode_status(int status) {
  exit_status out;
  if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    out.code = WEXITSTATUS(status);
  }
  return out;
}

class local_provisioner final : public provisioner {
 public:
  local_provisioner() = default;
  local_provisioner(const local_provisioner&) = delete;
  local_provisioner& operator=(const local_provisioner&) = delete;

  ~local_provisioner() override {
    // Never leave a zombie or an orphaned kernel behind: kill the whole group and reap.
    bool running = false;
    {
      std::lock_guard lock(mutex_);
      running = pid_ > 0 && !status_;
    }
    if (running) {
      (void)kill();
      std::lock_guard lock(mutex_);
      reap_locked(/*block=*/true);
    }
    cleanup();
  }

  result<void> launch(const launch_request& request) override;

  int pid() const noexcept override { return pid_.load(); }
  int exit_fd() const noexcept override { return pidfd_.load(); }

  std::optional<exit_status> poll() override {
    std::lock_guard lock(mutex_);
    reap_locked(/*block=*/false);
    return status_;
  }

  std::optional<exit_status> wait(std::chrono::milliseconds timeout) override;

  result<void> send_signal(int signo) override {
    std::lock_guard lock(mutex_);
    // Once reaped the pid may belong to another process; while not reaped (at worst a zombie)
    // it is still ours, and the mutex keeps poll() from reaping it under our feet.
    if (pid_ <= 0 || status_) return not_running();
    if (::kill(pid_, signo) != 0) {
      if (errno == ESRCH) return not_running();
      return fail_errno("kill " + std::to_string(pid_.load()), errno);
    }
    return {};
  }

  result<void> terminate() override { return send_signal(SIGTERM); }

  result<void> kill() override {
    std::lock_guard lock(mutex_);
    if (pid_ <= 0) return not_running();
    // The kernel itself first (it may have left our group), then the group, which also holds
    // the processes it started. The group is signalled even after the kernel was reaped, so
    // its leftover children go too: a pgid is not reused while any member is alive.
    if (!status_ && ::kill(pid_, SIGKILL) != 0 && errno != ESRCH) {
      return fail_errno("kill " + std::to_string(pid_.load()), errno);
    }
    if (::killpg(pid_, SIGKILL) != 0 && errno != ESRCH) {
      return fail_errno("killpg " + std::to_string(pid_.load()), errno);
    }
    return {};
  }

  void cleanup() override {
    std::lock_guard lock(mutex_);
    if (const int fd = pidfd_.exchange(-1); fd >= 0) ::close(fd);
    if (!connection_file_.empty()) {
      ::unlink(connection_file_.c_str());
      connection_file_.clear();
    }
    remove_ipc_files(connection_);
    connection_ = {};
  }

  std::string log_tail(std::size_t max_bytes) const override;

 private:
  static std::unexpected<error> not_running() {
    return fail(errc::kernel_not_running, "the kernel process is not running");
  }

  // waitpid on our child; caches the status. Call with mutex_ held.
  void reap_locked(bool block) {
    if (pid_ <= 0 || status_) return;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) {
      status_ = decode_status(status);
    } else if (r < 0 && errno == ECHILD) {
      // Someone else reaped it (SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere): it is gone,
      // but its status is lost.
      kh::log::get("contexts")->warn("kernel pid {} was reaped elsewhere; exit status unknown", pid_.load());
      status_ = exit_status{.code = -1, .signal = 0};
    }
  }

  mutable std::mutex mutex_;
  std::atomic<int> pid_{0};
  std::atomic<int> pidfd_{-1};
  std::optional<exit_status> status_;
  connection_info connection_;
  fs::path connection_file_;
  fs::path log_file_;
};

result<void> local_provisioner::launch(const launch_request& request) {
  std::lock_guard lock(mutex_);
  if (pid_ > 0) return fail(errc::internal_error, "this provisioner has already launched a kernel");

  const std::string kernel_id = request.kernel_id.empty() ? kh::new_uuid() : request.kernel_id;
  const fs::path& runtime_dir = request.runtime_dir;
  if (runtime_dir.empty()) return start_failed(request, "no runtime folder given");

  // The runtime folder holds connection files (secrets): private to us when we create it.
  std::error_code ec;
  if (!fs::is_directory(runtime_dir, ec)) {
    fs::create_directories(runtime_dir, ec);
    if (ec) {
      return start_failed(request, "cannot create runtime folder " + runtime_dir.string() + ": " + ec.message(),
                          {{"path", runtime_dir.string()}});
    }
    ::chmod(runtime_dir.c_str(), 0700);
  }

  if (!request.cwd.empty() && !fs::is_directory(request.cwd, ec)) {
    return start_failed(request, "working folder " + request.cwd.string() + " does not exist or is not a folder",
                        {{"cwd", request.cwd.string()}});
  }

  // The environment: ours, then the spec's env (with ${VAR} from ours), then the request's.
  auto env = current_environment();
  for (auto& [key, value] : expand_env(request.spec, env)) env[key] = std::move(value);
  for (const auto& [key, value] : request.env) env[key] = value;

  const fs::path connection_file = runtime_dir / ("kernel-" + kernel_id + ".json");
  const auto argv = expand_argv(request.spec, connection_file, "/usr/bin/python3");
  if (argv.empty()) return start_failed(request, "the kernelspec has an empty argv");

  const auto path_var = env.contains("PATH") ? env["PATH"] : std::string("/usr/local/bin:/usr/bin:/bin");
  const auto executable = resolve_executable(argv[0], path_var, request.cwd);
  if (!executable) {
    const std::string where = argv[0].find('/') != std::string::npos ? "" : " in PATH (" + path_var + ")";
    return start_failed(request, "executable '" + argv[0] + "' not found" + where + " or not executable",
                        {{"executable", argv[0]}});
  }

  const fs::path log_file =
      request.log_file.empty() ? runtime_dir / ("kernel-" + kernel_id + ".log") : request.log_file;
  const int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    return start_failed(request, "cannot open log file " + log_file.string() + ": " + std::strerror(errno),
                        {{"path", log_file.string()}});
  }
  struct close_log {
    int fd;
    ~close_log() { ::close(fd); }
  } log_guard{log_fd};

  if (auto written = write_connection_file(request.connection, connection_file); !written) {
    return start_failed(request, "cannot write connection file: " + written.error().message,
                        {{"path", connection_file.string()}});
  }

  spawn_attributes spawn;
  // A new process group (so kill() reaches the kernel's children), an empty signal mask, and
  // default dispositions: threads of this daemon may block or ignore signals (SIGPIPE, SIGINT),
  // and ignored dispositions survive exec, which would make a kernel deaf to interrupts.
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  posix_spawnattr_setflags(&spawn.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&spawn.attr, 0);
  posix_spawnattr_setsigmask(&spawn.attr, &empty_mask);
  posix_spawnattr_setsigdefault(&spawn.attr, &defaults);

  posix_spawn_file_actions_addopen(&spawn.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&spawn.actions, log_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&spawn.actions, log_fd, STDERR_FILENO);
  // Nothing else of the daemon reaches the kernel: a client socket accepted on another thread
  // but not yet marked close-on-exec would otherwise stay open in the kernel (no FIN on close).
  posix_spawn_file_actions_addclosefrom_np(&spawn.actions, STDERR_FILENO + 1);
  if (!request.cwd.empty()) posix_spawn_file_actions_addchdir_np(&spawn.actions, request.cwd.c_str());

  std::vector<char*> c_argv;
  for (const auto& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
  c_argv.push_back(nullptr);
  std::vector<std::string> env_entries;
  env_entries.reserve(env.size());
  for (const auto& [key, value] : env) env_entries.push_back(key + "=" + value);
  std::vector<char*> c_env;
  for (auto& entry : env_entries) c_env.push_back(entry.data());
  c_env.push_back(nullptr);

  pid_t child = 0;
  if (const int err = ::posix_spawn(&child, executable->c_str(), &spawn.actions, &spawn.attr, c_argv.data(),
                                    c_env.data());
      err != 0) {
    ::unlink(connection_file.c_str());
    return start_failed(request, "posix_spawn " + executable->string() + ": " + std::strerror(err),
                        {{"executable", executable->string()}, {"errno", err}});
  }

  pid_ = child;
  connection_ = request.connection;
  connection_file_ = connection_file;
  log_file_ = log_file;

  // pidfd_open's descriptors are always close-on-exec. The child is not reaped yet, so the pid
  // cannot have been reused. Without pidfds (kernels before 5.3) wait() falls back to polling.
  const long fd = ::syscall(SYS_pidfd_open, child, 0);
  if (fd >= 0) {
    pidfd_ = static_cast<int>(fd);
  } else {
    kh::log::get("contexts")->warn("pidfd_open({}) failed: {}; exit_fd() unavailable", child, std::strerror(errno));
  }
  kh::log::get("contexts")->debug("kernel {} ({}) started: pid {}", kernel_id, request.spec.name, child);
  return {};
}

std::optional<exit_status> local_provisioner::wait(std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::max(timeout, std::chrono::milliseconds(0));
  for (;;) {
    if (auto status = poll()) return status;
    if (pid_ <= 0) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) return std::nullopt;
    // Block without the mutex, so other threads can signal the kernel while we wait.
    const int fd = pidfd_.load();
    if (fd >= 0) {
      pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
      const int ms = static_cast<int>(std::min<long long>(left.count(), INT_MAX));
      const int ready = ::poll(&p, 1, ms);
      if (ready < 0 && errno != EINTR) {
        // EBADF: cleanup() closed the pidfd meanwhile; fall back to polling.
        std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
      } else if (ready > 0 && (p.revents & POLLIN) == 0) {
        // POLLNVAL/POLLERR would return at once forever: don't spin on them.
        std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
      }
    } else {
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
    }
  }
}

std::string local_provisioner::log_tail(std::size_t max_bytes) const {
  fs::path path;
  {
    std::lock_guard lock(mutex_);
    path = log_file_;
  }
  if (path.empty() || max_bytes == 0) return {};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st {};
  std::string out;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const auto size = static_cast<std::size_t>(st.st_size);
    const std::size_t n = std::min(max_bytes, size);
    out.resize(n);
    const ssize_t got = ::pread(fd, out.data(), n, static_cast<off_t>(size - n));
    out.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
    // Do not start in the middle of a UTF-8 sequence: the tail ends up in JSON error messages.
    if (n < size) {
      std::size_t skip = 0;
      while (skip < out.size() && skip < 3 && (static_cast<unsigned char>(out[skip]) & 0xC0) == 0x80) ++skip;
      out.erase(0, skip);
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

std::unique_ptr<provisioner> make_local_provisioner() {
  return std::make_unique<local_provisioner>();
}

}  // namespace kh::contexts
