// Kernels that misbehave on purpose (tests/support/misbehaving_kernel.py): each is handled by the
// right rung of the shutdown ladder, or fails to start with a clear error; kernels that crash
// (SIGSEGV, SIGKILL) mid-cell, at start and during shutdown; a kernel that sends garbage.

#include <signal.h>

#include <future>

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

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// After a crash: a restart gives a new process that runs a cell, and a shutdown reaps it.
void expect_restart_serves(kernel_manager& kernel, int crashed_pid) {
  ASSERT_TRUE(kernel.restart());
  EXPECT_NE(kernel.pid(), crashed_pid);
  auto again = kernel.execute_blocking({.code = "print(6 * 7)"}, 30s);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(test::stream_text(*again), "42\n");
  const int new_pid = kernel.pid();
  ASSERT_TRUE(kernel.shutdown());
  EXPECT_TRUE(test::process_reaped(new_pid));
}

// Crashes (a real SIGSEGV, or SIGKILL) mid-cell: the cell fails with KERNEL_DIED naming the
// signal, the process is reaped (no zombie), and a restart gives a working kernel.
void expect_crash_mid_cell(const std::string& kernel_name, int signal) {
  auto kernel = test::start_kernel(kernel_name);
  ASSERT_TRUE(kernel);
  const int pid = kernel->pid();
  auto r = kernel->execute_blocking({.code = "die"}, 30s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::kernel_died) << r.error().to_string();
  EXPECT_EQ(r.error().details.value("signal", 0), signal);
  EXPECT_THAT(r.error().message, HasSubstr("died"));
  EXPECT_EQ(kernel->state(), kernel_state::dead);
  EXPECT_TRUE(test::process_reaped(pid));
  // the next cell is refused at once, not hung
  auto refused = kernel->execute_blocking({.code = "1"}, 30s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::kernel_not_running);

  expect_restart_serves(*kernel, pid);
}

TEST(kernel_crashes, segfault_mid_cell_is_kernel_died_and_restart_works) {
  expect_crash_mid_cell("kh-test-segv-mid-cell", SIGSEGV);
}

TEST(kernel_crashes, sigkill_mid_cell_is_kernel_died_and_restart_works) {
  expect_crash_mid_cell("kh-test-sigkill-mid-cell", SIGKILL);
}

TEST(kernel_crashes, sigkill_before_binding_is_a_start_error_with_the_signal) {
  auto started = kernel_manager::start(test::shared_reactor(), test::spec("kh-test-sigkill-at-start"), test::test_options());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, errc::kernel_start_failed);
  EXPECT_THAT(started.error().message, HasSubstr("exited during start-up"));
  EXPECT_EQ(started.error().details.value("signal", 0), SIGKILL);
}

TEST(kernel_crashes, segfault_while_answering_kernel_info_is_a_start_error_with_the_signal) {
  auto started =
      kernel_manager::start(test::shared_reactor(), test::spec("kh-test-segv-at-kernel-info"), test::test_options());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, errc::kernel_start_failed);
  EXPECT_EQ(started.error().details.value("signal", 0), SIGSEGV);
  // what the kernel wrote before crashing is in the error
  EXPECT_THAT(started.error().details.value("log_tail", ""), HasSubstr("mode segv-at-kernel-info"));
}

TEST(kernel_crashes, segfault_after_shutdown_request_ends_the_ladder_at_its_first_rung) {
  auto kernel = test::start_kernel("kh-test-segv-during-shutdown");
  ASSERT_TRUE(kernel);
  const int pid = kernel->pid();
  auto r = kernel->execute_blocking({.code = "print(1)"}, 10s);
  ASSERT_TRUE(r) << r.error().to_string();
  // A restart runs the same ladder: the crash is not mistaken for a death mid-cell.
  ASSERT_TRUE(kernel->restart());
  ASSERT_TRUE(kernel->last_exit());
  EXPECT_EQ(kernel->last_exit()->signal, SIGSEGV);
  EXPECT_TRUE(test::process_reaped(pid));
  EXPECT_EQ(kernel->execute_blocking({.code = "print(2)"}, 10s).value().reply.content.value("status", ""), "ok");
  const int second = kernel->pid();
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_EQ(kernel->last_shutdown_rung(), shutdown_rung::request);
  ASSERT_TRUE(kernel->last_exit());
  EXPECT_EQ(kernel->last_exit()->signal, SIGSEGV);
  EXPECT_TRUE(test::process_reaped(second));
}

// Our own kernel (or ipykernel) killed from outside while a cell runs.
void expect_outside_kill_mid_cell(int signal) {
  auto kernel = test::start_kernel(test::python_kernel_name());
  ASSERT_TRUE(kernel);
  const int pid = kernel->pid();
  std::promise<void> running;
  auto started = running.get_future();
  bool told = false;
  auto cell = std::async(std::launch::async, [&] {
    return kernel->execute_blocking({.code = "import time\nprint('running', flush=True)\nwhile True: time.sleep(0.01)"}, 60s,
                                    [&](const message&) {
                                      if (!std::exchange(told, true)) running.set_value();
                                    });
  });
  ASSERT_EQ(started.wait_for(30s), std::future_status::ready);
  ASSERT_EQ(::kill(pid, signal), 0);
  auto r = cell.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::kernel_died) << r.error().to_string();
  EXPECT_EQ(r.error().details.value("signal", 0), signal);
  EXPECT_TRUE(test::process_reaped(pid));
  expect_restart_serves(*kernel, pid);
}

TEST(kernel_crashes, real_kernel_sigkilled_from_outside_mid_cell) { expect_outside_kill_mid_cell(SIGKILL); }

TEST(kernel_crashes, real_kernel_segfaulted_from_outside_mid_cell) {
#if defined(__SANITIZE_ADDRESS__)
  // An ASan-built kernel-host-python turns SIGSEGV into a report and exit code 1, not a signal death.
  GTEST_SKIP() << "kernel-host-python is built with AddressSanitizer, which handles SIGSEGV itself";
#endif
  expect_outside_kill_mid_cell(SIGSEGV);
}

// Malformed frames (no delimiter, too few frames, invalid JSON) and wrongly signed messages on
// IOPub and shell, all parented to the running cell: every one is dropped and counted, none
// reaches the caller, and the cell's real output and reply still arrive.
TEST(kernel_wire_faults, malformed_and_badly_signed_messages_are_dropped_and_counted) {
  auto kernel = test::start_kernel("kh-test-normal");
  ASSERT_TRUE(kernel);
  const auto before = kernel->client()->counters();
  auto r = kernel->execute_blocking({.code = "kh.send_garbage()\nprint('after the garbage')"}, 30s);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(test::stream_text(*r), "after the garbage\n");
  EXPECT_NE(r->reply.content.value("execution_count", 0), 999999);  // the forged reply was not taken
  const auto after = kernel->client()->counters();
  // per socket: 2 wrongly signed; 5 malformed (no delimiter, truncated, bad JSON, delimiter only, one frame)
  EXPECT_EQ(after.dropped_bad_signature - before.dropped_bad_signature, 4u);
  EXPECT_EQ(after.dropped_malformed - before.dropped_malformed, 10u);
  // the next good message still works, repeatedly
  for (int i = 0; i < 3; ++i) {
    auto next = kernel->execute_blocking({.code = "kh.send_garbage()\nprint(" + std::to_string(i) + ")"}, 30s);
    ASSERT_TRUE(next) << next.error().to_string();
    EXPECT_EQ(test::stream_text(*next), std::to_string(i) + "\n");
  }
  EXPECT_EQ(kernel->state(), kernel_state::idle);
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_EQ(kernel->last_shutdown_rung(), shutdown_rung::request);
}

}  // namespace
}  // namespace kh::contexts
