#include "kernel_host/sandbox_lifecycle.hpp"

#include "common/log.hpp"

namespace kh::host {

sandbox_lifecycle::sandbox_lifecycle(sandbox_bridge::sandbox_manager& sandboxes, context_manager& contexts,
                                     const api::sandbox_api_hooks& hooks, std::chrono::milliseconds tick)
    : sandboxes_(sandboxes), contexts_(contexts), hooks_(hooks), tick_(tick) {}

sandbox_lifecycle::~sandbox_lifecycle() { stop(); }

void sandbox_lifecycle::start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, tick_, [this] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      sweep();
      lock.lock();
    }
  });
}

void sandbox_lifecycle::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::size_t sandbox_lifecycle::sweep() {
  std::size_t slept = 0;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& box : sandboxes_.running()) {
    const auto& o = box->box().options();
    if (o.keep_alive || o.sleep_after.count() <= 0 || box->active() > 0) continue;
    auto last = box->last_activity();
    bool busy = false;
    for (const auto& c : contexts_.list(box->id())) {
      if (!c->in_sandbox()) continue;  // the default sandbox's host kernels do not hold it awake
      busy = busy || c->running() > 0 || c->connections() > 0;
      last = std::max(last, c->last_activity());
    }
    if (busy || now - last < o.sleep_after) continue;
    const std::string id = box->id();
    kh::log::get("sandbox")->info("sandbox {} idle for {} s: sleeping", id,
                                  std::chrono::duration_cast<std::chrono::seconds>(now - last).count());
    for (const auto& hook : hooks_.on_sleep) hook(id);
    if (sandboxes_.sleep(id)) ++slept;
  }
  return slept;
}

}  // namespace kh::host
