#pragma once
// A real `kernel-host serve` for a test: the build's binary on 127.0.0.1 port 0 with a temporary
// data dir; its URL is read from the line it prints. Stopped (SIGTERM, then SIGKILL) on destruction.

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace kh::test {

class daemon_process {
 public:
  // Starts `<KH_BIN_DIR>/kernel-host serve --listen 127.0.0.1:0 --data-dir <temp> <extra_args>`
  // and waits (at most 60 s) for its "listening on http://..." line; records a test failure and
  // leaves url() empty when it does not come.
  explicit daemon_process(const std::vector<std::string>& extra_args = {});
  ~daemon_process();
  daemon_process(const daemon_process&) = delete;
  daemon_process& operator=(const daemon_process&) = delete;

  const std::string& url() const { return url_; }            // "http://127.0.0.1:PORT"
  const std::filesystem::path& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }
  // The daemon's own log (stdout and stderr after the URL line).
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::string url_;
  std::filesystem::path data_dir_;
  std::filesystem::path log_path_;
};

}  // namespace kh::test
