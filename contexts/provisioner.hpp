#pragma once
// The provisioner interface: how a kernel process is started, watched, signalled and stopped.
// The kernel manager owns one per kernel; the sandbox bridge will implement another.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "contexts/connection_info.hpp"
#include "contexts/kernelspec.hpp"

namespace kh::contexts {

struct launch_request {
  kernelspec spec;
  connection_info connection;
  std::filesystem::path runtime_dir;  // where the connection file (and ipc sockets) live
  std::filesystem::path cwd;          // empty: inherit
  std::map<std::string, std::string> env;  // added to (and overriding) the inherited environment
  std::filesystem::path log_file;     // kernel stdout/stderr; empty: <runtime_dir>/kernel-<id>.log
  std::string kernel_id;
};

// How a process ended: exit code, or the signal that killed it.
struct exit_status {
  int code = 0;    // valid when signal == 0
  int signal = 0;  // the terminating signal, 0 for a normal exit
  std::string to_string() const;  // "exit code 3" / "signal 9 (Killed)"
};

class provisioner {
 public:
  virtual ~provisioner() = default;

  // Writes the connection file and starts the kernel. The process runs in its own process group.
  virtual result<void> launch(const launch_request& request) = 0;

  // The kernel's own pid (the one that receives interrupts), 0 before launch.
  virtual int pid() const noexcept = 0;

  // A file descriptor that becomes readable when the kernel process exits (a pidfd), or -1.
  virtual int exit_fd() const noexcept = 0;

  // Non-blocking: the exit status once the process has ended (reaps it), else nullopt.
  virtual std::optional<exit_status> poll() = 0;

  // Blocks up to `timeout` for the process to end.
  virtual std::optional<exit_status> wait(std::chrono::milliseconds timeout) = 0;

  // Sends a signal to the kernel's own pid (not its group).
  virtual result<void> send_signal(int signo) = 0;

  virtual result<void> terminate() = 0;  // SIGTERM
  virtual result<void> kill() = 0;       // SIGKILL to the kernel and its whole process group

  // Removes the connection file, ipc sockets and any launch resources. Idempotent.
  virtual void cleanup() = 0;

  // The last bytes of the kernel's log (stdout/stderr), for error messages.
  virtual std::string log_tail(std::size_t max_bytes = 2000) const = 0;
};

// Spawns kernels on this host with posix_spawn, in a new process group, with the given cwd and
// env, stdout and stderr appended to the log file.
std::unique_ptr<provisioner> make_local_provisioner();

}  // namespace kh::contexts
