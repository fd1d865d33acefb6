#include "sandbox_bridge/child_process.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

namespace kh::sandbox_bridge {

unique_fd& unique_fd::operator=(unique_fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}
unique_fd::~unique_fd() { reset(); }
void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {

struct pipe_pair {
  unique_fd read, write;
};

result<pipe_pair> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_errno("pipe2", errno);
  return pipe_pair{unique_fd(fds[0]), unique_fd(fds[1])};
}

}  // namespace

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

namespace {

// ---- spawn() with a sandbox_entry: the children make system calls only ----------------------------
//
// Like posix_spawn, the entering child shares the daemon's memory (CLONE_VM) while the calling thread
// is suspended (CLONE_VFORK), so nothing is copied for it: it joins the cgroups, enters the
// namespaces and the root, then creates the command's process with CLONE_PARENT (a child of the
// daemon, in the PID namespace it entered) and exits. That process shares the memory too, on a
// stack of its own, while the entering child waits for its execve (CLONE_VFORK again): the daemon's
// memory is never copied, nor write-protected for copy-on-write under its running threads.

// The children run on memory they share with the daemon (on borrowed stacks): no sanitizer
// bookkeeping there, as for posix_spawn's child.
#define KH_SPAWN_CHILD __attribute__((no_sanitize("address", "undefined")))

struct entry_job {
  const spawn_spec* spec;
  int stdio[3];
  char* const* argv;
  char* const* envp;
  pid_t inner = -1;                    // written by the entering child
  int exec_fd = -1;                    // the entering child's copy of sandbox_entry::exec_fd
  void* inner_stack = nullptr;         // the top of the command's process's stack until its execve
  const char* failed_step = nullptr;   // or what failed, with errno
  int failed_errno = 0;
};

KH_SPAWN_CHILD void say(const char* text) noexcept {
  for (std::size_t n = std::strlen(text); n > 0;) {
    const ssize_t w = ::write(2, text, n);
    if (w <= 0) return;
    text += w;
    n -= static_cast<std::size_t>(w);
  }
}

[[noreturn]] KH_SPAWN_CHILD void give_up(int code, const char* what, const char* subject, int err) noexcept {
  say("kernel-host: ");
  say(what);
  if (subject) say(subject);
  say(": ");
  say(strerrordesc_np(err));
  say("\n");
  ::_exit(code);
}

// The command's process (the daemon's memory until its execve, its own files, fs and credentials):
// cwd as root (as nsenter -W), privileges dropped as setpriv does, then exec.
[[noreturn]] KH_SPAWN_CHILD void become_command(const entry_job& job) noexcept {
  const sandbox_entry& e = *job.spec->enter;
  if (job.spec->new_session) ::setsid();
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::chdir(e.cwd.c_str()) != 0) give_up(1, "cannot change directory to ", e.cwd.c_str(), errno);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) give_up(127, "no_new_privs", nullptr, errno);
  for (int cap = 0; ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap)
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) give_up(127, "drop the capability bounding set", nullptr, errno);
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3]{};
  if (::syscall(SYS_capget, &header, caps) != 0) give_up(127, "capget", nullptr, errno);
  for (auto& c : caps) c.inheritable = 0;
  if (::syscall(SYS_capset, &header, caps) != 0) give_up(127, "clear the inheritable capabilities", nullptr, errno);
  // Raw system calls: glibc's wrappers would signal the (absent) other threads of the daemon.
  if (::syscall(SYS_setgroups, 0, nullptr) != 0) give_up(127, "setgroups", nullptr, errno);
  if (::syscall(SYS_setresgid, e.gid, e.gid, e.gid) != 0) give_up(127, "setresgid", nullptr, errno);
  if (::syscall(SYS_setresuid, e.uid, e.uid, e.uid) != 0) give_up(127, "setresuid", nullptr, errno);
  if (job.exec_fd >= 0) ::syscall(SYS_execveat, job.exec_fd, "", job.argv, job.envp, AT_EMPTY_PATH);
  else ::execve(job.argv[0], job.argv, job.envp);
  give_up(127, "cannot execute ", job.argv[0], errno);
}

[[noreturn]] KH_SPAWN_CHILD int run_command(void* arg) noexcept { become_command(*static_cast<const entry_job*>(arg)); }

// The entering child (the daemon's memory, its own files, fs and signal handlers).
KH_SPAWN_CHILD int enter_sandbox(void* arg) noexcept {
  auto& job = *static_cast<entry_job*>(arg);
  const sandbox_entry& e = *job.spec->enter;
  auto failed = [&](const char* step) {
    job.failed_step = step;
    job.failed_errno = errno;
    return 0;
  };
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // no daemon handler runs here
  // Above the fds set up next, so they cannot overwrite it.
  if (e.exec_fd >= 0 && (job.exec_fd = ::fcntl(e.exec_fd, F_DUPFD_CLOEXEC, 10)) < 0) return failed("dup the program's fd");
  for (int i = 0; i < 3; ++i)
    if (::dup2(job.stdio[i], i) < 0) return failed("dup2");
  if (job.spec->extra_fd >= 0 && ::dup2(job.spec->extra_fd, 3) < 0) return failed("dup2");
  for (int fd : e.cgroup_procs)
    if (::write(fd, "0", 1) != 1) return failed("join the sandbox's cgroup");
  for (auto [resource, value] : e.rlimits) {
    const rlimit limit{value, value};
    if (::setrlimit(resource, &limit) != 0) return failed("setrlimit");
  }
  for (int fd : e.namespaces)
    if (::setns(fd, 0) != 0) return failed("enter the sandbox's namespaces");
  if (::fchdir(e.root) != 0 || ::chroot(".") != 0) return failed("enter the sandbox's root");
  // The command gets stdio (and fd 3) only; the program's fd stays for execveat, which closes it.
  const unsigned first_closed = job.spec->extra_fd >= 0 ? 4 : 3;
  if (job.exec_fd >= 0) {
    ::syscall(SYS_close_range, first_closed, job.exec_fd - 1, 0);
    ::syscall(SYS_close_range, job.exec_fd + 1, ~0u, 0);
  } else {
    ::syscall(SYS_close_range, first_closed, ~0u, 0);
  }
  const pid_t inner = ::clone(run_command, job.inner_stack, CLONE_VM | CLONE_VFORK | CLONE_PARENT | SIGCHLD, &job);
  if (inner < 0) return failed("clone");
  job.inner = inner;
  return 0;
}

result<pid_t> spawn_into_sandbox(const spawn_spec& spec, int in, int out, int err, char* const* argv, char* const* envp) {
  unique_fd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd) return fail_errno("open /dev/null", errno);
  entry_job job{&spec, {in >= 0 ? in : null_fd.get(), out >= 0 ? out : null_fd.get(), err >= 0 ? err : null_fd.get()}, argv, envp};
  constexpr std::size_t kStack = 64 * 1024;  // each child's
  auto stack = std::make_unique<char[]>(2 * kStack);
  auto top_of = [](char* end) { return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(end) & ~std::uintptr_t{15}); };
  void* top = top_of(stack.get() + 2 * kStack);
  job.inner_stack = top_of(stack.get() + kStack);
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);  // no signal handler may run in the children
  const pid_t entering = ::clone(enter_sandbox, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &job);
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (entering < 0) return fail_errno("clone", clone_errno);
  int status = 0;
  while (::waitpid(entering, &status, 0) < 0 && errno == EINTR) {
  }
  if (job.failed_step) return fail_errno(std::string("entering the sandbox: ") + job.failed_step, job.failed_errno);
  return job.inner;
}

}  // namespace

result<child_process> child_process::spawn(const spawn_spec& spec) {
  if (spec.argv.empty()) return fail(errc::invalid_command, "empty argv");
  pipe_pair in, out, err;
  if (spec.pipe_stdin) {
    auto p = make_pipe();
    if (!p) return std::unexpected(p.error());
    in = std::move(*p);
  }
  if (spec.pipe_output) {
    auto p = make_pipe();
    if (!p) return std::unexpected(p.error());
    out = std::move(*p);
    auto q = make_pipe();
    if (!q) return std::unexpected(q.error());
    err = std::move(*q);
  }

  std::vector<char*> argv, envp;
  for (auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  if (spec.enter) {
    auto forked = spawn_into_sandbox(spec, in.read.get(), out.write.get(), err.write.get(), argv.data(), envp.data());
    if (!forked) return std::unexpected(forked.error());
    pid = *forked;
  } else {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (spec.pipe_stdin) posix_spawn_file_actions_adddup2(&fa, in.read.get(), 0);
    else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (spec.pipe_output) {
      posix_spawn_file_actions_adddup2(&fa, out.write.get(), 1);
      posix_spawn_file_actions_adddup2(&fa, err.write.get(), 2);
    } else {
      posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    if (spec.extra_fd >= 0) posix_spawn_file_actions_adddup2(&fa, spec.extra_fd, 3);
    posix_spawn_file_actions_addclosefrom_np(&fa, spec.extra_fd >= 0 ? 4 : 3);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (spec.new_session) flags |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&attr, flags);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);

    int rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return fail_errno("posix_spawn " + spec.argv[0], rc);
  }

  child_process c;
  c.pid_ = pid;
  c.stdin_ = std::move(in.write);
  c.stdout_ = std::move(out.read);
  c.stderr_ = std::move(err.read);
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pfd >= 0) {
    ::fcntl(pfd, F_SETFD, FD_CLOEXEC);
    c.pidfd_.reset(pfd);
  }
  return c;
}

child_process::~child_process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

std::optional<int> child_process::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) status_ = st;
  else if (r < 0 && errno == ECHILD) status_ = 0;
  return status_;
}

int child_process::wait() {
  if (status_ || pid_ <= 0) return status_.value_or(0);
  int st = 0;
  while (true) {
    pid_t r = ::waitpid(pid_, &st, 0);
    if (r == pid_) break;
    if (r < 0 && errno == EINTR) continue;
    st = 0;
    break;
  }
  status_ = st;
  return st;
}

int exit_code_of(int st) noexcept {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

std::vector<pid_t> descendants(pid_t pid) {
  std::vector<pid_t> out;
  std::vector<pid_t> todo{pid};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    std::error_code ec;
    std::string task_dir = "/proc/" + std::to_string(p) + "/task";
    for (std::filesystem::directory_iterator it(task_dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::ifstream in(it->path() / "children");
      pid_t c;
      while (in >> c) {
        out.push_back(c);
        todo.push_back(c);
      }
    }
  }
  return out;
}

namespace {

bool alive(pid_t p) {
  std::ifstream in("/proc/" + std::to_string(p) + "/stat");
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  auto rp = line.rfind(')');
  if (rp == std::string::npos || rp + 2 >= line.size()) return false;
  char state = line[rp + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace

void kill_tree(pid_t root, bool include_root, std::chrono::milliseconds grace, bool group) {
  // The union of every walk: a process whose parent died is reparented out of the walk.
  std::vector<pid_t> known;
  auto signal_all = [&](int sig) {
    for (pid_t p : descendants(root))
      if (std::find(known.begin(), known.end(), p) == known.end()) known.push_back(p);
    if (include_root) ::kill(root, sig);
    if (group) ::kill(-root, sig);
    for (std::size_t i = 0; i < known.size(); ++i) {
      pid_t p = known[i];
      for (pid_t c : descendants(p))
        if (std::find(known.begin(), known.end(), c) == known.end()) known.push_back(c);
      ::kill(p, sig);
    }
    auto all = known;
    if (include_root) all.push_back(root);
    return all;
  };
  auto tree = signal_all(SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    bool any = false;
    for (pid_t p : tree) any = any || alive(p);
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Re-walk: children forked during the grace are taken too.
  for (int round = 0; round < 3; ++round) {
    auto left = signal_all(SIGKILL);
    bool any = false;
    for (pid_t p : left) any = any || alive(p);
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

result<void> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      return fail_errno("write", errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace kh::sandbox_bridge

namespace kh::sandbox_bridge {

collected_output collect_output(child_process& child, std::string_view stdin_data,
                                std::optional<std::chrono::milliseconds> timeout,
                                const std::function<void(int, std::string_view)>& sink,
                                std::chrono::milliseconds kill_grace) {
  collected_output out;
  using clock = std::chrono::steady_clock;
  auto deadline = timeout ? clock::now() + *timeout : clock::time_point::max();
  if (child.stdin_fd() >= 0) {
    if (stdin_data.empty()) child.close_stdin();
    else set_nonblocking(child.stdin_fd());
  }
  if (child.stdout_fd() >= 0) set_nonblocking(child.stdout_fd());
  if (child.stderr_fd() >= 0) set_nonblocking(child.stderr_fd());
  bool exited = false;
  auto drain = [&](int fd, int which) -> bool {  // false on EOF
    char buf[65536];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        std::string_view chunk(buf, static_cast<std::size_t>(n));
        (which == 1 ? out.stdout_data : out.stderr_data).append(chunk);
        if (sink) sink(which, chunk);
        continue;
      }
      if (n == 0) return false;
      if (errno == EINTR) continue;
      return true;  // EAGAIN
    }
  };
  while (true) {
    std::vector<pollfd> fds;
    if (child.stdout_fd() >= 0) fds.push_back({child.stdout_fd(), POLLIN, 0});
    if (child.stderr_fd() >= 0) fds.push_back({child.stderr_fd(), POLLIN, 0});
    if (child.stdin_fd() >= 0) fds.push_back({child.stdin_fd(), POLLOUT, 0});
    if (!exited && child.pidfd() >= 0) fds.push_back({child.pidfd(), POLLIN, 0});
    if (fds.empty() || (exited && child.stdout_fd() < 0 && child.stderr_fd() < 0)) break;
    int wait_ms = -1;
    if (timeout && !out.timed_out) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
      wait_ms = static_cast<int>(std::max<long long>(0, left));
    }
    if (child.pidfd() < 0 && !exited) wait_ms = wait_ms < 0 ? 20 : std::min(wait_ms, 20);
    int r = ::poll(fds.data(), fds.size(), wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (timeout && !out.timed_out && clock::now() >= deadline) {
      out.timed_out = true;
      kill_tree(child.pid(), true, kill_grace, true);
    }
    for (auto& p : fds) {
      if (!p.revents) continue;
      if (p.fd == child.stdout_fd() && !drain(p.fd, 1)) child.close_stdout();
      else if (p.fd == child.stderr_fd() && !drain(p.fd, 2)) child.close_stderr();
      else if (p.fd == child.stdin_fd()) {
        if (p.revents & (POLLERR | POLLHUP)) {
          child.close_stdin();
          continue;
        }
        ssize_t n = ::write(p.fd, stdin_data.data(), stdin_data.size());
        if (n > 0) stdin_data.remove_prefix(static_cast<std::size_t>(n));
        if (stdin_data.empty() || (n < 0 && errno != EAGAIN && errno != EINTR)) child.close_stdin();
      }
    }
    if (!exited && child.try_wait()) {
      exited = true;
      // What is already in the pipes belongs to the command; later writers are not waited for.
      if (child.stdout_fd() >= 0) drain(child.stdout_fd(), 1);
      if (child.stderr_fd() >= 0) drain(child.stderr_fd(), 2);
      child.close_stdout();
      child.close_stderr();
      child.close_stdin();
    }
  }
  out.wait_status = child.wait();
  return out;
}

}  // namespace kh::sandbox_bridge
