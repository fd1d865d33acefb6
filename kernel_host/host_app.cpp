#include "kernel_host/host_app.hpp"

#include "common/log.hpp"
#include "kernel_host/api/bucket_api.hpp"
#include "kernel_host/api/interpreter_api.hpp"
#include "kernel_host/api/jupyter_api.hpp"
#include "kernel_host/cli.hpp"
#include "kernel_host/sandbox_kernel_provisioner.hpp"

namespace kh::host {

namespace fs = std::filesystem;

fs::path default_data_dir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return fs::path(xdg) / "kernel-host";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".local/share/kernel-host";
  return fs::temp_directory_path() / "kernel-host";
}

host_app::host_app(host_config config) : config_(std::move(config)) {
  if (config_.data_dir.empty()) config_.data_dir = default_data_dir();
  auto& c = config_.contexts;
  if (c.data_path.empty()) c.data_path = kernel_data_path();
  // Kernels on the host share the default sandbox's workspace, so /workspace means one folder
  // whichever API wrote to it.
  if (config_.sandboxes.data_dir.empty()) config_.sandboxes.data_dir = config_.data_dir;
  if (c.workspace.empty()) c.workspace = config_.sandboxes.data_dir / "sandboxes" / config_.sandboxes.default_sandbox_id / "workspace";
  if (c.runtime_dir.empty()) c.runtime_dir = config_.data_dir / "runtime";
  std::error_code ec;
  fs::create_directories(c.workspace, ec);
  fs::create_directories(c.runtime_dir, ec);
  fs::permissions(c.runtime_dir, fs::perms::owner_all, fs::perm_options::replace, ec);

  // Sandboxes see kernel-host's own runtime files (kernelspecs, the Python kernel, Deno) read-only.
  for (const auto& dir : c.data_path) config_.sandboxes.runtime_binds.push_back(dir / "kernels");
  for (const auto& spec : contexts::find_kernelspecs(c.data_path)) {
    if (spec.argv.empty() || spec.argv[0].find('/') == std::string::npos) continue;
    auto real = fs::weakly_canonical(spec.argv[0], ec);
    if (!ec) config_.sandboxes.runtime_binds.push_back(real.parent_path());
  }
  c.placement = [this](const std::string& sandbox_id) -> result<std::optional<kernel_placement>> {
    if (!sandboxes_ || (sandbox_id == config_.sandboxes.default_sandbox_id && !config_.isolate_default_kernels))
      return std::nullopt;
    auto box = sandboxes_->get_or_create(sandbox_id);
    if (!box) return std::unexpected(box.error());
    auto dir = sandbox_kernel_dir(**box);
    if (!dir) return std::unexpected(dir.error());
    return kernel_placement{[b = *box] { return make_sandbox_kernel_provisioner(b); }, *dir,
                            (*box)->box().options().network == sandbox_bridge::network_mode::host};
  };

  if (c.journal.empty()) c.journal = config_.data_dir / "contexts.json";
  reactor_ = std::make_unique<contexts::reactor>();
  contexts_ = std::make_unique<context_manager>(*reactor_, c);
  blocking_ = std::make_unique<server::work_pool>(config_.blocking_threads);
  routes_ = std::make_unique<server::router>();
  api::register_interpreter_api(*routes_, *contexts_, *blocking_);
  sessions_ = std::make_unique<notebook_session_manager>();
  api::register_jupyter_api(*routes_, *contexts_, *sessions_, *blocking_, c.data_path, config_.iopub);
  sandbox_pool_ = std::make_unique<server::elastic_pool>(config_.sandbox_threads);
  if (auto m = sandbox_bridge::sandbox_manager::create(config_.sandboxes)) {
    sandboxes_ = std::move(*m);
  } else {
    sandbox_error_ = m.error();
    kh::log::get("sandbox")->warn("sandboxes are unavailable: {}", m.error().to_string());
  }
  // A destroyed sandbox takes its contexts with it.
  sandbox_hooks_.on_destroy.push_back([this](const std::string& id) { contexts_->remove_sandbox(id); });
  api::register_sandbox_api(*routes_, sandboxes_.get(), sandbox_error_, *sandbox_pool_, &sandbox_hooks_);
  buckets_ = api::register_bucket_api(*routes_, sandboxes_.get(), sandbox_error_, *sandbox_pool_, sandbox_hooks_);
  ports_ = std::make_unique<api::ports_api>(*routes_, sandboxes_.get(), sandbox_error_, *sandbox_pool_, sandbox_hooks_,
                                            api::ports_options{config_.preview_domain, [this] { return server_->port(); }});
  // Raw uploads stream to disk as they arrive; preview URLs and ws-connect go to the proxy.
  config_.server.takeover = [uploads = api::raw_upload_selector(sandboxes_.get(), sandbox_error_, *sandbox_pool_),
                             previews = ports_->selector()](const server::http_request& head) {
    auto decision = uploads(head);
    return decision ? decision : previews(head);
  };
  // Sleeping stops a sandbox's kernels (those inside it) and unmounts its buckets first.
  sandbox_hooks_.on_sleep.push_back([this](const std::string& id) {
    for (const auto& ctx : contexts_->list(id))
      if (ctx->in_sandbox()) (void)contexts_->remove(ctx->id(), end_reason::sandbox_slept);
    if (buckets_) buckets_->unmount_all(id);
  });
  if (sandboxes_) lifecycle_ = std::make_unique<sandbox_lifecycle>(*sandboxes_, *contexts_, sandbox_hooks_, config_.lifecycle_tick);
  server_ = std::make_unique<server::http_server>(config_.server, *routes_);
}

host_app::~host_app() { stop(); }

result<void> host_app::start() {
  if (auto listening = server_->start(); !listening) return listening;
  contexts_->start_background();
  if (lifecycle_) lifecycle_->start();
  return {};
}

void host_app::stop(std::chrono::milliseconds deadline) {
  if (stopped_) return;
  stopped_ = true;
  auto log = kh::log::get("server");
  log->info("stopping: finishing in-flight requests (deadline {} ms)", deadline.count());
  server_->stop(deadline);      // streams still open see a disconnect and interrupt their cells
  if (lifecycle_) lifecycle_->stop();
  if (buckets_) buckets_->unmount_everything();  // s3fs processes end before their sandboxes
  sandboxes_.reset();           // kills every sandbox process: blocked commands return; workspaces stay
  sandbox_pool_->join();
  contexts_->shutdown_all();    // every kernel by its ladder, in parallel
  blocking_->join();
  log->info("stopped");
}

}  // namespace kh::host
