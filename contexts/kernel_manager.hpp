#pragma once
// kernel_manager: the lifecycle of one kernel process. It starts the kernel through a
// provisioner and waits until it is ready, interrupts, restarts, detects death, recovers from
// execute timeouts, and shuts down by the ladder: shutdown_request on control -> wait ->
// SIGTERM -> wait -> SIGKILL -> clean up.
//
// Blocking methods (start, interrupt, restart, shutdown, execute_blocking) are thread-safe and
// must not be called on the reactor thread. execute() is asynchronous.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/serial_worker.hpp"
#include "contexts/kernel_client.hpp"
#include "contexts/kernelspec.hpp"
#include "contexts/provisioner.hpp"
#include "contexts/reactor.hpp"

namespace kh::contexts {

enum class kernel_state { starting, idle, busy, restarting, dead, shutting_down, shut_down };
std::string_view kernel_state_name(kernel_state state) noexcept;

// Which rung of the shutdown ladder ended the process.
enum class shutdown_rung { none, already_exited, request, terminate, kill };
std::string_view shutdown_rung_name(shutdown_rung rung) noexcept;

struct kernel_options {
  std::string kernel_id;              // empty: a new UUID
  std::filesystem::path runtime_dir;  // connection files, ipc sockets, logs; empty: default_runtime_dir()
  std::filesystem::path cwd;          // empty: inherit
  std::map<std::string, std::string> env;
  transport kind = transport::tcp;
  std::chrono::milliseconds start_timeout{30'000};
  std::chrono::milliseconds shutdown_wait{3'000};    // after shutdown_request, before SIGTERM
  std::chrono::milliseconds terminate_wait{2'000};   // after SIGTERM, before SIGKILL
  std::chrono::milliseconds interrupt_grace{2'000};  // after a timeout's interrupt, before restarting
  std::chrono::milliseconds heartbeat_interval{1'000};
  bool restart_on_death = false;
  // Quiet period after idle before a cell completes (see client_options::output_settle);
  // negative: chosen from the kernel (5 ms for Deno, which publishes after idle; else 0).
  std::chrono::milliseconds output_settle{-1};
  // Makes the provisioner for each (re)start; empty: make_local_provisioner.
  std::function<std::unique_ptr<provisioner>()> make_provisioner;
};

// Everything a cell produced, for blocking callers.
struct execution_result {
  std::vector<message> outputs;  // IOPub messages of the request except status and execute_input
  message reply;                 // execute_reply (its content has status ok/error)
  // The kernel's own header dates of the request's IOPub milestones, as nbclient records them:
  // "iopub.status.busy", "iopub.execute_input", "iopub.status.idle" (absent when not seen).
  nl::json timing = nl::json::object();
  bool ok() const { return reply.content.value("status", "") == "ok"; }
};

// $XDG_RUNTIME_DIR/kernel-host, else /tmp/kernel-host-<uid>; created with mode 0700.
std::filesystem::path default_runtime_dir();

class kernel_manager {
 public:
  // Launches the kernel and waits until it answers kernel_info and its IOPub is live.
  // errc::kernel_start_failed if it exits or cannot be spawned (with its log tail), or does
  // not become ready within start_timeout (it is then killed).
  static result<std::unique_ptr<kernel_manager>> start(reactor& r, kernelspec spec, kernel_options options = {});
  ~kernel_manager();  // shuts down if still running

  kernel_manager(const kernel_manager&) = delete;
  kernel_manager& operator=(const kernel_manager&) = delete;

  // Runs a cell. `handlers.on_done` runs exactly once: with the execute_reply, or with an error:
  //  - timeout: the kernel was interrupted, and restarted if it did not become idle within
  //    interrupt_grace; details.recovery is "interrupted" or "restarted". Delivered after recovery.
  //  - kernel_died: the process exited mid-cell (details: exit status, log tail).
  //  - kernel_not_running / kernel_restarting.
  // Callbacks run on the reactor thread (on_done after a timeout: on this manager's worker).
  void execute(const execute_request& req, request_handlers handlers, std::chrono::milliseconds timeout);

  // Blocking execute; callbacks run on the calling thread, so `on_input` may block.
  // `on_input` answers input_request (prompt, password); without it input is answered empty.
  result<execution_result> execute_blocking(
      const execute_request& req, std::chrono::milliseconds timeout,
      std::function<void(const message&)> on_output = {},
      std::function<std::string(const std::string& prompt, bool password)> on_input = {});

  // SIGINT to the kernel's own pid, or interrupt_request on control for interrupt_mode "message".
  result<void> interrupt();
  // Shuts the process down by the ladder (restart=true) and starts a new one on the same connection.
  result<void> restart();
  // The ladder. Idempotent.
  result<void> shutdown();

  kernel_state state() const;

  // Lifecycle events for observers (the Jupyter WebSocket channels): kernel_state::restarting
  // when a restart begins (requested, after a timeout, after death), kernel_state::dead when the
  // process is found dead or a restart fails, kernel_state::shut_down once the final shutdown
  // is done. Handlers run on the thread that saw the change,
  // possibly under the lifecycle lock: they must not block or call into this manager. Thread-safe.
  std::uint64_t watch_lifecycle(std::function<void(kernel_state)> handler);
  void unwatch_lifecycle(std::uint64_t token);
  const std::string& id() const noexcept { return id_; }
  const kernelspec& spec() const noexcept { return spec_; }
  int pid() const;
  nl::json kernel_info() const;  // content of the kernel_info_reply received at start
  std::shared_ptr<kernel_client> client() const;
  std::optional<exit_status> last_exit() const;
  shutdown_rung last_shutdown_rung() const noexcept { return last_rung_.load(); }
  int restart_count() const noexcept { return restarts_.load(); }
  bool heartbeat_ok() const noexcept { return heartbeat_ok_.load(); }
  std::string log_tail(std::size_t max_bytes = 2000) const;

 private:
  kernel_manager(reactor& r, kernelspec spec, kernel_options options);

  result<void> start_locked();
  result<void> wait_ready_locked();
  void shutdown_locked(bool restart);
  result<void> interrupt_locked();
  void on_process_exit(provisioner* process);  // reactor thread
  void on_heartbeat_failure();  // reactor thread
  nl::json recover_after_timeout();  // worker thread
  std::chrono::milliseconds output_settle_for(const nl::json& kernel_info) const;
  void notify_lifecycle(kernel_state state);

  reactor& reactor_;
  kernelspec spec_;
  kernel_options options_;
  std::string id_;
  connection_info connection_;
  bool have_connection_ = false;

  mutable std::mutex lifecycle_mutex_;  // start/restart/shutdown/interrupt; never held across a callback
  std::unique_ptr<provisioner> provisioner_;  // guarded by lifecycle_mutex_
  std::shared_ptr<kernel_client> client_;     // set once by the first start, then only reconnected
  int watched_fd_ = -1;                       // guarded by lifecycle_mutex_

  mutable std::mutex info_mutex_;  // guards the two below, read from any thread
  nl::json kernel_info_ = nl::json::object();
  std::optional<exit_status> last_exit_;
  std::atomic<int> pid_{0};
  std::atomic<bool> closing_{false};  // the final shutdown began: background jobs do nothing

  std::atomic<kernel_state> state_{kernel_state::starting};
  std::atomic<shutdown_rung> last_rung_{shutdown_rung::none};
  std::atomic<int> restarts_{0};
  std::atomic<bool> heartbeat_ok_{true};

  std::mutex watchers_mutex_;  // guards the two below; never held while a handler runs
  std::map<std::uint64_t, std::shared_ptr<std::function<void(kernel_state)>>> watchers_;
  std::uint64_t next_watcher_ = 1;

  serial_worker worker_;  // last: joined first, while the members its jobs use are alive
};

}  // namespace kh::contexts
