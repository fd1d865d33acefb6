// Path resolution inside a sandbox root (sandbox_bridge/sandbox_path + sandbox_files): the
// lexical normalisation, then the kernel's openat2 resolution (RESOLVE_BENEATH below /workspace,
// RESOLVE_IN_ROOT elsewhere) against a real folder tree that holds every kind of escape: relative
// and absolute symlinks out of the workspace and out of the root, ".." chains, a symlink loop,
// and a secret file beside the root. The input is "path\ncwd". Properties: nothing throws; a
// normalized path is absolute, canonical and idempotent; every descriptor the file API opens is
// inside the root (inside the workspace for /workspace paths); the secret is never read; /proc and
// /sys are refused; every refusal is a 4xx-class code.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "fuzz/fuzz_common.hpp"
#include "sandbox_bridge/sandbox.hpp"
#include "sandbox_bridge/sandbox_files.hpp"
#include "sandbox_bridge/sandbox_path.hpp"

namespace fs = std::filesystem;
namespace sb = kh::sandbox_bridge;

namespace {

// A sandbox that is only its folders: the file API needs the two descriptors and the owner.
class folder_sandbox final : public sb::sandbox {
 public:
  explicit folder_sandbox(const fs::path& root)
      : root_fd_(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)),
        workspace_fd_(::open((root / "workspace").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) {}
  const sb::sandbox_options& options() const noexcept override { return options_; }
  kh::result<sb::child_process> run(const sb::run_spec&) override {
    return kh::fail(kh::errc::internal_error, "no processes in the fuzz sandbox");
  }
  int root_fd() const noexcept override { return root_fd_; }
  int workspace_fd() const noexcept override { return workspace_fd_; }
  uid_t uid() const noexcept override { return ::getuid(); }
  gid_t gid() const noexcept override { return ::getgid(); }
  std::map<std::string, std::string> base_env() const override { return {}; }
  std::string limit_mechanism() const override { return "rlimit"; }
  std::vector<pid_t> host_pids() const override { return {}; }
  bool alive() const override { return true; }
  void stop() override {}

 private:
  sb::sandbox_options options_{.id = "fuzz"};
  int root_fd_;
  int workspace_fd_;
};

struct tree {
  fs::path base, root, workspace;
  std::unique_ptr<folder_sandbox> box;
  std::unique_ptr<sb::sandbox_files> files;

  tree() {
    char tmpl[] = "/tmp/kh-fuzz-path-XXXXXX";
    base = ::mkdtemp(tmpl);
    root = base / "root";
    workspace = root / "workspace";
    fs::create_directories(workspace / "sub" / "deeper");
    fs::create_directories(root / "etc");
    fs::create_directories(root / "proc" / "1");
    fs::create_directories(base / "outside");
    std::ofstream(base / "outside" / "secret") << "SECRET-OF-THE-HOST";
    std::ofstream(root / "etc" / "hostname") << "sandbox";
    std::ofstream(workspace / "a.txt") << "a";
    std::ofstream(workspace / "sub" / "b.txt") << "b";
    fs::create_symlink("../..", workspace / "up");
    fs::create_symlink("../../outside/secret", workspace / "esc");
    fs::create_symlink("/etc/hostname", workspace / "abs");
    fs::create_symlink(base / "outside" / "secret", workspace / "host_abs");
    fs::create_symlink("/workspace/../../outside/secret", root / "etc" / "via_root");
    fs::create_symlink("../outside", root / "out");
    fs::create_symlink("loop", workspace / "loop");
    fs::create_symlink(".", workspace / "self");
    fs::create_symlink("/proc/self/root", workspace / "magic");
    box = std::make_unique<folder_sandbox>(root);
    files = std::make_unique<sb::sandbox_files>(*box, 1 << 16);
  }
  ~tree() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

tree& the_tree() {
  static tree t;
  return t;
}

std::string fd_path(int fd) {
  std::error_code ec;
  return fs::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string();
}

bool inside(const std::string& p, const fs::path& dir) {
  const std::string d = dir.string();
  return p == d || (p.size() > d.size() && p.compare(0, d.size(), d) == 0 && p[d.size()] == '/');
}

void check_refusal(const kh::error& e) {
  using kh::errc;
  KH_FUZZ_CHECK(e.code == errc::validation_failed || e.code == errc::permission_denied || e.code == errc::file_not_found ||
                e.code == errc::not_directory || e.code == errc::is_directory || e.code == errc::file_too_large ||
                e.code == errc::read_only);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tree& t = the_tree();
  auto parts = kh::fuzz::split(std::string_view(reinterpret_cast<const char*>(data), size), "\n");
  const std::string path = parts[0];
  const std::string cwd = parts.size() > 1 ? parts[1] : "/workspace";

  auto lexical = sb::normalize_sandbox_path(path, cwd);
  if (lexical) {
    const std::string& n = *lexical;
    KH_FUZZ_CHECK(!n.empty() && n.front() == '/');
    KH_FUZZ_CHECK(n == "/" || n.back() != '/');
    KH_FUZZ_CHECK(n.find("//") == std::string::npos && n.find("/./") == std::string::npos &&
                  n.find("/../") == std::string::npos && !n.ends_with("/..") && !n.ends_with("/."));
    auto again = sb::normalize_sandbox_path(n, "/");
    KH_FUZZ_CHECK(again && *again == n);
    auto [parent, name] = sb::split_parent(n);
    KH_FUZZ_CHECK(n == "/" || (parent == "/" ? "/" + name : parent + "/" + name) == n);
    KH_FUZZ_CHECK(sb::is_within(n, parent));
  }

  auto n = t.files->normalize(path, cwd);
  if (!n) {
    check_refusal(n.error());
    return 0;
  }
  KH_FUZZ_CHECK(lexical && *lexical == *n);
  KH_FUZZ_CHECK(!sb::is_within(*n, "/proc") && !sb::is_within(*n, "/sys"));

  if (auto fd = t.files->open(*n, O_PATH)) {
    const std::string real = fd_path(*fd);
    ::close(*fd);
    KH_FUZZ_CHECK(inside(real, t.root));
    if (sb::is_within(*n, "/workspace")) KH_FUZZ_CHECK(inside(real, t.workspace));
  } else {
    check_refusal(fd.error());
  }
  if (auto content = t.files->read(path, cwd)) {
    KH_FUZZ_CHECK(content->bytes.find("SECRET-OF-THE-HOST") == std::string::npos);
  } else {
    check_refusal(content.error());
  }
  if (auto st = t.files->stat(path, cwd); !st) check_refusal(st.error());
  if (auto listing = t.files->list(path, cwd, false, true)) {
    for (const auto& f : *listing) KH_FUZZ_CHECK(f.absolute_path.front() == '/');
  } else {
    check_refusal(listing.error());
  }
  return 0;
}
