#pragma once
// `kernel-host serve`: options (flags, environment, config file) and the daemon's main loop.

#include <algorithm>
#include <string>
#include <thread>

namespace CLI {
class App;
}

namespace kh::host {

inline int default_io_threads() { return std::clamp(static_cast<int>(std::thread::hardware_concurrency() / 2), 1, 8); }

struct serve_options {
  std::string listen = "127.0.0.1:3000";
  std::string token;
  std::string data_dir;
  std::string body_limit = "128MiB";
  int header_timeout_ms = 30'000;
  int idle_timeout_ms = 255'000;
  int shutdown_deadline_ms = 5'000;
  // I/O threads: one per two cores (1 on a 2-core machine). The I/O threads only move bytes (work
  // that blocks runs on pools), and on two cores a second one mostly hands work back and forth:
  // proxied requests per second 8.4k with 2, 16.7k with 1 (bench/http/proxy_bench.mjs).
  int threads = default_io_threads();
  int python_pool = 1;
  int javascript_pool = 0;
  int max_contexts = 64;
  int cull_idle_s = 0;
  double iopub_msg_rate_limit = 1000;
  double iopub_data_rate_limit = 1'000'000;
  double rate_limit_window = 3;
  int write_timeout_ms = 30'000;
  std::string sandbox_memory = "1GiB";   // per sandbox; 0: unlimited
  int sandbox_max_processes = 512;       // per sandbox; 0: unlimited
  int sandbox_uid = 1000;                // the unprivileged user inside sandboxes
  std::string max_read = "32MiB";        // a whole-file /api/read
  std::string process_log_limit = "1MiB";  // per stream of a background process
  std::string preview_domain = "localhost";  // preview URLs: <port>-<sandbox>-<token>.<domain>
  bool isolate_default_kernels = false;
  std::string sleep_after = "10m";  // default idle time before a sandbox sleeps; 0: never
};

// Registers the `serve` subcommand with its options; returns it.
CLI::App* add_serve_command(CLI::App& app, serve_options& options);

// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
int run_serve(const serve_options& options);

}  // namespace kh::host
