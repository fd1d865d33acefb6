#include "contexts/reactor.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "common/log.hpp"

namespace kh::contexts {

reactor::reactor() : zmq_(1) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::thread([this] { run(); });
}

reactor::~reactor() {
  {
    std::lock_guard lock(posted_mutex_);
    stopping_ = true;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(wake_fd_);
}

void reactor::post(std::function<void()> fn) {
  {
    std::lock_guard lock(posted_mutex_);
    if (stopping_) return;
    posted_.push_back(std::move(fn));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void reactor::add_socket(zmq::socket_t& socket, std::function<void()> on_readable) {
  watches_.push_back({socket.handle(), -1, std::move(on_readable), next_watch_id_++});
}

void reactor::remove_socket(zmq::socket_t& socket) {
  void* handle = socket.handle();
  std::erase_if(watches_, [handle](const watch& w) { return w.socket == handle; });
}

void reactor::add_fd(int fd, std::function<void()> on_readable) {
  watches_.push_back({nullptr, fd, std::move(on_readable), next_watch_id_++});
}

void reactor::remove_fd(int fd) {
  std::erase_if(watches_, [fd](const watch& w) { return w.socket == nullptr && w.fd == fd; });
}

reactor::timer_id reactor::add_timer(clock::time_point when, std::function<void()> fn) {
  const timer_id id = next_timer_id_++;
  timers_.emplace(when, std::make_pair(id, std::move(fn)));
  return id;
}

void reactor::cancel_timer(timer_id id) {
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->second.first == id) {
      timers_.erase(it);
      return;
    }
  }
}

void reactor::invoke(const std::function<void()>& fn) {
  // A throwing handler must not take the reactor (and every kernel with it) down.
  try {
    fn();
  } catch (const std::exception& e) {
    kh::log::get("contexts")->error("reactor: handler threw: {}", e.what());
  }
}

int reactor::poll_timeout_ms() const {
  if (timers_.empty()) return -1;
  const auto wait = timers_.begin()->first - clock::now();
  if (wait <= clock::duration::zero()) return 0;
  // Round up so a timer never fires early and the loop does not spin on a 0 ms timeout.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
}

void reactor::drain_posted() {
  std::uint64_t count = 0;
  [[maybe_unused]] auto n = ::read(wake_fd_, &count, sizeof count);
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard lock(posted_mutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) invoke(fn);
}

void reactor::run_due_timers() {
  const auto now = clock::now();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto fn = std::move(timers_.begin()->second.second);
    timers_.erase(timers_.begin());
    invoke(fn);
  }
}

void reactor::run() {
  auto logger = kh::log::get("contexts");
  std::vector<zmq::pollitem_t> items;
  std::vector<std::uint64_t> ids;
  for (;;) {
    {
      std::lock_guard lock(posted_mutex_);
      if (stopping_) break;
    }
    items.clear();
    ids.clear();
    items.push_back({nullptr, wake_fd_, ZMQ_POLLIN, 0});
    ids.push_back(0);
    for (const auto& w : watches_) {
      items.push_back({w.socket, w.socket ? 0 : w.fd, ZMQ_POLLIN, 0});
      ids.push_back(w.id);
    }
    const int rc = zmq_poll(items.data(), static_cast<int>(items.size()), poll_timeout_ms());
    if (rc < 0) {
      if (zmq_errno() == EINTR) continue;
      logger->error("reactor: zmq_poll failed: {}", zmq_strerror(zmq_errno()));
      continue;
    }
    if (items[0].revents & ZMQ_POLLIN) drain_posted();
    // Handlers may add or remove watches: look each one up again by id before calling it.
    for (std::size_t i = 1; i < items.size(); ++i) {
      if (!(items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) continue;
      auto it = std::find_if(watches_.begin(), watches_.end(), [&](const watch& w) { return w.id == ids[i]; });
      if (it == watches_.end()) continue;
      auto handler = it->handler;  // copy: the handler may remove its own watch
      invoke(handler);
    }
    run_due_timers();
  }
}

}  // namespace kh::contexts
