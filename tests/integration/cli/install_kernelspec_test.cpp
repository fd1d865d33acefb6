// `kernel-host install-kernelspec`: the installed spec is valid and launches kernel-host-python.

#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_env.hpp"

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;

int run_cli(const std::string& args) {
  const std::string cmd = std::string(KH_BIN_DIR) + "/kernel-host " + args + " >/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(install_kernelspec, prefix_install_is_found_and_launches) {
  const auto prefix = test::temp_dir("prefix");
  ASSERT_EQ(run_cli("install-kernelspec --prefix " + prefix.string()), 0);
  const auto data = prefix / "share/jupyter";
  auto spec = load_kernelspec(data / "kernels/kernel-host-python");
  ASSERT_TRUE(spec) << spec.error().to_string();
  EXPECT_EQ(spec->display_name, "Python 3 (kernel-host)");
  EXPECT_EQ(spec->argv.front(), std::string(KH_BIN_DIR) + "/kernel-host-python");
  auto kernel = kernel_manager::start(test::shared_reactor(), *spec, test::test_options());
  ASSERT_TRUE(kernel) << kernel.error().to_string();
  auto r = (*kernel)->execute_blocking({.code = "print(6 * 7)"}, 30s);
  ASSERT_TRUE(r);
  EXPECT_EQ(test::stream_text(*r), "42\n");
}

TEST(install_kernelspec, user_install_honours_jupyter_data_dir) {
  const auto dir = test::temp_dir("userdata");
  const std::string cmd = "JUPYTER_DATA_DIR=" + dir.string() + " " + KH_BIN_DIR + "/kernel-host install-kernelspec --user --name kh-py-test >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "kernels/kh-py-test/kernel.json"));
}

TEST(install_kernelspec, bad_arguments_fail_clearly) {
  EXPECT_NE(run_cli("install-kernelspec --user --prefix /tmp/x"), 0);
  EXPECT_EQ(run_cli("install-kernelspec --prefix /tmp/kh-x --name 'bad/name'"), 2);
  EXPECT_EQ(run_cli("install-kernelspec --prefix /tmp/kh-x --kernel-binary /nonexistent"), 2);
}

}  // namespace
}  // namespace kh::contexts
