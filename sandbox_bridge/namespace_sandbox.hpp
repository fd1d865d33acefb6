#pragma once
// namespace_sandbox: a sandbox made of Linux namespaces with bubblewrap.
//
// Design: one long-lived bubblewrap "init" per sandbox. `bwrap --unshare-pid/ipc/uts[/net]` builds
// the curated root (host /usr read-only with the /bin, /sbin, /lib* links; a generated minimal /etc;
// /workspace bound from <data_dir>/sandboxes/<id>/workspace; private tmpfs /tmp and /home/user; own
// /proc; minimal /dev; the runtime folder read-only at /run/kh) and keeps pid 1 of the new PID
// namespace alive (its payload is `sleep infinity`, left as root so the sandbox user cannot kill it). Every later process —
// session shells, background processes, sessionless commands — is entered into that init's
// namespaces between fork and exec (child_process's sandbox_entry does what `nsenter -t <init> -m -u
// -i -n -p -r -W <cwd>` and `setpriv` did as programs; the process is a direct child of the daemon) and
// drops to the sandbox uid (no capabilities, no_new_privs, no supplementary groups). So all processes of a
// sandbox share one PID namespace (a process list inside shows them all, and nothing of the host or
// of other sandboxes) and one view of the files.
//
// Limits: a cgroup v1 folder per controller (memory, pids, cpu) under the daemon's own cgroup,
// `kernel-host/<id>`; each process joins them before entering (cgroup v1 has no CLONE_INTO_CGROUP;
// bwrap itself through a one-line /bin/sh prefix). Where cgroups are not writable, rlimits (--nproc --as).
//
// Destroy: SIGKILL to the namespace's pid 1 (the kernel then kills every process of the PID
// namespace), SIGKILL to whatever is left in the sandbox's pids cgroup, reap the bwrap parent, remove the cgroups.
//
// bwrap runs with --die-with-parent, tied to the spawning *thread*: the manager spawns from one
// long-lived thread.
//
// Warm launcher: entering costs a process about 1-2 ms (cgroup v1 joins, setns, chroot, dropping
// privileges), paid ahead of time. Each sandbox keeps one kh-exec-stub (exec_stub.cpp) entered as
// above, waiting on fd 3; run() hands it the command (launch_request.hpp: argv, the whole env, cwd,
// whether stdin is piped) and returns it as the command's child_process (it execs the command in
// place: the same pid, pipes and process group). A new one is then entered on a background thread
// (at most one at a time; none once stopped). When there is none ready, it died, or the request is
// too large, run() enters the command itself as before (the cold path). The stub is exec'd from an
// fd of the host's file, so it need not be visible inside; `ps` inside shows it waiting.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sandbox_bridge/sandbox.hpp"

namespace kh::sandbox_bridge {

struct namespace_sandbox_paths {
  std::filesystem::path sandbox_dir;  // <data_dir>/sandboxes/<id>: workspace/ and run/ inside
  std::filesystem::path etc_dir;      // the generated minimal /etc, shared read-only
  uid_t uid = 1000;
  gid_t gid = 1000;
  // Host folders bound read-only at the same path inside (kernel-host's own runtime files: the
  // Python kernel, Deno, kernelspecs), so kernelspec argv paths work unchanged in the sandbox.
  std::vector<std::filesystem::path> runtime_binds;
  // The warm launcher's program; empty: no warm launcher (every run enters the command itself).
  std::filesystem::path exec_stub;
};

// kh-exec-stub beside the running executable, or an empty path when it is not there.
std::filesystem::path default_exec_stub();

class namespace_sandbox final : public sandbox {
 public:
  static result<std::unique_ptr<namespace_sandbox>> start(const sandbox_options& options,
                                                          const namespace_sandbox_paths& paths);
  ~namespace_sandbox() override;

  const sandbox_options& options() const noexcept override { return options_; }
  result<child_process> run(const run_spec& spec) override;
  int root_fd() const noexcept override { return root_fd_.get(); }
  int workspace_fd() const noexcept override { return workspace_fd_.get(); }
  uid_t uid() const noexcept override { return paths_.uid; }
  gid_t gid() const noexcept override { return paths_.gid; }
  std::map<std::string, std::string> base_env() const override;
  std::string limit_mechanism() const override { return cgroup_dirs_.empty() ? "rlimit" : "cgroup"; }
  std::vector<pid_t> host_pids() const override;
  bool alive() const override;
  void stop() override;

  pid_t init_pid() const noexcept { return init_pid_; }
  // Commands run through a warm launcher / entered by run() itself, since start.
  std::uint64_t warm_runs() const noexcept { return warm_runs_.load(); }
  std::uint64_t cold_runs() const noexcept { return cold_runs_.load(); }
  // A warm launcher is ready for the next run().
  bool warm_ready() const;
  std::vector<std::filesystem::path> cgroup_dirs() const { return cgroup_dirs_; }

  // Writes the minimal /etc (passwd and group with the sandbox user, hosts, resolv.conf, ld.so.*,
  // ssl/certs, alternatives, fonts, localtime, ...; never shadow, sudoers or keys) into dir.
  static result<void> write_etc(const std::filesystem::path& dir, uid_t uid, gid_t gid);

 private:
  namespace_sandbox() = default;
  struct warm_launcher {
    child_process child;  // kh-exec-stub, waiting
    unique_fd request;    // its fd 3 (a socket: no SIGPIPE if it died)
  };

  result<void> make_cgroups();
  std::vector<std::string> prefix_argv(const std::string& cwd) const;
  // Enters a process as run() describes; with exec_fd (the warm launcher), that program is exec'd
  // and extra_fd is its fd 3.
  result<child_process> enter(const run_spec& spec, int exec_fd = -1, int extra_fd = -1);
  // The command through the warm launcher, or nullopt: take the cold path.
  std::optional<child_process> run_warm(const run_spec& spec);
  // Asks refill_ for a new warm launcher (it makes one unless one is ready or it is stopped).
  void start_refill();
  // refill_'s loop: one launcher at a time, when asked, until stop().
  void refill_loop();
  std::optional<warm_launcher> make_warm_launcher();

  sandbox_options options_;
  namespace_sandbox_paths paths_;
  child_process bwrap_;
  pid_t init_pid_ = -1;       // host pid of pid 1 of the sandbox's PID namespace
  ino_t pid_ns_inode_ = 0;
  unique_fd root_fd_, workspace_fd_;
  std::vector<std::filesystem::path> cgroup_dirs_;
  mutable std::mutex mutex_;
  bool stopped_ = false;
  unique_fd exec_stub_;                  // O_PATH, or none: no warm launcher
  std::optional<warm_launcher> warm_;    // under mutex_
  bool refill_wanted_ = false;           // under mutex_
  std::condition_variable refill_cv_;    // refill_wanted_ or stopped_ set
  std::thread refill_;                   // started by start() when there is a stub; joined by stop()
  std::atomic<std::uint64_t> warm_runs_{0}, cold_runs_{0};
};

}  // namespace kh::sandbox_bridge
