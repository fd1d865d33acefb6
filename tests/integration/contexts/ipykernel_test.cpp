// The kernel client and manager against Debian's ipykernel (kernelspec "python3"): real kernels only.

#include <signal.h>

#include <chrono>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_env.hpp"

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using clock = std::chrono::steady_clock;

double seconds_since(clock::time_point start) {
  return std::chrono::duration<double>(clock::now() - start).count();
}

// One ipykernel shared by the tests that leave it usable.
class ipykernel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto options = test::test_options();
    options.interrupt_grace = 10s;  // a loaded CI machine must not turn an interrupt into a restart
    kernel_ = test::start_kernel("python3", options).release();
  }
  static void TearDownTestSuite() {
    delete kernel_;
    kernel_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(kernel_, nullptr); }

  static result<execution_result> run(const std::string& code, std::chrono::milliseconds timeout = 30s) {
    return kernel_->execute_blocking({.code = code}, timeout);
  }

  static kernel_manager* kernel_;
};
kernel_manager* ipykernel::kernel_ = nullptr;

TEST_F(ipykernel, reports_kernel_info_and_idle_state) {
  auto info = kernel_->kernel_info();
  EXPECT_EQ(info["language_info"]["name"], "python");
  EXPECT_THAT(info.value("protocol_version", ""), HasSubstr("5."));
  EXPECT_EQ(kernel_->state(), kernel_state::idle);
  EXPECT_GT(kernel_->pid(), 0);
}

TEST_F(ipykernel, outputs_arrive_in_order_with_result_last) {
  auto r = run("print('one')\nimport sys; print('two', file=sys.stderr)\nfrom IPython.display import display, HTML\n"
               "display(HTML('<b>three</b>'))\nprint('four')\n6*7");
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_TRUE(r->ok());
  std::vector<std::string> seen;
  for (const auto& msg : r->outputs) {
    if (msg.msg_type() == "stream") {
      std::string text = msg.content["text"];
      // ipykernel may merge adjacent stream writes; split lines to compare the sequence.
      for (std::size_t pos = 0; pos < text.size();) {
        auto end = text.find('\n', pos);
        seen.push_back(text.substr(pos, end - pos));
        pos = end == std::string::npos ? text.size() : end + 1;
      }
    } else if (msg.msg_type() == "display_data") {
      seen.push_back(msg.content["data"]["text/html"]);
    } else if (msg.msg_type() == "execute_result") {
      seen.push_back(msg.content["data"]["text/plain"]);
      EXPECT_EQ(msg.content["execution_count"], r->reply.content["execution_count"]);
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"one", "two", "<b>three</b>", "four", "42"}));
  EXPECT_EQ(r->outputs.back().msg_type(), "execute_result");
  for (const char* key : {"iopub.status.busy", "iopub.execute_input", "iopub.status.idle"})
    EXPECT_FALSE(r->timing.value(key, "").empty()) << key;  // the kernel's own header dates
}

TEST_F(ipykernel, streams_arrive_while_the_cell_runs) {
  // Each event's arrival time: the first line must arrive long before the cell ends.
  std::vector<clock::time_point> arrivals;
  const auto start = clock::now();
  auto r = kernel_->execute_blocking(
      {.code = "import time, sys\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)"}, 30s,
      [&](const message& msg) {
        if (msg.msg_type() == "stream") arrivals.push_back(clock::now());
      });
  ASSERT_TRUE(r);
  const double total = seconds_since(start);
  ASSERT_GE(arrivals.size(), 2u);
  EXPECT_LT(std::chrono::duration<double>(arrivals.front() - start).count(), total - 0.4);
}

TEST_F(ipykernel, error_has_ename_evalue_traceback) {
  auto r = run("def f():\n    raise ValueError('bad value')\nf()");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->reply.content["status"], "error");
  EXPECT_EQ(r->reply.content["ename"], "ValueError");
  EXPECT_EQ(r->reply.content["evalue"], "bad value");
  ASSERT_FALSE(r->outputs.empty());
  const auto& err = r->outputs.back();
  EXPECT_EQ(err.msg_type(), "error");
  EXPECT_EQ(err.content["ename"], "ValueError");
  EXPECT_GE(err.content["traceback"].size(), 2u);
}

TEST_F(ipykernel, input_is_answered_through_stdin) {
  std::string asked;
  auto r = kernel_->execute_blocking(
      {.code = "name = input('who? ')\nprint('hello', name)", .allow_stdin = true}, 30s, {},
      [&](const std::string& prompt, bool password) {
        asked = prompt;
        EXPECT_FALSE(password);
        return std::string("kernel-host");
      });
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(asked, "who? ");
  EXPECT_THAT(test::stream_text(*r), HasSubstr("hello kernel-host"));
}

TEST_F(ipykernel, state_persists_between_cells) {
  ASSERT_TRUE(run("persisted = 41"));
  auto r = run("persisted + 1");
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->outputs.empty());
  EXPECT_EQ(r->outputs.back().content["data"]["text/plain"], "42");
}

TEST_F(ipykernel, interrupt_stops_sleep_and_kernel_stays_usable) {
  std::promise<result<message>> done;
  const auto start = clock::now();
  kernel_->execute({.code = "import time; time.sleep(60)"},
                   {.on_done = [&](result<message> r) { done.set_value(std::move(r)); }}, 0ms);
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(kernel_->interrupt());
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(20s), std::future_status::ready) << "interrupt did not end the cell";
  const double elapsed = seconds_since(start);
  RecordProperty("interrupt_seconds", std::to_string(elapsed));
  auto reply = future.get();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->content["ename"], "KeyboardInterrupt");
  EXPECT_LT(elapsed, 30.0);  // far below the 60 s sleep: the interrupt ended it
  auto after = run("'alive'");
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->ok());
}

TEST_F(ipykernel, timeout_interrupts_and_reports) {
  auto r = run("import time; time.sleep(30)", 500ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::timeout);
  EXPECT_EQ(r.error().details["recovery"], "interrupted");
  auto after = run("1+1");
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->ok());
}

TEST_F(ipykernel, silent_execute_produces_no_outputs) {
  auto r = kernel_->execute_blocking({.code = "print('hidden'); 5", .silent = true}, 30s);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok());
  for (const auto& msg : r->outputs) EXPECT_NE(msg.msg_type(), "execute_result");
}

TEST_F(ipykernel, every_iopub_message_reaches_subscribers) {
  auto client = kernel_->client();
  std::atomic<int> seen{0};
  auto token = client->subscribe([&](const message& msg) {
    if (msg.msg_type() == "stream") ++seen;
  });
  auto r = run("print('x')");
  client->unsubscribe(token);
  ASSERT_TRUE(r);
  EXPECT_GE(seen.load(), 1);
  EXPECT_EQ(client->counters().dropped_bad_signature, 0u);
}

TEST(ipykernel_lifecycle, restart_gives_a_fresh_kernel) {
  auto kernel = test::start_kernel("python3");
  ASSERT_TRUE(kernel);
  ASSERT_TRUE(kernel->execute_blocking({.code = "marker = 1"}, 30s));
  const int old_pid = kernel->pid();
  ASSERT_TRUE(kernel->restart());
  EXPECT_NE(kernel->pid(), old_pid);
  EXPECT_TRUE(test::process_gone(old_pid));
  EXPECT_EQ(kernel->restart_count(), 1);
  auto r = kernel->execute_blocking({.code = "marker"}, 30s);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->reply.content["ename"], "NameError");
}

TEST(ipykernel_lifecycle, shutdown_uses_the_request_rung_and_leaves_nothing) {
  auto kernel = test::start_kernel("python3");
  ASSERT_TRUE(kernel);
  const int pid = kernel->pid();
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_EQ(kernel->last_shutdown_rung(), shutdown_rung::request);
  EXPECT_EQ(kernel->state(), kernel_state::shut_down);
  EXPECT_TRUE(test::process_gone(pid));
  auto r = kernel->execute_blocking({.code = "1"}, 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::kernel_not_running);
  EXPECT_TRUE(kernel->shutdown());  // idempotent
}

TEST(ipykernel_lifecycle, sigkill_mid_cell_gives_kernel_died_promptly) {
  auto kernel = test::start_kernel("python3");
  ASSERT_TRUE(kernel);
  std::promise<result<message>> done;
  kernel->execute({.code = "import time; time.sleep(60)"},
                  {.on_done = [&](result<message> r) { done.set_value(std::move(r)); }}, 0ms);
  std::this_thread::sleep_for(300ms);
  const auto start = clock::now();
  ASSERT_EQ(::kill(kernel->pid(), SIGKILL), 0);
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready) << "caller hung after the kernel died";
  RecordProperty("died_after_seconds", std::to_string(seconds_since(start)));
  auto r = future.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::kernel_died);
  EXPECT_EQ(r.error().details["signal"], SIGKILL);
  EXPECT_EQ(kernel->state(), kernel_state::dead);
  auto next = kernel->execute_blocking({.code = "1"}, 5s);
  ASSERT_FALSE(next);
  EXPECT_EQ(next.error().code, errc::kernel_not_running);
  ASSERT_TRUE(kernel->restart());
  auto revived = kernel->execute_blocking({.code = "2+2"}, 30s);
  ASSERT_TRUE(revived);
  EXPECT_TRUE(revived->ok());
}

TEST(ipykernel_lifecycle, restart_on_death_brings_the_kernel_back) {
  auto options = test::test_options();
  options.restart_on_death = true;
  auto kernel = test::start_kernel("python3", options);
  ASSERT_TRUE(kernel);
  auto r = kernel->execute_blocking({.code = "import os; os._exit(1)"}, 30s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::kernel_died);
  EXPECT_EQ(r.error().details["exit_code"], 1);
  const auto deadline = clock::now() + 30s;
  while (kernel->restart_count() == 0 || kernel->state() != kernel_state::idle) {
    ASSERT_LT(clock::now(), deadline) << "no automatic restart";
    std::this_thread::sleep_for(20ms);
  }
  auto again = kernel->execute_blocking({.code = "3"}, 30s);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->ok());
}

TEST(ipykernel_lifecycle, timeout_restarts_a_kernel_that_ignores_interrupts) {
  auto options = test::test_options();
  options.interrupt_grace = 1s;
  auto kernel = test::start_kernel("python3", options);
  ASSERT_TRUE(kernel);
  auto r = kernel->execute_blocking(
      {.code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.05)"}, 1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::timeout);
  EXPECT_EQ(r.error().details["recovery"], "restarted");
  EXPECT_EQ(kernel->restart_count(), 1);
  auto after = kernel->execute_blocking({.code = "'usable'"}, 30s);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->ok());
}

TEST(ipykernel_lifecycle, ipc_transport_works) {
  auto options = test::test_options();
  options.kind = transport::ipc;
  auto kernel = test::start_kernel("python3", options);
  ASSERT_TRUE(kernel);
  EXPECT_EQ(kernel->client()->connection().kind, transport::ipc);
  auto r = kernel->execute_blocking({.code = "print('over ipc')"}, 30s);
  ASSERT_TRUE(r);
  EXPECT_EQ(test::stream_text(*r), "over ipc\n");
  const std::string socket_file = kernel->client()->connection().endpoint(channel::shell).substr(6);
  EXPECT_TRUE(std::filesystem::exists(socket_file)) << socket_file;
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_FALSE(std::filesystem::exists(socket_file));
}

TEST(ipykernel_lifecycle, twenty_kernels_at_once) {
  constexpr int n = 20;
  auto options = test::test_options();
  options.shutdown_wait = 20s;  // twenty ipykernels finishing at once on two cores take a while
  std::vector<std::future<std::unique_ptr<kernel_manager>>> starting;
  for (int i = 0; i < n; ++i)
    starting.push_back(std::async(std::launch::async, [&] { return test::start_kernel("python3", options); }));
  std::vector<std::unique_ptr<kernel_manager>> kernels;
  for (auto& f : starting) kernels.push_back(f.get());
  for (const auto& k : kernels) ASSERT_TRUE(k);
  std::vector<std::future<result<execution_result>>> runs;
  for (int i = 0; i < n; ++i)
    runs.push_back(std::async(std::launch::async, [&, i] {
      return kernels[i]->execute_blocking({.code = "print(" + std::to_string(i) + " * 2)"}, 60s);
    }));
  for (int i = 0; i < n; ++i) {
    auto r = runs[i].get();
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(test::stream_text(*r), std::to_string(i * 2) + "\n");
  }
  std::vector<int> pids;
  for (const auto& k : kernels) pids.push_back(k->pid());
  std::vector<std::future<result<void>>> stopping;
  for (auto& k : kernels) stopping.push_back(std::async(std::launch::async, [&k] { return k->shutdown(); }));
  for (auto& f : stopping) EXPECT_TRUE(f.get());
  for (const auto& k : kernels) {
    EXPECT_EQ(k->last_shutdown_rung(), shutdown_rung::request);
    EXPECT_EQ(k->pid(), 0);
  }
  for (int pid : pids) EXPECT_TRUE(test::process_gone(pid)) << pid;
}

}  // namespace
}  // namespace kh::contexts
