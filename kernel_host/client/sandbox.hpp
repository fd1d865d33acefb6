#pragma once
// kh::client::sandbox: one sandbox of a running kernel-host, and what lives in it (sessions,
// processes, code contexts). Every call is blocking and thread-safe; copies share one client
// (one keep-alive connection for plain calls; each stream opens its own connection).

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "kernel_host/client/sandbox_error.hpp"
#include "kernel_host/client/types.hpp"
#include "kernel_host/client/ws_stream.hpp"

namespace kh::client {

namespace detail {
struct client_state;
}

class process;

// The calls a sandbox and its sessions share (the reference's "full sandbox API"). On a session
// each call names that session (sessionId), so it runs in that shell's cwd and environment.
class sandbox_calls {
 public:
  // Runs a command in the session's shell (POST /api/execute, or /api/execute/stream when
  // options.on_output is set, calling it as output arrives). A non-zero exit is a result, not an
  // error (success == false); a timeout throws TIMEOUT.
  exec_result exec(const std::string& command, const exec_options& options = {}) const;

  // The file's bytes (POST /api/read). FILE_NOT_FOUND, IS_DIRECTORY, FILE_TOO_LARGE (> the
  // server's read limit: use exec or a raw download).
  file_content read_file(const std::string& path, const read_options& options = {}) const;
  // Writes atomically, creating missing parent folders (POST /api/write). Bytes that are not
  // UTF-8 travel as base64 on their own.
  write_result write_file(const std::string& path, std::string_view content, const write_options& options = {}) const;
  // The entries of a folder (POST /api/list-files). FILE_NOT_FOUND, NOT_DIRECTORY.
  std::vector<file_info> list_files(const std::string& path, const list_options& options = {}) const;
  // Removes a file, or a folder with options.recursive (POST /api/delete). FILE_NOT_FOUND, IS_DIRECTORY.
  void delete_file(const std::string& path, const delete_options& options = {}) const;
  // Creates a folder (POST /api/mkdir). FILE_EXISTS without options.recursive.
  void mkdir(const std::string& path, const mkdir_options& options = {}) const;
  // Whether the path exists (POST /api/exists); the reference's pathExists.
  bool exists(const std::string& path) const;

  // Starts a background command (POST /api/process/start) and returns its handle.
  process start_process(const std::string& command, const process_options& options = {}) const;
  // Every process of the sandbox (GET /api/process/list): processes are sandbox-scoped.
  std::vector<process> list_processes() const;
  // One process (GET /api/process/{id}). PROCESS_NOT_FOUND.
  process get_process(const std::string& id) const;
  // Signals a process's whole tree (DELETE /api/process/{id}); signal "" is SIGTERM, else a
  // name ("SIGKILL", "INT") or a number. PROCESS_NOT_FOUND.
  void stop_process(const std::string& id, const std::string& signal = {}) const;
  // Its buffered stdout and stderr (GET /api/process/{id}/logs). PROCESS_NOT_FOUND.
  process_logs get_process_logs(const std::string& id) const;

  // The sandbox these calls go to.
  const std::string& sandbox_id() const;

 protected:
  sandbox_calls(std::shared_ptr<detail::client_state> state, std::string session);
  std::shared_ptr<detail::client_state> state_;
  std::string session_;  // "" = the sandbox's default session
};

// A shell session: its own cwd, environment and shell state; the same calls as its sandbox.
class session : public sandbox_calls {
 public:
  const std::string& id() const { return session_; }

 private:
  friend class sandbox;
  session(std::shared_ptr<detail::client_state> state, std::string id) : sandbox_calls(std::move(state), std::move(id)) {}
};

// A background process. The handle is a snapshot plus calls; refresh() re-reads the state.
class process {
 public:
  const std::string& id() const { return info_.id; }
  int pid() const { return info_.pid; }
  const std::string& command() const { return info_.command; }
  // The state when this handle was made or last refreshed.
  const process_info& info() const { return info_; }
  // Reads the current state (GET /api/process/{id}).
  const process_info& refresh();

  // Waits until `port` answers (POST /api/port-watch with this process): mode "http" wants a
  // status within options.status on GET options.path, "tcp" a connect. Throws
  // PROCESS_EXITED_BEFORE_READY when the process ends first, PROCESS_READY_TIMEOUT after options.timeout.
  void wait_for_port(int port, const port_wait_options& options = {}) const;
  // Waits until a line of stdout or stderr matches (the buffered logs first, then the live
  // stream); returns the line and the match. PROCESS_EXITED_BEFORE_READY, PROCESS_READY_TIMEOUT.
  log_match wait_for_log(const std::regex& pattern, const log_wait_options& options = {}) const;
  // The same for a plain substring.
  log_match wait_for_log(const std::string& text, const log_wait_options& options = {}) const;
  // Waits until the process ends (GET /api/process/{id}/stream until its exit event).
  exit_info wait_for_exit(const exit_wait_options& options = {}) const;
  // Its buffered output (GET /api/process/{id}/logs).
  process_logs logs() const;
  // Signals it (DELETE /api/process/{id}); see sandbox_calls::stop_process.
  void kill(const std::string& signal = {}) const;

 private:
  friend class sandbox_calls;
  process(std::shared_ptr<detail::client_state> state, process_info info) : state_(std::move(state)), info_(std::move(info)) {}
  std::shared_ptr<detail::client_state> state_;
  process_info info_;
};

// A live language kernel (Jupyter) with its variables; runs code with rich outputs.
class code_context {
 public:
  const std::string& id() const { return id_; }
  const std::string& language() const { return language_; }
  const std::string& cwd() const { return cwd_; }

  // Runs code (POST /api/execute/code, SSE): the callbacks run as events arrive; returns every
  // output, result and the error, if the code raised one (a raised exception is a result, not
  // a thrown sandbox_error). Throws CONTEXT_NOT_FOUND for a deleted context.
  execution run_code(const std::string& code, const run_options& options = {}) const;

 private:
  friend class sandbox;
  code_context(std::shared_ptr<detail::client_state> state, std::string id, std::string language, std::string cwd)
      : state_(std::move(state)), id_(std::move(id)), language_(std::move(language)), cwd_(std::move(cwd)) {}
  std::shared_ptr<detail::client_state> state_;
  std::string id_, language_, cwd_;
};

// One sandbox of a kernel-host (made by kh::client::connect). Created on the server at its first
// request; its calls without a session use the sandbox's default session.
class sandbox : public sandbox_calls {
 public:
  const std::string& id() const { return sandbox_id(); }

  // A new shell session (POST /api/session/create). SESSION_ALREADY_EXISTS.
  session create_session(const session_options& options = {}) const;
  // An existing session (checked with GET /api/session/list). SESSION_NOT_FOUND.
  session get_session(const std::string& id) const;
  // Ends a session's shell (POST /api/session/delete). SESSION_NOT_FOUND.
  void delete_session(const std::string& id) const;
  // The ids of the sandbox's sessions (GET /api/session/list).
  std::vector<std::string> list_sessions() const;

  // Makes a port reachable at a preview URL (POST /api/expose-port). INVALID_PORT,
  // PORT_ALREADY_EXPOSED.
  exposed_port expose_port(int port, const expose_options& options = {}) const;
  // Removes the preview URL (DELETE /api/exposed-ports/{port}).
  void unexpose_port(int port) const;
  // The exposed ports (GET /api/exposed-ports), their URLs on `hostname` when given.
  std::vector<exposed_port> get_exposed_ports(const std::string& hostname = {}) const;
  bool is_port_exposed(int port) const;

  // A new code context (POST /api/contexts) with options.variables set in it.
  code_context create_code_context(const context_options& options = {}) const;
  // The host's code contexts (GET /api/contexts).
  std::vector<code_context> list_code_contexts() const;
  // Stops a context's kernel (DELETE /api/contexts/{id}). CONTEXT_NOT_FOUND.
  void delete_code_context(const std::string& id) const;

  // A WebSocket to `port` inside the sandbox (GET /sandboxes/<id>/api/ws-connect/<port>).
  ws_stream ws_connect(int port) const;

  // Mounts an S3-compatible bucket at mount_path (POST /api/mount-bucket). MISSING_CREDENTIALS,
  // INVALID_MOUNT_CONFIG, S3FS_MOUNT_ERROR.
  void mount_bucket(const std::string& bucket, const std::string& mount_path, const mount_options& options = {}) const;
  // (POST /api/unmount-bucket).
  void unmount_bucket(const std::string& mount_path) const;

  // Kills every process and kernel of the sandbox and removes its files (DELETE /api/sandboxes/{id}).
  void destroy() const;

 private:
  friend sandbox connect(const std::string& base_url, const connect_options& options);
  explicit sandbox(std::shared_ptr<detail::client_state> state) : sandbox_calls(std::move(state), "") {}
};

// A client of the kernel-host at base_url ("http://HOST:PORT", optionally with a path prefix)
// for sandbox options.sandbox. Connects lazily: a wrong address shows at the first call
// (CONNECTION_ERROR). Throws std::invalid_argument for a URL that is not http://.
sandbox connect(const std::string& base_url, const connect_options& options = {});

}  // namespace kh::client
