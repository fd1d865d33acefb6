#include "kernel_host/serve.hpp"

#include <malloc.h>

#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/ids.hpp"
#include "common/log.hpp"
#include "kernel_host/host_app.hpp"

namespace kh::host {
namespace {

// "128MiB", "64k", "1000" -> bytes; 0 on a parse error.
std::size_t parse_size(std::string text) {
  std::size_t pos = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(text, &pos);
  } catch (...) {
    return 0;
  }
  std::string unit = text.substr(pos);
  for (auto& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (unit.empty() || unit == "b") return n;
  if (unit == "k" || unit == "kb" || unit == "kib") return n << 10;
  if (unit == "m" || unit == "mb" || unit == "mib") return n << 20;
  if (unit == "g" || unit == "gb" || unit == "gib") return n << 30;
  return 0;
}

// Request and response bodies of a few MiB (a 1 MiB /api/write or /api/read) are above glibc's
// mmap threshold: each was a fresh mapping, page-faulted in and unmapped again, which cost more
// CPU than the request's own work (1 MiB read: 2.5 ms of daemon CPU, 0.8 ms with this). Such
// blocks now come from the heap and freed memory stays there for the next request, up to the
// trim threshold (8 MiB free at the top of an arena; with up to 8 arenas per core that bounds what
// stays); blocks above 16 MiB are mappings of their own again (big files stream in pieces).
void keep_big_blocks_in_the_heap() {
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 8 << 20);
}

}  // namespace

CLI::App* add_serve_command(CLI::App& app, serve_options& o) {
  auto* cmd = app.add_subcommand("serve", "Run the daemon: the code-interpreter API (Cloudflare Sandbox contract) over HTTP/SSE.\n"
                                          "Stops gracefully on SIGTERM/SIGINT (in-flight requests finish, kernels shut down) and exits 0.");
  cmd->add_option("--listen", o.listen, "HOST:PORT to listen on; port 0 picks a free port (printed)")
      ->envname("KH_LISTEN")->capture_default_str();
  cmd->add_option("--token", o.token,
                  "Token clients must present (Authorization: Bearer T | token T, or ?token=T). Required beyond loopback: "
                  "generated and printed when missing there")
      ->envname("KH_TOKEN");
  cmd->add_option("--data-dir", o.data_dir, "Folder for the workspace and kernel runtime files (default ~/.local/share/kernel-host)")
      ->envname("KH_DATA_DIR");
  cmd->add_option("--body-limit", o.body_limit, "Largest request body (e.g. 128MiB); larger bodies get 413 (not PUT /api/files/raw, streamed to disk)")
      ->envname("KH_BODY_LIMIT")->capture_default_str();
  cmd->add_option("--header-timeout-ms", o.header_timeout_ms, "Time allowed from a request's first byte to its last header")
      ->envname("KH_HEADER_TIMEOUT_MS")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--idle-timeout-ms", o.idle_timeout_ms, "An idle keep-alive connection (or a stalled body) is closed after this")
      ->envname("KH_IDLE_TIMEOUT_MS")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--shutdown-deadline-ms", o.shutdown_deadline_ms, "On SIGTERM, how long in-flight requests may take before being cut")
      ->envname("KH_SHUTDOWN_DEADLINE_MS")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o.threads, "I/O threads (default: one per two cores)")->envname("KH_THREADS")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--python-pool", o.python_pool, "Pre-warmed Python kernels")->envname("KH_PYTHON_POOL")->capture_default_str()
      ->check(CLI::Range(0, 64));
  cmd->add_option("--javascript-pool", o.javascript_pool, "Pre-warmed JavaScript/TypeScript (Deno) kernels")
      ->envname("KH_JAVASCRIPT_POOL")->capture_default_str()->check(CLI::Range(0, 64));
  cmd->add_option("--max-contexts", o.max_contexts, "Most live contexts at once")->envname("KH_MAX_CONTEXTS")->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--cull-idle-s", o.cull_idle_s, "Delete contexts idle this long (0: never)")->envname("KH_CULL_IDLE_S")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--iopub-msg-rate-limit", o.iopub_msg_rate_limit,
                  "Jupyter WebSocket: most IOPub messages per second to a client, averaged over the window; beyond it "
                  "output is dropped with jupyter_server's notice (0: no limit)")
      ->envname("KH_IOPUB_MSG_RATE_LIMIT")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--iopub-data-rate-limit", o.iopub_data_rate_limit,
                  "Jupyter WebSocket: most stream bytes per second to a client (0: no limit)")
      ->envname("KH_IOPUB_DATA_RATE_LIMIT")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--rate-limit-window", o.rate_limit_window, "Seconds over which the IOPub rates are averaged")
      ->envname("KH_RATE_LIMIT_WINDOW")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--write-timeout-ms", o.write_timeout_ms,
                  "A response write (or a stream chunk) that the client does not take within this is abandoned and "
                  "the connection closed")
      ->envname("KH_WRITE_TIMEOUT_MS")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--sandbox-memory", o.sandbox_memory, "Memory limit of a sandbox (0: unlimited)")
      ->envname("KH_SANDBOX_MEMORY")->capture_default_str();
  cmd->add_option("--sandbox-max-processes", o.sandbox_max_processes, "Process limit of a sandbox (0: unlimited)")
      ->envname("KH_SANDBOX_MAX_PROCESSES")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--sandbox-uid", o.sandbox_uid, "The unprivileged uid (and gid) processes run as inside sandboxes")
      ->envname("KH_SANDBOX_UID")->capture_default_str()->check(CLI::Range(1, 65534));
  cmd->add_option("--max-read", o.max_read, "Largest file /api/read returns whole (bigger: 413 FILE_TOO_LARGE; use /api/read/stream or /api/files/raw)")
      ->envname("KH_MAX_READ")->capture_default_str();
  cmd->add_option("--process-log-limit", o.process_log_limit, "Log bytes kept per stream of a background process (oldest dropped and counted)")
      ->envname("KH_PROCESS_LOG_LIMIT")->capture_default_str();
  cmd->add_option("--sleep-after", o.sleep_after,
                  "Idle time after which a sandbox sleeps (processes, sessions and kernels stop; the workspace stays; "
                  "the next request wakes it): 30s, 10m, 1h; 0 never. A sandbox's own sleepAfter/keepAlive win")
      ->envname("KH_SLEEP_AFTER")->capture_default_str();
  cmd->add_flag("--isolate-default-kernels", o.isolate_default_kernels,
                "Run the default sandbox's kernels (/api/contexts) inside it too (else on the host, pre-warmed; named sandboxes' always inside)")
      ->envname("KH_ISOLATE_DEFAULT_KERNELS");
  cmd->add_option("--preview-domain", o.preview_domain,
                  "Domain of preview URLs: http://<port>-<sandbox>-<token>.<domain>:<port>/ reaches an exposed sandbox port")
      ->envname("KH_PREVIEW_DOMAIN")->capture_default_str();
  // A config file holds the same options (TOML/INI: listen = "0.0.0.0:3000").
  cmd->set_config("--config", "", "Read options from this TOML/INI file (env KH_CONFIG)")->envname("KH_CONFIG");
  return cmd;
}

int run_serve(const serve_options& o) {
  keep_big_blocks_in_the_heap();
  host_config config;
  const auto colon = o.listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "error: --listen must be HOST:PORT, got '%s'\n", o.listen.c_str());
    return 2;
  }
  config.server.host = o.listen.substr(0, colon);
  try {
    const int port = std::stoi(o.listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    config.server.port = static_cast<std::uint16_t>(port);
  } catch (...) {
    std::fprintf(stderr, "error: --listen port must be 0..65535, got '%s'\n", o.listen.c_str());
    return 2;
  }
  config.server.body_limit = parse_size(o.body_limit);
  if (config.server.body_limit == 0) {
    std::fprintf(stderr, "error: --body-limit must be a size like 128MiB, got '%s'\n", o.body_limit.c_str());
    return 2;
  }
  config.server.header_timeout = std::chrono::milliseconds(o.header_timeout_ms);
  config.server.idle_timeout = std::chrono::milliseconds(o.idle_timeout_ms);
  config.server.threads = o.threads;
  config.server.write_timeout = std::chrono::milliseconds(o.write_timeout_ms);
  config.iopub = {.msg_rate = o.iopub_msg_rate_limit, .data_rate = o.iopub_data_rate_limit, .window_s = o.rate_limit_window};
  config.server.token = o.token;
  bool generated = false;
  if (config.server.token.empty() && !server::is_loopback_host(config.server.host)) {
    config.server.token = kh::random_hex(24);
    generated = true;
  }
  config.data_dir = o.data_dir;
  config.contexts.pool_sizes = {{"python", o.python_pool}, {"javascript", o.javascript_pool}};
  config.contexts.max_contexts = static_cast<std::size_t>(o.max_contexts);
  config.contexts.cull_idle = std::chrono::milliseconds(static_cast<long long>(o.cull_idle_s) * 1000);
  const std::size_t sandbox_memory = o.sandbox_memory == "0" ? 0 : parse_size(o.sandbox_memory);
  const std::size_t max_read = parse_size(o.max_read), log_limit = parse_size(o.process_log_limit);
  if ((sandbox_memory == 0 && o.sandbox_memory != "0") || max_read == 0 || log_limit == 0) {
    std::fprintf(stderr, "error: --sandbox-memory, --max-read and --process-log-limit take sizes like 512MiB\n");
    return 2;
  }
  config.isolate_default_kernels = o.isolate_default_kernels;
  if (auto d = sandbox_bridge::parse_duration(o.sleep_after)) {
    config.sandboxes.default_sleep_after = *d;
  } else {
    std::fprintf(stderr, "error: --sleep-after takes a duration like 30s, 10m, 1h or 0, got '%s'\n", o.sleep_after.c_str());
    return 2;
  }
  config.sandboxes.uid = static_cast<uid_t>(o.sandbox_uid);
  config.sandboxes.gid = static_cast<gid_t>(o.sandbox_uid);
  config.sandboxes.default_limits.memory_bytes = sandbox_memory;
  config.sandboxes.default_limits.max_processes = o.sandbox_max_processes;
  config.sandboxes.runtime.max_read_bytes = max_read;
  config.sandboxes.runtime.log_capacity = log_limit;
  config.preview_domain = o.preview_domain;
  for (auto& ch : config.preview_domain) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));

  // Block the stop signals in every thread (threads inherit the mask) and wait for them here.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A write to a pipe whose reader is gone (a command's stdin, a kernel's) must fail with EPIPE,
  // not kill the daemon. Blocked rather than ignored: children start with an empty mask and
  // default dispositions (an ignored SIGPIPE would be inherited through exec).
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);

  host_app app(config);
  if (auto started = app.start(); !started) {
    std::fprintf(stderr, "error: %s\n", started.error().to_string().c_str());
    return 2;
  }
  const std::string host = config.server.host.find(':') != std::string::npos && config.server.host.front() != '['
                               ? "[" + config.server.host + "]" : config.server.host;
  std::printf("kernel-host %s listening on http://%s:%u\n", KH_VERSION, host.c_str(), app.port());
  if (generated) std::printf("token: %s\n", config.server.token.c_str());
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  kh::log::get("server")->warn("received {}, shutting down", received == SIGTERM ? "SIGTERM" : "SIGINT");
  app.stop(std::chrono::milliseconds(o.shutdown_deadline_ms));
  std::printf("kernel-host stopped\n");
  std::fflush(stdout);
  return 0;
}

}  // namespace kh::host
