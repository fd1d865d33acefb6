#pragma once
// work_pool: threads for blocking work (kernel start, shutdown ladders, blocking executes), so
// nothing blocks an I/O thread.

#include <functional>
#include <memory>

namespace kh::server {

class work_pool {
 public:
  explicit work_pool(int threads);
  ~work_pool();  // joins after the queued jobs ran
  void post(std::function<void()> job);
  void join();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kh::server
