#include "contexts/kernel_manager.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <future>
#include <thread>
#include <variant>

#include "common/ids.hpp"
#include "common/log.hpp"

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> logger() { return kh::log::get("contexts"); }

}  // namespace

std::string_view kernel_state_name(kernel_state state) noexcept {
  switch (state) {
    case kernel_state::starting: return "starting";
    case kernel_state::idle: return "idle";
    case kernel_state::busy: return "busy";
    case kernel_state::restarting: return "restarting";
    case kernel_state::dead: return "dead";
    case kernel_state::shutting_down: return "shutting_down";
    case kernel_state::shut_down: return "shut_down";
  }
  return "unknown";
}

std::string_view shutdown_rung_name(shutdown_rung rung) noexcept {
  switch (rung) {
    case shutdown_rung::none: return "none";
    case shutdown_rung::already_exited: return "already_exited";
    case shutdown_rung::request: return "shutdown_request";
    case shutdown_rung::terminate: return "SIGTERM";
    case shutdown_rung::kill: return "SIGKILL";
  }
  return "unknown";
}

std::filesystem::path default_runtime_dir() {
  std::filesystem::path dir;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg)
    dir = std::filesystem::path(xdg) / "kernel-host";
  else
    dir = std::filesystem::temp_directory_path() / fmt::format("kernel-host-{}", ::getuid());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ::chmod(dir.c_str(), 0700);
  return dir;
}

std::chrono::milliseconds kernel_manager::output_settle_for(const nl::json& info) const {
  if (options_.output_settle >= 0ms) return options_.output_settle;
  std::string implementation = info.value("implementation", "");
  for (auto& c : implementation) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return implementation.find("deno") != std::string::npos ? 5ms : 0ms;
}

kernel_manager::kernel_manager(reactor& r, kernelspec spec, kernel_options options)
    : reactor_(r), spec_(std::move(spec)), options_(std::move(options)) {
  id_ = options_.kernel_id.empty() ? kh::new_uuid() : options_.kernel_id;
  if (options_.runtime_dir.empty()) options_.runtime_dir = default_runtime_dir();
  if (!options_.make_provisioner) options_.make_provisioner = [] { return make_local_provisioner(); };
}

result<std::unique_ptr<kernel_manager>> kernel_manager::start(reactor& r, kernelspec spec, kernel_options options) {
  std::unique_ptr<kernel_manager> manager(new kernel_manager(r, std::move(spec), std::move(options)));
  std::lock_guard lock(manager->lifecycle_mutex_);
  if (auto started = manager->start_locked(); !started) {
    manager->closing_ = true;
    manager->state_ = kernel_state::shut_down;
    return std::unexpected(started.error());
  }
  return manager;
}

kernel_manager::~kernel_manager() {
  shutdown();
  if (client_) client_->close();
}

result<void> kernel_manager::start_locked() {
  std::error_code ec;
  std::filesystem::create_directories(options_.runtime_dir, ec);
  if (!have_connection_) {
    if (options_.kind == transport::tcp) {
      auto info = make_tcp_connection_info(spec_.name);
      if (!info) return std::unexpected(info.error());
      connection_ = std::move(*info);
    } else {
      // A short stem: xeus 2.4.1 kernels fail to start (EINVAL) when an ipc endpoint is longer
      // than about 30 characters, and sandbox kernels see these files at /tmp/.k/<stem>-<n>.
      std::string stem = "k";
      for (char ch : id_)
        if (std::isxdigit(static_cast<unsigned char>(ch)) && stem.size() < 13) stem += ch;
      connection_ = make_ipc_connection_info(options_.runtime_dir, stem, spec_.name);
    }
    have_connection_ = true;
  }

  state_ = kernel_state::starting;
  provisioner_ = options_.make_provisioner();
  launch_request request{.spec = spec_,
                         .connection = connection_,
                         .runtime_dir = options_.runtime_dir,
                         .cwd = options_.cwd,
                         .env = options_.env,
                         .log_file = options_.runtime_dir / ("kernel-" + id_ + ".log"),
                         .kernel_id = id_};
  if (auto launched = provisioner_->launch(request); !launched) {
    provisioner_->cleanup();
    error err = launched.error();
    if (err.code != errc::kernel_start_failed)
      err = {errc::kernel_start_failed, "cannot start kernel '" + spec_.name + "': " + err.message, err.details};
    return std::unexpected(err);
  }
  pid_ = provisioner_->pid();

  client_options copts;
  copts.heartbeat_interval = options_.heartbeat_interval;
  if (!client_) {
    client_ = kernel_client::make(reactor_, connection_, copts);
    client_->on_heartbeat_failure([this] { on_heartbeat_failure(); });
  } else {
    client_->reconnect(connection_);
  }

  if (int fd = provisioner_->exit_fd(); fd >= 0) {
    provisioner* process = provisioner_.get();
    reactor_.call([&] { reactor_.add_fd(fd, [this, process] { on_process_exit(process); }); });
    watched_fd_ = fd;
  }

  if (auto ready = wait_ready_locked(); !ready) {
    shutdown_locked(false);
    return ready;
  }
  heartbeat_ok_ = true;
  client_->set_output_settle(output_settle_for(kernel_info()));
  state_ = kernel_state::idle;
  return {};
}

result<void> kernel_manager::wait_ready_locked() {
  const auto started = clock::now();
  const auto deadline = started + options_.start_timeout;
  auto send_kernel_info = [this] {
    auto promise = std::make_shared<std::promise<result<message>>>();
    auto future = promise->get_future();
    client_->request(channel::shell, client_->new_message("kernel_info_request"),
                     {.on_done = [promise](result<message> r) { promise->set_value(std::move(r)); }},
                     {.wait_for_idle = false});
    return future;
  };
  auto exited_error = [this](const exit_status& status) {
    return fail(errc::kernel_start_failed,
                fmt::format("kernel '{}' exited during start-up ({})", spec_.name, status.to_string()),
                {{"kernel", spec_.name}, {"exit_code", status.code}, {"signal", status.signal},
                 {"log_tail", provisioner_->log_tail()}});
  };

  // The DEALER queues the request until the kernel binds, so one kernel_info_request is enough
  // for the shell. IOPub is live only once some IOPub message arrives (the slow-joiner problem):
  // until then, nudge with further kernel_info requests, as jupyter_client's wait_for_ready does.
  auto reply = send_kernel_info();
  bool have_reply = false;
  auto last_nudge = clock::now();
  std::vector<std::future<result<message>>> nudges;
  for (;;) {
    if (!have_reply && reply.wait_for(1ms) == std::future_status::ready) {
      auto r = reply.get();
      if (!r) {
        if (auto status = provisioner_->wait(50ms)) return exited_error(*status);
        return std::unexpected(r.error());
      }
      std::lock_guard lock(info_mutex_);
      kernel_info_ = r->content;
      have_reply = true;
    }
    if (have_reply) {
      if (client_->iopub_seen()) break;
      if (clock::now() - last_nudge > 10ms) {
        nudges.push_back(send_kernel_info());
        last_nudge = clock::now();
      }
      std::this_thread::sleep_for(1ms);
    }
    if (auto status = provisioner_->poll()) {
      std::lock_guard lock(info_mutex_);
      last_exit_ = status;
      return exited_error(*status);
    }
    if (clock::now() > deadline)
      return fail(errc::kernel_start_failed,
                  fmt::format("kernel '{}' did not become ready within {} ms{}", spec_.name,
                              options_.start_timeout.count(),
                              have_reply ? " (no IOPub message arrived)" : " (no kernel_info_reply)"),
                  {{"kernel", spec_.name}, {"timeout_ms", options_.start_timeout.count()},
                   {"log_tail", provisioner_->log_tail()}});
  }
  // The last nudge's `busy` may be the latest state seen: let its idle arrive (bounded), so a
  // kernel reported ready is also reported idle.
  for (auto& nudge : nudges) nudge.wait_until(std::max(deadline, clock::now() + 100ms));
  for (const auto until = clock::now() + 500ms; client_->execution_state() == "busy" && clock::now() < until;)
    std::this_thread::sleep_for(1ms);
  logger()->debug("kernel {} ({}) ready in {} ms", id_, spec_.name,
                  std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started).count());
  return {};
}

void kernel_manager::on_process_exit(provisioner* process) {
  // Reactor thread. Stop watching first: the pidfd stays readable.
  reactor_.remove_fd(process->exit_fd());
  const auto status = process->poll();
  {
    std::lock_guard lock(info_mutex_);
    if (status) last_exit_ = status;
  }
  const kernel_state state = state_.load();
  if (state == kernel_state::shutting_down || state == kernel_state::shut_down ||
      state == kernel_state::restarting)
    return;  // the manager is stopping it: the ladder handles the rest
  const std::string how = status ? status->to_string() : "unknown status";
  error err{errc::kernel_died, fmt::format("the kernel '{}' died ({})", spec_.name, how),
            {{"kernel_id", id_}, {"exit_code", status ? status->code : -1}, {"signal", status ? status->signal : 0},
             {"log_tail", process->log_tail()}}};
  if (state == kernel_state::starting) {
    client_->fail_all(err, false);  // the start loop sees the exit and reports it
    return;
  }
  logger()->warn("kernel {}: {}", id_, err.message);
  state_ = kernel_state::dead;
  client_->fail_all(err, true);
  if (!options_.restart_on_death) notify_lifecycle(kernel_state::dead);
  if (options_.restart_on_death && !closing_) {
    worker_.post([this] {
      if (closing_) return;
      if (auto restarted = restart(); !restarted)
        logger()->error("kernel {}: automatic restart failed: {}", id_, restarted.error().to_string());
    });
  }
}

void kernel_manager::on_heartbeat_failure() {
  // Reactor thread. With a pidfd, death is seen at once; a silent heartbeat then means a hung
  // kernel, which we report but do not kill (a long C call can starve a kernel's heartbeat).
  heartbeat_ok_ = false;
  logger()->warn("kernel {}: heartbeat not answered", id_);
  if (watched_fd_ >= 0 || closing_) return;
  // Without a process handle the heartbeat is our only death signal.
  state_ = kernel_state::dead;
  client_->fail_all({errc::kernel_died, "the kernel stopped answering heartbeats", {{"kernel_id", id_}}}, true);
  notify_lifecycle(kernel_state::dead);
}

void kernel_manager::execute(const execute_request& req, request_handlers handlers, std::chrono::milliseconds timeout) {
  auto on_done = std::move(handlers.on_done);
  handlers.on_done = [this, on_done = std::move(on_done)](result<message> outcome) mutable {
    if (outcome || outcome.error().code != errc::timeout) {
      if (on_done) on_done(std::move(outcome));
      return;
    }
    // Reactor thread: recovery blocks, so it runs on the worker; the caller hears after it.
    worker_.post([this, err = outcome.error(), on_done = std::move(on_done)]() mutable {
      err.details["recovery"] = recover_after_timeout();
      err.message = "the execution did not finish within " +
                    std::to_string(err.details.value("timeout_ms", 0)) + " ms; the kernel was " +
                    err.details["recovery"].get<std::string>();
      if (on_done) on_done(std::unexpected(std::move(err)));
    });
  };
  client_->execute(req, std::move(handlers), timeout);
}

nl::json kernel_manager::recover_after_timeout() {
  if (closing_) return "shut_down";
  std::lock_guard lock(lifecycle_mutex_);
  const kernel_state state = state_.load();
  if (state == kernel_state::dead || state == kernel_state::shut_down) return "dead";
  if (auto interrupted = interrupt_locked(); interrupted) {
    // Shell requests are handled in order, so the reply to an empty silent execute means the
    // interrupted cell has ended. ipykernel then aborts executes for a moment after the error
    // (stop_on_error): repeat the probe until one is not aborted, so the caller's next cell runs.
    const auto deadline = std::chrono::steady_clock::now() + options_.interrupt_grace;
    execute_request probe{.code = "", .silent = true, .store_history = false, .stop_on_error = false};
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      auto reply = client_->request_sync(channel::shell, client_->new_message("execute_request", probe.to_content()),
                                         left, false);
      if (!reply) break;
      if (reply->content.value("status", "") != "aborted") return "interrupted";
      std::this_thread::sleep_for(5ms);
    }
  }
  logger()->warn("kernel {}: still busy {} ms after an interrupt; restarting", id_, options_.interrupt_grace.count());
  shutdown_locked(true);
  restarts_++;
  if (auto started = start_locked(); !started) {
    state_ = kernel_state::dead;
    notify_lifecycle(kernel_state::dead);
    return "dead";
  }
  return "restarted";
}

result<execution_result> kernel_manager::execute_blocking(
    const execute_request& req, std::chrono::milliseconds timeout, std::function<void(const message&)> on_output,
    std::function<std::string(const std::string& prompt, bool password)> on_input) {
  // Events cross from the reactor thread to this one through a small queue.
  struct done_event {
    result<message> outcome;
  };
  struct input_event {
    message request;
  };
  using event = std::variant<message, input_event, done_event>;
  struct channel_state {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<event> events;
    void push(event e) {
      {
        std::lock_guard lock(mutex);
        events.push_back(std::move(e));
      }
      cv.notify_one();
    }
  };
  auto queue = std::make_shared<channel_state>();
  execute(req,
          {.on_iopub = [queue](const message& m) { queue->push(m); },
           .on_input_request = [queue](const message& m) { queue->push(input_event{m}); },
           .on_done = [queue](result<message> r) { queue->push(done_event{std::move(r)}); }},
          timeout);

  execution_result out;
  for (;;) {
    event next;
    {
      std::unique_lock lock(queue->mutex);
      queue->cv.wait(lock, [&] { return !queue->events.empty(); });
      next = std::move(queue->events.front());
      queue->events.pop_front();
    }
    if (auto* msg = std::get_if<message>(&next)) {
      const std::string type = msg->msg_type();
      if (type == "status" || type == "execute_input") {
        const std::string date = msg->header.value("date", "");
        if (type == "execute_input") out.timing["iopub.execute_input"] = date;
        else if (msg->content.value("execution_state", "") == "busy") out.timing["iopub.status.busy"] = date;
        else if (msg->content.value("execution_state", "") == "idle") out.timing["iopub.status.idle"] = date;
        continue;
      }
      if (on_output) on_output(*msg);
      out.outputs.push_back(std::move(*msg));
    } else if (auto* input = std::get_if<input_event>(&next)) {
      const std::string prompt = input->request.content.value("prompt", "");
      const bool password = input->request.content.value("password", false);
      client_->send_input_reply(input->request, on_input ? on_input(prompt, password) : std::string());
    } else {
      auto& done = std::get<done_event>(next);
      if (!done.outcome) return std::unexpected(done.outcome.error());
      out.reply = std::move(*done.outcome);
      return out;
    }
  }
}

result<void> kernel_manager::interrupt() {
  std::lock_guard lock(lifecycle_mutex_);
  return interrupt_locked();
}

result<void> kernel_manager::interrupt_locked() {
  const kernel_state state = state_.load();
  if (state == kernel_state::dead || state == kernel_state::shut_down || !provisioner_)
    return fail(errc::kernel_not_running, "cannot interrupt: the kernel is not running", {{"kernel_id", id_}});
  if (spec_.interrupt_mode == interrupt_mode::message) {
    auto reply = client_->request_sync(channel::control, client_->new_message("interrupt_request"), 5s, false);
    if (!reply) return std::unexpected(reply.error());
    return {};
  }
  return provisioner_->send_signal(SIGINT);
}

result<void> kernel_manager::restart() {
  std::lock_guard lock(lifecycle_mutex_);
  if (closing_) return fail(errc::kernel_not_running, "cannot restart: the kernel was shut down", {{"kernel_id", id_}});
  shutdown_locked(true);
  restarts_++;
  auto started = start_locked();
  if (!started) {
    state_ = kernel_state::dead;
    notify_lifecycle(kernel_state::dead);
  }
  return started;
}

result<void> kernel_manager::shutdown() {
  closing_ = true;
  std::lock_guard lock(lifecycle_mutex_);
  if (state_ == kernel_state::shut_down) return {};
  shutdown_locked(false);
  if (client_) client_->close();
  state_ = kernel_state::shut_down;
  notify_lifecycle(kernel_state::shut_down);
  return {};
}

void kernel_manager::shutdown_locked(bool restart) {
  if (!provisioner_) return;
  state_ = restart ? kernel_state::restarting : kernel_state::shutting_down;
  if (restart) notify_lifecycle(kernel_state::restarting);
  shutdown_rung rung = shutdown_rung::already_exited;
  std::optional<exit_status> status = provisioner_->poll();
  if (!status) {
    if (client_) {
      client_->send(channel::control, client_->new_message("shutdown_request", {{"restart", restart}}));
    }
    rung = shutdown_rung::request;
    status = provisioner_->wait(options_.shutdown_wait);
    if (!status) {
      rung = shutdown_rung::terminate;
      (void)provisioner_->terminate();
      status = provisioner_->wait(options_.terminate_wait);
    }
    if (!status) {
      rung = shutdown_rung::kill;
      (void)provisioner_->kill();
      status = provisioner_->wait(5s);
    }
  }
  if (status) {
    std::lock_guard lock(info_mutex_);
    last_exit_ = status;
  }
  last_rung_ = rung;
  logger()->debug("kernel {} stopped by {} ({})", id_, shutdown_rung_name(rung),
                  status ? status->to_string() : "still running");
  if (watched_fd_ >= 0) {
    const int fd = watched_fd_;
    reactor_.call([&] { reactor_.remove_fd(fd); });
    watched_fd_ = -1;
  }
  if (client_) client_->fail_all({errc::kernel_restarting, "the kernel is restarting"}, false);
  provisioner_->cleanup();
  provisioner_.reset();
  pid_ = 0;
}

kernel_state kernel_manager::state() const {
  const kernel_state state = state_.load();
  if (state != kernel_state::idle && state != kernel_state::busy) return state;
  return client_ && client_->execution_state() == "busy" ? kernel_state::busy : kernel_state::idle;
}

int kernel_manager::pid() const { return pid_.load(); }

std::uint64_t kernel_manager::watch_lifecycle(std::function<void(kernel_state)> handler) {
  std::lock_guard lock(watchers_mutex_);
  const auto token = next_watcher_++;
  watchers_.emplace(token, std::make_shared<std::function<void(kernel_state)>>(std::move(handler)));
  return token;
}

void kernel_manager::unwatch_lifecycle(std::uint64_t token) {
  std::lock_guard lock(watchers_mutex_);
  watchers_.erase(token);
}

void kernel_manager::notify_lifecycle(kernel_state state) {
  std::vector<std::shared_ptr<std::function<void(kernel_state)>>> handlers;
  {
    std::lock_guard lock(watchers_mutex_);
    for (const auto& [token, fn] : watchers_) handlers.push_back(fn);
  }
  for (const auto& fn : handlers) (*fn)(state);
}

nl::json kernel_manager::kernel_info() const {
  std::lock_guard lock(info_mutex_);
  return kernel_info_;
}

std::shared_ptr<kernel_client> kernel_manager::client() const { return client_; }

std::optional<exit_status> kernel_manager::last_exit() const {
  std::lock_guard lock(info_mutex_);
  return last_exit_;
}

std::string kernel_manager::log_tail(std::size_t max_bytes) const {
  const auto path = options_.runtime_dir / ("kernel-" + id_ + ".log");
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return {};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  const std::size_t n = std::min<std::size_t>(size, max_bytes);
  std::string out(n, '\0');
  std::fseek(f, static_cast<long>(size - n), SEEK_SET);
  out.resize(std::fread(out.data(), 1, n, f));
  std::fclose(f);
  return out;
}

}  // namespace kh::contexts
