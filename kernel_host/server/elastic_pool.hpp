#pragma once
// elastic_pool: threads for blocking work whose length the caller does not control (a shell
// command may run for an hour). A job runs at once on an idle thread or on a new one, up to
// max_threads; beyond that jobs wait in order. Threads idle for idle_exit leave.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace kh::server {

class elastic_pool {
 public:
  explicit elastic_pool(std::size_t max_threads = 256, std::chrono::milliseconds idle_exit = std::chrono::seconds(30));
  ~elastic_pool();  // join()
  elastic_pool(const elastic_pool&) = delete;
  elastic_pool& operator=(const elastic_pool&) = delete;

  void post(std::function<void()> job);
  // Runs the queued jobs, then waits for every thread to leave. post() after join() runs nothing.
  void join();

  std::size_t threads() const;

 private:
  void worker();

  const std::size_t max_threads_;
  const std::chrono::milliseconds idle_exit_;
  mutable std::mutex mutex_;
  std::condition_variable work_, gone_;
  std::deque<std::function<void()>> jobs_;
  std::size_t threads_ = 0, idle_ = 0;
  bool stopping_ = false;
};

}  // namespace kh::server
