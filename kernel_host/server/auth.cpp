// Token authentication helpers (see http_server.hpp).
#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>

#include "kernel_host/server/http_server.hpp"

namespace kh::server {

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

bool token_matches(std::string_view presented, std::string_view expected) {
  if (expected.empty()) return true;
  // Compare equal-length buffers so the time does not depend on where they differ; the length
  // check leaks only the length, which a random token does not make secret anyway.
  std::string a(presented), b(expected);
  const std::size_t n = std::max(a.size(), b.size());
  a.resize(n, '\0');
  b.resize(n, '\0');
  const bool same = CRYPTO_memcmp(a.data(), b.data(), n) == 0;
  return same && presented.size() == expected.size();
}

std::string presented_token(const http_request& request) {
  std::string auth = request.header("authorization");
  auto starts_with_ci = [&](std::string_view prefix) {
    if (auth.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(auth[i])) != prefix[i]) return false;
    return true;
  };
  if (starts_with_ci("bearer ")) return auth.substr(7);
  if (starts_with_ci("token ")) return auth.substr(6);
  if (auto it = request.query.find("token"); it != request.query.end()) return it->second;
  return {};
}

}  // namespace kh::server
