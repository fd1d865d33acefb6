#include "contexts/connection_info.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <cerrno>
#include <cstring>

#include "common/ids.hpp"

namespace kh::contexts {
namespace fs = std::filesystem;
namespace {

// Closes a file descriptor at scope exit.
struct fd_guard {
  int fd = -1;
  fd_guard() = default;
  explicit fd_guard(int f) : fd(f) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

constexpr std::array all_channels = {channel::shell, channel::iopub, channel::input, channel::control,
                                     channel::heartbeat};

std::string port_key(channel ch) {
  return std::string(channel_name(ch)) + "_port";
}

int& port_ref(connection_info& info, channel ch) {
  switch (ch) {
    case channel::shell: return info.shell_port;
    case channel::control: return info.control_port;
    case channel::input: return info.stdin_port;
    case channel::iopub: return info.iopub_port;
    case channel::heartbeat: return info.hb_port;
  }
  return info.shell_port;
}

std::unexpected<error> bad_field(std::string_view field, std::string_view reason) {
  return fail(errc::invalid_request, "connection info: field " + std::string(field) + ": " + std::string(reason),
              {{"field", field}});
}

// The kernel's ephemeral port range (/proc/sys/net/ipv4/ip_local_port_range).
std::pair<int, int> ephemeral_range() {
  int low = 32768, high = 60999;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d %d", &low, &high) != 2) low = 32768, high = 60999;
    std::fclose(f);
  }
  return {low, high};
}

// Ports granted recently by this process, remembered for a minute.
std::mutex granted_mutex;
std::map<int, std::chrono::steady_clock::time_point> granted_ports;

bool try_bind(fd_guard& socket, int port) {
  socket.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (socket.fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(socket.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return true;
  ::close(socket.fd);
  socket.fd = -1;
  return false;
}

result<int> reserve_port(fd_guard& socket) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(granted_mutex);
  std::erase_if(granted_ports, [&](const auto& entry) { return now - entry.second > std::chrono::minutes(1); });
  const auto [ephemeral_low, ephemeral_high] = ephemeral_range();
  constexpr int lowest = 10000;
  if (ephemeral_low - lowest >= 2000) {
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> pick(lowest, ephemeral_low - 1);
    for (int attempt = 0; attempt < 200; ++attempt) {
      const int port = pick(rng);
      if (granted_ports.contains(port)) continue;
      if (try_bind(socket, port)) {
        granted_ports[port] = now;
        return port;
      }
    }
  }
  // No room below the ephemeral range (or all taken): let the kernel pick, as jupyter_client does.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (!try_bind(socket, 0)) return fail_errno("bind 127.0.0.1:0", errno);
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(socket.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return fail_errno("getsockname", errno);
    const int port = ntohs(addr.sin_port);
    if (!granted_ports.contains(port)) {
      granted_ports[port] = now;
      return port;
    }
    ::close(socket.fd);
    socket.fd = -1;
  }
  (void)ephemeral_high;
  return fail(errc::io_error, "no free TCP port on 127.0.0.1");
}

}  // namespace
std::string_view channel_name(channel ch) noexcept {
  switch (ch) {
    case channel::shell: return "shell";
    case channel::control: return "control";
    case channel::input: return "stdin";
    case channel::iopub: return "iopub";
    case channel::heartbeat: return "hb";
  }
  return "shell";
}

int connection_info::port(channel ch) const noexcept {
  switch (ch) {
    case channel::shell: return shell_port;
    case channel::control: return control_port;
    case channel::input: return stdin_port;
    case channel::iopub: return iopub_port;
    case channel::heartbeat: return hb_port;
  }
  return 0;
}

std::string connection_info::endpoint(channel ch) const {
  if (kind == transport::ipc) return "ipc://" + ip + "-" + std::to_string(port(ch));
  return "tcp://" + ip + ":" + std::to_string(port(ch));
}

nl::json connection_info::to_json() const {
  return {
      {"shell_port", shell_port},
      {"iopub_port", iopub_port},
      {"stdin_port", stdin_port},
      {"control_port", control_port},
      {"hb_port", hb_port},
      {"ip", ip},
      {"key", key},
      {"transport", kind == transport::ipc ? "ipc" : "tcp"},
      {"signature_scheme", signature_scheme},
      {"kernel_name", kernel_name},
  };
}

result<connection_info> connection_info::from_json(const nl::json& j) {
  if (!j.is_object()) return bad_field("(root)", "must be a JSON object");
  connection_info info;

  for (channel ch : all_channels) {
    const std::string key = port_key(ch);
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return bad_field(key, "must be an integer");
    const auto value = it->get<long long>();
    if (value < 0 || value > 65535) return bad_field(key, "must be between 0 and 65535");
    port_ref(info, ch) = static_cast<int>(value);
  }

  auto read_string = [&](const char* key, std::string& out, bool required) -> result<void> {
    const auto it = j.find(key);
    if (it == j.end()) {
      if (required) return bad_field(key, "is required");
      return {};
    }
    if (!it->is_string()) return bad_field(key, "must be a string");
    out = it->get<std::string>();
    return {};
  };
  if (auto r = read_string("ip", info.ip, true); !r) return std::unexpected(r.error());
  if (auto r = read_string("key", info.key, true); !r) return std::unexpected(r.error());
  if (auto r = read_string("signature_scheme", info.signature_scheme, false); !r) return std::unexpected(r.error());
  if (auto r = read_string("kernel_name", info.kernel_name, false); !r) return std::unexpected(r.error());

  std::string kind = "tcp";
  if (auto r = read_string("transport", kind, false); !r) return std::unexpected(r.error());
  if (kind == "tcp") {
    info.kind = transport::tcp;
  } else if (kind == "ipc") {
    info.kind = transport::ipc;
  } else {
    return bad_field("transport", "must be \"tcp\" or \"ipc\"");
  }
  return info;
}

result<connection_info> make_tcp_connection_info(std::string kernel_name) {
  connection_info info;
  info.kind = transport::tcp;
  info.ip = "127.0.0.1";
  info.kernel_name = std::move(kernel_name);

  // Ports come from below the kernel's ephemeral range, so that no outgoing connection (our own
  // clients' connects included) can take one between now and the kernel's bind(), and from a
  // process-wide memory of recent grants, so that kernels starting at the same time never get
  // the same port. All five stay bound until every one is chosen.
  std::array<fd_guard, all_channels.size()> sockets;
  for (std::size_t i = 0; i < all_channels.size(); ++i) {
    auto port = reserve_port(sockets[i]);
    if (!port) return std::unexpected(port.error());
    port_ref(info, all_channels[i]) = *port;
  }
  info.key = kh::random_hex(32);
  return info;
}

connection_info make_ipc_connection_info(const fs::path& dir, const std::string& stem, std::string kernel_name) {
  connection_info info;
  info.kind = transport::ipc;
  info.ip = (dir / stem).string();
  info.kernel_name = std::move(kernel_name);
  // jupyter_client numbers ipc "ports" from 1 in this same order.
  for (std::size_t i = 0; i < all_channels.size(); ++i) port_ref(info, all_channels[i]) = static_cast<int>(i + 1);
  info.key = kh::random_hex(32);
  return info;
}

result<void> write_connection_file(const connection_info& info, const fs::path& path) {
  // Created 0600 and fchmod'ed in case it already existed with a wider mode: the key in it
  // lets anyone who reads it run code in the kernel. O_NOFOLLOW refuses a planted symlink.
  fd_guard file(::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (file.fd < 0) return fail_errno("open " + path.string(), errno);
  if (::fchmod(file.fd, 0600) != 0) return fail_errno("fchmod " + path.string(), errno);

  const std::string text = info.to_json().dump(2) + "\n";
  for (std::size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(file.fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("write " + path.string(), errno);
    }
    done += static_cast<std::size_t>(n);
  }
  const int fd = file.fd;
  file.fd = -1;
  if (::close(fd) != 0) return fail_errno("close " + path.string(), errno);
  return {};
}

result<connection_info> read_connection_file(const fs::path& path) {
  fd_guard file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return fail(errc::file_not_found, "connection file " + path.string() + " does not exist",
                  {{"path", path.string()}});
    }
    return fail_errno("open " + path.string(), err);
  }
  std::string text;
  std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t n = ::read(file.fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read " + path.string(), errno);
    }
    if (n == 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  nl::json j;
  try {
    j = nl::json::parse(text);
  } catch (const nl::json::exception& e) {
    return fail(errc::invalid_request, "connection file " + path.string() + ": not valid JSON: " + e.what(),
                {{"path", path.string()}});
  }
  auto info = connection_info::from_json(j);
  if (!info) {
    info.error().message = "connection file " + path.string() + ": " + info.error().message;
    info.error().details["path"] = path.string();
  }
  return info;
}

void remove_ipc_files(const connection_info& info) {
  if (info.kind != transport::ipc) return;
  for (channel ch : all_channels) {
    const std::string file = info.ip + "-" + std::to_string(info.port(ch));
    ::unlink(file.c_str());  // already gone (or never bound) is fine
  }
}

}  // namespace kh::contexts
