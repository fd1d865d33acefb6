#pragma once
// Connection info of a kernel: transport, address, the five ports, and the HMAC key.

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace kh::contexts {

enum class channel { shell, control, input /* Jupyter's "stdin" channel */, iopub, heartbeat };

std::string_view channel_name(channel ch) noexcept;  // "shell", "control", "stdin", "iopub", "hb"

enum class transport { tcp, ipc };

struct connection_info {
  transport kind = transport::tcp;
  std::string ip = "127.0.0.1";  // tcp: the address; ipc: the socket path prefix ("{ip}-{port}" files)
  int shell_port = 0;
  int iopub_port = 0;
  int stdin_port = 0;
  int control_port = 0;
  int hb_port = 0;
  std::string key;  // hex HMAC key, never empty when made by us
  std::string signature_scheme = "hmac-sha256";
  std::string kernel_name;

  int port(channel ch) const noexcept;
  // "tcp://127.0.0.1:5555" or "ipc:///run/x/kernel-1"
  std::string endpoint(channel ch) const;

  nl::json to_json() const;
  static result<connection_info> from_json(const nl::json& j);
};

// tcp on 127.0.0.1 with five distinct free ports (bound and released), and a random 256-bit key.
result<connection_info> make_tcp_connection_info(std::string kernel_name = {});

// ipc with socket files "<dir>/<stem>-1" .. "-5" and a random key. `dir` must exist.
connection_info make_ipc_connection_info(const std::filesystem::path& dir, const std::string& stem,
                                         std::string kernel_name = {});

// Writes the connection file with mode 0600 (created, never world-readable even briefly).
result<void> write_connection_file(const connection_info& info, const std::filesystem::path& path);

// Reads a connection file (for tools that attach to an existing kernel).
result<connection_info> read_connection_file(const std::filesystem::path& path);

// Removes ipc socket files, if any (after the kernel is gone).
void remove_ipc_files(const connection_info& info);

}  // namespace kh::contexts
