// Real bubblewrap sandboxes: sessions, exec, files, processes, isolation, limits, destroy.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "sandbox_bridge/namespace_sandbox.hpp"
#include "sandbox_bridge/sandbox_manager.hpp"
#include "support/test_env.hpp"

namespace kh::sandbox_bridge {
namespace {

using namespace std::chrono_literals;

manager_options test_manager_options(const std::filesystem::path& dir) {
  manager_options o;
  o.data_dir = dir;
  o.runtime.kill_grace = 300ms;
  o.runtime.log_capacity = 64 * 1024;
  return o;
}

class sandbox_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(kh::test::temp_dir("sandboxes"));
    auto m = sandbox_manager::create(test_manager_options(*dir_));
    ASSERT_TRUE(m) << m.error().to_string();
    manager_ = m->release();
  }
  static void TearDownTestSuite() {
    delete manager_;
    manager_ = nullptr;
  }
  std::shared_ptr<sandbox_runtime> box(const std::string& id) {
    auto r = manager_->get_or_create(id);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : nullptr;
  }
  exec_result run(sandbox_runtime& b, const std::string& cmd, const std::string& session = "default") {
    exec_request req;
    req.command = cmd;
    auto r = b.exec(session, req);
    EXPECT_TRUE(r) << cmd << ": " << r.error().to_string();
    return r ? *r : exec_result{};
  }
  static inline sandbox_manager* manager_ = nullptr;
  static inline std::filesystem::path* dir_ = nullptr;
};

TEST_F(sandbox_test, session_output_is_exact_bytes_with_exit_code) {
  auto b = box("exact");
  auto r = run(*b, "printf 'a\\n\\0b\\377\\n\\n'; printf 'err\\n' >&2; (exit 7)");
  EXPECT_EQ(r.stdout_data, std::string("a\n\0b\xff\n\n", 7));
  EXPECT_EQ(r.stderr_data, "err\n");
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_GT(r.duration.count(), 0);
}

TEST_F(sandbox_test, session_state_persists_and_sessions_are_isolated) {
  auto b = box("state");
  run(*b, "cd /tmp; export X=42; f() { echo fn; }; alias ll='echo alias'", "s1");
  auto r = run(*b, "pwd; echo $X; f", "s1");
  EXPECT_EQ(r.stdout_data, "/tmp\n42\nfn\n");
  auto other = run(*b, "pwd; echo ${X-unset}", "s2");
  EXPECT_EQ(other.stdout_data, "/workspace\nunset\n");
  EXPECT_EQ(b->cwd_of("s1"), "/tmp");
}

TEST_F(sandbox_test, per_command_env_and_cwd_apply_to_that_command_only) {
  auto b = box("percmd");
  exec_request req;
  req.command = "echo $Y; pwd";
  req.env = {{"Y", "it's 2"}};
  req.cwd = "/tmp";
  auto r = b->exec("default", req);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->stdout_data, "it's 2\n/tmp\n");
  EXPECT_EQ(run(*b, "echo ${Y-unset}; pwd").stdout_data, "unset\n/workspace\n");
}

TEST_F(sandbox_test, stdin_is_fed_or_empty) {
  auto b = box("stdin");
  exec_request req;
  req.command = "cat";
  req.stdin_data = std::string("hello\0x", 7);
  auto r = b->exec("default", req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->stdout_data, std::string("hello\0x", 7));
  EXPECT_EQ(run(*b, "cat").stdout_data, "");
  req.command = "wc -c";
  auto s = b->exec(std::string(kNoSession), req);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->stdout_data, "7\n");
}

TEST_F(sandbox_test, timeout_kills_the_command_tree_and_the_session_stays_usable) {
  auto b = box("timeout");
  run(*b, "export KEEP=yes");
  exec_request req;
  req.command = "sleep 60 & sleep 61; echo never";
  req.timeout = 300ms;
  auto r = b->exec("default", req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::timeout);
  EXPECT_EQ(r.error().details["shellRestarted"], false);
  auto after = run(*b, "echo $KEEP; ps -eo args | grep -c '^sleep 6[01]' || true");
  EXPECT_EQ(after.stdout_data, "yes\n0\n");
  // A builtin loop keeps bash itself busy: the shell is replaced, the session still answers.
  req.command = "while :; do :; done";
  auto loop = b->exec("default", req);
  ASSERT_FALSE(loop);
  EXPECT_EQ(loop.error().code, errc::timeout);
  EXPECT_EQ(run(*b, "echo ok").stdout_data, "ok\n");
}

TEST_F(sandbox_test, a_shell_that_exits_terminates_the_session_and_the_next_call_gets_a_fresh_one) {
  auto b = box("exit");
  run(*b, "export GONE=1");
  exec_request req;
  req.command = "echo bye; exit 3";
  auto r = b->exec("default", req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::session_terminated);
  EXPECT_EQ(r.error().details["exitCode"], 3);
  EXPECT_EQ(run(*b, "echo ${GONE-fresh}").stdout_data, "fresh\n");
}

TEST_F(sandbox_test, sessionless_exec_and_parallel_sessions) {
  auto b = box("nosession");
  auto r = run(*b, "echo hi; echo e >&2; exit 4", std::string(kNoSession));
  EXPECT_EQ(r.stdout_data, "hi\n");
  EXPECT_EQ(r.stderr_data, "e\n");
  EXPECT_EQ(r.exit_code, 4);
  std::vector<std::thread> ts;
  std::vector<std::string> outs(4);
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&, i] { outs[i] = run(*b, "echo " + std::to_string(i), "p" + std::to_string(i)).stdout_data; });
  for (auto& t : ts) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(outs[i], std::to_string(i) + "\n");
}

TEST_F(sandbox_test, sandbox_sees_a_curated_read_only_system_as_an_unprivileged_user) {
  auto b = box("curated");
  auto r = run(*b,
               "id -u; touch /usr/x 2>/dev/null && echo usr-writable; test -e /etc/shadow && echo shadow; "
               "test -e /root && echo root; test -e /etc/sudoers && echo sudoers; test -e /home/ubuntu && echo home; "
               "touch /workspace/w /tmp/t /home/user/h && echo writable; hostname; ls /proc | grep -c '^[0-9]'");
  std::istringstream lines(r.stdout_data);
  std::string uid, writable, host, nproc;
  std::getline(lines, uid);
  std::getline(lines, writable);
  std::getline(lines, host);
  std::getline(lines, nproc);
  EXPECT_EQ(uid, "1000");
  EXPECT_EQ(writable, "writable");
  EXPECT_EQ(host, "sandbox");
  EXPECT_LT(std::stoi(nproc), 20);  // its own PID namespace
  EXPECT_TRUE(std::filesystem::exists(manager_->sandbox_dir("curated") / "workspace" / "w"));
}

namespace_sandbox& ns_box(sandbox_runtime& b) { return dynamic_cast<namespace_sandbox&>(b.box()); }

// Until the sandbox's warm launcher is ready (it is entered in the background); false if it never is.
bool warm_launcher_ready(sandbox_runtime& b) {
  for (int i = 0; i < 1000 && !ns_box(b).warm_ready(); ++i) std::this_thread::sleep_for(10ms);
  return ns_box(b).warm_ready();
}

// What a command entered into sandbox `id` sees: uid/gid 1000 with no groups, no capabilities in
// any set, no_new_privs, the sandbox's cgroups and PID namespace, the asked cwd.
std::string entry_probe(const std::string& id) {
  return "id -u; id -g; id -G; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status | tr -s '\\t ' ' '; "
         "grep -c '/kernel-host/" + id + "$' /proc/self/cgroup; echo $$; pwd";
}

void expect_entered(const std::string& out, const char* how) {
  SCOPED_TRACE(how);
  const std::string want_prefix =
      "1000\n1000\n1000\nCapInh: 0000000000000000\nCapPrm: 0000000000000000\nCapEff: 0000000000000000\n"
      "CapBnd: 0000000000000000\nCapAmb: 0000000000000000\nNoNewPrivs: 1\n";
  ASSERT_TRUE(out.starts_with(want_prefix)) << out;
  std::istringstream rest(out.substr(want_prefix.size()));
  int cgroups = 0, pid = 0;
  std::string cwd;
  rest >> cgroups >> pid >> cwd;
  EXPECT_GE(cgroups, 2) << out;  // memory and pids at least
  EXPECT_LT(pid, 100) << out;    // a pid of the sandbox's own namespace
  EXPECT_EQ(cwd, "/tmp");
}

// A sessionless command, then one in a cwd that does not exist (the command's error: exit 1 and
// the same message whichever path entered it).
void expect_sessionless_entry(sandbox_runtime& b, const std::function<void()>& before_each = {}) {
  exec_request req;
  req.command = entry_probe(b.id());
  req.cwd = "/tmp";
  req.timeout = 30s;
  if (before_each) before_each();
  auto sessionless = b.exec(std::string(kNoSession), req);
  ASSERT_TRUE(sessionless) << sessionless.error().to_string();
  expect_entered(sessionless->stdout_data, "sessionless");
  req.command = "echo never";
  req.cwd = "/no/such/dir";
  if (before_each) before_each();
  auto bad_cwd = b.exec(std::string(kNoSession), req);
  ASSERT_TRUE(bad_cwd) << bad_cwd.error().to_string();
  EXPECT_EQ(bad_cwd->exit_code, 1);
  EXPECT_EQ(bad_cwd->stdout_data, "");
  EXPECT_EQ(bad_cwd->stderr_data, "kernel-host: cannot change directory to /no/such/dir: No such file or directory\n");
}

// Every way a command enters a sandbox (sessionless exec through the warm launcher, a session's
// shell, a background process) lands unprivileged in the sandbox (expect_entered).
TEST_F(sandbox_test, every_entered_process_is_unprivileged_and_in_the_sandbox_cgroup) {
  auto b = box("entered");
  ASSERT_EQ(b->box().limit_mechanism(), "cgroup");
  auto& ns = ns_box(*b);
  const auto warm_before = ns.warm_runs();
  expect_sessionless_entry(*b, [&] { ASSERT_TRUE(warm_launcher_ready(*b)); });
  EXPECT_EQ(ns.warm_runs(), warm_before + 2);  // both through the warm launcher
  exec_request req;
  req.command = entry_probe(b->id());
  req.cwd = "/tmp";
  req.timeout = 30s;
  auto session = b->exec("default", req);
  ASSERT_TRUE(session) << session.error().to_string();
  expect_entered(session->stdout_data, "session");
  process_start p;
  p.command = entry_probe(b->id());
  p.cwd = "/tmp";
  auto started = b->start_process(std::string(kNoSession), p);
  ASSERT_TRUE(started) << started.error().to_string();
  auto done = b->processes().wait(started->id, 30s);
  ASSERT_TRUE(done);
  auto logs = b->processes().get(started->id, true);
  ASSERT_TRUE(logs);
  expect_entered(logs->stdout_log.data, "background process");
}

// The cold path (no warm launcher: a manager without one) enters the same way.
TEST(sandbox_cold_entry, without_a_warm_launcher_commands_enter_the_same_way) {
  auto o = test_manager_options(kh::test::temp_dir("sandbox-cold"));
  o.warm_launcher = false;
  auto m = sandbox_manager::create(o);
  ASSERT_TRUE(m) << m.error().to_string();
  sandbox_options so;
  so.id = "entered-cold";
  auto b = (*m)->create_sandbox(so);
  ASSERT_TRUE(b) << b.error().to_string();
  auto& ns = ns_box(**b);
  expect_sessionless_entry(**b);
  EXPECT_EQ(ns.cold_runs(), 2u);
  EXPECT_EQ(ns.warm_runs(), 0u);
  EXPECT_FALSE(ns.warm_ready());
}

// A warm launcher that died is not used: the command enters cold, and a new launcher follows.
TEST_F(sandbox_test, a_dead_warm_launcher_is_replaced_and_the_command_still_runs) {
  auto b = box("dead-launcher");
  ASSERT_TRUE(warm_launcher_ready(*b));
  auto& ns = ns_box(*b);
  pid_t stub = -1;
  for (pid_t p : ns.host_pids()) {
    std::ifstream comm("/proc/" + std::to_string(p) + "/comm");
    std::string name;
    if (std::getline(comm, name) && name == "kh-exec-stub") stub = p;
  }
  ASSERT_GT(stub, 0) << "no kh-exec-stub among the sandbox's processes";
  ASSERT_EQ(::kill(stub, SIGKILL), 0);
  // Our child: it stays a zombie until the sandbox reaps it.
  for (int i = 0; i < 1000; ++i) {
    std::ifstream stat("/proc/" + std::to_string(stub) + "/stat");
    std::string line;
    std::getline(stat, line);
    if (line.find(") Z ") != std::string::npos) break;
    std::this_thread::sleep_for(5ms);
  }
  const auto cold_before = ns.cold_runs();
  exec_request req;
  req.command = "echo $GREETING; pwd; cat";
  req.env = {{"GREETING", "still here"}};
  req.stdin_data = "fed";
  auto r = b->exec(std::string(kNoSession), req);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->stdout_data, "still here\n/workspace\nfed");
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(ns.cold_runs(), cold_before + 1);
  ASSERT_TRUE(warm_launcher_ready(*b));
  const auto warm_before = ns.warm_runs();
  r = b->exec(std::string(kNoSession), req);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->stdout_data, "still here\n/workspace\nfed");
  EXPECT_EQ(ns.warm_runs(), warm_before + 1);
}

// Sessionless commands through the warm launcher: a timeout kills the whole tree; a large command
// and environment arrive whole.
TEST_F(sandbox_test, warm_sessionless_timeout_kills_the_tree_and_large_commands_arrive_whole) {
  auto b = box("warm-timeout");
  auto& ns = ns_box(*b);
  ASSERT_TRUE(warm_launcher_ready(*b));
  const auto warm_before = ns.warm_runs();
  exec_request req;
  req.command = "sleep 70 & sleep 71; echo never";
  req.timeout = 300ms;
  auto r = b->exec(std::string(kNoSession), req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::timeout);
  EXPECT_EQ(ns.warm_runs(), warm_before + 1);
  EXPECT_EQ(run(*b, "ps -eo args | grep -c '^sleep 7[01]' || true", std::string(kNoSession)).stdout_data, "0\n");

  // Larger than a socket buffer (the launcher reads while the request is written), within
  // execve's 128 KiB for one argument. Beyond kMaxLaunchRequest (never a command execve takes)
  // the request would go cold.
  ASSERT_TRUE(warm_launcher_ready(*b));
  const auto warm_before_big = ns.warm_runs();
  exec_request big;
  big.command = "# " + std::string(120 * 1024, 'x') + "\necho big";
  big.env = {{"LARGE", std::string(100 * 1024, 'y')}};
  auto out = b->exec(std::string(kNoSession), big);
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_EQ(out->stdout_data, "big\n");
  EXPECT_EQ(ns.warm_runs(), warm_before_big + 1);
}

TEST_F(sandbox_test, sandboxes_cannot_see_each_others_files_or_processes) {
  auto a = box("iso-a");
  auto c = box("iso-b");
  run(*a, "echo secret > /workspace/a-secret");
  process_start p;
  p.command = "exec sleep 1234";
  auto started = a->start_process("default", p);
  ASSERT_TRUE(started) << started.error().to_string();
  auto r = run(*c, "ls -a /workspace; ps -eo args; ls /run/kh");
  EXPECT_EQ(r.stdout_data.find("a-secret"), std::string::npos);
  EXPECT_EQ(r.stdout_data.find("sleep 1234"), std::string::npos);
  EXPECT_NE(run(*a, "ps -eo args").stdout_data.find("sleep 1234"), std::string::npos);
}

TEST_F(sandbox_test, network_none_cannot_reach_a_host_port_and_host_network_can) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(s, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string cmd = "echo x > /dev/tcp/127.0.0.1/" + std::to_string(ntohs(addr.sin_port)) + " && echo reached";
  auto none = box("net-none");
  EXPECT_EQ(run(*none, cmd).stdout_data, "");
  sandbox_options o;
  o.id = "net-host";
  o.network = network_mode::host;
  auto host = manager_->create_sandbox(o);
  ASSERT_TRUE(host) << host.error().to_string();
  EXPECT_EQ(run(**host, cmd).stdout_data, "reached\n");
  ::close(s);
}

TEST_F(sandbox_test, files_are_confined_atomic_and_exact) {
  auto b = box("files");
  auto& f = b->files();
  std::string bytes("bin\0\xff\n", 6);
  auto w = f.write("deep/dir/data.bin", "/workspace", bytes);
  ASSERT_TRUE(w) << w.error().to_string();
  auto rd = f.read("/workspace/deep/dir/data.bin", "/");
  ASSERT_TRUE(rd);
  EXPECT_EQ(rd->bytes, bytes);
  EXPECT_TRUE(rd->is_binary);
  EXPECT_EQ(run(*b, "stat -c %u deep/dir/data.bin").stdout_data, "1000\n");
  // Rewriting a file puts the new content in its place (names swapped, the old content removed):
  // its mode is kept and no temp file stays beside it.
  run(*b, "chmod 0750 deep/dir/data.bin");
  ASSERT_TRUE(f.write("deep/dir/data.bin", "/workspace", "new content"));
  EXPECT_EQ(f.read("deep/dir/data.bin", "/workspace")->bytes, "new content");
  EXPECT_EQ(run(*b, "stat -c %a deep/dir/data.bin; ls -A deep/dir").stdout_data, "750\ndata.bin\n");
  ASSERT_TRUE(f.write("deep/dir/data.bin", "/workspace", bytes));
  // Escapes: .. above the root, and a symlink to /etc in the workspace.
  EXPECT_EQ(f.read("../../etc/passwd", "/workspace").error().code, errc::permission_denied);
  run(*b, "ln -s /etc /workspace/etc-link; ln -s ../.. /workspace/up");
  EXPECT_EQ(f.read("etc-link/passwd", "/workspace").error().code, errc::permission_denied);
  EXPECT_EQ(f.read("up/etc/passwd", "/workspace").error().code, errc::permission_denied);
  EXPECT_EQ(f.write("etc-link/evil", "/workspace", "x").error().code, errc::permission_denied);
  // /etc is the sandbox's generated one, never the host's; /usr is read-only.
  auto passwd = f.read("/etc/passwd", "/");
  ASSERT_TRUE(passwd);
  EXPECT_NE(passwd->bytes.find("user:x:1000"), std::string::npos);
  EXPECT_EQ(f.write("/usr/evil", "/", "x").error().code, errc::read_only);
  EXPECT_EQ(f.read("/proc/1/environ", "/").error().code, errc::permission_denied);
  // Relative to the session's cwd.
  run(*b, "mkdir -p /tmp/sub; cd /tmp/sub", "cwd");
  ASSERT_TRUE(f.write("rel.txt", b->cwd_of("cwd"), "text"));
  EXPECT_EQ(run(*b, "cat /tmp/sub/rel.txt").stdout_data, "text");
  // mkdir, list, rename, exists, delete.
  EXPECT_TRUE(f.mkdir("m/n/o", "/workspace", true));
  EXPECT_EQ(f.mkdir("m", "/workspace", false).error().code, errc::file_exists);
  ASSERT_TRUE(f.write("m/.hidden", "/workspace", ""));
  auto ls = f.list("m", "/workspace", true, false);
  ASSERT_TRUE(ls);
  ASSERT_EQ(ls->size(), 2u);
  EXPECT_EQ((*ls)[0].relative_path, "n");
  EXPECT_EQ((*ls)[1].relative_path, "n/o");
  EXPECT_EQ((*ls)[1].type, file_type::directory);
  ASSERT_TRUE(f.rename("deep/dir/data.bin", "m/moved.bin", "/workspace"));
  EXPECT_FALSE(f.exists("deep/dir/data.bin", "/workspace").value());
  EXPECT_TRUE(f.exists("m/moved.bin", "/workspace").value());
  EXPECT_EQ(f.remove("m", "/workspace", false).error().code, errc::is_directory);
  EXPECT_TRUE(f.remove("m", "/workspace", true));
  EXPECT_FALSE(f.exists("m", "/workspace").value());
  EXPECT_EQ(f.read("nope", "/workspace").error().code, errc::file_not_found);
}

TEST_F(sandbox_test, background_processes_statuses_logs_and_tree_kill) {
  auto b = box("procs");
  process_start p;
  p.command = "echo out; echo err >&2; exit 5";
  auto done = b->start_process("default", p);
  ASSERT_TRUE(done) << done.error().to_string();
  auto s = b->processes().wait(done->id, 10s);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, process_status::failed);
  EXPECT_EQ(s->exit_code, 5);
  EXPECT_EQ(s->stdout_log.data, "out\n");
  EXPECT_EQ(s->stderr_log.data, "err\n");
  EXPECT_TRUE(s->end_time.has_value());

  p.command = "head -c 100000 /dev/zero; echo -n tail";
  auto big = b->start_process(std::string(kNoSession), p);
  ASSERT_TRUE(big);
  auto bs = b->processes().wait(big->id, 10s);
  EXPECT_EQ(bs->status, process_status::completed);
  EXPECT_EQ(bs->stdout_log.data.size(), 64u * 1024);
  EXPECT_EQ(bs->stdout_log.dropped, 100004u - 64 * 1024);
  EXPECT_TRUE(bs->stdout_log.data.ends_with("tail"));

  p.command = "trap '' TERM; (sleep 300 & sleep 301) ; sleep 302";
  p.id = "tree";
  auto tree = b->start_process("other", p);
  ASSERT_TRUE(tree);
  EXPECT_GT(tree->pid, 0);
  std::this_thread::sleep_for(200ms);  // let the tree form (not a timing assertion)
  auto before = b->box().host_pids();
  ASSERT_TRUE(b->processes().kill("tree"));
  auto ts = b->processes().wait("tree", 10s);
  EXPECT_EQ(ts->status, process_status::killed);
  EXPECT_EQ(run(*b, "ps -eo args | grep -c '^sleep 30[012]' || true").stdout_data, "0\n");
  EXPECT_EQ(b->processes().list(std::string("other")).size(), 1u);
  EXPECT_GE(b->processes().list().size(), 3u);
  EXPECT_EQ(b->processes().kill("tree").error().code, errc::process_not_found);
}

TEST_F(sandbox_test, fork_bomb_hits_the_process_limit_and_the_host_keeps_answering) {
  sandbox_options o;
  o.id = "forkbomb";
  o.limits.max_processes = 40;
  auto b = manager_->create_sandbox(o);
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ((*b)->box().limit_mechanism(), "cgroup");
  auto r = run(**b,
               "/usr/bin/python3 -c \"\nimport os, time\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n"
               "    except OSError:\n        print(n); break\n    if pid == 0:\n        time.sleep(60); os._exit(0)\n    n += 1\n\"",
               std::string(kNoSession));
  int forked = std::stoi(r.stdout_data.empty() ? "-1" : r.stdout_data);
  EXPECT_GE(forked, 0);
  EXPECT_LT(forked, 40);
  EXPECT_EQ(::system("true"), 0);  // the host still forks
  ASSERT_TRUE(manager_->destroy("forkbomb"));
}

TEST_F(sandbox_test, memory_hog_is_killed_inside_its_sandbox) {
  sandbox_options o;
  o.id = "hog";
  o.limits.memory_bytes = 64ull << 20;
  auto b = manager_->create_sandbox(o);
  ASSERT_TRUE(b) << b.error().to_string();
  auto r = run(**b, "/usr/bin/python3 -c 'b = bytearray(512 * 1024 * 1024); print(len(b))'", std::string(kNoSession));
  EXPECT_EQ(r.exit_code, 137);
  EXPECT_EQ(r.stdout_data, "");
  EXPECT_EQ(run(**b, "echo alive").stdout_data, "alive\n");
}

TEST_F(sandbox_test, destroy_kills_every_process_and_removes_the_workspace) {
  auto b = box("doomed");
  run(*b, "sleep 500 & disown; setsid sleep 501 & disown; echo x > /workspace/f");
  process_start p;
  p.command = "sleep 502";
  ASSERT_TRUE(b->start_process("default", p));
  ASSERT_TRUE(warm_launcher_ready(*b));  // it goes too
  auto pids = b->box().host_pids();
  EXPECT_GE(pids.size(), 6u);
  auto cgroups = ns_box(*b).cgroup_dirs();
  ASSERT_TRUE(manager_->destroy("doomed"));
  for (pid_t pid : pids) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string what((std::istreambuf_iterator<char>(status)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(kh::test::process_gone(pid)) << pid << "\n" << what.substr(0, 400);
  }
  for (auto& d : cgroups) EXPECT_FALSE(std::filesystem::exists(d)) << d;
  EXPECT_FALSE(std::filesystem::exists(manager_->sandbox_dir("doomed")));
  EXPECT_EQ(manager_->describe("doomed").error().code, errc::sandbox_not_found);
}

TEST(sandbox_restart, workspace_survives_a_manager_restart) {
  auto dir = kh::test::temp_dir("sandbox-restart");
  {
    auto m = sandbox_manager::create(test_manager_options(dir));
    ASSERT_TRUE(m);
    sandbox_options o;
    o.id = "keep";
    o.env = {{"GREETING", "hello"}};
    auto b = (*m)->create_sandbox(o);
    ASSERT_TRUE(b);
    ASSERT_TRUE((*b)->files().write("kept.txt", "/workspace", "still here"));
  }
  auto m = sandbox_manager::create(test_manager_options(dir));
  ASSERT_TRUE(m);
  auto b = (*m)->get("keep");
  ASSERT_TRUE(b) << b.error().to_string();
  exec_request req;
  req.command = "cat kept.txt; echo \" $GREETING\"";
  auto r = (*b)->exec("default", req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->stdout_data, "still here hello\n");
  EXPECT_EQ((*m)->get("never-created").error().code, errc::sandbox_not_found);
}

}  // namespace
}  // namespace kh::sandbox_bridge
