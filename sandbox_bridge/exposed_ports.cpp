#include "sandbox_bridge/exposed_ports.hpp"

#include <fstream>
#include <random>

#include <fmt/format.h>

#include "common/atomic_file.hpp"
#include "common/log.hpp"

namespace kh::sandbox_bridge {

namespace fs = std::filesystem;
namespace {

constexpr const char* kFile = "exposed_ports.json";

long long to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

exposed_ports::exposed_ports(fs::path sandboxes_dir) : dir_(std::move(sandboxes_dir)) {
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    std::ifstream in(it->path() / kFile);
    if (!in) continue;
    auto j = nl::json::parse(in, nullptr, false);
    if (!j.is_array()) {
      kh::log::get("sandbox")->warn("{}: not a JSON array: ignored", (it->path() / kFile).string());
      continue;
    }
    auto& ports = ports_[it->path().filename().string()];
    for (const auto& e : j) {
      if (!e.is_object() || !e.value("port", nl::json()).is_number_unsigned()) continue;
      exposed_port p;
      p.port = static_cast<std::uint16_t>(e["port"].get<unsigned>());
      p.name = e.value("name", "");
      p.token = e.value("token", "");
      p.exposed_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(e.value("exposedAtMs", 0LL)));
      if (valid_token(p.token)) ports[p.port] = std::move(p);
    }
  }
}

result<void> exposed_ports::save_locked(const std::string& sandbox_id) const {
  nl::json j = nl::json::array();
  if (auto it = ports_.find(sandbox_id); it != ports_.end())
    for (const auto& [port, p] : it->second)
      j.push_back({{"port", port}, {"name", p.name}, {"token", p.token}, {"exposedAtMs", to_ms(p.exposed_at)}});
  return write_file_atomically(dir_ / sandbox_id / kFile, j.dump(1) + '\n');
}

result<exposed_port> exposed_ports::expose(const std::string& sandbox_id, exposed_port p) {
  std::lock_guard lock(mutex_);
  auto& ports = ports_[sandbox_id];
  auto previous = ports.find(p.port) == ports.end() ? std::nullopt : std::optional(ports[p.port]);
  ports[p.port] = p;
  if (auto saved = save_locked(sandbox_id); !saved) {
    if (previous) ports[p.port] = *previous;
    else ports.erase(p.port);
    return std::unexpected(saved.error());
  }
  return p;
}

result<void> exposed_ports::unexpose(const std::string& sandbox_id, std::uint16_t port) {
  std::lock_guard lock(mutex_);
  auto it = ports_.find(sandbox_id);
  if (it == ports_.end() || !it->second.erase(port))
    return fail(errc::port_not_exposed, fmt::format("port {} is not exposed", port), {{"port", port}});
  return save_locked(sandbox_id);
}

std::vector<exposed_port> exposed_ports::list(const std::string& sandbox_id) const {
  std::lock_guard lock(mutex_);
  std::vector<exposed_port> out;
  if (auto it = ports_.find(sandbox_id); it != ports_.end())
    for (const auto& [port, p] : it->second) out.push_back(p);
  return out;
}

std::optional<exposed_port> exposed_ports::find(const std::string& sandbox_id, std::uint16_t port) const {
  std::lock_guard lock(mutex_);
  auto it = ports_.find(sandbox_id);
  if (it == ports_.end()) return std::nullopt;
  auto p = it->second.find(port);
  if (p == it->second.end()) return std::nullopt;
  return p->second;
}

void exposed_ports::forget(const std::string& sandbox_id) {
  std::lock_guard lock(mutex_);
  ports_.erase(sandbox_id);
}

std::string exposed_ports::new_token() {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789_";
  std::random_device rd;
  std::string out(16, 'a');
  for (auto& ch : out) ch = alphabet[rd() % (sizeof(alphabet) - 1)];
  return out;
}

bool exposed_ports::valid_token(std::string_view token) {
  if (token.empty() || token.size() > 16) return false;
  for (char ch : token)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return false;
  return true;
}

}  // namespace kh::sandbox_bridge
