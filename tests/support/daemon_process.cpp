#include "support/daemon_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "support/test_env.hpp"

extern char** environ;

namespace kh::test {

daemon_process::daemon_process(const std::vector<std::string>& extra_args) {
  data_dir_ = temp_dir("daemon");
  log_path_ = data_dir_ / "daemon.log";
  std::vector<std::string> args{std::string(KH_BIN_DIR) + "/kernel-host", "serve", "--listen", "127.0.0.1:0",
                                "--data-dir", data_dir_.string()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe failed";
    return;
  }
  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, log_fd, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << args[0] << ": " << std::strerror(rc);
    pid_ = -1;
    ::close(out[0]);
    ::close(log_fd);
    return;
  }
  // Read until the URL line; the rest of the daemon's stdout goes to the log by a small thread.
  const std::regex listening(R"(listening on (http://[^\s]+))");
  std::string seen;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (url_.empty() && std::chrono::steady_clock::now() < until) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<std::size_t>(n));
    std::smatch m;
    if (std::regex_search(seen, m, listening)) url_ = m[1].str();
  }
  (void)!::write(log_fd, seen.data(), seen.size());
  std::thread([fd = out[0], log_fd] {
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) (void)!::write(log_fd, buf, static_cast<std::size_t>(n));
    ::close(fd);
    ::close(log_fd);
  }).detach();
  if (url_.empty()) ADD_FAILURE() << "kernel-host serve printed no URL; its output:\n" << seen << "\n" << log();
}

daemon_process::~daemon_process() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 150; ++i) {  // 15 s for the graceful shutdown
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

std::string daemon_process::log() const { return read_text(log_path_); }

}  // namespace kh::test
