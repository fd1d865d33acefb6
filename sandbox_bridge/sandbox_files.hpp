#pragma once
// sandbox_files: file operations confined to one sandbox. Every path is normalized lexically
// (sandbox_path.hpp), then resolved by the kernel with openat2: below /workspace against the
// workspace folder with RESOLVE_BENEATH (a symlink or ".." leaving /workspace is refused), elsewhere
// against the sandbox's root with RESOLVE_IN_ROOT (an absolute symlink means the sandbox's own
// root, never the host's); magic links (/proc/*/root ...) never. /proc and /sys are refused.
// Writes are atomic (temp file in the same folder + rename) and owned by the sandbox user.

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "sandbox_bridge/child_process.hpp"

namespace kh::sandbox_bridge {

class sandbox;

enum class file_type { file, directory, symlink, other };

struct file_info {
  std::string name;
  std::string absolute_path;
  std::string relative_path;  // to the listed folder
  file_type type = file_type::file;
  std::uint64_t size = 0;
  timespec modified{};
  unsigned mode = 0;  // permission bits
};

struct file_content {
  std::string path;
  std::string bytes;
  std::string mime_type;
  bool is_binary = false;
  std::uint64_t size = 0;
};

// A write in parts (an upload as it arrives): the bytes go to a temp file beside the target and
// commit() puts it in the target's place in one step. Dropped without commit (a cut upload, a full disk), the temp
// file is removed and the target is untouched.
class atomic_write {
 public:
  atomic_write(atomic_write&&) noexcept = default;
  atomic_write& operator=(atomic_write&&) noexcept = default;
  ~atomic_write();

  result<void> append(std::string_view bytes);
  // Owned by the sandbox user, the target's mode kept; returns the normalized path.
  result<std::string> commit();
  std::uint64_t size() const noexcept { return size_; }

 private:
  friend class sandbox_files;
  atomic_write() = default;
  unique_fd dir_, file_;
  std::string path_, name_, tmp_;
  mode_t mode_ = 0644;
  bool replaces_file_ = false;  // a regular file of that name existed when the write began
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::uint64_t size_ = 0;
};

class sandbox_files {
 public:
  explicit sandbox_files(sandbox& owner, std::uint64_t max_read_bytes = 32ull << 20)
      : sandbox_(owner), max_read_bytes_(max_read_bytes) {}

  result<file_content> read(const std::string& path, const std::string& cwd) const;
  result<std::string> write(const std::string& path, const std::string& cwd, std::string_view bytes) const;
  // The same write in parts (atomic_write::append, then commit).
  result<atomic_write> begin_write(const std::string& path, const std::string& cwd) const;
  result<std::string> remove(const std::string& path, const std::string& cwd, bool recursive) const;
  result<std::string> rename(const std::string& from, const std::string& to, const std::string& cwd) const;
  result<std::string> mkdir(const std::string& path, const std::string& cwd, bool recursive) const;
  result<std::vector<file_info>> list(const std::string& path, const std::string& cwd, bool recursive,
                                      bool include_hidden) const;
  result<bool> exists(const std::string& path, const std::string& cwd) const;
  result<file_info> stat(const std::string& path, const std::string& cwd) const;

  // The absolute, normalized form of a caller's path (relative to cwd); /proc and /sys refused.
  result<std::string> normalize(const std::string& path, const std::string& cwd) const;

  // An open descriptor for a normalized path (for streaming), flags as for open(2).
  result<int> open(const std::string& normalized, int flags, mode_t mode = 0644) const;

  // "rwxr-xr-x"
  static std::string mode_string(unsigned mode);
  // "2025-01-02T03:04:05.123Z"
  static std::string iso_time(const timespec& t);

 private:
  result<int> open_dir(const std::string& normalized) const;  // O_PATH|O_DIRECTORY
  result<void> mkdirs(const std::string& normalized) const;

  sandbox& sandbox_;
  std::uint64_t max_read_bytes_;
};

// errno of a file operation -> the contract's error (FILE_NOT_FOUND, IS_DIRECTORY, READ_ONLY, ...).
error file_error(int err, const std::string& what, const std::string& path);

}  // namespace kh::sandbox_bridge
