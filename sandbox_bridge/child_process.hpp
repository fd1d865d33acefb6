#pragma once
// child_process: one host process spawned with posix_spawn (safe in a multithreaded daemon), its
// stdio pipes, a pidfd to wait on it, and whole-tree kill through /proc/<pid>/task/*/children.

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"

namespace kh::sandbox_bridge {

// An owned file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept;
  ~unique_fd();
  int get() const noexcept { return fd_; }
  int release() noexcept { int f = fd_; fd_ = -1; return f; }
  void reset(int fd = -1) noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Entering a sandbox between fork and exec, in place of the programs `sh` (cgroup join), `nsenter`
// and `setpriv`. A short-lived child sharing the daemon's memory (as posix_spawn's) joins the
// cgroups, sets the rlimits, enters the namespaces in order and chroots to root, then creates the
// command's process as a child of the daemon (CLONE_PARENT: it lands in the PID namespace) and
// exits. The command's process changes to cwd as root (as `nsenter -r -W cwd`; failing, it exits 1
// with the message on stderr), drops to uid/gid with no supplementary groups, no_new_privs, an
// empty capability bounding set and no inheritable or ambient capabilities (as `setpriv --reuid
// --regid --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all`), then execs argv.
// child_process::pid() is that process itself. Every fd and string is prepared by the caller: the
// children make only system calls.
struct sandbox_entry {
  std::vector<int> cgroup_procs;                // open cgroup.procs files (O_WRONLY) to join
  std::vector<std::pair<int, rlim_t>> rlimits;  // soft = hard, where cgroups are not available
  std::vector<int> namespaces;                  // open /proc/<init>/ns/* files, entered in order
  int root = -1;                                // the sandbox's root directory
  std::string cwd = "/";                        // inside the sandbox
  int exec_fd = -1;                             // when >= 0: the program to exec (an fd of the host's
                                                // file, so it need not be visible inside), argv[0] its name
  uid_t uid = 65534;
  gid_t gid = 65534;
};

struct spawn_spec {
  std::vector<std::string> argv;  // argv[0] is an absolute path
  std::vector<std::string> env;   // "K=V"
  bool pipe_stdin = false;        // else /dev/null
  bool pipe_output = true;        // stdout and stderr to pipes, else /dev/null
  bool new_session = true;        // setsid: the child leads its own process group
  int extra_fd = -1;              // passed as fd 3 when >= 0
  const sandbox_entry* enter = nullptr;  // run argv inside a sandbox (fork, not posix_spawn)
};

class child_process {
 public:
  static result<child_process> spawn(const spawn_spec& spec);

  child_process() = default;
  child_process(child_process&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), stdin_(std::move(o.stdin_)), stdout_(std::move(o.stdout_)),
        stderr_(std::move(o.stderr_)), pidfd_(std::move(o.pidfd_)), status_(std::exchange(o.status_, std::nullopt)) {}
  child_process& operator=(child_process&& o) noexcept {
    if (this != &o) {
      this->~child_process();
      new (this) child_process(std::move(o));
    }
    return *this;
  }
  ~child_process();  // kills and reaps a child still running

  pid_t pid() const noexcept { return pid_; }
  int stdin_fd() const noexcept { return stdin_.get(); }
  int stdout_fd() const noexcept { return stdout_.get(); }
  int stderr_fd() const noexcept { return stderr_.get(); }
  int pidfd() const noexcept { return pidfd_.get(); }  // readable when the child exited
  void close_stdin() noexcept { stdin_.reset(); }
  void close_stdout() noexcept { stdout_.reset(); }
  void close_stderr() noexcept { stderr_.reset(); }
  // Once the child is reaped its pidfd is useless: a record kept after exit must not hold it.
  void close_pidfd() noexcept { pidfd_.reset(); }

  // Reaps the child if it exited; returns its wait status.
  std::optional<int> try_wait();
  // Blocks until the child exits; returns its wait status.
  int wait();
  bool exited() const noexcept { return status_.has_value(); }
  std::optional<int> status() const noexcept { return status_; }

 private:
  pid_t pid_ = -1;
  unique_fd stdin_, stdout_, stderr_, pidfd_;
  std::optional<int> status_;
};

// The exit code a shell would report for a wait status: the code, or 128 + signal.
int exit_code_of(int wait_status) noexcept;

// Every descendant of pid (children first-level first), read from /proc.
std::vector<pid_t> descendants(pid_t pid);

// SIGTERM to the tree (root included when include_root), then SIGKILL to what is left after grace.
// Also signals the process group led by root when group is true.
void kill_tree(pid_t root, bool include_root, std::chrono::milliseconds grace, bool group = false);

// Writes all of data to fd (blocking fd), retrying on EINTR.
result<void> write_all(int fd, std::string_view data);

// Sets O_NONBLOCK.
void set_nonblocking(int fd);

}  // namespace kh::sandbox_bridge

namespace kh::sandbox_bridge {

struct collected_output {
  std::string stdout_data, stderr_data;
  int wait_status = 0;
  bool timed_out = false;
};

// Feeds stdin_data (then closes stdin), reads stdout/stderr until the child exits (what a
// left-behind grandchild writes afterwards is not waited for), kills the tree on timeout.
collected_output collect_output(child_process& child, std::string_view stdin_data,
                                std::optional<std::chrono::milliseconds> timeout, const std::function<void(int, std::string_view)>& sink,
                                std::chrono::milliseconds kill_grace);

}  // namespace kh::sandbox_bridge
