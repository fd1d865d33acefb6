#include "common/error.hpp"

#include <cstring>

namespace kh {

std::string_view errc_name(errc code) noexcept {
  switch (code) {
    case errc::internal_error: return "INTERNAL_ERROR";
    case errc::invalid_request: return "INVALID_REQUEST";
    case errc::not_found: return "NOT_FOUND";
    case errc::file_not_found: return "FILE_NOT_FOUND";
    case errc::timeout: return "TIMEOUT";
    case errc::cancelled: return "CANCELLED";
    case errc::kernel_not_found: return "KERNEL_NOT_FOUND";
    case errc::invalid_kernelspec: return "INVALID_KERNELSPEC";
    case errc::kernel_start_failed: return "KERNEL_START_FAILED";
    case errc::kernel_died: return "KERNEL_DIED";
    case errc::kernel_not_running: return "KERNEL_NOT_RUNNING";
    case errc::kernel_restarting: return "KERNEL_RESTARTING";
    case errc::protocol_error: return "PROTOCOL_ERROR";
    case errc::io_error: return "IO_ERROR";
    case errc::container_not_ready: return "CONTAINER_NOT_READY";
    case errc::context_not_found: return "CONTEXT_NOT_FOUND";
    case errc::validation_failed: return "VALIDATION_FAILED";
    case errc::unauthorized: return "UNAUTHORIZED";
    case errc::permission_denied: return "PERMISSION_DENIED";
    case errc::payload_too_large: return "PAYLOAD_TOO_LARGE";
    case errc::method_not_allowed: return "METHOD_NOT_ALLOWED";
    case errc::resource_busy: return "RESOURCE_BUSY";
    case errc::interpreter_not_ready: return "INTERPRETER_NOT_READY";
    case errc::session_not_found: return "SESSION_NOT_FOUND";
    case errc::sandbox_not_found: return "SANDBOX_NOT_FOUND";
    case errc::sandbox_already_exists: return "SANDBOX_ALREADY_EXISTS";
    case errc::shell_session_not_found: return "SESSION_NOT_FOUND";
    case errc::session_already_exists: return "SESSION_ALREADY_EXISTS";
    case errc::session_terminated: return "SESSION_TERMINATED";
    case errc::session_destroyed: return "SESSION_DESTROYED";
    case errc::process_not_found: return "PROCESS_NOT_FOUND";
    case errc::invalid_command: return "INVALID_COMMAND";
    case errc::is_directory: return "IS_DIRECTORY";
    case errc::not_directory: return "NOT_DIRECTORY";
    case errc::file_exists: return "FILE_EXISTS";
    case errc::read_only: return "READ_ONLY";
    case errc::no_space: return "NO_SPACE";
    case errc::file_too_large: return "FILE_TOO_LARGE";
    case errc::filesystem_error: return "FILESYSTEM_ERROR";
    case errc::command_execution_error: return "COMMAND_EXECUTION_ERROR";
    case errc::missing_credentials: return "MISSING_CREDENTIALS";
    case errc::invalid_mount_config: return "INVALID_MOUNT_CONFIG";
    case errc::s3fs_mount_error: return "S3FS_MOUNT_ERROR";
    case errc::bucket_unmount_error: return "BUCKET_UNMOUNT_ERROR";
    case errc::invalid_port: return "INVALID_PORT";
    case errc::port_not_exposed: return "PORT_NOT_EXPOSED";
    case errc::invalid_token: return "INVALID_TOKEN";
    case errc::service_not_responding: return "SERVICE_NOT_RESPONDING";
  }
  return "INTERNAL_ERROR";
}

std::string error::to_string() const {
  std::string out(errc_name(code));
  out += ": ";
  out += message;
  return out;
}

std::unexpected<error> fail_errno(std::string_view what, int err) {
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  return fail(errc::io_error, std::move(message), {{"errno", err}});
}

}  // namespace kh
