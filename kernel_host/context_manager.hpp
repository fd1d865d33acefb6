#pragma once
// context_manager: the live language contexts of the host (ids, languages, cwd, env), a
// pre-warmed pool of kernels per kernelspec refilled in the background, idle culling, a maximum
// count, and variable injection by generated code. It knows kernels, never HTTP.
// Every method may block (kernel start, shutdown ladder): call them off the I/O threads.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "contexts/kernel_manager.hpp"
#include "contexts/reactor.hpp"

namespace kh::host {

using clock = std::chrono::steady_clock;

struct context_request {
  std::string language;  // python|python3|javascript|js|node|typescript|ts; empty: python
  std::string kernel;    // a kernelspec name; when set, it decides (language is then informative)
  std::string cwd;       // as the client names it; "/workspace/..." maps to the host workspace
  std::map<std::string, std::string> env;
  nl::json variables = nullptr;  // object of name -> JSON value, injected before create returns
  std::chrono::milliseconds timeout{0};  // default per-execution timeout; 0: the manager's default
  std::string sandbox_id = "default";    // whose context it is (see context_manager_config::placement)
};

// Where the kernels of a sandbox run when not on this host: inside the sandbox, through its
// provisioner, with the kernel files in runtime_dir (a host path the provisioner shares with it).
struct kernel_placement {
  std::function<std::unique_ptr<contexts::provisioner>()> make_provisioner;
  std::filesystem::path runtime_dir;
  bool tcp_reachable = false;  // the sandbox shares the host's network: kernels that only speak TCP work
};
// nullopt: on this host (pre-warmed pool, host workspace); an error: the sandbox cannot take kernels.
using kernel_placement_fn = std::function<result<std::optional<kernel_placement>>(const std::string& sandbox_id)>;

// One live kernel and what the APIs say about it.
class context {
 public:
  context(std::string language, std::string cwd, std::unique_ptr<contexts::kernel_manager> kernel,
          std::chrono::milliseconds timeout);
  const std::string& id() const noexcept { return kernel_->id(); }
  const std::string& language() const noexcept { return language_; }  // python, javascript, typescript, or the spec's
  const std::string& cwd() const noexcept { return cwd_; }
  contexts::kernel_manager& kernel() const noexcept { return *kernel_; }
  std::chrono::milliseconds default_timeout() const noexcept { return timeout_; }

  void touch() noexcept { last_activity_ns_ = clock::now().time_since_epoch().count(); }
  clock::time_point last_activity() const noexcept { return clock::time_point(clock::duration(last_activity_ns_.load())); }
  std::string created_at() const { return created_at_; }   // ISO 8601
  const std::string& sandbox_id() const noexcept { return sandbox_id_; }
  bool in_sandbox() const noexcept { return in_sandbox_; }  // the kernel runs inside its sandbox
  void place(std::string sandbox_id, bool inside) { sandbox_id_ = std::move(sandbox_id); in_sandbox_ = inside; }

  // Executions in flight (not culled while > 0).
  void begin_execution() noexcept { ++running_; touch(); }
  void end_execution() noexcept { --running_; touch(); }
  int running() const noexcept { return running_.load(); }

  // Open Jupyter WebSocket connections (kept by the channels hub).
  void set_connections(int n) noexcept { connections_ = n; }
  int connections() const noexcept { return connections_.load(); }

  // Executions on one context run one at a time, in arrival order (a queued cell would otherwise
  // be aborted by the kernel when the one before it fails or is interrupted). `start` runs now
  // or when the previous execution calls execution_finished(); it must not block.
  void enqueue_execution(std::function<void()> start);
  void execution_finished();

  // The input_request a cell is waiting on, answered by the input API.
  void set_pending_input(std::optional<contexts::message> request);
  std::optional<contexts::message> take_pending_input();

 private:
  std::string language_;
  std::string cwd_;
  std::unique_ptr<contexts::kernel_manager> kernel_;
  std::chrono::milliseconds timeout_;
  std::atomic<clock::rep> last_activity_ns_{0};
  std::atomic<int> running_{0};
  std::atomic<int> connections_{0};
  std::string created_at_;
  std::string sandbox_id_ = "default";
  bool in_sandbox_ = false;
  std::mutex queue_mutex_;
  std::deque<std::function<void()>> queued_;
  bool executing_ = false;
  std::mutex input_mutex_;
  std::optional<contexts::message> pending_input_;
};

struct context_manager_config {
  std::vector<std::filesystem::path> data_path;  // kernelspec lookup
  std::filesystem::path workspace;               // where "/workspace" points on the host
  std::filesystem::path runtime_dir;             // kernel runtime files; empty: contexts default
  std::map<std::string, int> pool_sizes{{"python", 1}};  // language (or kernelspec name) -> pre-warmed kernels
  std::chrono::milliseconds cull_idle{0};        // 0: never cull
  std::size_t max_contexts = 64;
  std::chrono::milliseconds default_timeout{600'000};
  kernel_placement_fn placement;  // empty: every kernel on this host
  // The live contexts are listed in this file, so that after a restart their ids are reported as
  // ended with the host rather than unknown. Empty: no journal.
  std::filesystem::path journal;
};

// Why a context that existed is gone: asked for with its id, the answer says so.
enum class end_reason { deleted, idle, sandbox_slept, sandbox_destroyed, host_stopped };

struct context_manager_counters {
  std::uint64_t created = 0;
  std::uint64_t from_pool = 0;
  std::uint64_t culled = 0;
  std::uint64_t deleted = 0;
};

class context_manager {
 public:
  context_manager(contexts::reactor& r, context_manager_config config);
  ~context_manager();  // stops the pool and culler threads and shuts every kernel down
  context_manager(const context_manager&) = delete;
  context_manager& operator=(const context_manager&) = delete;

  // Starts the background pool filler and culler.
  void start_background();

  result<std::shared_ptr<context>> create(const context_request& request);
  result<std::shared_ptr<context>> get(const std::string& id) const;
  std::vector<std::shared_ptr<context>> list() const;
  // The contexts of one sandbox.
  std::vector<std::shared_ptr<context>> list(const std::string& sandbox_id) const;
  // Forgets the contexts of a sandbox that is going away (their kernels die with it), shutting
  // down what still runs. Returns how many.
  std::size_t remove_sandbox(const std::string& sandbox_id, end_reason why = end_reason::sandbox_destroyed);
  // Removes the context and shuts its kernel down by the ladder. Its id is remembered as ended
  // (get() answers CONTEXT_NOT_FOUND saying why and when).
  result<void> remove(const std::string& id, end_reason why = end_reason::deleted);

  // Injects variables (a JSON object) into the context's global namespace.
  result<void> set_variables(context& ctx, const nl::json& variables);
  // Reads variables as JSON (non-JSON values as their repr); missing names are left out.
  result<nl::json> get_variables(context& ctx, const std::vector<std::string>& names);

  // Culls contexts idle beyond cull_idle; returns how many.
  std::size_t cull_idle();
  // Shuts every context and pooled kernel down, in parallel. Idempotent.
  void shutdown_all();

  // "python" for python/python3/"", "javascript" for javascript/js/node, "typescript" for
  // typescript/ts; errc::validation_failed otherwise.
  static result<std::string> canonical_language(const std::string& language);
  // The kernelspec that serves a canonical language here.
  result<contexts::kernelspec> spec_for(const std::string& canonical_language) const;
  context_manager_counters counters() const;

 private:
  result<std::unique_ptr<contexts::kernel_manager>> start_kernel(const contexts::kernelspec& spec,
                                                                 const std::filesystem::path& cwd,
                                                                 const std::map<std::string, std::string>& env);
  std::unique_ptr<contexts::kernel_manager> take_pooled(const std::string& spec_name);
  result<std::filesystem::path> resolve_cwd(const std::string& cwd) const;
  // Remembers a context as ended (the most recent 1024); caller holds mutex_.
  void remember_ended(const std::string& id, const std::string& language, end_reason why, std::string at);
  // Rewrites the journal with the live contexts (and when the host stopped them); caller holds mutex_.
  void write_journal(const std::string& stopped_at = {}) const;
  // The ids of the journal a previous run left: ended with the host.
  void read_journal();
  // CONTEXT_NOT_FOUND for id, saying why and when if it ended; caller holds mutex_.
  error not_found(const std::string& id) const;
  void pool_loop();
  void cull_loop();

  contexts::reactor& reactor_;
  context_manager_config config_;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<context>> contexts_;
  struct ended_context {
    std::string language;
    end_reason why;
    std::string at;  // ISO 8601
  };
  std::map<std::string, ended_context> ended_;
  std::deque<std::string> ended_order_;  // oldest first, to bound ended_
  std::map<std::string, std::deque<std::unique_ptr<contexts::kernel_manager>>> pool_;  // by spec name
  std::map<std::string, int> pool_targets_;  // spec name -> size
  context_manager_counters counters_;
  bool stopping_ = false;
  std::condition_variable wake_;
  std::thread pool_thread_;
  std::thread cull_thread_;
};

}  // namespace kh::host
