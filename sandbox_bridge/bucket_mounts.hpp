#pragma once
// bucket_mounts: S3-compatible buckets mounted with s3fs (FUSE) inside sandboxes.
//
// Mechanism. s3fs runs as root in the HOST's PID and network namespaces (so it reaches the S3
// endpoint even when the sandbox has no network) but in the sandbox's MOUNT namespace
// (`nsenter -t <sandbox init> -m`), so its FUSE mount appears at mountPath for every process of
// the sandbox and nowhere else. bwrap's minimal /dev has no fuse device and is mounted nodev, so
// before the first mount a root helper in that namespace makes a 0600 root-only /dev/fuse (mknod
// on a private tmpfs without nodev, bind-mounted onto /dev/fuse, tmpfs detached again).
// s3fs mounts with allow_other,uid=,gid=,umask=022 so the sandbox user reads and writes the files.
//
// Credentials (request, else the daemon's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else
// R2_ACCESS_KEY_ID/R2_SECRET_ACCESS_KEY) reach s3fs through its environment only: the process
// lives in the host PID namespace, so the sandbox's /proc never shows it, and nothing is written
// in the sandbox's view. They are never logged. s3fs runs in the foreground (-f) with its log in
// <sandbox dir>/buckets/ on the host (not bound inside).
//
// A mount is answered only once it is verified: the mount is in /proc/<init>/mountinfo as
// fuse.s3fs, a stat of the mountpoint inside the namespace succeeded (that waits for s3fs's FUSE
// init, where s3fs checks the bucket), and s3fs still runs. Otherwise s3fs_mount_error with the
// tail of its log. Mount operations are serialized per sandbox. Unmount (and destroy, and the
// daemon's stop) run `umount` in the namespace (lazy when busy), then stop s3fs.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "sandbox_bridge/sandbox_manager.hpp"

namespace kh::sandbox_bridge {

struct bucket_credentials {
  std::string access_key_id;
  std::string secret_access_key;
};

struct bucket_mount_request {
  std::string bucket;
  std::string mount_path;                    // absolute and normalized, inside the sandbox
  std::string endpoint;                      // http(s)://host[:port][/...]
  std::optional<std::string> provider;       // "r2" | "s3" | "gcs"; detected from the endpoint when absent
  std::string prefix;                        // a folder of the bucket ("" = the whole bucket)
  bool read_only = false;
  std::optional<bucket_credentials> credentials;
  std::vector<std::string> s3fs_options;     // extra `-o` options ("key" or "key=value")
};

struct bucket_mount_info {
  std::string sandbox_id;
  std::string bucket;
  std::string mount_path;
  std::string endpoint;
  std::string provider;  // "r2", "s3", "gcs" or "unknown"
  std::string prefix;
  bool read_only = false;
  pid_t s3fs_pid = -1;
  std::chrono::system_clock::time_point mounted_at;
  std::chrono::milliseconds mount_time{0};  // from spawning s3fs to the verified mount
};

struct bucket_mounts_options {
  std::filesystem::path s3fs = "/usr/bin/s3fs";
  std::chrono::milliseconds mount_timeout{30000};
  std::chrono::milliseconds unmount_grace{3000};  // umount -> s3fs exits, else SIGKILL
  // Fallback credentials, normally the daemon's environment (see from_environment()).
  std::map<std::string, std::string> env;
  static bucket_mounts_options from_environment();
};

class bucket_mounts {
 public:
  bucket_mounts(sandbox_manager& sandboxes, bucket_mounts_options options);
  ~bucket_mounts();  // unmount_everything()
  bucket_mounts(const bucket_mounts&) = delete;
  bucket_mounts& operator=(const bucket_mounts&) = delete;

  // Errors: invalid_mount_config (bad bucket, path, endpoint, prefix, provider, option; a path in
  // use), missing_credentials, s3fs_mount_error (details: exitCode, logTail), sandbox_not_found.
  result<bucket_mount_info> mount(const std::string& sandbox_id, const bucket_mount_request& request);
  // Errors: invalid_mount_config (no mount there), bucket_unmount_error.
  result<void> unmount(const std::string& sandbox_id, const std::string& mount_path);
  // The live mounts of a sandbox (mounts whose s3fs died are dropped).
  std::vector<bucket_mount_info> list(const std::string& sandbox_id);
  // Unmounts every bucket of the sandbox and stops its s3fs processes (sandbox destroy).
  void unmount_all(const std::string& sandbox_id);
  // Every sandbox's (daemon stop). Idempotent.
  void unmount_everything();

  // Checks a request without touching any sandbox; the first problem as invalid_mount_config.
  static result<void> validate(const bucket_mount_request& request);
  // "r2", "s3", "gcs" or "unknown" from the endpoint's host.
  static std::string detect_provider(const std::string& endpoint);

 private:
  struct mount_record;
  struct sandbox_mounts;
  std::shared_ptr<sandbox_mounts> state_of(const std::string& sandbox_id);
  result<bucket_credentials> credentials_for(const bucket_mount_request& request) const;
  void drop_dead_locked(sandbox_mounts& s, pid_t current_init);
  void stop_record(mount_record& r);

  sandbox_manager& sandboxes_;
  bucket_mounts_options options_;
  std::mutex mutex_;  // guards sandboxes_state_
  std::map<std::string, std::shared_ptr<sandbox_mounts>> sandboxes_state_;
  std::uint64_t next_log_ = 1;
};

// Mount points of a mountinfo file as (mount point, fstype), escapes (\040 ...) decoded.
std::vector<std::pair<std::string, std::string>> read_mountinfo(const std::filesystem::path& file);

}  // namespace kh::sandbox_bridge
