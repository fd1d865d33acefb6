#pragma once
// serial_worker: one thread running queued jobs in order. For blocking work (kernel restarts,
// shutdown ladders) that must never run on an I/O or reactor thread.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace kh {

class serial_worker {
 public:
  serial_worker();
  ~serial_worker();  // runs the jobs already queued, then joins
  serial_worker(const serial_worker&) = delete;
  serial_worker& operator=(const serial_worker&) = delete;

  // Queues a job; jobs posted after the destructor started are dropped.
  void post(std::function<void()> job);
  bool in_worker_thread() const noexcept { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kh
