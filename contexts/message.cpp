#include "contexts/message.hpp"

#include <atomic>
#include <chrono>
#include <ctime>
#include <fmt/format.h>

#include "common/ids.hpp"

namespace kh::contexts {
namespace {

std::string string_field(const nl::json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

}  // namespace

std::string message::msg_type() const { return string_field(header, "msg_type"); }
std::string message::msg_id() const { return string_field(header, "msg_id"); }
std::string message::parent_msg_id() const { return string_field(parent_header, "msg_id"); }

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, micros % 1'000'000);
}

std::string new_msg_id() {
  // A random prefix per process keeps ids unique across clients and restarts; the counter keeps
  // them unique within the process without paying for randomness on every message.
  static const std::string prefix = kh::random_hex(12);
  static std::atomic<std::uint64_t> counter{0};
  return fmt::format("{}_{}", prefix, counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

message make_message(std::string_view msg_type, nl::json content, std::string_view session,
                     std::string_view username) {
  message msg;
  msg.header = {
      {"msg_id", new_msg_id()},        {"session", std::string(session)},
      {"username", std::string(username)}, {"date", utc_timestamp()},
      {"msg_type", std::string(msg_type)}, {"version", std::string(protocol_version)},
  };
  msg.content = std::move(content);
  return msg;
}

}  // namespace kh::contexts
