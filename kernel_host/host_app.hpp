#pragma once
// host_app: the composition root of the daemon. Owns the reactor, the context manager, the
// blocking work pool, the routes and the HTTP server, and stops them in order.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "common/error.hpp"
#include "kernel_host/api/kernel_channels.hpp"
#include "kernel_host/context_manager.hpp"
#include "kernel_host/notebook_session_manager.hpp"
#include "kernel_host/server/http_server.hpp"
#include "kernel_host/api/ports_api.hpp"
#include "kernel_host/sandbox_lifecycle.hpp"
#include "kernel_host/api/sandbox_api.hpp"
#include "kernel_host/server/elastic_pool.hpp"
#include "kernel_host/server/work_pool.hpp"
#include "sandbox_bridge/bucket_mounts.hpp"
#include "sandbox_bridge/sandbox_manager.hpp"

namespace kh::host {

struct host_config {
  server::server_config server;
  std::filesystem::path data_dir;  // workspace/ and runtime/ live below it
  context_manager_config contexts;  // data_path, workspace and runtime_dir are filled from data_dir when empty
  int blocking_threads = 8;
  api::iopub_limits iopub;  // Jupyter WebSocket IOPub rate limits
  sandbox_bridge::manager_options sandboxes;  // data_dir is filled from data_dir when empty
  std::size_t sandbox_threads = 256;          // most sandbox calls blocking at once (commands, streams)
  std::string preview_domain = "localhost";   // preview URLs: http://<port>-<sandbox>-<token>.<domain>:<port>/
  // Kernels of /sandboxes/{id}/api/contexts run inside their sandbox. The default sandbox's (/api/...)
  // run on the host from the pre-warmed pool, in the same /workspace folder, unless this is set.
  bool isolate_default_kernels = false;
  std::chrono::milliseconds lifecycle_tick{1000};  // how often idle sandboxes are looked for
};

class host_app {
 public:
  explicit host_app(host_config config);
  ~host_app();  // stop() with the default deadline if still running
  host_app(const host_app&) = delete;
  host_app& operator=(const host_app&) = delete;

  // Starts the kernel pool and the listener.
  result<void> start();
  std::uint16_t port() const { return server_->port(); }
  const host_config& config() const noexcept { return config_; }
  context_manager& contexts() noexcept { return *contexts_; }
  server::http_server& server() noexcept { return *server_; }
  // Null when sandboxes cannot run here (sandbox_error() says why).
  sandbox_bridge::sandbox_manager* sandboxes() noexcept { return sandboxes_.get(); }
  const std::optional<error>& sandbox_error() const noexcept { return sandbox_error_; }
  api::sandbox_api_hooks& sandbox_hooks() noexcept { return sandbox_hooks_; }

  // Stops accepting, finishes in-flight requests until `deadline`, shuts every kernel down by
  // its ladder (in parallel), joins every thread. Idempotent.
  void stop(std::chrono::milliseconds deadline = std::chrono::milliseconds(5000));

 private:
  host_config config_;
  std::unique_ptr<contexts::reactor> reactor_;
  std::unique_ptr<context_manager> contexts_;
  std::unique_ptr<notebook_session_manager> sessions_;
  std::unique_ptr<server::work_pool> blocking_;
  std::unique_ptr<sandbox_bridge::sandbox_manager> sandboxes_;
  std::optional<error> sandbox_error_;
  api::sandbox_api_hooks sandbox_hooks_;
  std::unique_ptr<server::elastic_pool> sandbox_pool_;
  std::unique_ptr<sandbox_bridge::bucket_mounts> buckets_;  // s3fs mounts inside sandboxes
  std::unique_ptr<sandbox_lifecycle> lifecycle_;             // idle sandboxes sleep
  std::unique_ptr<server::router> routes_;
  std::unique_ptr<server::http_server> server_;
  std::unique_ptr<api::ports_api> ports_;  // after server_: gone before the server's io_context
  bool stopped_ = false;
};

// $XDG_DATA_HOME/kernel-host, else ~/.local/share/kernel-host.
std::filesystem::path default_data_dir();

}  // namespace kh::host
