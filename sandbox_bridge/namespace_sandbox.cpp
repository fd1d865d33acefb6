#include "sandbox_bridge/namespace_sandbox.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.hpp"
#include "sandbox_bridge/launch_request.hpp"
#include "sandbox_bridge/sandbox_path.hpp"

namespace kh::sandbox_bridge {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCgroupJoin =
    "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || exit 125; shift; done; shift; exec \"$@\"";

// The daemon's own cgroup path for a v1 controller, from /proc/self/cgroup ("4:memory:/a/b").
std::optional<std::string> own_cgroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':');
    auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::stringstream names(line.substr(a + 1, b - a - 1));
    std::string name;
    while (std::getline(names, name, ','))
      if (name == controller) return line.substr(b + 1);
  }
  return std::nullopt;
}

bool write_file(const fs::path& p, const std::string& value) {
  std::ofstream out(p);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

std::vector<pid_t> read_pids(const fs::path& procs) {
  std::vector<pid_t> out;
  std::ifstream in(procs);
  pid_t p;
  while (in >> p) out.push_back(p);
  return out;
}

ino_t ns_inode(pid_t pid, const char* ns) {
  struct stat st {};
  if (::stat(fmt::format("/proc/{}/ns/{}", pid, ns).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace

fs::path default_exec_stub() {
  std::error_code ec;
  const auto stub = fs::read_symlink("/proc/self/exe", ec).parent_path() / "kh-exec-stub";
  return !ec && fs::exists(stub, ec) ? stub : fs::path();
}

result<void> namespace_sandbox::write_etc(const fs::path& dir, uid_t uid, gid_t gid) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(errc::io_error, "create " + dir.string() + ": " + ec.message());
  write_file(dir / "passwd", fmt::format("root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
                                         "user:x:{}:{}:sandbox user:/home/user:/bin/bash\n"
                                         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                                         uid, gid));
  write_file(dir / "group", fmt::format("root:x:0:\nuser:x:{}:\nnogroup:x:65534:\n", gid));
  write_file(dir / "hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  write_file(dir / "hostname", "sandbox\n");
  write_file(dir / "nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n");
  // Copied from the host when present; symlinks kept as links (they point into /usr).
  const char* copies[] = {"resolv.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
                          "timezone", "alternatives", "fonts", "ssl/certs", "ssl/openssl.cnf",
                          "ca-certificates.conf", "mime.types", "magic", "matplotlibrc", "os-release",
                          "debian_version", "python3", "python3.11", "bash.bashrc", "profile",
                          "inputrc", "protocols", "services", "mailcap"};
  for (const char* name : copies) {
    fs::path src = fs::path("/etc") / name;
    if (!fs::exists(fs::symlink_status(src, ec))) continue;
    fs::path dst = dir / name;
    fs::create_directories(dst.parent_path(), ec);
    fs::remove_all(dst, ec);
    if (std::string(name) == "localtime" || std::string(name) == "resolv.conf") {
      fs::copy(src, dst, fs::copy_options::overwrite_existing, ec);  // follows the link
    } else {
      fs::copy(src, dst, fs::copy_options::recursive | fs::copy_options::copy_symlinks |
                             fs::copy_options::overwrite_existing, ec);
    }
    ec.clear();
  }
  return {};
}

result<void> namespace_sandbox::make_cgroups() {
  struct want {
    const char* controller;
    std::vector<std::pair<std::string, std::string>> values;
  };
  const auto& l = options_.limits;
  std::vector<want> wants;
  {
    want m{"memory", {}};
    if (l.memory_bytes > 0) {
      m.values.emplace_back("memory.limit_in_bytes", std::to_string(l.memory_bytes));
      m.values.emplace_back("memory.memsw.limit_in_bytes", std::to_string(l.memory_bytes));
    }
    wants.push_back(m);
    want p{"pids", {}};
    if (l.max_processes > 0) p.values.emplace_back("pids.max", std::to_string(l.max_processes));
    wants.push_back(p);
    if (l.cpu_shares > 0) wants.push_back({"cpu", {{"cpu.shares", std::to_string(l.cpu_shares)}}});
  }
  for (auto& w : wants) {
    auto own = own_cgroup(w.controller);
    if (!own) return fail(errc::io_error, fmt::format("no cgroup v1 controller {}", w.controller));
    fs::path dir = fs::path("/sys/fs/cgroup") / w.controller / own->substr(1) / "kernel-host" / options_.id;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail(errc::io_error, fmt::format("create {}: {}", dir.string(), ec.message()));
    cgroup_dirs_.push_back(dir);
    for (auto& [file, value] : w.values) {
      if (!fs::exists(dir / file)) continue;  // memsw needs swap accounting
      if (!write_file(dir / file, value))
        return fail(errc::io_error, fmt::format("write {} to {}", value, (dir / file).string()));
    }
  }
  return {};
}

std::vector<std::string> namespace_sandbox::prefix_argv(const std::string& cwd) const {
  std::vector<std::string> a;
  if (!cgroup_dirs_.empty()) {
    a = {"/bin/sh", "-c", kCgroupJoin, "sh"};
    for (auto& d : cgroup_dirs_) a.push_back((d / "cgroup.procs").string());
    a.push_back("--");
  } else {
    a = {"/usr/bin/prlimit"};
    if (options_.limits.max_processes > 0) a.push_back(fmt::format("--nproc={}", options_.limits.max_processes));
    if (options_.limits.memory_bytes > 0) a.push_back(fmt::format("--as={}", options_.limits.memory_bytes));
    a.push_back("--");
  }
  if (init_pid_ > 0) {
    for (std::string s : {"/usr/bin/nsenter", "-t"}) a.push_back(s);
    a.push_back(std::to_string(init_pid_));
    for (std::string s : {"-m", "-u", "-i", "-n", "-p", "-r", "-W"}) a.push_back(s);
    a.push_back(cwd);
    a.push_back("--");
  }
  for (std::string s : {"/usr/bin/setpriv"}) a.push_back(s);
  a.push_back(fmt::format("--reuid={}", paths_.uid));
  a.push_back(fmt::format("--regid={}", paths_.gid));
  for (std::string s : {"--clear-groups", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"})
    a.push_back(s);
  return a;
}

std::map<std::string, std::string> namespace_sandbox::base_env() const {
  std::map<std::string, std::string> env{
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", "/home/user"},
      {"USER", "user"},
      {"LOGNAME", "user"},
      {"SHELL", "/bin/bash"},
      {"LANG", "C.UTF-8"},
      {"TERM", "dumb"},
      {"TMPDIR", "/tmp"},
      {"SANDBOX_ID", options_.id},
  };
  for (auto& [k, v] : options_.env) env[k] = v;
  return env;
}

result<std::unique_ptr<namespace_sandbox>> namespace_sandbox::start(const sandbox_options& options,
                                                                    const namespace_sandbox_paths& paths) {
  auto log = kh::log::get("sandbox");
  std::unique_ptr<namespace_sandbox> s(new namespace_sandbox());
  s->options_ = options;
  s->paths_ = paths;
  fs::path ws = paths.sandbox_dir / "workspace";
  fs::path run = paths.sandbox_dir / "run";
  std::error_code ec;
  fs::create_directories(ws, ec);
  if (ec) return fail(errc::io_error, "create " + ws.string() + ": " + ec.message());
  fs::remove_all(run, ec);
  fs::create_directories(run, ec);
  if (ec) return fail(errc::io_error, "create " + run.string() + ": " + ec.message());
  if (::chown(ws.c_str(), paths.uid, paths.gid) != 0) return fail_errno("chown " + ws.string(), errno);
  ::chmod(run.c_str(), 0755);

  if (auto r = s->make_cgroups(); !r) {
    log->warn("sandbox {}: cgroups unavailable ({}), using rlimits", options.id, r.error().message);
    for (auto& d : s->cgroup_dirs_) ::rmdir(d.c_str());
    s->cgroup_dirs_.clear();
  }

  int info[2];
  if (::pipe2(info, O_CLOEXEC) != 0) return fail_errno("pipe2", errno);
  unique_fd info_read(info[0]), info_write(info[1]);

  std::vector<std::string> bw = s->prefix_argv("/");
  // prefix_argv ends with setpriv, which the namespace's own payload does not take (see below);
  // bwrap follows the cgroup/rlimit prefix.
  bw.erase(std::find(bw.begin(), bw.end(), "/usr/bin/setpriv"), bw.end());
  std::vector<std::string> b = {"/usr/bin/bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc",
                                "--unshare-uts", "--unshare-cgroup-try"};
  if (options.network == network_mode::none) b.push_back("--unshare-net");
  auto add = [&](std::initializer_list<std::string> xs) { b.insert(b.end(), xs); };
  add({"--hostname", "sandbox"});
  add({"--ro-bind", "/usr", "/usr"});
  for (const char* l : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    fs::path host = fs::path("/") / l;
    if (fs::is_symlink(host, ec)) add({"--symlink", fs::read_symlink(host, ec).string(), host.string()});
    else if (fs::is_directory(host, ec)) add({"--ro-bind", host.string(), host.string()});
  }
  add({"--ro-bind", paths.etc_dir.string(), "/etc"});
  add({"--bind", ws.string(), "/workspace"});
  add({"--perms", "1777", "--tmpfs", "/tmp"});
  add({"--perms", "0755", "--tmpfs", "/home/user"});
  add({"--proc", "/proc", "--dev", "/dev"});
  add({"--perms", "0755", "--dir", "/run", "--ro-bind", run.string(), "/run/kh"});
  // After the tmpfs mounts: a runtime folder under /tmp (a checkout there) must not be hidden by them.
  for (const auto& dir : paths.runtime_binds) {
    // Never the data dir (other sandboxes' workspaces) or a system folder already curated.
    if (dir.empty() || !dir.is_absolute() || !fs::is_directory(dir, ec)) continue;
    const auto d = dir.lexically_normal().string();
    if (d == "/" || d.rfind("/usr", 0) == 0 || d.rfind("/etc", 0) == 0 || d.rfind("/proc", 0) == 0) continue;
    if (is_within(paths.sandbox_dir.lexically_normal().string(), d)) {
      log->warn("sandbox {}: not binding {}: it holds the sandboxes' data folder", options.id, d);
      continue;
    }
    // bwrap would create the missing parents 0700 (root only): the sandbox user must traverse them.
    std::vector<std::string> parents;
    for (fs::path up = fs::path(d).parent_path(); up != up.root_path(); up = up.parent_path()) parents.push_back(up.string());
    for (auto it = parents.rbegin(); it != parents.rend(); ++it)
      if (*it != "/tmp" && *it != "/run" && *it != "/home" && *it != "/home/user") add({"--perms", "0755", "--dir", *it});
    add({"--ro-bind", d, d});
  }
  add({"--chdir", "/", "--info-fd", "3", "--"});
  // The payload that keeps the namespace alive stays root: the sandbox user cannot kill it
  // (`kill -9 -1` inside would otherwise end the whole sandbox).
  add({"/usr/bin/sleep", "infinity"});
  bw.insert(bw.end(), b.begin(), b.end());

  spawn_spec spec;
  spec.argv = bw;
  spec.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"};
  spec.pipe_output = true;
  spec.extra_fd = info_write.get();
  auto child = child_process::spawn(spec);
  info_write.reset();
  if (!child) return std::unexpected(child.error());
  s->bwrap_ = std::move(*child);

  // Read --info-fd's JSON: {"child-pid": N, ...}.
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{info_read.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[512];
    ssize_t n = ::read(info_read.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_discarded() && j.contains("child-pid")) {
      s->init_pid_ = j["child-pid"].get<pid_t>();
      break;
    }
  }
  if (s->init_pid_ <= 0) {
    std::string err;
    char buf[4096];
    s->bwrap_.wait();  // it has failed: its stderr is complete
    ssize_t n = ::read(s->bwrap_.stderr_fd(), buf, sizeof buf);
    if (n > 0) err.assign(buf, static_cast<std::size_t>(n));
    s->stop();
    return fail(errc::command_execution_error, "bubblewrap did not start the sandbox: " + err,
                {{"sandboxId", options.id}});
  }
  s->bwrap_.close_stdout();  // the payload writes nothing; keep stderr for diagnostics
  s->pid_ns_inode_ = ns_inode(s->init_pid_, "pid");

  // The root as the sandbox sees it. pid 1 has pivoted into the new root once its payload runs:
  // wait until the payload (the sleep) exists, so /proc/<init>/root is the sandbox's.
  for (int i = 0; i < 1000; ++i) {
    if (!descendants(s->init_pid_).empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int rfd = ::open(fmt::format("/proc/{}/root", s->init_pid_).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rfd < 0) {
    int e = errno;
    s->stop();
    return fail_errno("open the sandbox root", e);
  }
  s->root_fd_.reset(rfd);
  int wfd = ::open(ws.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (wfd < 0) {
    int e = errno;
    s->stop();
    return fail_errno("open " + ws.string(), e);
  }
  s->workspace_fd_.reset(wfd);
  // /home/user is a tmpfs made by root: give it to the sandbox user.
  if (::fchownat(s->root_fd_.get(), "home/user", paths.uid, paths.gid, 0) != 0)
    log->warn("sandbox {}: chown /home/user: {}", options.id, std::strerror(errno));
  if (!paths.exec_stub.empty()) {
    if (int fd = ::open(paths.exec_stub.c_str(), O_PATH | O_CLOEXEC); fd >= 0) s->exec_stub_.reset(fd);
    else log->warn("sandbox {}: no warm launcher: open {}: {}", options.id, paths.exec_stub.string(), std::strerror(errno));
  }
  log->info("sandbox {} started: init pid {}, limits by {}", options.id, s->init_pid_, s->limit_mechanism());
  if (s->exec_stub_) {
    s->refill_wanted_ = true;  // the first one at once
    s->refill_ = std::thread([p = s.get()] { p->refill_loop(); });
  }
  return s;
}

namespace_sandbox::~namespace_sandbox() { stop(); }

result<child_process> namespace_sandbox::run(const run_spec& spec) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return fail(errc::sandbox_not_found, "the sandbox was destroyed", {{"sandboxId", options_.id}});
  }
  if (spec.argv.empty()) return fail(errc::invalid_command, "empty command");
  auto warm = run_warm(spec);
  start_refill();  // after the command is on its way: never on its critical path
  if (warm) {
    ++warm_runs_;
    return std::move(*warm);
  }
  ++cold_runs_;
  return enter(spec);
}

std::optional<child_process> namespace_sandbox::run_warm(const run_spec& spec) {
  launch_request fields{spec.argv, {}, spec.cwd, spec.pipe_stdin};
  for (auto& [k, v] : spec.env) fields.env.push_back(k + "=" + v);
  auto request = encode_launch_request(fields);
  if (!request) return std::nullopt;  // too large for the launcher
  std::optional<warm_launcher> w;
  {
    std::lock_guard lock(mutex_);
    w.swap(warm_);
  }
  if (!w || w->child.try_wait()) return std::nullopt;  // none ready, or it died (reaped with w)
  for (std::string_view rest = *request; !rest.empty();) {
    const ssize_t n = ::send(w->request.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;  // it died meanwhile: killed and reaped with w
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  w->request.reset();
  if (!spec.pipe_stdin) w->child.close_stdin();  // the launcher put /dev/null there
  return std::move(w->child);
}

void namespace_sandbox::start_refill() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || warm_ || !exec_stub_) return;
    refill_wanted_ = true;
  }
  refill_cv_.notify_one();
}

void namespace_sandbox::refill_loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    refill_cv_.wait(lock, [&] { return stopped_ || refill_wanted_; });
    if (stopped_) return;
    refill_wanted_ = false;
    if (warm_) continue;
    lock.unlock();
    // Entering now and then fails (setns EINVAL, not understood yet): a few tries before the
    // sandbox goes without a launcher until its next command.
    auto made = make_warm_launcher();
    for (int attempt = 1; !made && attempt < 4; ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * attempt));
      if (std::lock_guard stop_check(mutex_); stopped_) break;
      made = make_warm_launcher();
    }
    lock.lock();
    if (!stopped_) warm_.swap(made);
    if (made) {  // made after stop(): killed and reaped outside the lock
      lock.unlock();
      made.reset();
      lock.lock();
    }
  }
}

std::optional<namespace_sandbox::warm_launcher> namespace_sandbox::make_warm_launcher() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    kh::log::get("sandbox")->warn("sandbox {}: no warm launcher: socketpair: {}", options_.id, std::strerror(errno));
    return std::nullopt;
  }
  unique_fd ours(sv[0]), theirs(sv[1]);
  run_spec spec;
  spec.argv = {"kh-exec-stub"};
  spec.cwd = "/";
  spec.pipe_stdin = true;
  auto child = enter(spec, exec_stub_.get(), theirs.get());
  if (!child) {
    kh::log::get("sandbox")->warn("sandbox {}: no warm launcher: {}", options_.id, child.error().to_string());
    return std::nullopt;
  }
  return warm_launcher{std::move(*child), std::move(ours)};
}

bool namespace_sandbox::warm_ready() const {
  std::lock_guard lock(mutex_);
  return warm_.has_value();
}

result<child_process> namespace_sandbox::enter(const run_spec& spec, int exec_fd, int extra_fd) {
  // What `prefix_argv` + nsenter + setpriv did with three programs, done by the forked child itself
  // (child_process's sandbox_entry): one short-lived child sharing the daemon's memory, the command's
  // process, one exec.
  std::vector<unique_fd> held;
  auto hold = [&](const std::string& path, int flags) -> result<int> {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return fail_errno("open " + path, errno);
    held.emplace_back(fd);
    return fd;
  };
  sandbox_entry entry;
  for (auto& d : cgroup_dirs_) {
    auto fd = hold((d / "cgroup.procs").string(), O_WRONLY);
    if (!fd) return std::unexpected(fd.error());
    entry.cgroup_procs.push_back(*fd);
  }
  if (cgroup_dirs_.empty()) {
    if (options_.limits.max_processes > 0) entry.rlimits.emplace_back(RLIMIT_NPROC, options_.limits.max_processes);
    if (options_.limits.memory_bytes > 0) entry.rlimits.emplace_back(RLIMIT_AS, options_.limits.memory_bytes);
  }
  for (const char* ns : {"ipc", "uts", "net", "pid", "mnt"}) {  // nsenter's order: the mount namespace last
    auto fd = hold(fmt::format("/proc/{}/ns/{}", init_pid_, ns), O_RDONLY);
    if (!fd) return fail(errc::sandbox_not_found, "the sandbox is not running", {{"sandboxId", options_.id}});
    entry.namespaces.push_back(*fd);
  }
  entry.root = root_fd_.get();
  entry.cwd = spec.cwd;
  entry.exec_fd = exec_fd;
  entry.uid = paths_.uid;
  entry.gid = paths_.gid;
  spawn_spec s;
  s.argv = spec.argv;
  for (auto& [k, v] : spec.env) s.env.push_back(k + "=" + v);
  s.pipe_stdin = spec.pipe_stdin;
  s.pipe_output = true;
  s.new_session = true;
  s.extra_fd = extra_fd;
  s.enter = &entry;
  return child_process::spawn(s);
}

std::vector<pid_t> namespace_sandbox::host_pids() const {
  std::vector<pid_t> out;
  for (auto& d : cgroup_dirs_) {
    for (pid_t p : read_pids(d / "cgroup.procs"))
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  // Whatever lives in the PID namespace (also covers the rlimit mode).
  if (pid_ns_inode_ != 0) {
    std::error_code ec;
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
      auto name = it->path().filename().string();
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      pid_t p = std::stoi(name);
      if (ns_inode(p, "pid") == pid_ns_inode_ && std::find(out.begin(), out.end(), p) == out.end())
        out.push_back(p);
    }
  }
  return out;
}

bool namespace_sandbox::alive() const {
  std::lock_guard lock(mutex_);
  if (stopped_ || init_pid_ <= 0 || ::kill(init_pid_, 0) != 0) return false;
  // A pid 1 that exited but is not reaped yet is a zombie: the namespace is gone all the same.
  std::ifstream stat(fmt::format("/proc/{}/stat", init_pid_));
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

void namespace_sandbox::stop() {
  std::optional<warm_launcher> warm;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    warm.swap(warm_);
  }
  // refill_ ends once stopped_ is set; a launcher it is making is not kept.
  refill_cv_.notify_all();
  if (refill_.joinable()) refill_.join();
  warm.reset();  // killed and reaped (it would die with the namespace, but it is our child to reap)
  if (init_pid_ > 0) ::kill(init_pid_, SIGKILL);  // the PID namespace goes with its pid 1
  if (bwrap_.pid() > 0) {
    ::kill(bwrap_.pid(), SIGKILL);
    bwrap_.wait();
  }
  // Anything else still in the cgroups.
  for (int round = 0; round < 200; ++round) {
    auto left = host_pids();
    if (left.empty()) break;
    for (pid_t p : left) ::kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& d : cgroup_dirs_) {
    for (int i = 0; i < 200 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  root_fd_.reset();
  workspace_fd_.reset();
  kh::log::get("sandbox")->info("sandbox {} stopped", options_.id);
}

}  // namespace kh::sandbox_bridge
