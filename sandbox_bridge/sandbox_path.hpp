#pragma once
// Lexical handling of paths given by callers, before any system call: joined with the session's
// cwd, "." and ".." folded, climbing above "/" refused. The file system resolution itself (symlinks)
// is done by sandbox_files with openat2(RESOLVE_IN_ROOT / RESOLVE_BENEATH).

#include <string>
#include <string_view>

#include "common/error.hpp"

namespace kh::sandbox_bridge {

// An absolute, normalized path inside the sandbox ("/", "/workspace/a/b").
// Refuses: empty, NUL bytes (in the path or the cwd), longer than 4096, ".." above the root (errc::permission_denied).
result<std::string> normalize_sandbox_path(std::string_view path, std::string_view cwd = "/workspace");

// "/workspace/a/b" -> {"/workspace/a", "b"}; "/a" -> {"/", "a"}; "/" -> {"/", ""}.
std::pair<std::string, std::string> split_parent(const std::string& normalized);

// True when normalized is base or below it ("/workspace", "/workspace/x"; not "/workspaces").
bool is_within(std::string_view normalized, std::string_view base) noexcept;

}  // namespace kh::sandbox_bridge
