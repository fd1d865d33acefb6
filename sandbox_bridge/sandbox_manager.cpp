#include "sandbox_bridge/sandbox_manager.hpp"

#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <future>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.hpp"
#include "sandbox_bridge/namespace_sandbox.hpp"

namespace kh::sandbox_bridge {

namespace fs = std::filesystem;

nlohmann::json to_json(const sandbox_options& o) {
  return {{"id", o.id},
          {"env", o.env},
          {"network", o.network == network_mode::host ? "host" : "none"},
          {"limits", {{"memoryBytes", o.limits.memory_bytes}, {"maxProcesses", o.limits.max_processes},
                      {"cpuShares", o.limits.cpu_shares}}},
          {"sleepAfterSeconds", o.sleep_after.count()},
          {"keepAlive", o.keep_alive}};
}

result<sandbox_options> sandbox_options_from_json(const nlohmann::json& j) {
  sandbox_options o;
  try {
    o.id = j.value("id", "");
    if (j.contains("env")) o.env = j["env"].get<std::map<std::string, std::string>>();
    o.network = j.value("network", "none") == "host" ? network_mode::host : network_mode::none;
    if (j.contains("limits")) {
      auto& l = j["limits"];
      o.limits.memory_bytes = l.value("memoryBytes", o.limits.memory_bytes);
      o.limits.max_processes = l.value("maxProcesses", o.limits.max_processes);
      o.limits.cpu_shares = l.value("cpuShares", o.limits.cpu_shares);
    }
    o.sleep_after = std::chrono::seconds(j.value("sleepAfterSeconds", static_cast<long long>(o.sleep_after.count())));
    o.keep_alive = j.value("keepAlive", false);
  } catch (const std::exception& e) {
    return fail(errc::validation_failed, std::string("invalid sandbox options: ") + e.what());
  }
  return o;
}

result<std::unique_ptr<sandbox_manager>> sandbox_manager::create(manager_options options) {
  std::unique_ptr<sandbox_manager> m(new sandbox_manager(std::move(options)));
  auto& stub = m->options_.exec_stub;
  if (!m->options_.warm_launcher) stub.clear();
  else if (stub.empty()) stub = default_exec_stub();
  std::error_code ec;
  fs::create_directories(m->options_.data_dir / "sandboxes", ec);
  if (ec) return fail(errc::io_error, "create " + (m->options_.data_dir / "sandboxes").string() + ": " + ec.message());
  ::chmod((m->options_.data_dir / "sandboxes").c_str(), 0711);
  const fs::path etc = m->options_.data_dir / "system" / "etc";
  fs::create_directories(etc, ec);
  if (ec) return fail(errc::io_error, "create " + etc.string() + ": " + ec.message());
  m->spawner_ = std::make_unique<serial_worker>();
  // The sandboxes' /etc (over a thousand links and files copied from the host: 100-300 ms on ext4)
  // is written on the spawner thread, before any sandbox starts there, not before the daemon
  // listens.
  m->spawner_->post([etc, uid = m->options_.uid, gid = m->options_.gid] {
    if (auto r = namespace_sandbox::write_etc(etc, uid, gid); !r)
      kh::log::get("sandbox")->warn("the sandboxes' /etc: {}", r.error().to_string());
  });
  return m;
}

sandbox_manager::~sandbox_manager() {
  std::map<std::string, std::shared_ptr<sandbox_runtime>> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(sandboxes_);
  }
  for (auto& [id, r] : all) r->stop("host_stopped");
  all.clear();
  spawner_.reset();
}

result<std::shared_ptr<sandbox_runtime>> sandbox_manager::start_locked(const sandbox_options& o) {
  namespace_sandbox_paths paths{sandbox_dir(o.id), options_.data_dir / "system" / "etc", options_.uid, options_.gid,
                                options_.runtime_binds, options_.exec_stub};
  // Spawn on the long-lived thread: --die-with-parent is bound to the spawning thread.
  std::promise<result<std::unique_ptr<namespace_sandbox>>> done;
  auto fut = done.get_future();
  spawner_->post([&] { done.set_value(namespace_sandbox::start(o, paths)); });
  auto box = fut.get();
  if (!box) return std::unexpected(box.error());
  {
    std::ofstream meta(paths.sandbox_dir / "sandbox.json");
    meta << to_json(o).dump(2);
  }
  auto rt = std::make_shared<sandbox_runtime>(std::move(*box), paths.sandbox_dir / "run", options_.runtime);
  // What the previous run left: sessions come back (fresh shells), processes are reported ended.
  rt->restore(slept_.erase(o.id) ? "sandbox_slept" : "host_restart");
  sandboxes_[o.id] = rt;
  return rt;
}

result<std::shared_ptr<sandbox_runtime>> sandbox_manager::create_sandbox(sandbox_options o) {
  if (o.id.empty()) {
    static std::atomic<unsigned> n{0};
    o.id = fmt::format("sbx-{:x}-{}", std::chrono::system_clock::now().time_since_epoch().count() & 0xffffffffff, ++n);
  }
  if (!valid_id(o.id)) return fail(errc::validation_failed, "a sandbox id is 1-128 characters of [A-Za-z0-9_.-]", {{"sandboxId", o.id}});
  for (auto& [k, v] : o.env)
    if (!valid_env_name(k)) return fail(errc::validation_failed, fmt::format("invalid environment variable name '{}'", k));
  std::lock_guard lock(mutex_);
  if (sandboxes_.count(o.id))
    return fail(errc::sandbox_already_exists, fmt::format("sandbox '{}' already exists", o.id), {{"sandboxId", o.id}});
  return start_locked(o);
}

result<std::shared_ptr<sandbox_runtime>> sandbox_manager::get(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it != sandboxes_.end()) {
    if (it->second->box().alive()) return it->second;
    // Its pid 1 died (e.g. killed from outside): start it again on the same workspace.
    auto o = it->second->box().options();
    it->second->stop();
    sandboxes_.erase(it);
    return start_locked(o);
  }
  if (!valid_id(id)) return fail(errc::sandbox_not_found, fmt::format("sandbox '{}' not found", id), {{"sandboxId", id}});
  fs::path meta = sandbox_dir(id) / "sandbox.json";
  std::error_code ec;
  if (!fs::exists(meta, ec))
    return fail(errc::sandbox_not_found, fmt::format("sandbox '{}' not found", id), {{"sandboxId", id}});
  std::ifstream in(meta);
  auto j = nlohmann::json::parse(in, nullptr, false);
  auto o = j.is_discarded() ? result<sandbox_options>(sandbox_options{}) : sandbox_options_from_json(j);
  if (!o) return std::unexpected(o.error());
  o->id = id;
  return start_locked(*o);
}

result<std::shared_ptr<sandbox_runtime>> sandbox_manager::get_or_create(const std::string& id) {
  auto r = get(id);
  if (r || r.error().code != errc::sandbox_not_found) return r;
  sandbox_options o;
  o.id = id;
  o.limits = options_.default_limits;
  o.sleep_after = options_.default_sleep_after;
  auto c = create_sandbox(o);
  if (!c && c.error().code == errc::sandbox_already_exists) return get(id);
  return c;
}

sandbox_summary sandbox_manager::summarize(const sandbox_runtime& r_) const {
  auto& r = const_cast<sandbox_runtime&>(r_);
  sandbox_summary s;
  s.id = r.id();
  s.network = r.box().options().network;
  s.limits = r.box().options().limits;
  s.limit_mechanism = r.box().limit_mechanism();
  s.running = r.box().alive();
  s.created_at = r.created_at();
  s.sessions = r.list_sessions().size();
  s.processes = r.processes().list().size();
  s.sleep_after = r.box().options().sleep_after;
  s.keep_alive = r.box().options().keep_alive;
  s.state = s.running ? "running" : "stopped";
  s.idle = std::chrono::steady_clock::now() - r.last_activity();
  return s;
}

std::vector<sandbox_summary> sandbox_manager::list() const {
  std::lock_guard lock(mutex_);
  std::vector<sandbox_summary> out;
  for (auto& [id, r] : sandboxes_) out.push_back(summarize(*r));
  std::error_code ec;
  for (fs::directory_iterator it(options_.data_dir / "sandboxes", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string id = it->path().filename().string();
    if (sandboxes_.count(id) || !valid_id(id)) continue;
    std::ifstream in(it->path() / "sandbox.json");
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) continue;
    auto o = sandbox_options_from_json(j);
    if (!o) continue;
    sandbox_summary s;
    s.id = id;
    s.network = o->network;
    s.limits = o->limits;
    s.sleep_after = o->sleep_after;
    s.keep_alive = o->keep_alive;
    s.state = slept_.count(id) ? "sleeping" : "stopped";
    const auto written = fs::last_write_time(it->path() / "sandbox.json", ec);
    s.created_at = std::chrono::system_clock::now() -
                   std::chrono::duration_cast<std::chrono::system_clock::duration>(fs::file_time_type::clock::now() - written);
    out.push_back(std::move(s));
  }
  return out;
}

std::shared_ptr<sandbox_runtime> sandbox_manager::find_running(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  return it == sandboxes_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<sandbox_runtime>> sandbox_manager::running() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<sandbox_runtime>> out;
  for (auto& [id, r] : sandboxes_) out.push_back(r);
  return out;
}

result<void> sandbox_manager::sleep(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return fail(errc::sandbox_not_found, fmt::format("sandbox '{}' is not running", id), {{"sandboxId", id}});
  // Stopped under the lock: a request arriving now waits, then starts a fresh one, which must not
  // share the cgroups and folders of one still being torn down.
  it->second->stop("sandbox_slept");
  sandboxes_.erase(it);
  slept_.insert(id);
  kh::log::get("sandbox")->info("sandbox {} sleeps (idle); its workspace stays", id);
  return {};
}

result<sandbox_summary> sandbox_manager::describe(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return fail(errc::sandbox_not_found, fmt::format("sandbox '{}' not found", id), {{"sandboxId", id}});
  return summarize(*it->second);
}

result<void> sandbox_manager::destroy(const std::string& id) {
  // All under the lock: a request for this id waits and then finds nothing (or a fresh sandbox),
  // never a half-removed one sharing folders and cgroups with it.
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  std::error_code ec;
  const bool on_disk = valid_id(id) && fs::exists(sandbox_dir(id), ec);
  if (it == sandboxes_.end() && !on_disk)
    return fail(errc::sandbox_not_found, fmt::format("sandbox '{}' not found", id), {{"sandboxId", id}});
  if (it != sandboxes_.end()) {
    it->second->stop();
    sandboxes_.erase(it);
  }
  slept_.erase(id);
  fs::remove_all(sandbox_dir(id), ec);
  if (ec) return fail(errc::io_error, fmt::format("remove {}: {}", sandbox_dir(id).string(), ec.message()));
  kh::log::get("sandbox")->info("sandbox {} destroyed", id);
  return {};
}

}  // namespace kh::sandbox_bridge
