#pragma once
// exposed_ports: which ports of which sandbox are reachable through preview URLs, and with which
// token. In memory, and persisted per sandbox in <sandbox_dir>/exposed_ports.json so a host
// restart keeps them (the folder, and the file with it, goes away when the sandbox is destroyed).
// Thread-safe; lookups never touch the disk (everything is loaded by the constructor).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace kh::sandbox_bridge {

struct exposed_port {
  std::uint16_t port = 0;
  std::string name;   // optional label
  std::string token;  // [a-z0-9_]{1,16}
  std::chrono::system_clock::time_point exposed_at;
};

class exposed_ports {
 public:
  // Loads <sandboxes_dir>/<id>/exposed_ports.json of every sandbox on disk.
  explicit exposed_ports(std::filesystem::path sandboxes_dir);

  // Exposes (or exposes again, with the new name and token) a port; persists it.
  result<exposed_port> expose(const std::string& sandbox_id, exposed_port p);
  // Errors: port_not_exposed.
  result<void> unexpose(const std::string& sandbox_id, std::uint16_t port);
  std::vector<exposed_port> list(const std::string& sandbox_id) const;
  std::optional<exposed_port> find(const std::string& sandbox_id, std::uint16_t port) const;
  // Forgets every port of a sandbox (it is being destroyed); the file goes with its folder.
  void forget(const std::string& sandbox_id);

  // 16 random characters of [a-z0-9_].
  static std::string new_token();
  static bool valid_token(std::string_view token);

 private:
  result<void> save_locked(const std::string& sandbox_id) const;

  std::filesystem::path dir_;
  mutable std::mutex mutex_;
  std::map<std::string, std::map<std::uint16_t, exposed_port>> ports_;
};

}  // namespace kh::sandbox_bridge
