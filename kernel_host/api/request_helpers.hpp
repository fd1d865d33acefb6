#pragma once
// Parsing at the edge: request bodies and fields, with errors that say what to change.

#include <optional>
#include <string>

#include "common/error.hpp"
#include "kernel_host/server/http_types.hpp"

namespace kh::api {

// The body as a JSON object ({} when empty); validation_failed when it is not JSON or not an object.
result<nl::json> json_object_body(const server::http_request& request);

// An optional string field; validation_failed when present with another type.
result<std::optional<std::string>> optional_string(const nl::json& body, const char* field);
// An optional non-negative integer field (milliseconds, counts).
result<std::optional<long long>> optional_uint(const nl::json& body, const char* field);
// An optional object of string -> string.
result<std::map<std::string, std::string>> optional_string_map(const nl::json& body, const char* field);

// Sends an error through the one mapping.
void send_error(server::responder& out, const error& err);
// Sends a JSON body.
void send_json(server::responder& out, int status, const nl::json& body);

}  // namespace kh::api
