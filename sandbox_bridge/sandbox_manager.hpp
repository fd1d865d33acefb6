#pragma once
// sandbox_manager: the sandboxes of this host by id. Creates them (bubblewrap namespace sandboxes),
// finds them, lists them, destroys them. Workspaces live in <data_dir>/sandboxes/<id>/workspace and
// survive a host restart: a sandbox whose folder exists is started again on first use, with the
// options saved beside it. Destroy kills every process and removes the folder.
// All bwrap spawns happen on one long-lived thread (bwrap's --die-with-parent follows the thread).

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/serial_worker.hpp"
#include "sandbox_bridge/sandbox_runtime.hpp"
#include "sandbox_bridge/types.hpp"

namespace kh::sandbox_bridge {

struct manager_options {
  std::filesystem::path data_dir;       // sandboxes/ and system/etc below it
  uid_t uid = 1000;                     // the unprivileged user inside
  gid_t gid = 1000;
  sandbox_limits default_limits;
  runtime_options runtime;
  std::string default_sandbox_id = "default";
  std::chrono::seconds default_sleep_after{600};  // sandbox_options::sleep_after when a request gives none
  std::vector<std::filesystem::path> runtime_binds;  // see namespace_sandbox_paths
  // Each sandbox keeps a warm launcher (see namespace_sandbox.hpp) running exec_stub; empty:
  // kh-exec-stub beside this executable. Without one (false, or no program), commands enter cold.
  bool warm_launcher = true;
  std::filesystem::path exec_stub;
};

struct sandbox_summary {
  std::string id;
  network_mode network = network_mode::none;
  sandbox_limits limits;
  std::string limit_mechanism;
  bool running = false;
  std::chrono::system_clock::time_point created_at;
  std::size_t sessions = 0;
  std::size_t processes = 0;
  std::chrono::seconds sleep_after{0};
  bool keep_alive = false;
  std::string state;  // "running", "sleeping" (idle: wakes on the next request), "stopped" (since the host started)
  std::optional<std::chrono::steady_clock::duration> idle;  // since the last activity, when running
};

class sandbox_manager {
 public:
  static result<std::unique_ptr<sandbox_manager>> create(manager_options options);
  ~sandbox_manager();  // stops every sandbox; workspaces stay

  // Errors: sandbox_already_exists, validation_failed.
  result<std::shared_ptr<sandbox_runtime>> create_sandbox(sandbox_options options);
  // A running sandbox, or one with a workspace on disk started again.
  result<std::shared_ptr<sandbox_runtime>> get(const std::string& id);
  // get(), or create with default options.
  result<std::shared_ptr<sandbox_runtime>> get_or_create(const std::string& id);
  // Running sandboxes and those on disk (sleeping or not started since the host started).
  std::vector<sandbox_summary> list() const;
  // The sandbox if it runs now (never starts or wakes one).
  std::shared_ptr<sandbox_runtime> find_running(const std::string& id) const;
  // The running ones, for the lifecycle (idle sleep).
  std::vector<std::shared_ptr<sandbox_runtime>> running() const;
  // Stops a running sandbox and keeps its folders; the next get() wakes it. Errors: sandbox_not_found.
  result<void> sleep(const std::string& id);
  result<sandbox_summary> describe(const std::string& id) const;
  result<void> destroy(const std::string& id);

  const manager_options& options() const noexcept { return options_; }
  std::filesystem::path sandbox_dir(const std::string& id) const { return options_.data_dir / "sandboxes" / id; }

 private:
  explicit sandbox_manager(manager_options options) : options_(std::move(options)) {}
  result<std::shared_ptr<sandbox_runtime>> start_locked(const sandbox_options& options);
  sandbox_summary summarize(const sandbox_runtime& r) const;

  manager_options options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<sandbox_runtime>> sandboxes_;
  std::set<std::string> slept_;  // put to sleep by sleep(): their processes ended for that reason
  std::unique_ptr<serial_worker> spawner_;
};

nlohmann::json to_json(const sandbox_options& o);
result<sandbox_options> sandbox_options_from_json(const nlohmann::json& j);

}  // namespace kh::sandbox_bridge
