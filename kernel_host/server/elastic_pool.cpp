#include "kernel_host/server/elastic_pool.hpp"

#include <thread>

#include "common/log.hpp"

namespace kh::server {

elastic_pool::elastic_pool(std::size_t max_threads, std::chrono::milliseconds idle_exit)
    : max_threads_(max_threads == 0 ? 1 : max_threads), idle_exit_(idle_exit) {}

elastic_pool::~elastic_pool() { join(); }

void elastic_pool::post(std::function<void()> job) {
  std::unique_lock lock(mutex_);
  if (stopping_) return;
  jobs_.push_back(std::move(job));
  if (idle_ > 0) {
    work_.notify_one();
    return;
  }
  if (threads_ < max_threads_) {
    ++threads_;
    std::thread([this] { worker(); }).detach();
  }
}

void elastic_pool::worker() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (jobs_.empty()) {
      if (stopping_) break;
      ++idle_;
      const bool woke = work_.wait_for(lock, idle_exit_, [this] { return !jobs_.empty() || stopping_; });
      --idle_;
      if (!woke) break;  // idle too long
      continue;
    }
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      kh::log::get("server")->error("a blocking job threw: {}", e.what());
    }
    job = nullptr;  // captured state released outside the lock
    lock.lock();
  }
  if (--threads_ == 0) gone_.notify_all();
}

void elastic_pool::join() {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  work_.notify_all();
  gone_.wait(lock, [this] { return threads_ == 0; });
}

std::size_t elastic_pool::threads() const {
  std::lock_guard lock(mutex_);
  return threads_;
}

}  // namespace kh::server
