// The JSON bodies of the sandbox routes (kernel_host/api/request_helpers, the typed field readers
// every handler of sandbox_api/interpreter_api/ports_api uses, and sandbox_bridge's path
// normalisation that follows for path fields). The input is the raw request body. Properties:
// nothing throws or trips a sanitizer; every refusal is a 4xx whose error body is valid JSON;
// an accepted path is absolute and normalized.
#include "fuzz/fuzz_common.hpp"
#include "kernel_host/api/error_mapping.hpp"
#include "kernel_host/api/request_helpers.hpp"
#include "sandbox_bridge/sandbox_path.hpp"

namespace {

// Each refusal goes to the client through the one mapping: it must be a 4xx with a JSON body.
void check_refusal(const kh::error& err) {
  const int status = kh::api::http_status(err.code);
  KH_FUZZ_CHECK(status >= 400 && status < 500);
  const auto body = kh::api::error_body(err).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  KH_FUZZ_CHECK(!nlohmann::json::parse(body, nullptr, false).is_discarded());
}

constexpr const char* string_fields[] = {"command", "content", "cwd", "encoding", "id", "mode", "network",
                                         "path", "processId", "stdin", "sessionId", "code", "language",
                                         "context_id", "kernel", "name", "value", "oldPath", "newPath"};
constexpr const char* uint_fields[] = {"commandTimeoutMs", "cpuShares", "interval", "maxProcesses", "memoryBytes",
                                       "memoryMb", "port", "statusMax", "statusMin", "timeoutMs", "timeout_ms"};
constexpr const char* map_fields[] = {"env", "envVars", "env_vars"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kh::server::http_request request;
  request.method = "POST";
  request.body.assign(reinterpret_cast<const char*>(data), size);
  auto body = kh::api::json_object_body(request);
  if (!body) return check_refusal(body.error()), 0;
  KH_FUZZ_CHECK(body->is_object());

  std::string cwd = "/workspace";
  for (const char* f : string_fields) {
    auto v = kh::api::optional_string(*body, f);
    if (!v) {
      check_refusal(v.error());
      continue;
    }
    if (!*v) continue;
    if (std::string_view(f) == "cwd") cwd = **v;
    if (std::string_view(f).ends_with("ath") || std::string_view(f) == "cwd") {
      auto n = kh::sandbox_bridge::normalize_sandbox_path(**v, cwd);
      if (!n) {
        check_refusal(n.error());
        continue;
      }
      KH_FUZZ_CHECK(!n->empty() && n->front() == '/');
      KH_FUZZ_CHECK(n->find("//") == std::string::npos);
      KH_FUZZ_CHECK(*kh::sandbox_bridge::normalize_sandbox_path(*n) == *n);
    }
  }
  for (const char* f : uint_fields) {
    auto v = kh::api::optional_uint(*body, f);
    if (!v) check_refusal(v.error());
    else if (*v) KH_FUZZ_CHECK(**v >= 0);
  }
  for (const char* f : map_fields) {
    auto v = kh::api::optional_string_map(*body, f);
    if (!v) check_refusal(v.error());
  }
  return 0;
}
