#pragma once
// process_table: the background processes of one sandbox. Each is `bash -c <command>` entered into
// the sandbox, in its own process group, with a reader thread filling two bounded log buffers (the
// oldest bytes are dropped and counted) and telling subscribers (log streaming). Kill takes the
// whole tree: SIGTERM, then SIGKILL after a grace period. A command that calls `exit N` completes
// with N.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
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
#include "sandbox_bridge/child_process.hpp"

namespace kh::sandbox_bridge {

class sandbox;

enum class process_status { running, completed, failed, killed, error };
std::string_view process_status_name(process_status s) noexcept;

struct process_start {
  std::string command;
  std::optional<std::string> id;
  std::string session_id;                   // who started it ("" = sessionless)
  std::map<std::string, std::string> env;   // the whole environment
  std::string cwd;                          // "" = the session's cwd, else /workspace
  std::optional<std::chrono::milliseconds> timeout;
};

struct log_buffer {
  std::string data;          // the newest bytes, at most capacity
  std::uint64_t dropped = 0; // bytes dropped from the front
  std::uint64_t total = 0;   // bytes ever written
};

struct process_snapshot {
  std::string id;
  pid_t pid = -1;       // inside the sandbox's PID namespace
  pid_t host_pid = -1;
  std::string command;
  std::string session_id;
  process_status status = process_status::running;
  std::chrono::system_clock::time_point start_time;
  std::optional<std::chrono::system_clock::time_point> end_time;
  std::optional<int> exit_code;
  log_buffer stdout_log, stderr_log;
  std::string end_reason;  // why it ended when not by itself, e.g. "host_restart", "sandbox_slept"
};

struct process_event {
  enum class kind { stdout_data, stderr_data, exit } type;
  std::string data;
  std::optional<int> exit_code;
  process_status status = process_status::running;
};
using process_listener = std::function<void(const process_event&)>;

class process_table {
 public:
  process_table(sandbox& owner, std::size_t log_capacity, std::chrono::milliseconds kill_grace)
      : sandbox_(owner), capacity_(log_capacity), kill_grace_(kill_grace) {}

  // Keeps a journal of the processes (metadata and log tails) in this file, rewritten at every
  // start and end, so a host restart can report them. restore() loads one: processes that were
  // running are reported as ended with end_reason.
  void set_journal(std::filesystem::path file) { journal_ = std::move(file); }
  void restore(const std::filesystem::path& file, const std::string& end_reason);
  // Records why the processes running now are about to end (before the sandbox stops).
  void mark_running(const std::string& end_reason);
  ~process_table();  // kills every process still running

  result<process_snapshot> start(const process_start& request);
  std::vector<process_snapshot> list(const std::optional<std::string>& session_id = std::nullopt,
                                     bool with_logs = false) const;
  result<process_snapshot> get(const std::string& id, bool with_logs = false) const;
  // SIGTERM (or signal) to the tree, SIGKILL after the grace. A finished process: process_not_found
  // with details.finished = true.
  result<void> kill(const std::string& id, int signal = 15);
  std::size_t kill_all();
  // Waits until the process ended or the timeout passed; returns its snapshot.
  result<process_snapshot> wait(const std::string& id, std::chrono::milliseconds timeout) const;

  // The snapshot (logs included) and, atomically after it, every later event. Returns a handle for
  // unsubscribe. The listener runs on the process's reader thread: it must not block.
  result<std::pair<process_snapshot, std::uint64_t>> subscribe(const std::string& id, process_listener listener);
  void unsubscribe(const std::string& id, std::uint64_t handle);

 private:
  struct entry;
  void reader(std::shared_ptr<entry> e);
  static void append(log_buffer& b, std::string_view data, std::size_t capacity);
  void write_journal();  // without mutex_ held

  std::filesystem::path journal_;
  std::mutex journal_mutex_;

  sandbox& sandbox_;
  std::size_t capacity_;
  std::chrono::milliseconds kill_grace_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<entry>> entries_;
  std::uint64_t next_handle_ = 1;
};

}  // namespace kh::sandbox_bridge
