#pragma once
// The one exception type of kh_client: a failed call, with the server's error code.

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace kh::client {

// Thrown by every call that does not succeed. `code()` is the server's stable code
// ("FILE_NOT_FOUND", "PROCESS_NOT_FOUND", "CONTEXT_NOT_FOUND", "CONTAINER_NOT_READY", "TIMEOUT",
// "VALIDATION_FAILED", ...; the list is kernel_host/api/openapi.yaml's and the Cloudflare
// contract's), `http_status()` the response's status, `context()` the error body's `context`
// object (e.g. {"path": ..., "operation": "file.read"}).
//
// Errors raised on this side have http_status() 0 and one of these codes:
//   CONNECTION_ERROR             the server could not be reached or cut the connection
//   TIMEOUT                      a deadline given to the call passed
//   PROCESS_READY_TIMEOUT        wait_for_port / wait_for_log timed out (http_status 408, as the SDK)
//   PROCESS_EXITED_BEFORE_READY  the process ended before the port or log line showed up
//   INVALID_RESPONSE             the server answered something that is not the API's JSON
// A 503 (CONTAINER_NOT_READY, INTERPRETER_NOT_READY, KERNEL_RESTARTING) is retried with
// exponential backoff until connect_options::retry_timeout; the last 503 is what is thrown.
class sandbox_error : public std::runtime_error {
 public:
  sandbox_error(std::string code, std::string message, int http_status = 0, nlohmann::json context = nlohmann::json::object())
      : std::runtime_error(code + ": " + message),
        code_(std::move(code)),
        message_(std::move(message)),
        http_status_(http_status),
        context_(std::move(context)) {}

  const std::string& code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }  // without the code prefix of what()
  int http_status() const noexcept { return http_status_; }
  const nlohmann::json& context() const noexcept { return context_; }
  // The context's `operation` ("file.read", "process.start", ...) when the server named one.
  std::string operation() const { return context_.is_object() ? context_.value("operation", "") : ""; }

 private:
  std::string code_;
  std::string message_;
  int http_status_;
  nlohmann::json context_;
};

}  // namespace kh::client
