#pragma once
// sandbox_runtime: one live sandbox with what lives in it: its shell sessions (the implicit
// "default" one included), background processes and confined files. The daemon's API handlers
// talk to this; it knows neither HTTP nor kernels.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sandbox_bridge/process_table.hpp"
#include "sandbox_bridge/sandbox.hpp"
#include "sandbox_bridge/sandbox_files.hpp"
#include "sandbox_bridge/shell_session.hpp"

namespace kh::sandbox_bridge {

struct runtime_options {
  std::size_t log_capacity = 1u << 20;                     // per stream of a background process
  std::uint64_t max_read_bytes = 32ull << 20;               // a whole-file read
  std::chrono::milliseconds kill_grace{2000};               // SIGTERM -> SIGKILL
};

// The session id that selects sessionless execution.
inline constexpr std::string_view kNoSession = "__DISABLE_SESSION__";

class sandbox_runtime {
 public:
  sandbox_runtime(std::unique_ptr<sandbox> box, std::filesystem::path run_dir, runtime_options options);
  ~sandbox_runtime();

  sandbox& box() noexcept { return *sandbox_; }
  const std::string& id() const noexcept { return sandbox_->id(); }
  std::chrono::system_clock::time_point created_at() const noexcept { return created_at_; }

  // Sessions. get_or_create_session creates unknown ids on first use (the contract's implicit sessions).
  result<std::shared_ptr<shell_session>> create_session(session_options options);
  result<std::shared_ptr<shell_session>> get_session(const std::string& id);
  result<std::shared_ptr<shell_session>> get_or_create_session(const std::string& id,
                                                               const std::optional<std::string>& cwd = std::nullopt);
  result<void> delete_session(const std::string& id);
  std::vector<std::string> list_sessions() const;

  // A command in a session, or sessionless (session_id == kNoSession): `bash -c` on its own.
  result<exec_result> exec(const std::string& session_id, const exec_request& request, const output_sink& sink = {});

  // A background process started from a session's environment and cwd (or sessionless).
  result<process_snapshot> start_process(const std::string& session_id, process_start request);

  // The cwd used for relative file paths of a session ("/workspace" when sessionless or unknown).
  std::string cwd_of(const std::string& session_id) const;

  sandbox_files& files() noexcept { return files_; }
  process_table& processes() noexcept { return *processes_; }

  // Kills every process and every session; the workspace is left to the manager. Processes
  // running now are recorded as ended for `reason` ("sandbox_slept", "host_stopped", ...).
  void stop(const std::string& reason = "");

  // Sessions (their ids and options) and processes (a journal) are saved beside the workspace;
  // restore() brings back the sessions (fresh shells) and reports the processes of the previous
  // run, those that were running as ended for `reason`.
  void restore(const std::string& reason);

  // Activity, for sleeping idle sandboxes: touch() on every request; an activity_guard for
  // everything that runs long (a command, an open stream).
  void touch() noexcept { last_activity_ns_ = std::chrono::steady_clock::now().time_since_epoch().count(); }
  std::chrono::steady_clock::time_point last_activity() const noexcept {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(last_activity_ns_.load()));
  }
  int active() const noexcept { return active_.load(); }
  class activity_guard {
   public:
    explicit activity_guard(sandbox_runtime& r) : r_(&r) { ++r_->active_; r_->touch(); }
    activity_guard(activity_guard&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    activity_guard(const activity_guard&) = delete;
    activity_guard& operator=(const activity_guard&) = delete;
    ~activity_guard() { if (r_) { r_->touch(); --r_->active_; } }
   private:
    sandbox_runtime* r_;
  };

 private:
  std::unique_ptr<sandbox> sandbox_;
  std::filesystem::path run_dir_;
  runtime_options options_;
  sandbox_files files_;
  std::unique_ptr<process_table> processes_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<shell_session>> sessions_;
  std::uint64_t next_session_dir_ = 1;
  std::chrono::system_clock::time_point created_at_ = std::chrono::system_clock::now();
  std::atomic<std::chrono::steady_clock::rep> last_activity_ns_{std::chrono::steady_clock::now().time_since_epoch().count()};
  std::atomic<int> active_{0};

  void save_sessions();  // without mutex_ held
  std::filesystem::path state_dir() const { return run_dir_.parent_path(); }
};

}  // namespace kh::sandbox_bridge
