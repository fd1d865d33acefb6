#include "contexts/connection_info.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_folder.hpp"

namespace kh::contexts {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using temp_folder = kh::test::temp_folder;

// Restores the umask at scope exit.
class scoped_umask {
 public:
  explicit scoped_umask(mode_t mask) : old_(::umask(mask)) {}
  ~scoped_umask() { ::umask(old_); }

 private:
  mode_t old_;
};

constexpr channel all_channels[] = {channel::shell, channel::iopub, channel::input, channel::control,
                                    channel::heartbeat};

mode_t file_mode(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

bool is_lower_hex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(connection_info, channel_names) {
  EXPECT_EQ(channel_name(channel::shell), "shell");
  EXPECT_EQ(channel_name(channel::control), "control");
  EXPECT_EQ(channel_name(channel::input), "stdin");
  EXPECT_EQ(channel_name(channel::iopub), "iopub");
  EXPECT_EQ(channel_name(channel::heartbeat), "hb");
}

TEST(connection_info, tcp_has_distinct_free_ports_and_a_random_key) {
  auto info = make_tcp_connection_info("python3");
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->kind, transport::tcp);
  EXPECT_EQ(info->ip, "127.0.0.1");
  EXPECT_EQ(info->kernel_name, "python3");
  EXPECT_EQ(info->signature_scheme, "hmac-sha256");

  std::set<int> ports;
  for (channel ch : all_channels) {
    EXPECT_GT(info->port(ch), 0);
    EXPECT_LE(info->port(ch), 65535);
    ports.insert(info->port(ch));
  }
  EXPECT_EQ(ports.size(), 5u);

  EXPECT_EQ(info->key.size(), 64u);
  EXPECT_TRUE(is_lower_hex(info->key)) << info->key;
  auto other = make_tcp_connection_info();
  ASSERT_TRUE(other);
  EXPECT_NE(other->key, info->key);
}

TEST(connection_info, tcp_endpoints) {
  connection_info info;
  info.shell_port = 1001;
  info.iopub_port = 1002;
  info.stdin_port = 1003;
  info.control_port = 1004;
  info.hb_port = 1005;
  EXPECT_EQ(info.endpoint(channel::shell), "tcp://127.0.0.1:1001");
  EXPECT_EQ(info.endpoint(channel::iopub), "tcp://127.0.0.1:1002");
  EXPECT_EQ(info.endpoint(channel::input), "tcp://127.0.0.1:1003");
  EXPECT_EQ(info.endpoint(channel::control), "tcp://127.0.0.1:1004");
  EXPECT_EQ(info.endpoint(channel::heartbeat), "tcp://127.0.0.1:1005");
}

TEST(connection_info, ipc_endpoints_are_socket_files) {
  const auto info = make_ipc_connection_info("/run/kh", "kernel-abc", "deno");
  EXPECT_EQ(info.kind, transport::ipc);
  EXPECT_EQ(info.ip, "/run/kh/kernel-abc");
  EXPECT_EQ(info.kernel_name, "deno");
  EXPECT_EQ(info.key.size(), 64u);
  std::set<std::string> endpoints;
  for (channel ch : all_channels) {
    EXPECT_GE(info.port(ch), 1);
    EXPECT_LE(info.port(ch), 5);
    endpoints.insert(info.endpoint(ch));
  }
  EXPECT_EQ(endpoints.size(), 5u);
  EXPECT_EQ(info.endpoint(channel::shell), "ipc:///run/kh/kernel-abc-" + std::to_string(info.shell_port));
}

TEST(connection_info, json_round_trip) {
  auto info = make_tcp_connection_info("kh-test");
  ASSERT_TRUE(info);
  const nl::json j = info->to_json();
  for (const char* key : {"shell_port", "iopub_port", "stdin_port", "control_port", "hb_port", "ip", "key",
                          "transport", "signature_scheme", "kernel_name"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["transport"], "tcp");
  EXPECT_EQ(j["shell_port"], info->shell_port);

  auto back = connection_info::from_json(j);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->to_json(), j);

  const auto ipc = make_ipc_connection_info("/tmp", "k");
  auto ipc_back = connection_info::from_json(ipc.to_json());
  ASSERT_TRUE(ipc_back);
  EXPECT_EQ(ipc_back->kind, transport::ipc);
  EXPECT_EQ(ipc_back->ip, "/tmp/k");
}

TEST(connection_info, from_json_accepts_minimal_files_from_other_tools) {
  // Optional keys missing, unknown keys present (as written by some launchers).
  auto info = connection_info::from_json(nl::json::parse(R"({
    "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5,
    "ip": "10.0.0.1", "key": "", "date": "2024-01-01"})"));
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->kind, transport::tcp);
  EXPECT_EQ(info->signature_scheme, "hmac-sha256");
  EXPECT_EQ(info->endpoint(channel::heartbeat), "tcp://10.0.0.1:5");
}

TEST(connection_info, from_json_rejects_wrong_types) {
  const nl::json good = make_ipc_connection_info("/tmp", "k").to_json();
  struct bad_case {
    const char* key;
    nl::json value;  // null: remove the key
  };
  const bad_case cases[] = {
      {"shell_port", "5555"}, {"iopub_port", nullptr}, {"hb_port", 1.5}, {"control_port", 70000},
      {"stdin_port", -1},     {"ip", 127},             {"ip", nullptr},  {"key", nullptr},
      {"key", 42},            {"transport", "udp"},    {"transport", 1}, {"signature_scheme", false},
      {"kernel_name", nl::json::array()},
  };
  for (const auto& c : cases) {
    nl::json j = good;
    if (c.value.is_null()) {
      j.erase(c.key);
    } else {
      j[c.key] = c.value;
    }
    auto info = connection_info::from_json(j);
    ASSERT_FALSE(info) << c.key << " = " << c.value;
    EXPECT_EQ(info.error().code, errc::invalid_request) << c.key;
    EXPECT_THAT(info.error().message, HasSubstr(c.key));
  }
  EXPECT_FALSE(connection_info::from_json(nl::json::array()));
  EXPECT_FALSE(connection_info::from_json("text"));
}

TEST(connection_info, file_is_private_and_round_trips) {
  temp_folder tmp;
  scoped_umask open_umask(0);  // a permissive umask must not widen the file
  auto info = make_tcp_connection_info("k");
  ASSERT_TRUE(info);
  const auto path = tmp.path() / "kernel-1.json";
  ASSERT_TRUE(write_connection_file(*info, path));
  EXPECT_EQ(file_mode(path), 0600);

  auto back = read_connection_file(path);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->to_json(), info->to_json());
}

TEST(connection_info, existing_file_is_narrowed_and_truncated) {
  temp_folder tmp;
  const auto path = tmp.path() / "kernel-2.json";
  std::ofstream(path) << std::string(10000, ' ') << "{}";
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);

  const auto info = make_ipc_connection_info(tmp.path(), "k");
  ASSERT_TRUE(write_connection_file(info, path));
  EXPECT_EQ(file_mode(path), 0600);
  auto back = read_connection_file(path);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->key, info.key);
}

TEST(connection_info, file_errors) {
  temp_folder tmp;
  auto written = write_connection_file(make_ipc_connection_info(tmp.path(), "k"), tmp.path() / "no/such/dir.json");
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, errc::io_error);
  EXPECT_THAT(written.error().message, HasSubstr("no/such/dir.json"));

  auto missing = read_connection_file(tmp.path() / "missing.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::file_not_found);

  std::ofstream(tmp.path() / "garbage.json") << "{ nope";
  auto garbage = read_connection_file(tmp.path() / "garbage.json");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code, errc::invalid_request);

  std::ofstream(tmp.path() / "wrong.json") << R"({"shell_port": "x"})";
  auto wrong = read_connection_file(tmp.path() / "wrong.json");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, errc::invalid_request);
  EXPECT_THAT(wrong.error().message, HasSubstr("wrong.json"));
}

TEST(connection_info, remove_ipc_files_removes_only_the_sockets) {
  temp_folder tmp;
  const auto info = make_ipc_connection_info(tmp.path(), "kernel-x");
  for (channel ch : all_channels) std::ofstream(info.ip + "-" + std::to_string(info.port(ch)));
  std::ofstream(tmp.path() / "other");
  remove_ipc_files(info);
  for (channel ch : all_channels) EXPECT_FALSE(fs::exists(info.ip + "-" + std::to_string(info.port(ch))));
  EXPECT_TRUE(fs::exists(tmp.path() / "other"));
  remove_ipc_files(info);  // already gone: no error

  // tcp: nothing to remove, even if files with such names exist.
  connection_info tcp;
  tcp.ip = (tmp.path() / "other").string();
  tcp.shell_port = 1;
  std::ofstream(tcp.ip + "-1");
  remove_ipc_files(tcp);
  EXPECT_TRUE(fs::exists(tcp.ip + "-1"));
}

}  // namespace
}  // namespace kh::contexts
