// kh-exec-stub: a sandbox's warm launcher (see namespace_sandbox.hpp). The daemon starts it ahead of
// time through the usual sandbox entry, so it already runs in the sandbox's cgroups and namespaces,
// chrooted, as the sandbox user without privileges, in its own session, with stdio piped to the
// daemon. It waits for one launch_request on fd 3, then becomes that command: chdir to its cwd,
// /dev/null on stdin unless piped, execve. Its failures read as the cold path's (child_process.cpp):
// "kernel-host: cannot change directory to <cwd>: <reason>" with exit 1, "kernel-host: cannot
// execute <argv0>: <reason>" with exit 127.

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sandbox_bridge/launch_request.hpp"

namespace {

void say(std::string_view text) {
  while (!text.empty()) {
    const ssize_t w = ::write(2, text.data(), text.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(w));
  }
}

[[noreturn]] void give_up(int code, std::string_view what, std::string_view subject, int err) {
  say(std::string("kernel-host: ").append(what).append(subject).append(": ").append(strerrordesc_np(err)).append("\n"));
  ::_exit(code);
}

// Reads exactly n bytes; false on end of file or error.
bool read_exact(int fd, char* buf, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, buf, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace

int main() {
  using namespace kh::sandbox_bridge;
  ::prctl(PR_SET_NAME, "kh-exec-stub", 0, 0, 0);
  std::uint32_t size = 0;
  // End of file before a request: the daemon let this launcher go (the sandbox stops).
  if (!read_exact(3, reinterpret_cast<char*>(&size), sizeof size)) return 0;
  if (size > kMaxLaunchRequest) give_up(127, "launch request too large", "", EMSGSIZE);
  std::string payload(size, '\0');
  if (!read_exact(3, payload.data(), size)) return 0;
  ::close(3);
  auto request = decode_launch_request(payload);
  if (!request) give_up(127, "malformed launch request", "", EINVAL);
  payload = {};

  if (!request->pipe_stdin) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0) give_up(127, "open /dev/null", "", errno);
    ::close(null_fd);
  }
  if (::chdir(request->cwd.c_str()) != 0) give_up(1, "cannot change directory to ", request->cwd.c_str(), errno);

  std::vector<char*> argv, envp;
  for (auto& a : request->argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : request->env) envp.push_back(e.data());
  envp.push_back(nullptr);
  ::execve(argv[0], argv.data(), envp.data());
  give_up(127, "cannot execute ", argv[0], errno);
}
