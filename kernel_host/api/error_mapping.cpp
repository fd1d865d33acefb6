#include "kernel_host/api/error_mapping.hpp"

#include <chrono>
#include <ctime>

#include <fmt/format.h>

#include "common/fast_json.hpp"

namespace kh::api {

int http_status(errc code) noexcept {
  switch (code) {
    case errc::invalid_request:
    case errc::validation_failed:
    case errc::invalid_kernelspec:
    case errc::protocol_error: return 400;
    case errc::unauthorized: return 401;
    case errc::permission_denied: return 403;
    case errc::not_found:
    case errc::file_not_found:
    case errc::kernel_not_found:
    case errc::context_not_found:
    case errc::session_not_found: return 404;
    case errc::method_not_allowed: return 405;
    case errc::timeout: return 408;
    case errc::kernel_not_running:
    case errc::resource_busy: return 409;
    case errc::payload_too_large: return 413;
    case errc::cancelled: return 499;  // the caller went away or a shutdown cancelled the work
    case errc::kernel_restarting:
    case errc::container_not_ready:
    case errc::interpreter_not_ready: return 503;
    case errc::internal_error:
    case errc::kernel_start_failed:
    case errc::kernel_died:
    case errc::io_error: return 500;
    // Sandboxes (sandbox_bridge/), with the Cloudflare contract's statuses.
    case errc::sandbox_not_found:
    case errc::shell_session_not_found:
    case errc::process_not_found: return 404;
    case errc::is_directory:
    case errc::not_directory:
    case errc::invalid_command: return 400;
    case errc::read_only: return 403;
    case errc::sandbox_already_exists:
    case errc::session_already_exists:
    case errc::file_exists: return 409;
    case errc::session_terminated:
    case errc::session_destroyed: return 410;
    case errc::file_too_large: return 413;
    case errc::no_space:
    case errc::filesystem_error:
    case errc::command_execution_error: return 500;
    case errc::missing_credentials:
    case errc::invalid_mount_config: return 400;
    case errc::s3fs_mount_error:
    case errc::bucket_unmount_error: return 500;
    case errc::invalid_port: return 400;
    case errc::port_not_exposed:
    case errc::invalid_token: return 404;
    case errc::service_not_responding: return 502;
  }
  return 500;
}

int retry_after_seconds(errc code) noexcept {
  switch (code) {
    case errc::kernel_restarting: return 1;
    case errc::container_not_ready:
    case errc::interpreter_not_ready: return 2;
    default: return 0;
  }
}

std::string iso_timestamp() { return iso_time(std::chrono::system_clock::now()); }

std::string iso_time(std::chrono::system_clock::time_point now) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

nl::json error_body(const error& err) {
  return {{"code", std::string(errc_name(err.code))},
          {"message", err.message},
          {"context", err.details.is_object() ? err.details : nl::json{{"details", err.details}}},
          {"httpStatus", http_status(err.code)},
          {"timestamp", iso_timestamp()}};
}

}  // namespace kh::api

namespace kh::api {

server::http_response error_response(const error& err) {
  server::http_response out{.status = http_status(err.code), .body = fast_json::dump(error_body(err))};
  if (const int secs = retry_after_seconds(err.code); secs > 0) out.headers.emplace_back("Retry-After", std::to_string(secs));
  return out;
}

server::http_response json_response(int status, const nl::json& body) {
  return server::http_response{.status = status, .body = fast_json::dump(body)};
}

}  // namespace kh::api
