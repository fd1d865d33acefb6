#pragma once
// The logging facade: named loggers per module, spdlog behind it.
// Library code logs through kh::log::get("contexts"), never std::cerr.

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace kh::log {

// The logger of a module ("contexts", "server", ...), created on first use. Thread-safe.
std::shared_ptr<spdlog::logger> get(const std::string& module);

// Sets the level of every logger ("trace", "debug", "info", "warn", "error", "off").
// The default is "warn", or KH_LOG_LEVEL from the environment.
void set_level(const std::string& level);

}  // namespace kh::log
