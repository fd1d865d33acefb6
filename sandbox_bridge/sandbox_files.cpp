#include "sandbox_bridge/sandbox_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "sandbox_bridge/child_process.hpp"
#include "sandbox_bridge/mime.hpp"
#include "sandbox_bridge/sandbox.hpp"
#include "sandbox_bridge/sandbox_path.hpp"

namespace kh::sandbox_bridge {

namespace {

int openat2_fd(int dirfd, const char* path, int flags, mode_t mode, std::uint64_t resolve) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? mode : 0;  // O_TMPFILE includes O_DIRECTORY
  how.resolve = resolve;
  while (true) {
    long r = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (r >= 0) return static_cast<int>(r);
    if (errno != EAGAIN && errno != EINTR) return -1;
  }
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:012x}", rng() & 0xffffffffffffULL);
}

file_type type_of(mode_t m) {
  if (S_ISREG(m)) return file_type::file;
  if (S_ISDIR(m)) return file_type::directory;
  if (S_ISLNK(m)) return file_type::symlink;
  return file_type::other;
}

// Removes everything inside dirfd without following symlinks.
int remove_tree_at(int parent, const char* name) {
  int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    return e;
  }
  int err = 0;
  std::vector<std::pair<std::string, bool>> entries;
  while (auto* e = ::readdir(d)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    bool dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st {};
      dir = ::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    entries.emplace_back(e->d_name, dir);
  }
  for (auto& [n, dir] : entries) {
    if (dir) {
      if (int e = remove_tree_at(fd, n.c_str())) err = err ? err : e;
    } else if (::unlinkat(fd, n.c_str(), 0) != 0) {
      err = err ? err : errno;
    }
  }
  ::closedir(d);
  if (::unlinkat(parent, name, AT_REMOVEDIR) != 0) err = err ? err : errno;
  return err;
}

}  // namespace

error file_error(int err, const std::string& what, const std::string& path) {
  nl::json details{{"path", path}, {"errno", err}};
  std::string msg = fmt::format("{} {}: {}", what, path, std::strerror(err));
  switch (err) {
    case ENOENT: return {errc::file_not_found, fmt::format("{} {}: no such file or directory", what, path), details};
    case EISDIR: return {errc::is_directory, fmt::format("{} {}: is a directory", what, path), details};
    case ENOTDIR: return {errc::not_directory, fmt::format("{} {}: not a directory", what, path), details};
    case EEXIST:
    case ENOTEMPTY: return {errc::file_exists, msg, details};
    case EROFS: return {errc::read_only, fmt::format("{} {}: read-only part of the sandbox", what, path), details};
    case EACCES:
    case EPERM: return {errc::permission_denied, msg, details};
    case EXDEV:
    case ELOOP:
      details["reason"] = "path_escape";
      return {errc::permission_denied,
              fmt::format("{} {}: the path resolves outside the allowed folder (symlink or ..)", what, path), details};
    case ENOSPC:
    case EDQUOT: return {errc::no_space, msg, details};
    case EFBIG: return {errc::file_too_large, msg, details};
    case ENAMETOOLONG: return {errc::validation_failed, msg, details};
    default: return {errc::filesystem_error, msg, details};
  }
}

result<std::string> sandbox_files::normalize(const std::string& path, const std::string& cwd) const {
  auto n = normalize_sandbox_path(path, cwd);
  if (!n) return n;
  for (const char* denied : {"/proc", "/sys"})
    if (is_within(*n, denied))
      return fail(errc::permission_denied, fmt::format("{} is not accessible through the file API", *n),
                  {{"path", path}, {"reason", "path_not_allowed"}});
  return n;
}

result<int> sandbox_files::open(const std::string& n, int flags, mode_t mode) const {
  int base;
  std::string rel;
  std::uint64_t resolve = RESOLVE_NO_MAGICLINKS;
  if (is_within(n, "/workspace")) {
    base = sandbox_.workspace_fd();
    rel = n.size() > 10 ? n.substr(11) : ".";
    resolve |= RESOLVE_BENEATH;
  } else {
    base = sandbox_.root_fd();
    rel = n == "/" ? "." : n.substr(1);
    resolve |= RESOLVE_IN_ROOT;
  }
  if (base < 0) return fail(errc::sandbox_not_found, "the sandbox is not running");
  int fd = openat2_fd(base, rel.c_str(), flags, mode, resolve);
  if (fd < 0) return std::unexpected(file_error(errno, "open", n));
  return fd;
}

result<int> sandbox_files::open_dir(const std::string& n) const { return open(n, O_PATH | O_DIRECTORY); }

result<void> sandbox_files::mkdirs(const std::string& n) const {
  if (n == "/" || n == "/workspace") return {};
  auto fd = open_dir(n);
  if (fd) {
    ::close(*fd);
    return {};
  }
  if (fd.error().code != errc::file_not_found) return std::unexpected(fd.error());
  auto [parent, name] = split_parent(n);
  if (auto r = mkdirs(parent); !r) return r;
  auto pfd = open_dir(parent);
  if (!pfd) return std::unexpected(pfd.error());
  unique_fd p(*pfd);
  if (::mkdirat(p.get(), name.c_str(), 0755) != 0 && errno != EEXIST)
    return std::unexpected(file_error(errno, "mkdir", n));
  ::fchownat(p.get(), name.c_str(), sandbox_.uid(), sandbox_.gid(), AT_SYMLINK_NOFOLLOW);
  return {};
}

result<file_content> sandbox_files::read(const std::string& path, const std::string& cwd) const {
  auto n = normalize(path, cwd);
  if (!n) return std::unexpected(n.error());
  auto fd = open(*n, O_RDONLY);
  if (!fd) return std::unexpected(fd.error());
  unique_fd f(*fd);
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) return std::unexpected(file_error(errno, "stat", *n));
  if (S_ISDIR(st.st_mode)) return std::unexpected(file_error(EISDIR, "read", *n));
  if (static_cast<std::uint64_t>(st.st_size) > max_read_bytes_)
    return fail(errc::file_too_large, fmt::format("{} is {} bytes, above the {} byte limit of a read", *n,
                                                  st.st_size, max_read_bytes_),
                {{"path", *n}, {"actualSize", st.st_size}, {"maxSize", max_read_bytes_}});
  file_content out;
  out.path = *n;
  out.bytes.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (true) {
    if (got == out.bytes.size()) out.bytes.resize(got + 65536);
    ssize_t r = ::read(f.get(), out.bytes.data() + got, out.bytes.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return std::unexpected(file_error(errno, "read", *n));
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
    if (got > max_read_bytes_) return fail(errc::file_too_large, *n + " grew above the read limit");
  }
  out.bytes.resize(got);
  out.size = got;
  out.mime_type = detect_mime(*n, out.bytes);
  out.is_binary = !mime_is_text(out.mime_type);
  return out;
}

result<atomic_write> sandbox_files::begin_write(const std::string& path, const std::string& cwd) const {
  auto n = normalize(path, cwd);
  if (!n) return std::unexpected(n.error());
  auto [parent, name] = split_parent(*n);
  if (name.empty()) return std::unexpected(file_error(EISDIR, "write", *n));
  if (auto r = mkdirs(parent); !r) return std::unexpected(r.error());
  auto pfd = open_dir(parent);
  if (!pfd) return std::unexpected(pfd.error());
  atomic_write w;
  w.dir_.reset(*pfd);
  struct stat st {};
  if (::fstatat(w.dir_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) return std::unexpected(file_error(EISDIR, "write", *n));
    if (S_ISREG(st.st_mode)) {
      w.mode_ = st.st_mode & 07777;
      w.replaces_file_ = true;
    }
  }
  std::string tmp = fmt::format(".{}.kh-{}", name.substr(0, 200), random_suffix());
  int fd = ::openat(w.dir_.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, w.mode_);
  if (fd < 0) return std::unexpected(file_error(errno, "write", *n));
  w.file_.reset(fd);
  w.tmp_ = std::move(tmp);
  w.path_ = *n;
  w.name_ = name;
  w.uid_ = sandbox_.uid();
  w.gid_ = sandbox_.gid();
  return w;
}

atomic_write::~atomic_write() {
  if (file_ && dir_) ::unlinkat(dir_.get(), tmp_.c_str(), 0);  // not committed
}

result<void> atomic_write::append(std::string_view bytes) {
  if (!file_) return std::unexpected(file_error(EBADF, "write", path_));
  if (auto r = write_all(file_.get(), bytes); !r) return std::unexpected(file_error(r.error().details.value("errno", EIO), "write", path_));
  size_ += bytes.size();
  return {};
}

result<std::string> atomic_write::commit() {
  if (!file_) return std::unexpected(file_error(EBADF, "write", path_));
  ::fchown(file_.get(), uid_, gid_);
  ::fchmod(file_.get(), mode_);
  file_.reset();
  // Replacing a file: the two names are swapped, then the old content (now under the temp name)
  // is removed. Readers see the old file or the new one, as with a rename over it, but ext4 does
  // not start writing the new data out at once as it does on a rename over an existing file
  // (auto_da_alloc): 1 MiB rewritten in a loop was a disk write each time. Any other case (no
  // target, a filesystem without RENAME_EXCHANGE): a plain rename.
  if (replaces_file_ && ::renameat2(dir_.get(), tmp_.c_str(), dir_.get(), name_.c_str(), RENAME_EXCHANGE) == 0) {
    ::unlinkat(dir_.get(), tmp_.c_str(), 0);
    return path_;
  }
  if (::renameat(dir_.get(), tmp_.c_str(), dir_.get(), name_.c_str()) != 0) {
    const int e = errno;
    ::unlinkat(dir_.get(), tmp_.c_str(), 0);
    return std::unexpected(file_error(e, "write", path_));
  }
  return path_;
}

result<std::string> sandbox_files::write(const std::string& path, const std::string& cwd,
                                         std::string_view bytes) const {
  auto w = begin_write(path, cwd);
  if (!w) return std::unexpected(w.error());
  if (auto r = w->append(bytes); !r) return std::unexpected(r.error());
  return w->commit();
}

result<std::string> sandbox_files::remove(const std::string& path, const std::string& cwd, bool recursive) const {
  auto n = normalize(path, cwd);
  if (!n) return std::unexpected(n.error());
  if (*n == "/" || *n == "/workspace" || *n == "/tmp" || *n == "/home/user")
    return fail(errc::permission_denied, *n + " cannot be deleted", {{"path", *n}});
  auto [parent, name] = split_parent(*n);
  auto pfd = open_dir(parent);
  if (!pfd) return std::unexpected(pfd.error());
  unique_fd p(*pfd);
  struct stat st {};
  if (::fstatat(p.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return std::unexpected(file_error(errno, "delete", *n));
  if (S_ISDIR(st.st_mode)) {
    if (!recursive)
      return fail(errc::is_directory, *n + " is a directory: pass recursive: true to delete it",
                  {{"path", *n}});
    // remove_tree_at needs a real (not O_PATH) parent for openat: reopen it.
    auto rp = open(parent, O_RDONLY | O_DIRECTORY);
    if (!rp) return std::unexpected(rp.error());
    unique_fd r(*rp);
    if (int e = remove_tree_at(r.get(), name.c_str())) return std::unexpected(file_error(e, "delete", *n));
    return *n;
  }
  if (::unlinkat(p.get(), name.c_str(), 0) != 0) return std::unexpected(file_error(errno, "delete", *n));
  return *n;
}

result<std::string> sandbox_files::rename(const std::string& from, const std::string& to,
                                          const std::string& cwd) const {
  auto a = normalize(from, cwd);
  if (!a) return std::unexpected(a.error());
  auto b = normalize(to, cwd);
  if (!b) return std::unexpected(b.error());
  auto [pa, na] = split_parent(*a);
  auto [pb, nb] = split_parent(*b);
  if (na.empty() || nb.empty()) return fail(errc::permission_denied, "the root cannot be renamed");
  auto fa = open_dir(pa);
  if (!fa) return std::unexpected(fa.error());
  unique_fd da(*fa);
  struct stat st {};
  if (::fstatat(da.get(), na.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return std::unexpected(file_error(errno, "rename", *a));
  if (auto r = mkdirs(pb); !r) return std::unexpected(r.error());
  auto fb = open_dir(pb);
  if (!fb) return std::unexpected(fb.error());
  unique_fd db(*fb);
  if (::renameat(da.get(), na.c_str(), db.get(), nb.c_str()) == 0) return *b;
  int e = errno;
  if (e == EXDEV && S_ISREG(st.st_mode)) {  // across mounts (/tmp -> /workspace): copy, then unlink
    auto content = read(*a, "/");
    if (!content) return std::unexpected(content.error());
    if (auto w = write(*b, "/", content->bytes); !w) return std::unexpected(w.error());
    ::unlinkat(da.get(), na.c_str(), 0);
    return *b;
  }
  if (e == EXDEV) return fail(errc::filesystem_error, fmt::format("{} and {} are on different mounts", *a, *b));
  return std::unexpected(file_error(e, "rename", *a));
}

result<std::string> sandbox_files::mkdir(const std::string& path, const std::string& cwd, bool recursive) const {
  auto n = normalize(path, cwd);
  if (!n) return std::unexpected(n.error());
  if (recursive) {
    if (auto r = mkdirs(*n); !r) return std::unexpected(r.error());
    auto fd = open_dir(*n);  // an existing file is not a folder
    if (!fd) return std::unexpected(fd.error());
    ::close(*fd);
    return *n;
  }
  auto [parent, name] = split_parent(*n);
  if (name.empty()) return std::unexpected(file_error(EEXIST, "mkdir", *n));
  auto pfd = open_dir(parent);
  if (!pfd) return std::unexpected(pfd.error());
  unique_fd p(*pfd);
  if (::mkdirat(p.get(), name.c_str(), 0755) != 0) return std::unexpected(file_error(errno, "mkdir", *n));
  ::fchownat(p.get(), name.c_str(), sandbox_.uid(), sandbox_.gid(), AT_SYMLINK_NOFOLLOW);
  return *n;
}

result<std::vector<file_info>> sandbox_files::list(const std::string& path, const std::string& cwd,
                                                    bool recursive, bool include_hidden) const {
  auto n = normalize(path, cwd);
  if (!n) return std::unexpected(n.error());
  std::vector<file_info> out;
  // Breadth over folders, each opened relative to its parent without following symlinks.
  struct pending {
    std::string abs, rel;
  };
  std::vector<pending> todo{{*n, ""}};
  bool first = true;
  while (!todo.empty()) {
    auto cur = todo.back();
    todo.pop_back();
    auto fd = open(cur.abs, O_RDONLY | O_DIRECTORY | (first ? 0 : O_NOFOLLOW));
    if (!fd) {
      if (first && fd.error().code == errc::filesystem_error) return std::unexpected(fd.error());
      if (first) return std::unexpected(fd.error());
      continue;
    }
    first = false;
    DIR* d = ::fdopendir(*fd);
    if (!d) {
      ::close(*fd);
      continue;
    }
    while (auto* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (!include_hidden && name.front() == '.') continue;
      struct stat st {};
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      file_info fi;
      fi.name = name;
      fi.absolute_path = cur.abs == "/" ? "/" + name : cur.abs + "/" + name;
      fi.relative_path = cur.rel.empty() ? name : cur.rel + "/" + name;
      fi.type = type_of(st.st_mode);
      fi.size = static_cast<std::uint64_t>(st.st_size);
      fi.modified = st.st_mtim;
      fi.mode = st.st_mode & 07777;
      if (recursive && fi.type == file_type::directory) todo.push_back({fi.absolute_path, fi.relative_path});
      out.push_back(std::move(fi));
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.relative_path < b.relative_path; });
  return out;
}

result<file_info> sandbox_files::stat(const std::string& path, const std::string& cwd) const {
  auto n = normalize(path, cwd);
  if (!n) return std::unexpected(n.error());
  auto fd = open(*n, O_PATH);
  if (!fd) return std::unexpected(fd.error());
  unique_fd f(*fd);
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) return std::unexpected(file_error(errno, "stat", *n));
  file_info fi;
  fi.name = split_parent(*n).second;
  fi.absolute_path = *n;
  fi.relative_path = fi.name;
  fi.type = type_of(st.st_mode);
  fi.size = static_cast<std::uint64_t>(st.st_size);
  fi.modified = st.st_mtim;
  fi.mode = st.st_mode & 07777;
  return fi;
}

result<bool> sandbox_files::exists(const std::string& path, const std::string& cwd) const {
  auto s = stat(path, cwd);
  if (s) return true;
  if (s.error().code == errc::file_not_found || s.error().code == errc::not_directory) return false;
  return std::unexpected(s.error());
}

std::string sandbox_files::mode_string(unsigned mode) {
  std::string s;
  const char* rwx = "rwx";
  for (int i = 8; i >= 0; --i) s += (mode & (1u << i)) ? rwx[(8 - i) % 3] : '-';
  return s;
}

std::string sandbox_files::iso_time(const timespec& t) {
  std::tm tm{};
  time_t secs = t.tv_sec;
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, t.tv_nsec / 1000000);
}

}  // namespace kh::sandbox_bridge
