#include "sandbox_bridge/sandbox_sockets.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "sandbox_bridge/namespace_sandbox.hpp"
#include "sandbox_bridge/sandbox_manager.hpp"

namespace kh::sandbox_bridge {

sandbox_sockets::sandbox_sockets(sandbox_manager& sandboxes)
    : sandboxes_(sandboxes), host_ns_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {}

void sandbox_sockets::open(const std::string& sandbox_id, std::function<void(result<unique_fd>)> done) {
  worker_.post([this, sandbox_id, done = std::move(done)] { done(open_now(sandbox_id)); });
}

result<unique_fd> sandbox_sockets::open_now(const std::string& sandbox_id) {
  auto not_running = [&] {
    return fail(errc::service_not_responding, fmt::format("sandbox '{}' is not running: nothing listens in it", sandbox_id),
                {{"sandboxId", sandbox_id}});
  };
  auto summary = sandboxes_.describe(sandbox_id);
  if (!summary || !summary->running) return not_running();
  auto runtime = sandboxes_.get(sandbox_id);
  if (!runtime) return not_running();
  const auto& box = (*runtime)->box();
  if (box.options().network == network_mode::none) {
    const auto* ns_box = dynamic_cast<const namespace_sandbox*>(&box);
    if (!ns_box || ns_box->init_pid() <= 0) return not_running();
    unique_fd ns(::open(fmt::format("/proc/{}/ns/net", ns_box->init_pid()).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) return not_running();
    if (::setns(ns.get(), CLONE_NEWNET) != 0) return fail_errno("setns into the sandbox's network namespace", errno);
    in_host_ns_ = false;
  } else if (!in_host_ns_) {  // the thread sits in another sandbox's namespace: back to the daemon's
    if (!host_ns_ || ::setns(host_ns_.get(), CLONE_NEWNET) != 0) return fail_errno("setns into the daemon's network namespace", errno);
    in_host_ns_ = true;
  }
  unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket", errno);
  return fd;
}

}  // namespace kh::sandbox_bridge
