#include "kernel_host/context_manager.hpp"

#include <algorithm>
#include <fstream>
#include <future>

#include <fmt/format.h>

#include "common/atomic_file.hpp"
#include "common/log.hpp"
#include "contexts/kernelspec.hpp"
#include "kernel_host/api/error_mapping.hpp"

namespace kh::host {
namespace {

namespace ctx = kh::contexts;
namespace fs = std::filesystem;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = kh::log::get("contexts");
  return l;
}

// A JSON string literal is also a valid Python and JavaScript string literal.
std::string literal(const std::string& text) { return nl::json(text).dump(-1, ' ', false, nl::json::error_handler_t::replace); }

const char* reason_name(end_reason why) {
  switch (why) {
    case end_reason::deleted: return "deleted";
    case end_reason::idle: return "idle";
    case end_reason::sandbox_slept: return "sandbox_slept";
    case end_reason::sandbox_destroyed: return "sandbox_destroyed";
    case end_reason::host_stopped: return "host_stopped";
  }
  return "ended";
}

std::string reason_text(end_reason why) {
  switch (why) {
    case end_reason::deleted: return "was deleted";
    case end_reason::idle: return "was shut down after being idle";
    case end_reason::sandbox_slept: return "ended when its sandbox went to sleep";
    case end_reason::sandbox_destroyed: return "ended with its sandbox";
    case end_reason::host_stopped: return "ended when the host stopped";
  }
  return "ended";
}

constexpr std::size_t kEndedKept = 1024;

bool is_python(const std::string& language) { return language == "python"; }
bool is_js(const std::string& language) { return language == "javascript" || language == "typescript"; }

}  // namespace

context::context(std::string language, std::string cwd, std::unique_ptr<ctx::kernel_manager> kernel,
                 std::chrono::milliseconds timeout)
    : language_(std::move(language)), cwd_(std::move(cwd)), kernel_(std::move(kernel)), timeout_(timeout),
      created_at_(api::iso_timestamp()) {
  touch();
}

void context::enqueue_execution(std::function<void()> start) {
  {
    std::lock_guard lock(queue_mutex_);
    if (executing_) {
      queued_.push_back(std::move(start));
      return;
    }
    executing_ = true;
  }
  start();
}

void context::execution_finished() {
  std::function<void()> next;
  {
    std::lock_guard lock(queue_mutex_);
    if (queued_.empty()) {
      executing_ = false;
      return;
    }
    next = std::move(queued_.front());
    queued_.pop_front();
  }
  next();
}

void context::set_pending_input(std::optional<ctx::message> request) {
  std::lock_guard lock(input_mutex_);
  pending_input_ = std::move(request);
}

std::optional<ctx::message> context::take_pending_input() {
  std::lock_guard lock(input_mutex_);
  return std::exchange(pending_input_, std::nullopt);
}

context_manager::context_manager(ctx::reactor& r, context_manager_config config)
    : reactor_(r), config_(std::move(config)) {
  std::error_code ec;
  if (!config_.workspace.empty()) fs::create_directories(config_.workspace, ec);
  for (const auto& [language, size] : config_.pool_sizes) {
    if (size <= 0) continue;
    auto canonical = canonical_language(language);
    auto spec = canonical ? spec_for(*canonical) : ctx::find_kernelspec(language, config_.data_path);
    if (!spec) {
      logger()->warn("no pool for '{}': {}", language, spec.error().message);
      continue;
    }
    pool_targets_[spec->name] += size;
  }
  read_journal();
}

void context_manager::read_journal() {
  if (config_.journal.empty()) return;
  std::ifstream in(config_.journal);
  const auto all = in ? nl::json::parse(in, nullptr, false) : nl::json();
  std::lock_guard lock(mutex_);
  if (all.is_array())
    for (const auto& j : all)
      if (j.is_object() && j.value("id", "") != "")
        remember_ended(j.value("id", ""), j.value("language", ""), end_reason::host_stopped, j.value("stoppedAt", api::iso_timestamp()));
  write_journal();  // none of them lives now
}

void context_manager::write_journal(const std::string& stopped_at) const {
  if (config_.journal.empty()) return;
  nl::json all = nl::json::array();
  for (const auto& [id, c] : contexts_) {
    all.push_back({{"id", id}, {"language", c->language()}, {"sandboxId", c->sandbox_id()}});
    if (!stopped_at.empty()) all.back()["stoppedAt"] = stopped_at;
  }
  (void)write_file_atomically(config_.journal, all.dump());
}

void context_manager::remember_ended(const std::string& id, const std::string& language, end_reason why, std::string at) {
  if (ended_.insert_or_assign(id, ended_context{language, why, std::move(at)}).second) ended_order_.push_back(id);
  while (ended_order_.size() > kEndedKept) {
    ended_.erase(ended_order_.front());
    ended_order_.pop_front();
  }
}

context_manager::~context_manager() { shutdown_all(); }

void context_manager::start_background() {
  std::lock_guard lock(mutex_);
  if (stopping_ || pool_thread_.joinable()) return;
  pool_thread_ = std::thread([this] { pool_loop(); });
  cull_thread_ = std::thread([this] { cull_loop(); });
}

result<std::string> context_manager::canonical_language(const std::string& language) {
  std::string l = language;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l.empty() || l == "python" || l == "python3" || l == "py") return std::string("python");
  if (l == "javascript" || l == "js" || l == "node") return std::string("javascript");
  if (l == "typescript" || l == "ts") return std::string("typescript");
  return fail(errc::validation_failed,
              fmt::format("unsupported language '{}': use python, javascript or typescript, or name a kernelspec in 'kernel'", language),
              {{"language", language}});
}

result<ctx::kernelspec> context_manager::spec_for(const std::string& language) const {
  if (is_python(language)) {
    if (auto ours = ctx::find_kernelspec("kernel-host-python", config_.data_path)) return ours;
    if (auto spec = ctx::find_kernelspec("python3", config_.data_path)) return spec;
    return fail(errc::interpreter_not_ready, "no Python kernel is installed (kernel-host-python or python3)");
  }
  if (auto spec = ctx::find_kernelspec("deno", config_.data_path)) return spec;
  return fail(errc::interpreter_not_ready, "no JavaScript/TypeScript kernel is installed (deno)");
}

result<fs::path> context_manager::resolve_cwd(const std::string& cwd) const {
  fs::path path;
  if (cwd.empty() || cwd == "/workspace") path = config_.workspace;
  else if (cwd.rfind("/workspace/", 0) == 0) path = config_.workspace / cwd.substr(11);
  else if (fs::path(cwd).is_relative()) path = config_.workspace / cwd;
  else path = cwd;
  std::error_code ec;
  if (path.empty()) return fs::current_path();
  if (!fs::is_directory(path, ec))
    return fail(errc::validation_failed, fmt::format("cwd '{}' is not an existing directory", cwd), {{"cwd", cwd}});
  return path;
}

result<std::unique_ptr<ctx::kernel_manager>> context_manager::start_kernel(
    const ctx::kernelspec& spec, const fs::path& cwd, const std::map<std::string, std::string>& env) {
  ctx::kernel_options options;
  options.runtime_dir = config_.runtime_dir;
  options.cwd = cwd;
  options.env = env;
  return ctx::kernel_manager::start(reactor_, spec, options);
}

std::unique_ptr<ctx::kernel_manager> context_manager::take_pooled(const std::string& spec_name) {
  std::lock_guard lock(mutex_);
  auto it = pool_.find(spec_name);
  while (it != pool_.end() && !it->second.empty()) {
    auto kernel = std::move(it->second.front());
    it->second.pop_front();
    wake_.notify_all();
    const auto state = kernel->state();
    if (state == ctx::kernel_state::idle || state == ctx::kernel_state::busy) return kernel;
  }
  return nullptr;
}

result<std::shared_ptr<context>> context_manager::create(const context_request& request) {
  std::string language;
  result<ctx::kernelspec> spec = fail(errc::internal_error, "");
  if (!request.kernel.empty()) {
    spec = ctx::find_kernelspec(request.kernel, config_.data_path);
    if (!spec) return std::unexpected(spec.error());
    auto canonical = canonical_language(spec->language);
    language = canonical ? *canonical : spec->language;
    if (!request.language.empty()) {
      if (auto asked = canonical_language(request.language)) language = *asked;
    }
  } else {
    auto canonical = canonical_language(request.language);
    if (!canonical) return std::unexpected(canonical.error());
    language = *canonical;
    spec = spec_for(language);
    if (!spec) return std::unexpected(spec.error());
  }
  if (!request.variables.is_null() && !request.variables.is_object())
    return fail(errc::validation_failed, "'variables' must be an object of name -> JSON value");
  std::optional<kernel_placement> placed;
  if (config_.placement) {
    auto p = config_.placement(request.sandbox_id);
    if (!p) return std::unexpected(p.error());
    placed = std::move(*p);
  }
  auto cwd = placed ? result<fs::path>(fs::path(request.cwd.empty() ? "/workspace" : request.cwd)) : resolve_cwd(request.cwd);
  if (!cwd) return std::unexpected(cwd.error());
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return fail(errc::cancelled, "the host is shutting down");
    if (contexts_.size() >= config_.max_contexts)
      return fail(errc::resource_busy,
                  fmt::format("the maximum of {} contexts is reached: delete one first", config_.max_contexts),
                  {{"max_contexts", config_.max_contexts}});
  }

  const bool poolable = !placed && (is_python(language) || is_js(language));
  std::unique_ptr<ctx::kernel_manager> kernel = poolable ? take_pooled(spec->name) : nullptr;
  const bool pooled = kernel != nullptr;
  if (!kernel && placed) {
    // Inside the sandbox: its own paths, ipc sockets in the shared kernel folder, no pool.
    ctx::kernel_options options;
    options.runtime_dir = placed->runtime_dir;
    options.kind = ctx::transport::ipc;
    if (fs::path(spec->argv.empty() ? "" : spec->argv[0]).filename() == "deno") {
      // Deno's Jupyter kernel speaks only TCP, which cannot cross a sandbox's own network.
      if (!placed->tcp_reachable)
        return fail(errc::kernel_start_failed,
                    fmt::format("the {} kernel (Deno) supports only TCP sockets, which cannot reach into sandbox '{}' "
                                "(network \"none\"): create the sandbox with network \"host\" to run {} in it",
                                spec->name, request.sandbox_id, language),
                    {{"kernel", spec->name}, {"sandboxId", request.sandbox_id}, {"reason", "tcp_only_kernel"}});
      options.kind = ctx::transport::tcp;
    }
    options.cwd = *cwd;
    options.env = request.env;
    options.make_provisioner = placed->make_provisioner;
    auto started = ctx::kernel_manager::start(reactor_, *spec, options);
    if (!started) return std::unexpected(started.error());
    kernel = std::move(*started);
  } else if (!kernel) {
    auto started = start_kernel(*spec, *cwd, request.env);
    if (!started) return std::unexpected(started.error());
    kernel = std::move(*started);
  }
  const auto timeout = request.timeout.count() > 0 ? request.timeout : config_.default_timeout;
  auto made = std::make_shared<context>(language, request.cwd.empty() ? std::string("/workspace") : request.cwd,
                                        std::move(kernel), timeout);
  made->place(request.sandbox_id.empty() ? "default" : request.sandbox_id, placed.has_value());

  // A pooled kernel started in the workspace with the host's env: apply the request's by code.
  if (pooled && (*cwd != config_.workspace || !request.env.empty())) {
    std::string code;
    nl::json env = request.env;
    const std::string env_text = env.dump();
    if (is_python(language))
      code = fmt::format("__import__('os').chdir({}); __import__('os').environ.update(__import__('json').loads({}))",
                         literal(cwd->string()), literal(env_text));
    else
      code = fmt::format("Deno.chdir({}); for (const [k, v] of Object.entries(JSON.parse({}))) Deno.env.set(k, v);",
                         literal(cwd->string()), literal(env_text));
    auto applied = made->kernel().execute_blocking({.code = code, .silent = true, .store_history = false},
                                                   std::chrono::seconds(30));
    if (!applied || !applied->ok()) {
      made->kernel().shutdown();
      return fail(errc::kernel_start_failed, "could not apply cwd and env to the new context",
                  {{"cwd", request.cwd}});
    }
  }
  if (request.variables.is_object() && !request.variables.empty()) {
    if (auto set = set_variables(*made, request.variables); !set) {
      made->kernel().shutdown();
      return std::unexpected(set.error());
    }
  }
  {
    std::lock_guard lock(mutex_);
    contexts_[made->id()] = made;
    write_journal();
    ++counters_.created;
    if (pooled) ++counters_.from_pool;
  }
  logger()->info("context {} created ({}, kernel {}, {})", made->id(), language, spec->name, pooled ? "pooled" : "started");
  return made;
}

result<std::shared_ptr<context>> context_manager::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = contexts_.find(id);
  if (it != contexts_.end()) return it->second;
  return std::unexpected(not_found(id));
}

error context_manager::not_found(const std::string& id) const {
  if (auto e = ended_.find(id); e != ended_.end())
    return error{errc::context_not_found, fmt::format("context '{}' {} ({}); create a new context", id, reason_text(e->second.why), e->second.at),
                 {{"contextId", id}, {"reason", reason_name(e->second.why)}, {"endedAt", e->second.at}, {"language", e->second.language}}};
  return error{errc::context_not_found, fmt::format("no context with id '{}'", id), {{"contextId", id}}};
}

std::vector<std::shared_ptr<context>> context_manager::list() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<context>> out;
  for (const auto& [id, c] : contexts_) out.push_back(c);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->created_at() < b->created_at(); });
  return out;
}

std::vector<std::shared_ptr<context>> context_manager::list(const std::string& sandbox_id) const {
  auto all = list();
  std::erase_if(all, [&](const auto& c) { return c->sandbox_id() != sandbox_id; });
  return all;
}

std::size_t context_manager::remove_sandbox(const std::string& sandbox_id, end_reason why) {
  std::size_t n = 0;
  for (const auto& c : list(sandbox_id))
    if (remove(c->id(), why)) ++n;
  return n;
}

result<void> context_manager::remove(const std::string& id, end_reason why) {
  std::shared_ptr<context> victim;
  {
    std::lock_guard lock(mutex_);
    auto it = contexts_.find(id);
    if (it == contexts_.end()) return std::unexpected(not_found(id));
    victim = std::move(it->second);
    contexts_.erase(it);
    remember_ended(id, victim->language(), why, api::iso_timestamp());
    write_journal();
    ++counters_.deleted;
  }
  auto done = victim->kernel().shutdown();
  logger()->info("context {} deleted", id);
  return done;
}

result<void> context_manager::set_variables(context& c, const nl::json& variables) {
  if (!variables.is_object()) return fail(errc::validation_failed, "'set' must be an object of name -> JSON value");
  for (const auto& [name, value] : variables.items()) {
    const bool identifier = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                            std::all_of(name.begin(), name.end(), [](unsigned char ch) { return std::isalnum(ch) || ch == '_'; });
    if (!identifier)
      return fail(errc::validation_failed, fmt::format("variable name '{}' is not an identifier", name), {{"name", name}});
  }
  const std::string payload = literal(variables.dump(-1, ' ', false, nl::json::error_handler_t::replace));
  std::string code;
  if (is_python(c.language()))
    code = fmt::format("globals().update(__import__('json').loads({}))", payload);
  else if (is_js(c.language()))
    code = fmt::format("Object.assign(globalThis, JSON.parse({}));", payload);
  else
    return fail(errc::validation_failed, fmt::format("variables are not supported for language '{}'", c.language()));
  c.touch();
  auto r = c.kernel().execute_blocking({.code = code, .store_history = false}, std::chrono::seconds(60));
  if (!r) return std::unexpected(r.error());
  if (!r->ok())
    return fail(errc::validation_failed, "the kernel refused the variables",
                {{"ename", r->reply.content.value("ename", "")}, {"evalue", r->reply.content.value("evalue", "")}});
  return {};
}

result<nl::json> context_manager::get_variables(context& c, const std::vector<std::string>& names) {
  const std::string list = literal(nl::json(names).dump());
  std::string code;
  if (is_python(c.language()))
    code = fmt::format(
        "print('\\x1e' + __import__('json').dumps({{k: globals()[k] for k in __import__('json').loads({}) if k in globals()}}, default=repr))",
        list);
  else if (is_js(c.language()))
    code = fmt::format(
        "console.log('\\x1e' + JSON.stringify(Object.fromEntries(JSON.parse({}).flatMap(k => {{ try {{ return [[k, (0, eval)(k)]]; }} catch {{ return []; }} }}))))",
        list);
  else
    return fail(errc::validation_failed, fmt::format("variables are not supported for language '{}'", c.language()));
  c.touch();
  auto r = c.kernel().execute_blocking({.code = code, .store_history = false}, std::chrono::seconds(60));
  if (!r) return std::unexpected(r.error());
  std::string out;
  for (const auto& m : r->outputs)
    if (m.msg_type() == "stream" && m.content.value("name", "") == "stdout") out += m.content.value("text", "");
  const auto mark = out.rfind('\x1e');
  if (!r->ok() || mark == std::string::npos)
    return fail(errc::internal_error, "could not read the variables", {{"stdout", out}});
  auto parsed = nl::json::parse(out.substr(mark + 1), nullptr, false);
  if (parsed.is_discarded()) return fail(errc::internal_error, "the kernel returned unparsable variables");
  return parsed;
}

std::size_t context_manager::cull_idle() {
  if (config_.cull_idle.count() <= 0) return 0;
  std::vector<std::shared_ptr<context>> victims;
  {
    std::lock_guard lock(mutex_);
    const auto limit = clock::now() - config_.cull_idle;
    for (auto it = contexts_.begin(); it != contexts_.end();) {
      if (it->second->running() == 0 && it->second->last_activity() < limit) {
        remember_ended(it->first, it->second->language(), end_reason::idle, api::iso_timestamp());
        victims.push_back(std::move(it->second));
        it = contexts_.erase(it);
        ++counters_.culled;
      } else {
        ++it;
      }
    }
  }
  if (!victims.empty()) {
    std::lock_guard lock(mutex_);
    write_journal();
  }
  for (auto& v : victims) {
    logger()->info("context {} culled after being idle", v->id());
    v->kernel().shutdown();
  }
  return victims.size();
}

void context_manager::pool_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    std::string missing;
    for (const auto& [name, target] : pool_targets_)
      if (static_cast<int>(pool_[name].size()) < target) missing = name;
    if (missing.empty()) {
      wake_.wait(lock);
      continue;
    }
    lock.unlock();
    auto spec = ctx::find_kernelspec(missing, config_.data_path);
    result<std::unique_ptr<ctx::kernel_manager>> kernel =
        spec ? start_kernel(*spec, config_.workspace.empty() ? fs::current_path() : config_.workspace, {})
             : result<std::unique_ptr<ctx::kernel_manager>>(std::unexpected(spec.error()));
    lock.lock();
    if (!kernel) {
      logger()->warn("pool: cannot start {}: {}", missing, kernel.error().message);
      wake_.wait_for(lock, std::chrono::seconds(5));
      continue;
    }
    if (stopping_) {
      lock.unlock();
      (*kernel)->shutdown();
      lock.lock();
      break;
    }
    pool_[missing].push_back(std::move(*kernel));
  }
}

void context_manager::cull_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto period = config_.cull_idle.count() > 0 ? std::max<std::chrono::milliseconds>(config_.cull_idle / 4, std::chrono::milliseconds(100))
                                                : std::chrono::milliseconds(60'000);
    period = std::min<std::chrono::milliseconds>(period, std::chrono::milliseconds(30'000));
    wake_.wait_for(lock, period);
    if (stopping_) break;
    lock.unlock();
    cull_idle();
    lock.lock();
  }
}

void context_manager::shutdown_all() {
  std::vector<std::unique_ptr<ctx::kernel_manager>> pooled;
  std::vector<std::shared_ptr<context>> live;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (pool_thread_.joinable()) pool_thread_.join();
  if (cull_thread_.joinable()) cull_thread_.join();
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, q] : pool_)
      for (auto& k : q) pooled.push_back(std::move(k));
    pool_.clear();
    if (!contexts_.empty()) write_journal(api::iso_timestamp());  // read as ended by the next start
    for (auto& [id, c] : contexts_) live.push_back(std::move(c));
    contexts_.clear();
  }
  // Every ladder in parallel: the slowest kernel bounds the wait, not their sum.
  std::vector<std::future<void>> jobs;
  for (auto& k : pooled) jobs.push_back(std::async(std::launch::async, [&k] { k->shutdown(); }));
  for (auto& c : live) jobs.push_back(std::async(std::launch::async, [&c] { c->kernel().shutdown(); }));
  for (auto& j : jobs) j.wait();
}

context_manager_counters context_manager::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

}  // namespace kh::host
