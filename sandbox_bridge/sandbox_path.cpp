#include "sandbox_bridge/sandbox_path.hpp"

#include <vector>

namespace kh::sandbox_bridge {

result<std::string> normalize_sandbox_path(std::string_view path, std::string_view cwd) {
  if (path.empty()) return fail(errc::validation_failed, "the path is empty");
  if (path.size() > 4096) return fail(errc::validation_failed, "the path is longer than 4096 bytes");
  if (path.find('\0') != std::string_view::npos)
    return fail(errc::validation_failed, "the path contains a NUL byte");
  std::string joined;
  if (path.front() == '/') joined = path;
  else {
    // The cwd comes from callers too (a request's "cwd"): a NUL in it would pass the lexical
    // checks ("/proc\0x" is not within "/proc") and then cut the path short at open time.
    if (cwd.find('\0') != std::string_view::npos)
      return fail(errc::validation_failed, "the working directory contains a NUL byte");
    if (cwd.empty() || cwd.front() != '/') cwd = "/workspace";
    joined = std::string(cwd) + "/" + std::string(path);
  }
  std::vector<std::string_view> parts;
  std::string_view rest(joined);
  while (!rest.empty()) {
    auto slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty())
        return fail(errc::permission_denied, "the path leads outside the sandbox: " + std::string(path),
                    {{"path", std::string(path)}, {"reason", "path_escape"}});
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto p : parts) {
    out += '/';
    out += p;
  }
  if (out.empty()) out = "/";
  return out;
}

std::pair<std::string, std::string> split_parent(const std::string& n) {
  if (n == "/") return {"/", ""};
  auto slash = n.rfind('/');
  std::string parent = slash == 0 ? "/" : n.substr(0, slash);
  return {parent, n.substr(slash + 1)};
}

bool is_within(std::string_view n, std::string_view base) noexcept {
  if (base == "/") return true;
  if (n.size() < base.size() || n.substr(0, base.size()) != base) return false;
  return n.size() == base.size() || n[base.size()] == '/';
}

}  // namespace kh::sandbox_bridge
