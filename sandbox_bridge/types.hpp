#pragma once
// Plain value types shared by the sandbox bridge: options, limits, results of commands.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace kh::sandbox_bridge {

enum class network_mode { none, host };

struct sandbox_limits {
  std::uint64_t memory_bytes = 1024ull << 20;  // 0 = unlimited
  int max_processes = 512;                      // 0 = unlimited
  int cpu_shares = 0;                           // cgroup v1 cpu.shares; 0 = the default share
};

struct sandbox_options {
  std::string id;
  std::map<std::string, std::string> env;  // given to every process of the sandbox
  network_mode network = network_mode::none;
  sandbox_limits limits;
  // Idle this long (no request, no open stream), the sandbox sleeps: its processes, sessions and
  // kernels stop, its workspace stays; the next request wakes it. 0: never. keep_alive: never.
  std::chrono::seconds sleep_after{600};
  bool keep_alive = false;
};

// Where output of a command goes as it is produced (for streaming).
enum class stream_kind { stdout_stream, stderr_stream };
using output_sink = std::function<void(stream_kind, std::string_view)>;

struct exec_request {
  std::string command;
  std::map<std::string, std::string> env;   // for this command only
  std::optional<std::string> cwd;           // for this command only
  std::optional<std::string> stdin_data;    // empty stdin when absent
  std::optional<std::chrono::milliseconds> timeout;
  // Set from another thread to stop the command (its caller went away): the command's tree is
  // killed as on a timeout and the call ends with errc::cancelled. Sessions only.
  std::shared_ptr<std::atomic<bool>> cancel;
};

struct exec_result {
  std::string stdout_data;  // exact bytes
  std::string stderr_data;
  int exit_code = 0;
  std::chrono::microseconds duration{0};
};

// "a-z A-Z 0-9 _ . -", 1..128 characters, not "." or "..": safe as a folder name.
bool valid_id(std::string_view id) noexcept;

// "[A-Za-z_][A-Za-z0-9_]*"
bool valid_env_name(std::string_view name) noexcept;

// A duration as the Cloudflare SDK writes sleepAfter: "30s", "10m", "1h", or plain seconds ("90").
std::optional<std::chrono::seconds> parse_duration(std::string_view text) noexcept;

}  // namespace kh::sandbox_bridge
