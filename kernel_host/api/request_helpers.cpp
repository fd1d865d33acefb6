#include "kernel_host/api/request_helpers.hpp"

#include <climits>

#include <fmt/format.h>

#include "common/fast_json.hpp"
#include "kernel_host/api/error_mapping.hpp"

namespace kh::api {

result<nl::json> json_object_body(const server::http_request& request) {
  if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) return nl::json::object();
  auto body = fast_json::parse(request.body);  // nlohmann's result, fast for big strings
  if (body.is_discarded())
    return fail(errc::validation_failed, "the request body is not valid JSON");
  if (!body.is_object())
    return fail(errc::validation_failed, fmt::format("the request body must be a JSON object, not {}", body.type_name()));
  return body;
}

result<std::optional<std::string>> optional_string(const nl::json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string())
    return fail(errc::validation_failed, fmt::format("field '{}' must be a string, not {}", field, it->type_name()),
                {{"field", field}});
  return std::optional<std::string>{it->get<std::string>()};
}

result<std::optional<long long>> optional_uint(const nl::json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<long long>{};
  if (!it->is_number_integer() && !it->is_number_unsigned() && !(it->is_number_float() && it->get<double>() >= 0))
    return fail(errc::validation_failed, fmt::format("field '{}' must be a non-negative integer, not {}", field, it->type_name()),
                {{"field", field}});
  // 1e300 or 2^64-1 would overflow long long (a float cast out of range is undefined behaviour):
  // such a value is a caller's mistake, not "forever".
  constexpr double limit = 9.2e18;  // just below 2^63
  if ((it->is_number_float() && it->get<double>() >= limit) ||
      (it->is_number_unsigned() && it->get<unsigned long long>() > static_cast<unsigned long long>(LLONG_MAX)))
    return fail(errc::validation_failed, fmt::format("field '{}' is too large", field), {{"field", field}});
  const long long v = it->is_number_float() ? static_cast<long long>(it->get<double>()) : it->get<long long>();
  if (v < 0) return fail(errc::validation_failed, fmt::format("field '{}' must not be negative", field), {{"field", field}});
  return std::optional<long long>{v};
}

result<std::map<std::string, std::string>> optional_string_map(const nl::json& body, const char* field) {
  std::map<std::string, std::string> out;
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_object())
    return fail(errc::validation_failed, fmt::format("field '{}' must be an object of strings", field), {{"field", field}});
  for (const auto& [k, v] : it->items()) {
    if (v.is_null()) continue;
    if (!v.is_string())
      return fail(errc::validation_failed, fmt::format("field '{}.{}' must be a string", field, k), {{"field", field}});
    out[k] = v.get<std::string>();
  }
  return out;
}

void send_error(server::responder& out, const error& err) { out.send(error_response(err)); }

void send_json(server::responder& out, int status, const nl::json& body) { out.send(json_response(status, body)); }

}  // namespace kh::api
