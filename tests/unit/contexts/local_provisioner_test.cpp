// The local provisioner, exercised with /bin/sh scripts standing in for kernels (no kernel is started).

#include "contexts/provisioner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_folder.hpp"

namespace kh::contexts {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

using temp_folder = kh::test::temp_folder;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Waits for a file to hold a complete line (written by a script), up to 5 s.
std::string wait_for_line(const fs::path& path) {
  for (int i = 0; i < 500; ++i) {
    const auto text = read_file(path);
    if (!text.empty() && text.back() == '\n') return text;
    std::this_thread::sleep_for(10ms);
  }
  return {};
}

// The process state letter from /proc/<pid>/stat ('Z' for a zombie), or 0 when there is no such process.
char process_state(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return 0;
  return text[close + 2];
}

bool is_gone_or_zombie(int pid) {
  for (int i = 0; i < 500; ++i) {
    const char state = process_state(pid);
    if (state == 0 || state == 'Z' || state == 'X') return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

class local_provisioner_test : public ::testing::Test {
 protected:
  // A fake kernelspec running `script` with /bin/sh; extra args follow as $0, $1, ...
  launch_request request(const std::string& script, std::vector<std::string> extra = {}) {
    launch_request r;
    r.spec.name = "sh-test";
    r.spec.display_name = "sh test";
    r.spec.language = "sh";
    r.spec.argv = {"/bin/sh", "-c", script};
    r.spec.argv.insert(r.spec.argv.end(), extra.begin(), extra.end());
    r.spec.resource_dir = tmp_.path();
    auto info = make_tcp_connection_info("sh-test");
    EXPECT_TRUE(info);
    r.connection = *info;
    r.runtime_dir = tmp_.path() / "runtime";
    r.kernel_id = "k1";
    return r;
  }

  fs::path log_path() const { return tmp_.path() / "runtime" / "kernel-k1.log"; }
  fs::path connection_path() const { return tmp_.path() / "runtime" / "kernel-k1.json"; }

  temp_folder tmp_;
};

TEST_F(local_provisioner_test, exit_status_and_connection_file) {
  auto p = make_local_provisioner();
  EXPECT_EQ(p->pid(), 0);
  EXPECT_FALSE(p->poll());
  auto r = request("cat \"$0\"; exit 3", {"{connection_file}"});
  ASSERT_TRUE(p->launch(r)) << "launch";
  EXPECT_GT(p->pid(), 0);

  const auto status = p->wait(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 3);
  EXPECT_EQ(status->signal, 0);
  EXPECT_EQ(status->to_string(), "exit code 3");
  EXPECT_EQ(p->poll()->code, 3);  // cached once reaped

  // The kernel was given the connection file: private folder, private file, our key in it.
  EXPECT_THAT(read_file(log_path()), HasSubstr(r.connection.key));
  EXPECT_EQ(fs::status(connection_path()).permissions(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(r.runtime_dir).permissions(), fs::perms::owner_all);

  auto signalled = p->send_signal(SIGTERM);
  ASSERT_FALSE(signalled);
  EXPECT_EQ(signalled.error().code, errc::kernel_not_running);

  p->cleanup();
  EXPECT_FALSE(fs::exists(connection_path()));
  p->cleanup();  // idempotent
  EXPECT_EQ(p->exit_fd(), -1);
}

TEST_F(local_provisioner_test, inherits_no_descriptor_beyond_stdio) {
  // A descriptor open here without close-on-exec (as an accepted socket may briefly be).
  const int opened = ::open("/dev/null", O_RDONLY);
  const int leaked = ::dup2(opened, 77);  // a number the listing itself will not use
  ::close(opened);
  ASSERT_EQ(leaked, 77);
  auto p = make_local_provisioner();
  ASSERT_TRUE(p->launch(request("ls /proc/self/fd")));
  ASSERT_TRUE(p->wait(10s));
  ::close(leaked);
  std::string fds = read_file(log_path());
  // ls itself opens one descriptor for the listing; everything else must be 0, 1, 2.
  std::vector<int> numbers;
  for (std::size_t pos = 0; pos < fds.size();) {
    auto end = fds.find('\n', pos);
    if (end == std::string::npos) end = fds.size();
    if (end > pos) numbers.push_back(std::stoi(fds.substr(pos, end - pos)));
    pos = end + 1;
  }
  EXPECT_LE(numbers.size(), 4u) << fds;
  EXPECT_THAT(numbers, ::testing::Not(::testing::Contains(leaked))) << fds;
}

TEST_F(local_provisioner_test, signal_status) {
  auto p = make_local_provisioner();
  ASSERT_TRUE(p->launch(request("exec sleep 30")));
  EXPECT_FALSE(p->poll());
  EXPECT_FALSE(p->wait(20ms));
  ASSERT_TRUE(p->terminate());
  const auto status = p->wait(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGTERM);
  EXPECT_EQ(status->to_string(), "signal 15 (Terminated)");
}

TEST_F(local_provisioner_test, signals_are_default_even_if_ignored_or_blocked_here) {
  // The daemon may ignore SIGINT or block signals in its threads; the kernel must not inherit that.
  struct sigaction old_int {};
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old_int);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);

  auto p = make_local_provisioner();
  const bool launched = p->launch(request("exec sleep 30")).has_value();
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  ASSERT_TRUE(launched);

  ASSERT_TRUE(p->send_signal(SIGINT));
  const auto status = p->wait(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGINT);
}

TEST_F(local_provisioner_test, runs_in_its_own_process_group) {
  auto p = make_local_provisioner();
  ASSERT_TRUE(p->launch(request("exec sleep 30")));
  EXPECT_EQ(::getpgid(p->pid()), p->pid());
  EXPECT_NE(::getpgid(p->pid()), ::getpgrp());
}

TEST_F(local_provisioner_test, cwd_is_applied) {
  const auto work = tmp_.path() / "work dir";
  fs::create_directories(work);
  auto p = make_local_provisioner();
  auto r = request("pwd");
  r.cwd = work;
  ASSERT_TRUE(p->launch(r));
  ASSERT_TRUE(p->wait(10s));
  EXPECT_EQ(read_file(log_path()), fs::canonical(work).string() + "\n");
}

TEST_F(local_provisioner_test, missing_cwd_fails_clearly) {
  auto p = make_local_provisioner();
  auto r = request("pwd");
  r.cwd = tmp_.path() / "nowhere";
  auto launched = p->launch(r);
  ASSERT_FALSE(launched);
  EXPECT_EQ(launched.error().code, errc::kernel_start_failed);
  EXPECT_THAT(launched.error().message, HasSubstr("nowhere"));
  EXPECT_EQ(p->pid(), 0);
}

TEST_F(local_provisioner_test, env_is_inherited_expanded_and_overridden) {
  ::setenv("KH_PROV_TEST_BASE", "base", 1);
  auto p = make_local_provisioner();
  auto r = request("echo \"$KH_PROV_TEST_BASE|$KH_A|$KH_B|$KH_C\"");
  r.spec.env = {{"KH_A", "${KH_PROV_TEST_BASE}-x${KH_PROV_TEST_MISSING}"}, {"KH_B", "spec"}};
  r.env = {{"KH_B", "request"}, {"KH_C", "c"}};
  ASSERT_TRUE(p->launch(r));
  ASSERT_TRUE(p->wait(10s));
  ::unsetenv("KH_PROV_TEST_BASE");
  EXPECT_EQ(read_file(log_path()), "base|base-x|request|c\n");
}

TEST_F(local_provisioner_test, argv0_is_resolved_with_the_kernels_path) {
  const auto bin = tmp_.path() / "bin";
  fs::create_directories(bin);
  std::ofstream(bin / "kh-fake-kernel") << "#!/bin/sh\necho fake kernel \"$@\"\n";
  fs::permissions(bin / "kh-fake-kernel", fs::perms::owner_all);

  auto p = make_local_provisioner();
  auto r = request("");
  r.spec.argv = {"kh-fake-kernel", "-f", "{connection_file}"};
  r.env = {{"PATH", bin.string() + ":/usr/bin:/bin"}};
  ASSERT_TRUE(p->launch(r));
  ASSERT_TRUE(p->wait(10s));
  EXPECT_EQ(read_file(log_path()), "fake kernel -f " + connection_path().string() + "\n");
}

TEST_F(local_provisioner_test, stdout_and_stderr_go_to_the_log) {
  auto p = make_local_provisioner();
  auto r = request("read line; echo \"out:$line\"; echo err >&2; printf 'tail-end'");
  r.log_file = tmp_.path() / "custom.log";
  std::ofstream(r.log_file) << "earlier\n";  // appended, not truncated
  ASSERT_TRUE(p->launch(r));
  ASSERT_TRUE(p->wait(10s));
  EXPECT_EQ(read_file(r.log_file), "earlier\nout:\nerr\ntail-end");  // stdin is /dev/null
  EXPECT_EQ(p->log_tail(8), "tail-end");
  EXPECT_EQ(p->log_tail(), "earlier\nout:\nerr\ntail-end");
  EXPECT_FALSE(fs::exists(log_path()));
}

TEST_F(local_provisioner_test, log_tail_does_not_split_utf8) {
  auto p = make_local_provisioner();
  ASSERT_TRUE(p->launch(request("printf 'x\\303\\251t\\303\\251'")));  // "xété"
  ASSERT_TRUE(p->wait(10s));
  EXPECT_EQ(p->log_tail(3), "t\xc3\xa9");
  EXPECT_EQ(p->log_tail(4), "t\xc3\xa9");  // would start inside the first "é"
}

TEST_F(local_provisioner_test, missing_executable_is_a_clear_error) {
  for (const std::string program : {"/nonexistent/kh-no-such-kernel", "kh-no-such-kernel"}) {
    auto p = make_local_provisioner();
    auto r = request("");
    r.spec.argv = {program, "-f", "{connection_file}"};
    auto launched = p->launch(r);
    ASSERT_FALSE(launched) << program;
    EXPECT_EQ(launched.error().code, errc::kernel_start_failed);
    EXPECT_THAT(launched.error().message, HasSubstr(program));
    EXPECT_THAT(launched.error().message, HasSubstr("not found"));
    EXPECT_EQ(p->pid(), 0);
    EXPECT_FALSE(fs::exists(connection_path()));
  }
}

TEST_F(local_provisioner_test, kill_reaches_the_whole_group) {
  auto p = make_local_provisioner();
  const auto pid_file = tmp_.path() / "grandchild.pid";
  ASSERT_TRUE(p->launch(request("sleep 60 & echo $! > \"$0\"; wait", {pid_file.string()})));
  const auto text = wait_for_line(pid_file);
  ASSERT_FALSE(text.empty());
  const int grandchild = std::stoi(text);
  EXPECT_EQ(::getpgid(grandchild), p->pid());

  ASSERT_TRUE(p->kill());
  const auto status = p->wait(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGKILL);
  EXPECT_EQ(status->to_string(), "signal 9 (Killed)");
  EXPECT_TRUE(is_gone_or_zombie(grandchild));
}

TEST_F(local_provisioner_test, exit_fd_becomes_readable_on_exit) {
  auto p = make_local_provisioner();
  ASSERT_TRUE(p->launch(request("exec sleep 30")));
  const int fd = p->exit_fd();
  ASSERT_GE(fd, 0);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
  ASSERT_TRUE(p->terminate());
  EXPECT_EQ(::poll(&pfd, 1, 10000), 1);
  EXPECT_TRUE(pfd.revents & POLLIN);
  const auto status = p->poll();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGTERM);
}

TEST_F(local_provisioner_test, wait_does_not_block_signals_from_other_threads) {
  auto p = make_local_provisioner();
  ASSERT_TRUE(p->launch(request("exec sleep 30")));
  std::optional<exit_status> status;
  std::thread waiter([&] { status = p->wait(20s); });
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(p->kill());
  waiter.join();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGKILL);
}

TEST_F(local_provisioner_test, destruction_leaves_no_zombie_and_no_files) {
  int pid = 0;
  {
    auto p = make_local_provisioner();
    ASSERT_TRUE(p->launch(request("exec sleep 30")));
    pid = p->pid();
    ASSERT_TRUE(fs::exists(connection_path()));
  }
  // Reaped by the destructor: no child of ours with that pid is left.
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_FALSE(fs::exists(connection_path()));
}

TEST_F(local_provisioner_test, launch_twice_is_refused) {
  auto p = make_local_provisioner();
  ASSERT_TRUE(p->launch(request("exit 0")));
  EXPECT_FALSE(p->launch(request("exit 0")));
}

TEST(exit_status, to_string) {
  EXPECT_EQ((exit_status{.code = 0, .signal = 0}).to_string(), "exit code 0");
  EXPECT_EQ((exit_status{.code = 0, .signal = SIGKILL}).to_string(), "signal 9 (Killed)");
  EXPECT_EQ((exit_status{.code = 0, .signal = SIGSEGV}).to_string(), "signal 11 (Segmentation fault)");
}

}  // namespace
}  // namespace kh::contexts
