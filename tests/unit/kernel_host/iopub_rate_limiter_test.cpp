// iopub_rate_limiter: jupyter_server's IOPub rate-limit semantics, on synthetic clocks.

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernel_host/api/kernel_channels.hpp"

namespace kh::api {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(iopub_rate_limiter, messages_beyond_the_rate_are_dropped_with_one_notice_then_resume_below_80_percent) {
  iopub_rate_limiter limiter({.msg_rate = 2, .data_rate = 0, .window_s = 10});  // 20 messages per window
  std::string notice;
  int sent = 0;
  for (int i = 0; i < 20; ++i) sent += limiter.admit("display_data", 10, 0.0, notice);
  EXPECT_EQ(sent, 20);
  EXPECT_TRUE(notice.empty());
  EXPECT_FALSE(limiter.admit("display_data", 10, 0.0, notice));  // the 21st exceeds 2/s over 10 s
  EXPECT_THAT(notice, StartsWith("IOPub message rate exceeded.\nThe Jupyter server will temporarily stop sending output\n"));
  EXPECT_THAT(notice, HasSubstr("ServerApp.iopub_msg_rate_limit=2.0 (msgs/sec)\nServerApp.rate_limit_window=10.0 (secs)\n"));
  notice.clear();
  EXPECT_FALSE(limiter.admit("stream", 10, 1.0, notice));
  EXPECT_TRUE(notice.empty()) << "the notice is sent once per episode";
  // Status, comm_open and execute_input always pass.
  for (const char* type : {"status", "comm_open", "execute_input"}) EXPECT_TRUE(limiter.admit(type, 10, 1.0, notice));
  // After the window the old counts expire: the rate is back under 80 %, output resumes.
  EXPECT_TRUE(limiter.admit("display_data", 10, 20.0, notice));
  EXPECT_TRUE(notice.empty());
}

TEST(iopub_rate_limiter, stream_bytes_beyond_the_data_rate_give_the_data_notice) {
  iopub_rate_limiter limiter({.msg_rate = 0, .data_rate = 100, .window_s = 1});
  std::string notice;
  EXPECT_TRUE(limiter.admit("stream", 100, 0.0, notice));
  EXPECT_TRUE(limiter.admit("display_data", 100000, 0.0, notice)) << "only stream bytes count";
  EXPECT_FALSE(limiter.admit("stream", 1, 0.0, notice));
  EXPECT_THAT(notice, StartsWith("IOPub data rate exceeded."));
  EXPECT_THAT(notice, HasSubstr("ServerApp.iopub_data_rate_limit=100.0 (bytes/sec)"));
}

TEST(iopub_rate_limiter, zero_limits_disable_it) {
  iopub_rate_limiter limiter({.msg_rate = 0, .data_rate = 0, .window_s = 3});
  std::string notice;
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(limiter.admit("stream", 1 << 20, 0.0, notice));
  EXPECT_TRUE(notice.empty());
}

}  // namespace
}  // namespace kh::api
