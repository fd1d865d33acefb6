#pragma once
// sandbox: the isolation engine's whole interface. A sandbox runs processes inside its own
// namespaces as its unprivileged user, exposes its root for confined file access, and can be
// destroyed, which kills every process it holds. Implementations are named by mechanism
// (namespace_sandbox: bubblewrap; later a remote one over another host's HTTP API).

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "sandbox_bridge/child_process.hpp"
#include "sandbox_bridge/types.hpp"

namespace kh::sandbox_bridge {

struct run_spec {
  std::vector<std::string> argv;            // inside the sandbox; argv[0] absolute
  std::map<std::string, std::string> env;   // the whole environment of the process
  std::string cwd = "/workspace";           // inside the sandbox
  bool pipe_stdin = false;
};

class sandbox {
 public:
  virtual ~sandbox() = default;

  virtual const sandbox_options& options() const noexcept = 0;
  const std::string& id() const noexcept { return options().id; }

  // Starts a process inside the sandbox's namespaces and limits, in its own process group.
  // The returned child is a host process whose exit status is the inner process's.
  virtual result<child_process> run(const run_spec& spec) = 0;

  // An O_PATH descriptor of the sandbox's root (its own mount namespace) and of /workspace.
  virtual int root_fd() const noexcept = 0;
  virtual int workspace_fd() const noexcept = 0;
  virtual uid_t uid() const noexcept = 0;
  virtual gid_t gid() const noexcept = 0;

  // The environment every process starts from (PATH, HOME, LANG, the sandbox's env).
  virtual std::map<std::string, std::string> base_env() const = 0;

  // "cgroup" or "rlimit".
  virtual std::string limit_mechanism() const = 0;

  // Host pids of every process of the sandbox right now.
  virtual std::vector<pid_t> host_pids() const = 0;

  virtual bool alive() const = 0;

  // Kills every process of the sandbox and releases its limits; idempotent. The workspace stays.
  virtual void stop() = 0;
};

}  // namespace kh::sandbox_bridge
