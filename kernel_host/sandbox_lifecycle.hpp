#pragma once
// sandbox_lifecycle: puts idle sandboxes to sleep. A sandbox is idle when no request, command,
// open stream or kernel execution touched it for its sleep_after (default 10 minutes); keepAlive
// sandboxes never sleep. Sleeping stops its processes, sessions and kernels and keeps its
// workspace, metadata, sessions list and exposed ports; the next request wakes it (the manager
// starts it again from disk).

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "kernel_host/api/sandbox_api.hpp"
#include "kernel_host/context_manager.hpp"
#include "sandbox_bridge/sandbox_manager.hpp"

namespace kh::host {

class sandbox_lifecycle {
 public:
  sandbox_lifecycle(sandbox_bridge::sandbox_manager& sandboxes, context_manager& contexts, const api::sandbox_api_hooks& hooks,
                    std::chrono::milliseconds tick = std::chrono::seconds(1));
  ~sandbox_lifecycle();  // stop()
  sandbox_lifecycle(const sandbox_lifecycle&) = delete;
  sandbox_lifecycle& operator=(const sandbox_lifecycle&) = delete;

  void start();
  void stop();

  // One pass: puts every idle sandbox to sleep; returns how many slept.
  std::size_t sweep();

 private:
  sandbox_bridge::sandbox_manager& sandboxes_;
  context_manager& contexts_;
  const api::sandbox_api_hooks& hooks_;
  std::chrono::milliseconds tick_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kh::host
