#include "sandbox_bridge/process_table.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.hpp"
#include "sandbox_bridge/sandbox.hpp"
#include "sandbox_bridge/types.hpp"

namespace kh::sandbox_bridge {

std::string_view process_status_name(process_status s) noexcept {
  switch (s) {
    case process_status::running: return "running";
    case process_status::completed: return "completed";
    case process_status::failed: return "failed";
    case process_status::killed: return "killed";
    case process_status::error: return "error";
  }
  return "error";
}

struct process_table::entry {
  process_snapshot snap;
  std::unique_ptr<child_process> child;
  std::map<std::uint64_t, process_listener> listeners;
  bool kill_requested = false;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::thread thread;
};

namespace {

std::string new_process_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const char* digits = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string r;
  for (int i = 0; i < 6; ++i) r += digits[rng() % 36];
  return fmt::format("proc_{}_{}", ms, r);
}

// The innermost pid of a host pid ("NSpid: 4242 7" -> 7).
pid_t inner_pid(pid_t host) {
  std::ifstream in(fmt::format("/proc/{}/status", host));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("NSpid:", 0) == 0) {
      std::istringstream ss(line.substr(6));
      pid_t p = -1, last = -1;
      while (ss >> p) last = p;
      return last;
    }
  }
  return -1;
}

}  // namespace

process_table::~process_table() {
  std::vector<std::shared_ptr<entry>> all;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, e] : entries_) all.push_back(e);
  }
  for (auto& e : all) {
    if (e->child && !e->child->exited()) kill_tree(e->child->pid(), true, std::chrono::milliseconds(0), true);
  }
  for (auto& e : all)
    if (e->thread.joinable()) e->thread.join();
}

void process_table::append(log_buffer& b, std::string_view data, std::size_t capacity) {
  b.total += data.size();
  if (data.size() >= capacity) {
    b.dropped += b.data.size() + (data.size() - capacity);
    b.data.assign(data.substr(data.size() - capacity));
    return;
  }
  if (b.data.size() + data.size() > capacity) {
    std::size_t drop = b.data.size() + data.size() - capacity;
    b.data.erase(0, drop);
    b.dropped += drop;
  }
  b.data.append(data);
}

result<process_snapshot> process_table::start(const process_start& req) {
  if (req.command.find_first_not_of(" \t\r\n") == std::string::npos)
    return fail(errc::invalid_command, "the command is empty");
  std::string id = req.id.value_or(new_process_id());
  if (!valid_id(id)) return fail(errc::validation_failed, "a process id is 1-128 characters of [A-Za-z0-9_.-]");
  auto e = std::make_shared<entry>();
  {
    std::lock_guard lock(mutex_);
    if (entries_.count(id)) return fail(errc::file_exists, fmt::format("a process with id '{}' exists", id), {{"processId", id}});
    e->snap.id = id;
    e->snap.command = req.command;
    e->snap.session_id = req.session_id;
    e->snap.start_time = std::chrono::system_clock::now();
    entries_[id] = e;
  }
  run_spec spec;
  spec.argv = {"/bin/bash", "-c", req.command};
  spec.env = req.env;
  spec.cwd = req.cwd.empty() ? "/workspace" : req.cwd;
  auto child = sandbox_.run(spec);
  std::lock_guard lock(mutex_);
  if (!child) {
    e->snap.status = process_status::error;
    e->snap.end_time = std::chrono::system_clock::now();
    append(e->snap.stderr_log, child.error().message, capacity_);
    changed_.notify_all();
    return std::unexpected(child.error());
  }
  e->child = std::make_unique<child_process>(std::move(*child));
  e->snap.host_pid = e->child->pid();
  e->snap.pid = inner_pid(e->child->pid());  // the same process as the sandbox's PID namespace numbers it: known at once
  if (req.timeout) e->deadline = std::chrono::steady_clock::now() + *req.timeout;
  e->thread = std::thread([this, e] {
    write_journal();
    reader(e);
  });
  return e->snap;
}

void process_table::reader(std::shared_ptr<entry> e) {
  child_process& c = *e->child;
  set_nonblocking(c.stdout_fd());
  set_nonblocking(c.stderr_fd());
  bool exited = false;
  auto emit = [&](process_event ev) {
    for (auto& [h, l] : e->listeners) l(ev);
  };
  auto drain = [&](int fd, bool is_out) -> bool {
    char buf[65536];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        std::string_view chunk(buf, static_cast<std::size_t>(n));
        std::lock_guard lock(mutex_);
        append(is_out ? e->snap.stdout_log : e->snap.stderr_log, chunk, capacity_);
        emit({is_out ? process_event::kind::stdout_data : process_event::kind::stderr_data, std::string(chunk)});
        continue;
      }
      if (n == 0) return false;
      if (errno == EINTR) continue;
      return true;
    }
  };
  while (!exited) {
    pollfd fds[3] = {{c.stdout_fd(), POLLIN, 0}, {c.stderr_fd(), POLLIN, 0}, {c.pidfd(), POLLIN, 0}};
    int wait_ms = c.pidfd() < 0 ? 20 : -1;
    if (e->deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*e->deadline - std::chrono::steady_clock::now()).count();
      wait_ms = static_cast<int>(std::max<long long>(0, left));
    }
    int r = ::poll(fds, 3, wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (fds[0].revents && !drain(c.stdout_fd(), true)) c.close_stdout();
    if (fds[1].revents && !drain(c.stderr_fd(), false)) c.close_stderr();
    if (e->deadline && std::chrono::steady_clock::now() >= *e->deadline) {
      e->deadline.reset();
      {
        std::lock_guard lock(mutex_);
        e->kill_requested = true;
      }
      kill_tree(c.pid(), true, kill_grace_, true);
    }
    if (c.try_wait()) {
      exited = true;
      if (c.stdout_fd() >= 0) drain(c.stdout_fd(), true);
      if (c.stderr_fd() >= 0) drain(c.stderr_fd(), false);
    }
  }
  c.close_stdout();
  c.close_stderr();
  c.close_pidfd();  // the table keeps finished processes' records: without this, one fd each
  int st = *c.status();
  {
    std::lock_guard lock(mutex_);
    auto& s = e->snap;
    s.end_time = std::chrono::system_clock::now();
    s.exit_code = exit_code_of(st);
    if (WIFSIGNALED(st) || e->kill_requested) s.status = process_status::killed;
    else if (*s.exit_code == 0) s.status = process_status::completed;
    else s.status = process_status::failed;
    emit({process_event::kind::exit, {}, s.exit_code, s.status});
    e->listeners.clear();
    changed_.notify_all();
  }
  write_journal();
}

namespace {

constexpr std::size_t kJournalLogTail = 16 * 1024;  // bytes of each log kept in the journal

nlohmann::json snapshot_json(const process_snapshot& p) {
  auto tail = [](const log_buffer& b) {
    return b.data.size() > kJournalLogTail ? b.data.substr(b.data.size() - kJournalLogTail) : b.data;
  };
  auto ms = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  };
  nlohmann::json j{{"id", p.id},         {"pid", p.pid},
                   {"command", p.command}, {"sessionId", p.session_id},
                   {"status", std::string(process_status_name(p.status))},
                   {"startMs", ms(p.start_time)},
                   {"stdout", tail(p.stdout_log)}, {"stderr", tail(p.stderr_log)},
                   {"endReason", p.end_reason}};
  if (p.end_time) j["endMs"] = ms(*p.end_time);
  if (p.exit_code) j["exitCode"] = *p.exit_code;
  return j;
}

}  // namespace

void process_table::write_journal() {
  if (journal_.empty()) return;
  nlohmann::json all = nlohmann::json::array();
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, e] : entries_) all.push_back(snapshot_json(e->snap));
  }
  std::lock_guard lock(journal_mutex_);  // one writer at a time; the newest state wins the rename
  (void)write_file_atomically(journal_, all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void process_table::mark_running(const std::string& end_reason) {
  std::lock_guard lock(mutex_);
  for (auto& [id, e] : entries_)
    if (e->snap.status == process_status::running) e->snap.end_reason = end_reason;
}

void process_table::restore(const std::filesystem::path& file, const std::string& end_reason) {
  std::ifstream in(file);
  if (!in) return;
  auto all = nlohmann::json::parse(in, nullptr, false);
  if (!all.is_array()) return;
  const auto now = std::chrono::system_clock::now();
  std::lock_guard lock(mutex_);
  for (const auto& j : all) {
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) continue;
    auto e = std::make_shared<entry>();
    auto& p = e->snap;
    p.id = j["id"].get<std::string>();
    p.pid = j.value("pid", -1);
    p.command = j.value("command", "");
    p.session_id = j.value("sessionId", "");
    p.start_time = std::chrono::system_clock::time_point(std::chrono::milliseconds(j.value("startMs", 0LL)));
    p.stdout_log.data = j.value("stdout", "");
    p.stderr_log.data = j.value("stderr", "");
    p.end_reason = j.value("endReason", "");
    const std::string status = j.value("status", "error");
    if (status == "running") {
      p.status = process_status::killed;  // it ended with the host; it did not finish
      p.end_time = now;
      p.end_reason = end_reason;
    } else {
      for (auto s : {process_status::completed, process_status::failed, process_status::killed, process_status::error})
        if (status == process_status_name(s)) p.status = s;
      if (j.contains("endMs")) p.end_time = std::chrono::system_clock::time_point(std::chrono::milliseconds(j["endMs"].get<long long>()));
      if (j.contains("exitCode") && j["exitCode"].is_number_integer()) p.exit_code = j["exitCode"].get<int>();
    }
    if (!entries_.count(p.id)) entries_[p.id] = e;
  }
}

std::vector<process_snapshot> process_table::list(const std::optional<std::string>& session_id, bool with_logs) const {
  std::lock_guard lock(mutex_);
  std::vector<process_snapshot> out;
  for (auto& [id, e] : entries_) {
    if (session_id && e->snap.session_id != *session_id) continue;
    out.push_back(e->snap);
    if (!with_logs) out.back().stdout_log.data.clear(), out.back().stderr_log.data.clear();
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.start_time < b.start_time; });
  return out;
}

result<process_snapshot> process_table::get(const std::string& id, bool with_logs) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end())
    return fail(errc::process_not_found, fmt::format("no process with id '{}'", id), {{"processId", id}});
  auto s = it->second->snap;
  if (!with_logs) s.stdout_log.data.clear(), s.stderr_log.data.clear();
  return s;
}

result<void> process_table::kill(const std::string& id, int signal) {
  std::shared_ptr<entry> e;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end())
      return fail(errc::process_not_found, fmt::format("no process with id '{}'", id), {{"processId", id}});
    e = it->second;
    if (e->snap.status != process_status::running || !e->child)
      return fail(errc::process_not_found, fmt::format("process '{}' already ended ({})", id, process_status_name(e->snap.status)),
                  {{"processId", id}, {"finished", true}});
    e->kill_requested = true;
  }
  if (signal == SIGTERM || signal == SIGKILL) {
    kill_tree(e->child->pid(), true, signal == SIGKILL ? std::chrono::milliseconds(0) : kill_grace_, true);
    // The tree is gone; its reader reaps it and records `killed` next. Answer once it has, so a
    // caller reading the process right after the kill sees it ended (not still running).
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(5), [&] { return e->snap.status != process_status::running; });
  } else {
    ::kill(-e->child->pid(), signal);
  }
  return {};
}

std::size_t process_table::kill_all() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, e] : entries_)
      if (e->snap.status == process_status::running) ids.push_back(id);
  }
  std::size_t n = 0;
  for (auto& id : ids)
    if (kill(id)) ++n;
  return n;
}

result<process_snapshot> process_table::wait(const std::string& id, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return fail(errc::process_not_found, fmt::format("no process with id '{}'", id));
  auto e = it->second;
  changed_.wait_for(lock, timeout, [&] { return e->snap.status != process_status::running; });
  return e->snap;
}

result<std::pair<process_snapshot, std::uint64_t>> process_table::subscribe(const std::string& id, process_listener l) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return fail(errc::process_not_found, fmt::format("no process with id '{}'", id));
  std::uint64_t h = 0;
  if (it->second->snap.status == process_status::running) {
    h = next_handle_++;
    it->second->listeners[h] = std::move(l);
  }
  return std::pair{it->second->snap, h};
}

void process_table::unsubscribe(const std::string& id, std::uint64_t handle) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it != entries_.end()) it->second->listeners.erase(handle);
}

}  // namespace kh::sandbox_bridge
