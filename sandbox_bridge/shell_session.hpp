#pragma once
// shell_session: one persistent `bash --norc` inside a sandbox, so cd, export, functions and
// aliases persist between commands. Commands on a session run one at a time (a mutex);
// sessions run in parallel.
//
// Protocol: bash's stdin is a pipe from us; its stdout and stderr are pipes to us, saved in the shell
// as fds 8 and 9. For each command we write the command text to a file in the session's runtime
// folder (read-only inside at /run/kh/<n>/) and one line to bash's stdin that reads that file into a
// variable and evals it as a group command (not a subshell: state persists) with stdin from
// /dev/null or a stdin file, stdout to 8 and stderr to 9 (8 and 9 closed for the command), then
// prints "\0KH<token>:<exit code>:<$PWD>\0" on 8 and "\0KH<token>\0" on 9, with a fresh random token
// per command. Everything before the markers is the command's output, byte for byte.
// Timeout: SIGTERM then SIGKILL to every descendant of bash (the command's tree); bash survives and
// prints the markers. If bash itself is the busy one (a builtin loop), the shell is killed and the
// next command gets a fresh shell. A shell that exits (`exit 3`) yields session_terminated with the
// code; the next command starts a fresh shell.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "sandbox_bridge/child_process.hpp"
#include "sandbox_bridge/types.hpp"

namespace kh::sandbox_bridge {

class sandbox;

struct session_options {
  std::string id;
  std::map<std::string, std::string> env;
  std::string cwd = "/workspace";
  std::optional<std::chrono::milliseconds> command_timeout;
};

class shell_session {
 public:
  // run_dir_host: a folder of ours seen read-only inside the sandbox at run_dir_inside.
  shell_session(sandbox& owner, session_options options, std::filesystem::path run_dir_host,
                std::string run_dir_inside, std::chrono::milliseconds kill_grace);
  ~shell_session();
  shell_session(const shell_session&) = delete;
  shell_session& operator=(const shell_session&) = delete;

  const std::string& id() const noexcept { return options_.id; }
  const session_options& options() const noexcept { return options_; }

  // Runs one command (waits for earlier commands of this session). The sink sees output as it is
  // produced; the result holds all of it.
  result<exec_result> exec(const exec_request& request, const output_sink& sink = {});

  // The shell's working directory after the last command.
  std::string cwd() const;

  // Host pid of the current bash, or -1.
  pid_t shell_pid() const;

  // Kills the shell; a command running now ends with session_destroyed.
  void close();

 private:
  result<void> ensure_shell();  // with exec_mutex_ held
  void kill_shell();            // with exec_mutex_ held

  sandbox& sandbox_;
  session_options options_;
  std::filesystem::path run_dir_host_;
  std::string run_dir_inside_;
  std::chrono::milliseconds kill_grace_;

  std::mutex exec_mutex_;  // one command at a time
  mutable std::mutex state_mutex_;
  std::unique_ptr<child_process> shell_;
  pid_t bash_pid_ = -1;
  std::string cwd_;
  bool closed_ = false;
  std::uint64_t counter_ = 0;
};

// Single-quotes s for bash: 'it'\''s'.
std::string shell_quote(std::string_view s);

// Finds a marker in a byte stream fed in pieces; what comes before it is output, exact.
class marker_scanner {
 public:
  explicit marker_scanner(std::string marker) : marker_(std::move(marker)) {}
  // Returns the bytes that are certainly output (not part of a marker).
  std::string feed(std::string_view in);
  bool found() const noexcept { return found_; }
  const std::string& trailer() const noexcept { return trailer_; }  // bytes after the marker

 private:
  std::string marker_, pending_, trailer_;
  bool found_ = false;
};

}  // namespace kh::sandbox_bridge
