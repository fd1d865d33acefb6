#include "common/log.hpp"

#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace kh::log {
namespace {

std::mutex mutex;
spdlog::level::level_enum current_level() {
  static const spdlog::level::level_enum level = [] {
    const char* env = std::getenv("KH_LOG_LEVEL");
    return env ? spdlog::level::from_str(env) : spdlog::level::warn;
  }();
  return level;
}

}  // namespace

std::shared_ptr<spdlog::logger> get(const std::string& module) {
  std::lock_guard lock(mutex);
  if (auto existing = spdlog::get(module)) return existing;
  auto logger = spdlog::stderr_color_mt(module);
  logger->set_level(current_level());
  return logger;
}

void set_level(const std::string& level) {
  std::lock_guard lock(mutex);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace kh::log
