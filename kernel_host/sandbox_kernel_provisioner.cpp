#include "kernel_host/sandbox_kernel_provisioner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "common/log.hpp"
#include "sandbox_bridge/namespace_sandbox.hpp"

namespace kh::host {

namespace fs = std::filesystem;
namespace ctx = kh::contexts;
namespace sb = kh::sandbox_bridge;
using namespace std::chrono_literals;

result<fs::path> sandbox_kernel_dir(sb::sandbox_runtime& box) {
  auto* ns = dynamic_cast<sb::namespace_sandbox*>(&box.box());
  if (!ns || ns->init_pid() <= 0 || !ns->alive())
    return fail(errc::container_not_ready, "the sandbox is not running", {{"sandboxId", box.id()}});
  fs::path dir = fs::path(fmt::format("/proc/{}/root", ns->init_pid())) / (kSandboxKernelDir + 1);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(errc::io_error, fmt::format("create {}: {}", dir.string(), ec.message()));
  ::chown(dir.c_str(), box.box().uid(), box.box().gid());
  ::chmod(dir.c_str(), 0700);
  return dir;
}

namespace {

ctx::exit_status decode(int status) {
  ctx::exit_status out;
  if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
  else if (WIFEXITED(status)) out.code = WEXITSTATUS(status);
  return out;
}

class sandbox_kernel_provisioner final : public ctx::provisioner {
 public:
  explicit sandbox_kernel_provisioner(std::shared_ptr<sb::sandbox_runtime> box) : box_(std::move(box)) {}

  ~sandbox_kernel_provisioner() override {
    if (child_ && !child_->exited()) {
      (void)kill();
      child_->wait();
    }
    cleanup();
  }

  result<void> launch(const ctx::launch_request& request) override {
    std::lock_guard lock(mutex_);
    if (child_) return fail(errc::internal_error, "this provisioner has already launched a kernel");
    auto& box = box_->box();
    const fs::path host_dir = request.runtime_dir;
    const std::string inside_dir = kSandboxKernelDir;
    const std::string id = request.kernel_id;
    host_connection_ = request.connection;

    // The kernel binds its sockets at the inside path of the same files.
    ctx::connection_info inside = request.connection;
    if (inside.kind == ctx::transport::ipc) {
      const std::string host_prefix = host_dir.string();
      if (inside.ip.rfind(host_prefix, 0) != 0)
        return fail(errc::kernel_start_failed, "a sandbox kernel's ipc sockets must live in its kernel folder");
      inside.ip = inside_dir + inside.ip.substr(host_prefix.size());
    }
    connection_file_ = host_dir / fmt::format("kernel-{}.json", id);
    if (auto w = ctx::write_connection_file(inside, connection_file_); !w) return std::unexpected(w.error());
    ::chown(connection_file_.c_str(), box.uid(), box.gid());
    const std::string inside_file = fmt::format("{}/kernel-{}.json", inside_dir, id);

    auto env = box.base_env();
    for (auto& [k, v] : ctx::expand_env(request.spec, env)) env[k] = std::move(v);
    for (const auto& [k, v] : request.env) env[k] = v;
    env["JUPYTER_RUNTIME_DIR"] = inside_dir;
    sb::run_spec spec;
    spec.argv = ctx::expand_argv(request.spec, inside_file, "/usr/bin/python3");
    if (spec.argv.empty()) return fail(errc::kernel_start_failed, "the kernelspec has an empty argv");
    if (spec.argv[0].find('/') == std::string::npos) {
      // A bare name: the sandbox's PATH decides (its /usr/bin).
      for (const char* dir : {"/usr/local/bin/", "/usr/bin/", "/bin/"})
        if (::access((std::string(dir) + spec.argv[0]).c_str(), X_OK) == 0) {
          spec.argv[0] = dir + spec.argv[0];
          break;
        }
    }
    spec.env = std::move(env);
    spec.cwd = request.cwd.empty() ? "/workspace" : request.cwd.string();
    auto child = box.run(spec);
    if (!child) return std::unexpected(child.error());
    child_ = std::make_unique<sb::child_process>(std::move(*child));
    pidfd_ = child_->pidfd();

    log_file_ = request.log_file.empty() ? host_dir / fmt::format("kernel-{}.log", id) : request.log_file;
    start_log_relay();

    // The child is the kernel itself (in the sandbox's PID namespace): its host pid is the one interrupts go to.
    if (!child_->try_wait()) kernel_pid_ = child_->pid();
    if (kernel_pid_ <= 0) {
      const auto tail = log_tail_locked(2000);
      return fail(errc::kernel_start_failed, "the kernel did not start inside the sandbox", {{"log_tail", tail}});
    }
    return {};
  }

  int pid() const noexcept override { return kernel_pid_; }
  int exit_fd() const noexcept override { return pidfd_; }

  std::optional<ctx::exit_status> poll() override {
    std::lock_guard lock(mutex_);
    if (!child_) return std::nullopt;
    auto st = child_->try_wait();
    if (!st) return std::nullopt;
    return decode(*st);
  }

  std::optional<ctx::exit_status> wait(std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto st = poll()) return st;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 50)));
    }
  }

  result<void> send_signal(int signo) override {
    std::lock_guard lock(mutex_);
    if (!child_ || child_->exited() || kernel_pid_ <= 0) return fail(errc::kernel_not_running, "the kernel process is not running");
    if (::kill(kernel_pid_, signo) != 0 && errno != ESRCH) return fail_errno("kill", errno);
    return {};
  }

  result<void> terminate() override { return send_signal(SIGTERM); }

  result<void> kill() override {
    std::lock_guard lock(mutex_);
    if (!child_) return fail(errc::kernel_not_running, "the kernel process is not running");
    if (kernel_pid_ > 0 && !child_->exited()) {
      for (pid_t p : sb::descendants(kernel_pid_)) ::kill(p, SIGKILL);
      ::kill(kernel_pid_, SIGKILL);
    }
    if (!child_->exited()) ::killpg(child_->pid(), SIGKILL);
    return {};
  }

  void cleanup() override {
    std::lock_guard lock(mutex_);
    if (!connection_file_.empty()) {
      ::unlink(connection_file_.c_str());
      connection_file_.clear();
    }
    ctx::remove_ipc_files(host_connection_);
    host_connection_ = {};
  }

  std::string log_tail(std::size_t max_bytes) const override {
    std::lock_guard lock(mutex_);
    return log_tail_locked(max_bytes);
  }

 private:
  // Copies the kernel's stdout and stderr into its log file until both close (the kernel and
  // whatever inherited its output ended). The thread owns its descriptors: detached, nothing to join.
  void start_log_relay() {
    int out = ::dup(child_->stdout_fd()), err = ::dup(child_->stderr_fd());
    child_->close_stdout();
    child_->close_stderr();
    int log = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    std::thread([out, err, log] {
      pollfd fds[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
      char buf[8192];
      int open_fds = 2;
      while (open_fds > 0) {
        if (::poll(fds, 2, -1) < 0) {
          if (errno == EINTR) continue;
          break;
        }
        for (auto& f : fds) {
          if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP | POLLERR))) continue;
          ssize_t n = ::read(f.fd, buf, sizeof buf);
          if (n > 0) {
            if (log >= 0) (void)!::write(log, buf, static_cast<std::size_t>(n));
          } else if (n == 0 || errno != EINTR) {
            ::close(f.fd);
            f.fd = -1;
            --open_fds;
          }
        }
      }
      if (log >= 0) ::close(log);
    }).detach();
  }

  std::string log_tail_locked(std::size_t max_bytes) const {
    int fd = ::open(log_file_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    struct stat st {};
    ::fstat(fd, &st);
    const off_t from = st.st_size > static_cast<off_t>(max_bytes) ? st.st_size - static_cast<off_t>(max_bytes) : 0;
    std::string out(static_cast<std::size_t>(st.st_size - from), '\0');
    ssize_t n = ::pread(fd, out.data(), out.size(), from);
    ::close(fd);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
  }

  std::shared_ptr<sb::sandbox_runtime> box_;
  mutable std::mutex mutex_;
  std::unique_ptr<sb::child_process> child_;
  int pidfd_ = -1;
  pid_t kernel_pid_ = -1;
  ctx::connection_info host_connection_;
  fs::path connection_file_, log_file_;
};

}  // namespace

std::unique_ptr<ctx::provisioner> make_sandbox_kernel_provisioner(std::shared_ptr<sb::sandbox_runtime> box) {
  return std::make_unique<sandbox_kernel_provisioner>(std::move(box));
}

}  // namespace kh::host
