#pragma once
// The reactor: one thread that owns the ZeroMQ context's sockets for every kernel.
// ZeroMQ sockets are not thread-safe, so every socket is created, polled, read, written and
// closed on this thread. Other threads reach it with post(), which queues a function and wakes
// the poll loop through an eventfd. Plain file descriptors (pidfds of kernel processes) and
// timers share the same loop.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <zmq.hpp>

namespace kh::contexts {

class reactor {
 public:
  using clock = std::chrono::steady_clock;
  using timer_id = std::uint64_t;

  reactor();  // starts the thread
  ~reactor();  // stops it; pending posted functions are dropped, sockets must be removed first
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  zmq::context_t& zmq_context() noexcept { return zmq_; }

  // Runs `fn` on the reactor thread, in posting order. Safe from any thread, including the reactor's.
  void post(std::function<void()> fn);

  // Runs `fn` on the reactor thread and waits for it (runs inline when already there).
  template <class F>
  auto call(F&& fn) -> decltype(fn()) {
    if (in_reactor_thread()) return fn();
    std::packaged_task<decltype(fn())()> task(std::forward<F>(fn));
    auto future = task.get_future();
    post([&task] { task(); });
    return future.get();
  }

  bool in_reactor_thread() const noexcept { return std::this_thread::get_id() == thread_.get_id(); }

  // --- reactor thread only ---
  // Calls `on_readable` whenever the socket has messages (the handler must drain it).
  void add_socket(zmq::socket_t& socket, std::function<void()> on_readable);
  void remove_socket(zmq::socket_t& socket);
  // Calls `on_readable` when the fd polls readable (level-triggered: remove it or consume).
  void add_fd(int fd, std::function<void()> on_readable);
  void remove_fd(int fd);
  timer_id add_timer(clock::time_point when, std::function<void()> fn);
  void cancel_timer(timer_id id);

 private:
  struct watch {
    void* socket = nullptr;  // zmq socket handle, or nullptr for an fd
    int fd = -1;
    std::function<void()> handler;
    std::uint64_t id = 0;
  };

  void run();
  static void invoke(const std::function<void()>& fn);
  void drain_posted();
  void run_due_timers();
  int poll_timeout_ms() const;

  zmq::context_t zmq_;
  int wake_fd_ = -1;
  std::mutex posted_mutex_;
  std::deque<std::function<void()>> posted_;
  bool stopping_ = false;  // guarded by posted_mutex_

  // reactor-thread state
  std::vector<watch> watches_;
  std::uint64_t next_watch_id_ = 1;
  std::multimap<clock::time_point, std::pair<timer_id, std::function<void()>>> timers_;
  timer_id next_timer_id_ = 1;

  std::thread thread_;
};

}  // namespace kh::contexts
