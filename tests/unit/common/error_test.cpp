#include <gtest/gtest.h>

#include <cerrno>
#include <set>

#include "common/error.hpp"
#include "common/ids.hpp"

namespace kh {
namespace {

TEST(error, names_are_stable_api_codes) {
  EXPECT_EQ(errc_name(errc::file_not_found), "FILE_NOT_FOUND");
  EXPECT_EQ(errc_name(errc::timeout), "TIMEOUT");
  EXPECT_EQ(errc_name(errc::kernel_died), "KERNEL_DIED");
  EXPECT_EQ(errc_name(errc::container_not_ready), "CONTAINER_NOT_READY");
}

TEST(error, fail_builds_an_unexpected) {
  result<int> r = fail(errc::timeout, "too slow", {{"timeout_ms", 5}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::timeout);
  EXPECT_EQ(r.error().details["timeout_ms"], 5);
  EXPECT_EQ(r.error().to_string(), "TIMEOUT: too slow");
}

TEST(error, fail_errno_names_the_operation) {
  result<void> r = fail_errno("open /nope", ENOENT);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::io_error);
  EXPECT_EQ(r.error().message, "open /nope: No such file or directory");
  EXPECT_EQ(r.error().details["errno"], ENOENT);
}

TEST(ids, uuids_are_well_formed_and_unique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = new_uuid();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[8], '-');
    EXPECT_EQ(id[14], '4');
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(ids, random_hex_has_requested_length) {
  EXPECT_EQ(random_hex(32).size(), 64u);
  EXPECT_NE(random_hex(16), random_hex(16));
  EXPECT_EQ(random_hex(0), "");
}

}  // namespace
}  // namespace kh
