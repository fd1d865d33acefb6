#include "sandbox_bridge/bucket_mounts.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "common/log.hpp"
#include "sandbox_bridge/child_process.hpp"
#include "sandbox_bridge/namespace_sandbox.hpp"

extern char** environ;

namespace kh::sandbox_bridge {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct bucket_mounts::mount_record {
  bucket_mount_info info;
  pid_t init_pid = -1;
  child_process s3fs;
  fs::path log;
};

struct bucket_mounts::sandbox_mounts {
  std::mutex op;    // serializes mount, unmount and teardown of one sandbox
  std::mutex data;  // guards mounts and fuse_ready_init
  std::vector<std::unique_ptr<mount_record>> mounts;
  pid_t fuse_ready_init = -1;  // the init whose mount namespace has /dev/fuse
};

namespace {

constexpr const char* kHelperPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

// Makes a root-only /dev/fuse in the (nodev) bwrap /dev: mknod on a private tmpfs that allows
// devices, bind the node onto /dev/fuse, detach the tmpfs. /run is root-owned 0755 inside.
constexpr const char* kMakeFuseDevice = R"sh(set -e
[ -c /dev/fuse ] && exit 0
d=$(mktemp -d /run/.kh-fuse.XXXXXX)
mount -t tmpfs -o mode=0700,size=16k tmpfs "$d"
mknod "$d/fuse" c 10 229
chmod 0600 "$d/fuse"
[ -e /dev/fuse ] || : > /dev/fuse
mount --bind "$d/fuse" /dev/fuse
umount "$d"
rmdir "$d"
)sh";

// The mount point: created when missing, a directory, empty unless the caller allows otherwise.
constexpr const char* kPrepareMountPoint = R"sh(set -e
mkdir -p -- "$1"
[ -d "$1" ] || { echo "$1 is not a directory" >&2; exit 3; }
[ "$2" = nonempty ] || [ -z "$(ls -A -- "$1")" ] || { echo "$1 is not empty" >&2; exit 4; }
)sh";

struct helper_result {
  int exit_code = -1;
  std::string output;  // stderr, then stdout
  bool timed_out = false;
};

// Runs argv as root in the mount namespace of init (host PID and network namespaces).
helper_result run_in_mount_ns(pid_t init, std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  spawn_spec spec;
  spec.argv = {"/usr/bin/nsenter", "-t", std::to_string(init), "-m", "--"};
  spec.argv.insert(spec.argv.end(), argv.begin(), argv.end());
  spec.env = {kHelperPath, "LANG=C.UTF-8"};
  helper_result r;
  auto child = child_process::spawn(spec);
  if (!child) {
    r.output = child.error().message;
    return r;
  }
  auto out = collect_output(*child, "", timeout, {}, 500ms);
  r.exit_code = exit_code_of(out.wait_status);
  r.timed_out = out.timed_out;
  r.output = out.stderr_data + out.stdout_data;
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == ' ')) r.output.pop_back();
  return r;
}

bool process_alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// Waits for the child to exit; true when it did within timeout.
bool wait_exit(child_process& c, std::chrono::milliseconds timeout) {
  if (c.exited() || c.try_wait()) return true;
  auto deadline = clock_type::now() + timeout;
  while (clock_type::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (c.pidfd() >= 0) {
      pollfd p{c.pidfd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::clamp<long long>(left, 1, 50)));
    } else {
      std::this_thread::sleep_for(10ms);
    }
    if (c.try_wait()) return true;
  }
  return false;
}

std::string log_tail(const fs::path& log, std::size_t max_lines = 20, std::size_t max_bytes = 4096) {
  std::ifstream in(log, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (all.size() > 64 * 1024) all.erase(0, all.size() - 64 * 1024);
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < all.size()) {
    auto nl = all.find('\n', start);
    if (nl == std::string::npos) nl = all.size();
    std::string line = all.substr(start, nl - start);
    if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(std::move(line));
    start = nl + 1;
  }
  std::string out;
  for (std::size_t i = lines.size() > max_lines ? lines.size() - max_lines : 0; i < lines.size(); ++i) {
    out += lines[i];
    out += '\n';
  }
  if (out.size() > max_bytes) out.erase(0, out.size() - max_bytes);
  return out;
}

bool has_control_or_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

bool is_mounted(pid_t init, const std::string& mount_path, std::string* fstype = nullptr) {
  auto points = read_mountinfo(fs::path("/proc") / std::to_string(init) / "mountinfo");
  // The last entry for a path is the visible one.
  for (auto it = points.rbegin(); it != points.rend(); ++it)
    if (it->first == mount_path) {
      if (fstype) *fstype = it->second;
      return true;
    }
  return false;
}

error invalid(std::string message, nl::json details = nl::json::object()) {
  return error{errc::invalid_mount_config, std::move(message), std::move(details)};
}

}  // namespace

std::vector<std::pair<std::string, std::string>> read_mountinfo(const fs::path& file) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in(file);
  std::string line;
  auto unescape = [](std::string_view s) {
    std::string r;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\\' && i + 3 < s.size() &&
          std::all_of(s.begin() + static_cast<long>(i) + 1, s.begin() + static_cast<long>(i) + 4, [](char c) { return c >= '0' && c <= '7'; })) {
        r += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
        i += 3;
      } else {
        r += s[i];
      }
    }
    return r;
  };
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    std::vector<std::string_view> f;
    std::string_view v(line);
    while (!v.empty()) {
      auto sp = v.find(' ');
      f.push_back(v.substr(0, sp));
      if (sp == std::string_view::npos) break;
      v.remove_prefix(sp + 1);
    }
    if (f.size() < 7) continue;
    auto dash = std::find(f.begin() + 6, f.end(), std::string_view("-"));
    if (dash == f.end() || dash + 1 == f.end()) continue;
    out.emplace_back(unescape(f[4]), std::string(*(dash + 1)));
  }
  return out;
}

bucket_mounts_options bucket_mounts_options::from_environment() {
  bucket_mounts_options o;
  for (const char* k : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"})
    if (const char* v = std::getenv(k); v && *v) o.env[k] = v;
  return o;
}

bucket_mounts::bucket_mounts(sandbox_manager& sandboxes, bucket_mounts_options options)
    : sandboxes_(sandboxes), options_(std::move(options)) {}

bucket_mounts::~bucket_mounts() { unmount_everything(); }

std::string bucket_mounts::detect_provider(const std::string& endpoint) {
  std::string host = endpoint;
  if (auto p = host.find("://"); p != std::string::npos) host.erase(0, p + 3);
  host = host.substr(0, host.find_first_of("/:?#"));
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto ends_with = [&](std::string_view s) { return host.size() >= s.size() && host.compare(host.size() - s.size(), s.size(), s) == 0; };
  if (ends_with(".r2.cloudflarestorage.com")) return "r2";
  if (host == "amazonaws.com" || ends_with(".amazonaws.com")) return "s3";
  if (host == "storage.googleapis.com") return "gcs";
  return "unknown";
}

result<void> bucket_mounts::validate(const bucket_mount_request& r) {
  // Bucket: the S3 naming rules.
  const auto& b = r.bucket;
  bool bucket_ok = b.size() >= 3 && b.size() <= 63 && std::isalnum(static_cast<unsigned char>(b.front())) &&
                   std::isalnum(static_cast<unsigned char>(b.back())) && b.find("..") == std::string::npos &&
                   std::all_of(b.begin(), b.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'; });
  if (!bucket_ok)
    return std::unexpected(invalid("bucket '" + b + "' is not a valid bucket name: 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit",
                                   {{"field", "bucket"}}));
  // Mount path: absolute, normalized, outside the system folders.
  const auto& p = r.mount_path;
  if (p.empty() || p.front() != '/')
    return std::unexpected(invalid("mountPath must be an absolute path (e.g. /mnt/data)", {{"field", "mountPath"}, {"mountPath", p}}));
  if (p == "/" || p.size() > 1024 || p.back() == '/' || p.find("//") != std::string::npos ||
      std::any_of(p.begin(), p.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return std::unexpected(invalid("mountPath must be a normalized absolute path below / without a trailing slash", {{"field", "mountPath"}, {"mountPath", p}}));
  for (std::size_t start = 1; start <= p.size();) {
    auto end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    auto seg = std::string_view(p).substr(start, end - start);
    if (seg == "." || seg == "..")
      return std::unexpected(invalid("mountPath must not contain '.' or '..' segments", {{"field", "mountPath"}, {"mountPath", p}}));
    start = end + 1;
  }
  for (std::string_view sys : {"/usr", "/proc", "/sys", "/dev", "/run", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    if (p == sys || (p.size() > sys.size() && p.compare(0, sys.size(), sys) == 0 && p[sys.size()] == '/'))
      return std::unexpected(invalid(fmt::format("mountPath must not be inside {} (a system folder of the sandbox)", sys),
                                     {{"field", "mountPath"}, {"mountPath", p}}));
  }
  // Endpoint: an http(s) URL that fits in an s3fs option.
  const auto& e = r.endpoint;
  bool scheme = e.rfind("http://", 0) == 0 || e.rfind("https://", 0) == 0;
  auto host_start = e.find("://");
  if (!scheme || host_start + 3 >= e.size() || e[host_start + 3] == '/' || e.find(',') != std::string::npos || has_control_or_space(e))
    return std::unexpected(invalid("endpoint must be an http:// or https:// URL (e.g. https://<account>.r2.cloudflarestorage.com)", {{"field", "endpoint"}}));
  if (r.provider && *r.provider != "r2" && *r.provider != "s3" && *r.provider != "gcs")
    return std::unexpected(invalid("provider must be \"r2\", \"s3\" or \"gcs\" (or omitted to detect it from the endpoint)", {{"field", "provider"}}));
  // Prefix: a folder of the bucket.
  if (!r.prefix.empty()) {
    const auto& x = r.prefix;
    bool bad = x.find(',') != std::string::npos || x.find(':') != std::string::npos || has_control_or_space(x) || x.size() > 1024;
    for (std::size_t start = 0; !bad && start <= x.size();) {
      auto end = x.find('/', start);
      if (end == std::string::npos) end = x.size();
      auto seg = std::string_view(x).substr(start, end - start);
      if (seg == "." || seg == "..") bad = true;
      start = end + 1;
    }
    if (bad)
      return std::unexpected(invalid("prefix must be a folder of the bucket such as /data/2024 (no '.', '..', ',', ':' or spaces)", {{"field", "prefix"}}));
  }
  if (r.credentials && (r.credentials->access_key_id.empty() || r.credentials->secret_access_key.empty()))
    return std::unexpected(invalid("credentials need both accessKeyId and secretAccessKey", {{"field", "credentials"}}));
  // s3fs options: plain `key` or `key=value`; those that name host files, load code, or are set by
  // the daemon are refused.
  static const std::vector<std::string_view> reserved = {
      "url", "passwd_file", "logfile", "dbglevel", "curldbg", "use_cache", "tmpdir", "ahbe_conf", "credlib", "credlib_opts",
      "ssl_client_cert", "uid", "gid", "allow_other", "allow_root", "ro", "rw", "bucket", "f", "d", "foreground"};
  for (const auto& o : r.s3fs_options) {
    if (o.empty() || o.front() == '-' || o.find(',') != std::string::npos || has_control_or_space(o))
      return std::unexpected(invalid(fmt::format("s3fsOptions entry '{}' must be one option such as \"stat_cache_expire=60\" (no ',', spaces or leading '-')", o),
                                     {{"field", "s3fsOptions"}}));
    auto key = std::string_view(o).substr(0, o.find('='));
    if (std::find(reserved.begin(), reserved.end(), key) != reserved.end())
      return std::unexpected(invalid(fmt::format("s3fsOptions must not set '{}': kernel-host sets it", key), {{"field", "s3fsOptions"}, {"option", std::string(key)}}));
  }
  return {};
}

result<bucket_credentials> bucket_mounts::credentials_for(const bucket_mount_request& r) const {
  if (r.credentials) return *r.credentials;
  auto pair = [&](const char* id, const char* secret) -> std::optional<bucket_credentials> {
    auto a = options_.env.find(id), s = options_.env.find(secret);
    if (a == options_.env.end() || s == options_.env.end() || a->second.empty() || s->second.empty()) return std::nullopt;
    return bucket_credentials{a->second, s->second};
  };
  if (auto c = pair("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")) return *c;
  if (auto c = pair("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY")) return *c;
  return fail(errc::missing_credentials,
              "no S3 credentials: pass credentials {accessKeyId, secretAccessKey} or start kernel-host with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set");
}

std::shared_ptr<bucket_mounts::sandbox_mounts> bucket_mounts::state_of(const std::string& sandbox_id) {
  std::lock_guard lock(mutex_);
  auto& s = sandboxes_state_[sandbox_id];
  if (!s) s = std::make_shared<sandbox_mounts>();
  return s;
}

void bucket_mounts::drop_dead_locked(sandbox_mounts& s, pid_t current_init) {
  for (auto it = s.mounts.begin(); it != s.mounts.end();) {
    auto& r = **it;
    bool s3fs_gone = r.s3fs.exited() || r.s3fs.try_wait().has_value();
    bool init_gone = !process_alive(r.init_pid) || (current_init > 0 && current_init != r.init_pid);
    if (s3fs_gone || init_gone) {
      kh::log::get("sandbox")->warn("sandbox {}: bucket mount {} ended ({})", r.info.sandbox_id, r.info.mount_path,
                                    s3fs_gone ? "s3fs exited" : "the sandbox restarted");
      if (!s3fs_gone) stop_record(r);
      std::error_code ec;
      fs::remove(r.log, ec);
      it = s.mounts.erase(it);
    } else {
      ++it;
    }
  }
}

void bucket_mounts::stop_record(mount_record& r) {
  if (!r.s3fs.exited() && process_alive(r.init_pid)) {
    // Unmounting makes s3fs leave its loop and exit. Lazy detaches even while a process of the
    // sandbox has a file or its cwd in the mount.
    auto u = run_in_mount_ns(r.init_pid, {"/usr/bin/umount", "--", r.info.mount_path}, 10s);
    if (u.exit_code != 0 && is_mounted(r.init_pid, r.info.mount_path))
      run_in_mount_ns(r.init_pid, {"/usr/bin/umount", "-l", "--", r.info.mount_path}, 10s);
  }
  if (!wait_exit(r.s3fs, options_.unmount_grace)) {
    ::kill(r.s3fs.pid(), SIGTERM);
    if (!wait_exit(r.s3fs, 1s)) {
      ::kill(r.s3fs.pid(), SIGKILL);
      r.s3fs.wait();
    }
  }
}

result<bucket_mount_info> bucket_mounts::mount(const std::string& sandbox_id, const bucket_mount_request& request) {
  auto log = kh::log::get("sandbox");
  if (auto v = validate(request); !v) return std::unexpected(v.error());
  auto creds = credentials_for(request);
  if (!creds) return std::unexpected(creds.error());
  auto runtime = sandboxes_.get(sandbox_id);
  if (!runtime) return std::unexpected(runtime.error());
  auto* ns = dynamic_cast<namespace_sandbox*>(&(*runtime)->box());
  if (!ns || ns->init_pid() <= 0 || !ns->alive())
    return fail(errc::s3fs_mount_error, "the sandbox has no mount namespace to mount into (it is not running)", {{"sandboxId", sandbox_id}});
  const pid_t init = ns->init_pid();
  const std::string& mp = request.mount_path;

  auto state = state_of(sandbox_id);
  std::lock_guard op(state->op);
  pid_t fuse_ready;
  {
    std::lock_guard data(state->data);
    drop_dead_locked(*state, init);
    for (auto& r : state->mounts) {
      const auto& other = r->info.mount_path;
      if (other == mp) return std::unexpected(invalid(fmt::format("{} already has a bucket mounted ({})", mp, r->info.bucket), {{"mountPath", mp}}));
      if (mp.size() > other.size() && mp.compare(0, other.size(), other) == 0 && mp[other.size()] == '/')
        return std::unexpected(invalid(fmt::format("{} is inside the bucket mounted at {}", mp, other), {{"mountPath", mp}}));
    }
    fuse_ready = state->fuse_ready_init;
  }
  if (std::string fstype; is_mounted(init, mp, &fstype))
    return std::unexpected(invalid(fmt::format("{} is already a mount point ({}) in the sandbox", mp, fstype), {{"mountPath", mp}}));

  if (fuse_ready != init) {
    auto f = run_in_mount_ns(init, {"/bin/sh", "-c", kMakeFuseDevice}, 10s);
    if (f.exit_code != 0)
      return fail(errc::s3fs_mount_error, "could not provide /dev/fuse inside the sandbox: " + f.output, {{"logTail", f.output}});
    std::lock_guard data(state->data);
    state->fuse_ready_init = init;
  }
  bool nonempty = std::find(request.s3fs_options.begin(), request.s3fs_options.end(), "nonempty") != request.s3fs_options.end();
  auto prep = run_in_mount_ns(init, {"/bin/sh", "-c", kPrepareMountPoint, "sh", mp, nonempty ? "nonempty" : ""}, 10s);
  if (prep.exit_code != 0)
    return std::unexpected(invalid(fmt::format("cannot mount at {}: {}", mp, prep.output.empty() ? "mkdir failed" : prep.output), {{"mountPath", mp}}));

  // s3fs's log: on the host, in the sandbox's folder, outside everything bound inside.
  fs::path log_dir = sandboxes_.sandbox_dir(sandbox_id) / "buckets";
  std::error_code ec;
  fs::create_directories(log_dir, ec);
  ::chmod(log_dir.c_str(), 0700);
  fs::path log_file;
  {
    std::lock_guard lock(mutex_);
    log_file = log_dir / fmt::format("s3fs-{}.log", next_log_++);
  }
  unique_fd log_fd(::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log_fd) return fail_errno("open " + log_file.string(), errno);

  std::string provider = request.provider.value_or(detect_provider(request.endpoint));
  std::string opts = fmt::format("url={},allow_other,uid={},gid={},umask=0022,mp_umask=0022,dbglevel=err", request.endpoint,
                                 ns->uid(), ns->gid());
  if (provider == "r2") opts += ",nomixupload";
  else if (provider == "unknown") opts += ",use_path_request_style";
  if (request.read_only) opts += ",ro";
  for (const auto& o : request.s3fs_options)
    if (o != "use_path_request_style" || provider != "unknown") opts += "," + o;
  std::string source = request.bucket;
  std::string prefix;
  if (!request.prefix.empty()) {
    prefix = request.prefix;
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    while (prefix.size() > 1 && prefix[0] == '/' && prefix[1] == '/') prefix.erase(0, 1);
    if (!prefix.empty() && prefix.front() != '/') prefix.insert(0, "/");
    if (prefix.size() > 1) source += ":" + prefix;
    else prefix.clear();
  }

  spawn_spec spec;
  // The shell (host side) points s3fs's stdout and stderr at the log before nsenter switches the
  // mount namespace; nsenter -m execs s3fs without forking, so the child's pid is s3fs's.
  spec.argv = {"/bin/sh", "-c", "exec \"$@\" >&3 2>&3 3>&-", "sh", "/usr/bin/nsenter", "-t", std::to_string(init), "-m", "--",
               options_.s3fs.string(), source, mp, "-f", "-o", opts};
  spec.env = {kHelperPath, "LANG=C.UTF-8", "AWSACCESSKEYID=" + creds->access_key_id, "AWSSECRETACCESSKEY=" + creds->secret_access_key};
  spec.pipe_output = false;
  spec.extra_fd = log_fd.get();
  auto started = clock_type::now();
  auto child = child_process::spawn(spec);
  log_fd.reset();
  if (!child) return fail(errc::s3fs_mount_error, "could not start s3fs: " + child.error().message);

  auto failed = [&](std::string why) -> std::unexpected<error> {
    // Whatever happened, leave nothing mounted and no s3fs running.
    if (!child->exited() && process_alive(init)) {
      if (is_mounted(init, mp)) run_in_mount_ns(init, {"/usr/bin/umount", "-l", "--", mp}, 10s);
      if (!wait_exit(*child, 1s)) {
        ::kill(child->pid(), SIGKILL);
        child->wait();
      }
    }
    auto tail = log_tail(log_file);
    nl::json details{{"bucket", request.bucket}, {"mountPath", mp}, {"endpoint", request.endpoint}, {"logTail", tail}};
    if (child->status()) details["exitCode"] = exit_code_of(*child->status());
    log->warn("sandbox {}: s3fs mount of {} at {} failed: {}", sandbox_id, request.bucket, mp, why);
    return std::unexpected(error{errc::s3fs_mount_error, fmt::format("s3fs could not mount {} at {}: {}", request.bucket, mp, why), std::move(details)});
  };

  auto deadline = started + options_.mount_timeout;
  bool verified = false;
  while (clock_type::now() < deadline) {
    if (wait_exit(*child, 25ms)) return failed(fmt::format("s3fs exited with code {}", exit_code_of(*child->status())));
    std::string fstype;
    if (!is_mounted(init, mp, &fstype)) continue;
    if (fstype != "fuse.s3fs") return failed("another file system appeared at the mount point (" + fstype + ")");
    // A stat waits for s3fs's FUSE init, where it checks the bucket; a failed check ends the loop.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    auto st = run_in_mount_ns(init, {"/usr/bin/stat", "-c", "%i", "--", mp}, std::max(left, 100ms));
    if (st.exit_code != 0) {
      wait_exit(*child, 2s);
      return failed(st.timed_out ? "the mount did not answer" : "the mount does not answer: " + st.output);
    }
    // s3fs ends its loop right after a failed bucket check; the FUSE reply to init may precede that.
    if (wait_exit(*child, 100ms)) return failed(fmt::format("s3fs exited with code {}", exit_code_of(*child->status())));
    if (!is_mounted(init, mp)) return failed("the mount went away");
    verified = true;
    break;
  }
  if (!verified) return failed(fmt::format("not mounted within {} ms", options_.mount_timeout.count()));

  auto record = std::make_unique<mount_record>();
  record->info = bucket_mount_info{.sandbox_id = sandbox_id,
                                   .bucket = request.bucket,
                                   .mount_path = mp,
                                   .endpoint = request.endpoint,
                                   .provider = provider,
                                   .prefix = prefix,
                                   .read_only = request.read_only,
                                   .s3fs_pid = child->pid(),
                                   .mounted_at = std::chrono::system_clock::now(),
                                   .mount_time = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started)};
  record->init_pid = init;
  record->s3fs = std::move(*child);
  record->log = log_file;
  auto info = record->info;
  {
    std::lock_guard data(state->data);
    state->mounts.push_back(std::move(record));
  }
  log->info("sandbox {}: mounted bucket {} at {} ({} ms, s3fs pid {})", sandbox_id, info.bucket, mp, info.mount_time.count(), info.s3fs_pid);
  return info;
}

result<void> bucket_mounts::unmount(const std::string& sandbox_id, const std::string& mount_path) {
  if (mount_path.empty() || mount_path.front() != '/')
    return std::unexpected(invalid("mountPath must be an absolute path", {{"field", "mountPath"}}));
  std::string mp = mount_path;
  while (mp.size() > 1 && mp.back() == '/') mp.pop_back();
  auto state = state_of(sandbox_id);
  std::lock_guard op(state->op);
  std::unique_ptr<mount_record> record;
  {
    std::lock_guard data(state->data);
    drop_dead_locked(*state, -1);
    auto it = std::find_if(state->mounts.begin(), state->mounts.end(), [&](auto& r) { return r->info.mount_path == mp; });
    if (it == state->mounts.end())
      return std::unexpected(invalid(fmt::format("no bucket is mounted at {}", mp), {{"mountPath", mp}}));
    record = std::move(*it);
    state->mounts.erase(it);
  }
  stop_record(*record);
  std::error_code ec;
  fs::remove(record->log, ec);
  if (process_alive(record->init_pid) && is_mounted(record->init_pid, mp))
    return fail(errc::bucket_unmount_error, fmt::format("{} is still mounted", mp), {{"mountPath", mp}});
  kh::log::get("sandbox")->info("sandbox {}: unmounted bucket {} from {}", sandbox_id, record->info.bucket, mp);
  return {};
}

std::vector<bucket_mount_info> bucket_mounts::list(const std::string& sandbox_id) {
  std::shared_ptr<sandbox_mounts> state;
  {
    std::lock_guard lock(mutex_);
    auto it = sandboxes_state_.find(sandbox_id);
    if (it == sandboxes_state_.end()) return {};
    state = it->second;
  }
  std::lock_guard data(state->data);
  drop_dead_locked(*state, -1);
  std::vector<bucket_mount_info> out;
  for (auto& r : state->mounts) out.push_back(r->info);
  return out;
}

void bucket_mounts::unmount_all(const std::string& sandbox_id) {
  std::shared_ptr<sandbox_mounts> state;
  {
    std::lock_guard lock(mutex_);
    auto it = sandboxes_state_.find(sandbox_id);
    if (it == sandboxes_state_.end()) return;
    state = it->second;
    sandboxes_state_.erase(it);
  }
  std::lock_guard op(state->op);
  std::vector<std::unique_ptr<mount_record>> records;
  {
    std::lock_guard data(state->data);
    records = std::move(state->mounts);
    state->mounts.clear();
  }
  for (auto& r : records) {
    stop_record(*r);
    std::error_code ec;
    fs::remove(r->log, ec);
    kh::log::get("sandbox")->info("sandbox {}: unmounted bucket {} from {}", sandbox_id, r->info.bucket, r->info.mount_path);
  }
}

void bucket_mounts::unmount_everything() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, s] : sandboxes_state_) ids.push_back(id);
  }
  for (auto& id : ids) unmount_all(id);
}

}  // namespace kh::sandbox_bridge
