#include "support/test_env.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include <gtest/gtest.h>

#include "common/ids.hpp"

namespace kh::test {

std::vector<std::filesystem::path> data_path() {
  return contexts::jupyter_data_path({KH_TEST_DATA_DIR, KH_BUILD_DATA_DIR, KH_DEPS_DATA_DIR});
}

contexts::reactor& shared_reactor() {
  static contexts::reactor r;
  return r;
}

std::filesystem::path temp_dir(const std::string& stem) {
  auto dir = std::filesystem::temp_directory_path() / ("kh-test-" + stem + "-" + kh::random_hex(4));
  std::filesystem::create_directories(dir);
  return dir;
}

contexts::kernelspec spec(const std::string& name) {
  auto found = contexts::find_kernelspec(name, data_path());
  if (!found) {
    ADD_FAILURE() << found.error().to_string();
    return {};
  }
  return *found;
}

contexts::kernel_options test_options() {
  contexts::kernel_options options;
  static const auto runtime = temp_dir("runtime");
  options.runtime_dir = runtime;
  options.shutdown_wait = std::chrono::milliseconds(2000);
  options.terminate_wait = std::chrono::milliseconds(1500);
  return options;
}

std::unique_ptr<contexts::kernel_manager> start_kernel(const std::string& name, contexts::kernel_options options) {
  auto started = contexts::kernel_manager::start(shared_reactor(), spec(name), std::move(options));
  if (!started) {
    ADD_FAILURE() << "starting " << name << ": " << started.error().to_string() << "\n"
                  << started.error().details.dump();
    return nullptr;
  }
  return std::move(*started);
}

std::string stream_text(const contexts::execution_result& r, const std::string& name) {
  std::string out;
  for (const auto& msg : r.outputs)
    if (msg.msg_type() == "stream" && msg.content.value("name", "") == name) out += msg.content.value("text", "");
  return out;
}

std::filesystem::path repo_root() { return std::filesystem::path(KH_TEST_SOURCE_DIR).parent_path(); }

std::string python_kernel_name() {
  return std::filesystem::exists(std::filesystem::path(KH_BIN_DIR) / "kernel-host-python") &&
                 std::filesystem::exists(std::filesystem::path(KH_BUILD_DATA_DIR) / "kernels/kernel-host-python/kernel.json")
             ? "kernel-host-python"
             : "python3";
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool process_gone(int pid) {
  if (pid <= 0) return true;
  if (::kill(pid, 0) != 0) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  std::getline(stat, content);
  auto close = content.rfind(')');
  return close != std::string::npos && close + 2 < content.size() && content[close + 2] == 'Z';
}

bool process_reaped(int pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace kh::test
