#pragma once
// sandbox_sockets: TCP sockets that reach a sandbox's own 127.0.0.1, for the preview proxy.
// A socket belongs to the network namespace of the thread that created it, whatever thread
// connects or uses it later. So one worker thread setns()es into the sandbox's namespace
// (/proc/<init pid>/ns/net) and creates the socket there; the caller connects it and hands it to
// its event loop. Sandboxes with network "host" share the host's namespace: a plain socket.

#include <functional>
#include <string>

#include "common/error.hpp"
#include "common/serial_worker.hpp"
#include "sandbox_bridge/child_process.hpp"

namespace kh::sandbox_bridge {

class sandbox_manager;

class sandbox_sockets {
 public:
  explicit sandbox_sockets(sandbox_manager& sandboxes);

  // Calls `done` on the worker thread with an unconnected, non-blocking, close-on-exec IPv4 TCP
  // socket in the sandbox's network namespace. A sandbox that is not running (none is started
  // here) is service_not_responding: nothing can listen in it.
  void open(const std::string& sandbox_id, std::function<void(result<unique_fd>)> done);

 private:
  result<unique_fd> open_now(const std::string& sandbox_id);

  sandbox_manager& sandboxes_;
  unique_fd host_ns_;          // the daemon's own network namespace, for "host" sandboxes
  bool in_host_ns_ = true;     // where the worker thread is now
  serial_worker worker_;  // its thread moves between namespaces; it runs nothing else
};

}  // namespace kh::sandbox_bridge
