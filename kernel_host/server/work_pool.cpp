#include "kernel_host/server/work_pool.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/log.hpp"

namespace kh::server {

struct work_pool::impl {
  explicit impl(int threads) : pool(static_cast<std::size_t>(threads)) {}
  boost::asio::thread_pool pool;
};

work_pool::work_pool(int threads) : impl_(std::make_unique<impl>(threads)) {}
work_pool::~work_pool() { join(); }

void work_pool::post(std::function<void()> job) {
  boost::asio::post(impl_->pool, [job = std::move(job)] {
    try {
      job();
    } catch (const std::exception& e) {
      kh::log::get("server")->error("a blocking job threw: {}", e.what());
    }
  });
}

void work_pool::join() { impl_->pool.join(); }

}  // namespace kh::server
