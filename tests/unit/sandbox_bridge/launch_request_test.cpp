// The warm launcher's request (sandbox_bridge/launch_request.hpp): both ends agree, and the stub's
// side refuses what is malformed instead of reading past it.
#include <cstring>

#include <gtest/gtest.h>

#include "sandbox_bridge/launch_request.hpp"

namespace kh::sandbox_bridge {
namespace {

std::uint32_t size_prefix(const std::string& message) {
  std::uint32_t n = 0;
  std::memcpy(&n, message.data(), sizeof n);
  return n;
}

TEST(launch_request, round_trips_every_field_with_exact_bytes) {
  launch_request r{{"/bin/bash", "-c", std::string("printf 'a\\377'\n"), ""}, {"A=1", "B=", "C=x=y"}, "/tmp/d ir", true};
  auto message = encode_launch_request(r);
  ASSERT_TRUE(message);
  ASSERT_EQ(size_prefix(*message), message->size() - 4);
  auto back = decode_launch_request(std::string_view(*message).substr(4));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->argv, r.argv);
  EXPECT_EQ(back->env, r.env);
  EXPECT_EQ(back->cwd, r.cwd);
  EXPECT_TRUE(back->pipe_stdin);
  r.pipe_stdin = false;
  r.env.clear();
  back = decode_launch_request(encode_launch_request(r)->substr(4));
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->pipe_stdin);
  EXPECT_TRUE(back->env.empty());
}

TEST(launch_request, refuses_truncated_padded_and_argv_less_payloads) {
  auto message = encode_launch_request({{"/bin/true"}, {"K=V"}, "/", false});
  ASSERT_TRUE(message);
  const std::string payload = message->substr(4);
  for (std::size_t n = 0; n < payload.size(); ++n)
    EXPECT_FALSE(decode_launch_request(std::string_view(payload).substr(0, n))) << "truncated to " << n;
  EXPECT_FALSE(decode_launch_request(payload + "x"));
  EXPECT_FALSE(decode_launch_request(encode_launch_request({{}, {"K=V"}, "/", false})->substr(4)));
  // A count far beyond the bytes that follow is refused before anything is allocated for it.
  std::string huge = payload;
  const std::uint32_t lots = 0x7fffffff;
  std::memcpy(huge.data() + 4 + 4 + 1, &lots, sizeof lots);  // argc, after flags and cwd "/"
  EXPECT_FALSE(decode_launch_request(huge));
}

TEST(launch_request, a_request_beyond_the_cap_is_not_encoded) {
  EXPECT_FALSE(encode_launch_request({{"/bin/bash", "-c", std::string(kMaxLaunchRequest, 'x')}, {}, "/", false}));
  EXPECT_TRUE(encode_launch_request({{"/bin/bash", "-c", std::string(1u << 20, 'x')}, {}, "/", false}));
}

}  // namespace
}  // namespace kh::sandbox_bridge
