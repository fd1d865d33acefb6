#pragma once
// launch_request: what the daemon hands a warm launcher (kh-exec-stub, see namespace_sandbox.hpp) on
// its fd 3: the command to become. Shared by both ends, so it is header-only and needs only std.
//
// Wire form (native byte order: both ends run on one machine): a u32 payload size, then the payload:
//   u32 flags (bit 0: stdin is piped, else /dev/null), str cwd, u32 argc, argc x str, u32 envc, envc x str
// where str is a u32 size and that many bytes. The payload is capped (kMaxLaunchRequest): a larger
// command takes the cold path.

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kh::sandbox_bridge {

inline constexpr std::size_t kMaxLaunchRequest = 16u << 20;  // payload bytes

struct launch_request {
  std::vector<std::string> argv;  // argv[0] is an absolute path
  std::vector<std::string> env;   // "K=V"
  std::string cwd;
  bool pipe_stdin = false;
};

namespace detail {

inline void put_u32(std::string& out, std::uint32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }

inline void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

inline std::optional<std::uint32_t> get_u32(std::string_view& in) {
  std::uint32_t v;
  if (in.size() < sizeof v) return std::nullopt;
  std::memcpy(&v, in.data(), sizeof v);
  in.remove_prefix(sizeof v);
  return v;
}

inline std::optional<std::string> get_str(std::string_view& in) {
  auto n = get_u32(in);
  if (!n || *n > in.size()) return std::nullopt;
  std::string s(in.substr(0, *n));
  in.remove_prefix(*n);
  return s;
}

inline bool get_strs(std::string_view& in, std::vector<std::string>& out) {
  auto n = get_u32(in);
  if (!n || *n > in.size() / sizeof(std::uint32_t)) return false;  // each takes at least its size field
  for (std::uint32_t i = 0; i < *n; ++i) {
    auto s = get_str(in);
    if (!s) return false;
    out.push_back(std::move(*s));
  }
  return true;
}

}  // namespace detail

// The whole message (size prefix included), or nullopt when the payload would exceed kMaxLaunchRequest.
inline std::optional<std::string> encode_launch_request(const launch_request& r) {
  std::size_t size = 3 * sizeof(std::uint32_t) + sizeof(std::uint32_t) + r.cwd.size();
  for (const auto* list : {&r.argv, &r.env})
    for (const auto& s : *list) size += sizeof(std::uint32_t) + s.size();
  if (size > kMaxLaunchRequest) return std::nullopt;
  std::string out;
  out.reserve(sizeof(std::uint32_t) + size);
  detail::put_u32(out, static_cast<std::uint32_t>(size));
  detail::put_u32(out, r.pipe_stdin ? 1u : 0u);
  detail::put_str(out, r.cwd);
  for (const auto* list : {&r.argv, &r.env}) {
    detail::put_u32(out, static_cast<std::uint32_t>(list->size()));
    for (const auto& s : *list) detail::put_str(out, s);
  }
  return out;
}

// The payload (after the size prefix) back into fields; nullopt when malformed, truncated, followed
// by extra bytes, or without argv.
inline std::optional<launch_request> decode_launch_request(std::string_view payload) {
  launch_request r;
  auto flags = detail::get_u32(payload);
  if (!flags) return std::nullopt;
  r.pipe_stdin = (*flags & 1u) != 0;
  auto cwd = detail::get_str(payload);
  if (!cwd) return std::nullopt;
  r.cwd = std::move(*cwd);
  if (!detail::get_strs(payload, r.argv) || !detail::get_strs(payload, r.env)) return std::nullopt;
  if (!payload.empty() || r.argv.empty()) return std::nullopt;
  return r;
}

}  // namespace kh::sandbox_bridge
