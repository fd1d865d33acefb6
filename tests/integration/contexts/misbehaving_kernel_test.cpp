// Kernels that misbehave on purpose (tests/support/misbehaving_kernel.py): each is handled by the
// right rung of the shutdown ladder, or fails to start with a clear error.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_env.hpp"

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST(misbehaving_kernel, normal_kernel_stops_on_shutdown_request) {
  auto kernel = test::start_kernel("kh-test-normal");
  ASSERT_TRUE(kernel);
  auto r = kernel->execute_blocking({.code = "print('ok')"}, 10s);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(test::stream_text(*r), "ok\n");
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_EQ(kernel->last_shutdown_rung(), shutdown_rung::request);
}

TEST(misbehaving_kernel, ignoring_shutdown_request_gets_sigterm) {
  auto kernel = test::start_kernel("kh-test-ignore-shutdown");
  ASSERT_TRUE(kernel);
  const int pid = kernel->pid();
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_EQ(kernel->last_shutdown_rung(), shutdown_rung::terminate);
  EXPECT_TRUE(test::process_gone(pid));
}

TEST(misbehaving_kernel, ignoring_sigterm_gets_sigkill) {
  auto kernel = test::start_kernel("kh-test-ignore-sigterm");
  ASSERT_TRUE(kernel);
  const int pid = kernel->pid();
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_EQ(kernel->last_shutdown_rung(), shutdown_rung::kill);
  ASSERT_TRUE(kernel->last_exit());
  EXPECT_EQ(kernel->last_exit()->signal, SIGKILL);
  EXPECT_TRUE(test::process_gone(pid));
}

TEST(misbehaving_kernel, dying_mid_cell_gives_kernel_died_not_a_hang) {
  auto kernel = test::start_kernel("kh-test-die-mid-cell");
  ASSERT_TRUE(kernel);
  auto r = kernel->execute_blocking({.code = "die"}, 30s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::kernel_died);
  EXPECT_EQ(kernel->state(), kernel_state::dead);
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_EQ(kernel->last_shutdown_rung(), shutdown_rung::already_exited);
}

TEST(misbehaving_kernel, exit_at_start_fails_with_exit_code_and_log) {
  auto started = kernel_manager::start(test::shared_reactor(), test::spec("kh-test-exit-at-start"), test::test_options());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, errc::kernel_start_failed);
  EXPECT_THAT(started.error().message, HasSubstr("exit code 3"));
  EXPECT_EQ(started.error().details["exit_code"], 3);
  EXPECT_FALSE(started.error().details.value("log_tail", "").empty());
}

TEST(misbehaving_kernel, never_ready_times_out_and_is_killed) {
  auto options = test::test_options();
  options.start_timeout = 1500ms;
  auto started = kernel_manager::start(test::shared_reactor(), test::spec("kh-test-never-ready"), options);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, errc::kernel_start_failed);
  EXPECT_THAT(started.error().message, HasSubstr("did not become ready"));
}

TEST(misbehaving_kernel, missing_executable_is_a_clear_start_error) {
  kernelspec spec = test::spec("kh-test-normal");
  spec.argv = {"/nonexistent/kernel-binary", "-f", "{connection_file}"};
  auto started = kernel_manager::start(test::shared_reactor(), spec, test::test_options());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, errc::kernel_start_failed);
  EXPECT_THAT(started.error().message, HasSubstr("/nonexistent/kernel-binary"));
}

TEST(misbehaving_kernel, unknown_kernel_name_is_kernel_not_found) {
  auto found = find_kernelspec("no-such-kernel", test::data_path());
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().code, errc::kernel_not_found);
}

}  // namespace
}  // namespace kh::contexts
