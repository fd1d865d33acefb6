#pragma once
// kh::error and kh::result<T>: the one error model of the product.
// Modules return kh::result<T>; only kernel_host/api maps an errc to an HTTP status.

#include <expected>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kh {

namespace nl = nlohmann;

// Stable error codes, one list for the product. The API name of each (e.g. "KERNEL_DIED")
// is errc_name(); never renumber or rename an existing value, clients depend on the names.
enum class errc {
  internal_error,
  invalid_request,      // malformed or semantically wrong input from a caller
  not_found,            // generic unknown id / missing resource
  file_not_found,
  timeout,              // an operation past its deadline
  cancelled,            // the caller or a shutdown cancelled the operation
  kernel_not_found,     // no kernelspec with that name
  invalid_kernelspec,   // kernel.json unreadable or invalid
  kernel_start_failed,  // the kernel process exited or could not be spawned
  kernel_died,          // the kernel exited while a request was in flight
  kernel_not_running,   // request to a kernel that is shut down or dead
  kernel_restarting,    // request dropped because the kernel was restarted
  protocol_error,       // malformed or wrongly signed Jupyter message
  io_error,             // a system call failed
  container_not_ready,  // retryable: the sandbox or kernel is starting
  context_not_found,    // no language context with that id
  validation_failed,    // a request body or parameter has the wrong shape or type
  unauthorized,         // no credentials given
  permission_denied,    // credentials given but wrong, or the operation is not allowed
  payload_too_large,    // a request body beyond the configured limit
  method_not_allowed,   // the route exists but not with this HTTP method
  resource_busy,        // a limit is reached (e.g. the maximum number of contexts)
  interpreter_not_ready,  // retryable: no kernel of that language can be started yet
  session_not_found,    // no Jupyter notebook session with that id
  // Sandboxes (sandbox_bridge/): the Cloudflare Sandbox contract's codes.
  sandbox_not_found,       // no sandbox with that id
  sandbox_already_exists,  // create with an id in use
  shell_session_not_found,      // no shell session with that id in the sandbox
  session_already_exists,  // a shell session with that id exists
  session_terminated,      // the session's shell exited (details: exitCode); the next call gets a fresh shell
  session_destroyed,       // the session was deleted while a command was running
  process_not_found,       // no background process with that id
  invalid_command,         // an empty or malformed command
  is_directory,            // a file operation on a directory
  not_directory,           // a directory operation on a file
  file_exists,             // the target exists
  read_only,               // a write to a read-only part of the sandbox (e.g. /usr)
  no_space,                // ENOSPC or a quota
  file_too_large,          // a read beyond the configured limit
  filesystem_error,        // any other file system failure
  command_execution_error, // a command could not be run
  // Bucket mounts (sandbox_bridge/bucket_mounts).
  missing_credentials,     // no S3 credentials in the request nor the daemon's environment
  invalid_mount_config,    // a bad bucket, mountPath, endpoint, prefix or s3fs option; the path in use
  s3fs_mount_error,        // s3fs did not mount (details: logTail, exitCode)
  bucket_unmount_error,    // the mount could not be removed
  // Ports and preview URLs (kernel_host/api/ports_api).
  invalid_port,            // outside 1024-65535, or the daemon's own port
  port_not_exposed,        // no exposure for that port of the sandbox
  invalid_token,           // a preview URL whose token does not match the exposure
  service_not_responding,  // nothing accepts connections on the exposed port
};

// The API name of an error code, e.g. errc::kernel_died -> "KERNEL_DIED".
std::string_view errc_name(errc code) noexcept;

struct error {
  errc code = errc::internal_error;
  std::string message;      // for humans: says what happened and, for input errors, what to change
  nl::json details = nl::json::object();  // machine-readable context (ids, paths, exit codes)

  // "KERNEL_DIED: the kernel exited with signal 9"
  std::string to_string() const;
};

template <class T>
using result = std::expected<T, error>;

// Shorthand for returning an error: `return kh::fail(errc::timeout, "...")`.
inline std::unexpected<error> fail(errc code, std::string message, nl::json details = nl::json::object()) {
  return std::unexpected<error>(error{code, std::move(message), std::move(details)});
}

// An error from errno with the failing operation named: "open /x: No such file or directory".
std::unexpected<error> fail_errno(std::string_view what, int err);

}  // namespace kh
