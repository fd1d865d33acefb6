#pragma once
// The one place where an errc becomes an HTTP status and an error body.
// Managers return kh::error; handlers hand it here; nothing else chooses a status for an error.

#include <chrono>
#include <string>

#include "common/error.hpp"

namespace kh::api {

// The HTTP status of an error code: 4xx for the caller's faults, 5xx for ours, 503 only where
// retrying helps (the Cloudflare client retries 503).
int http_status(errc code) noexcept;

// Seconds a client should wait before retrying a 503, or 0 for codes that are not retryable.
int retry_after_seconds(errc code) noexcept;

// {code, message, context, httpStatus, timestamp}: context is the error's details.
nl::json error_body(const error& err);

// ISO 8601 UTC with milliseconds, as the Cloudflare contract uses: "2026-11-26T23:53:03.123Z".
std::string iso_timestamp();
std::string iso_time(std::chrono::system_clock::time_point t);

}  // namespace kh::api

#include "kernel_host/server/http_types.hpp"

namespace kh::api {

// The complete response for an error: status, JSON body, Retry-After for retryable codes.
server::http_response error_response(const error& err);

// A JSON response with the given status.
server::http_response json_response(int status, const nl::json& body);

}  // namespace kh::api
