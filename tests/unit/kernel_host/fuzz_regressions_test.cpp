// The crashes and undefined behaviour the fuzz targets of fuzz/ found, as unit tests (the same
// inputs are regression seeds in fuzz/corpus/). Each one threw, aborted or read past a check.
#include <gtest/gtest.h>

#include "kernel_host/api/kernel_wire.hpp"
#include "kernel_host/api/request_helpers.hpp"
#include "renderers/html_exporter.hpp"
#include "renderers/markdown_exporter.hpp"
#include "renderers/notebook.hpp"
#include "sandbox_bridge/sandbox_path.hpp"

namespace {

using kh::errc;

// fuzz_kernel_ws_frames: {"channel": 1} threw nlohmann::type_error out of the WebSocket read
// handler (std::terminate of the daemon).
TEST(fuzz_regressions, legacy_frame_with_a_non_string_channel_is_dropped) {
  std::string channel;
  kh::contexts::message msg;
  EXPECT_FALSE(kh::api::from_wire_legacy_text(R"({"header":{"msg_id":"a","msg_type":"kernel_info_request"},"channel":1})",
                                              channel, msg));
  EXPECT_TRUE(kh::api::from_wire_legacy_text(R"({"header":{"msg_id":"a","msg_type":"x"},"parent_header":5,"content":"s"})",
                                             channel, msg));
  EXPECT_EQ(channel, "shell");
  EXPECT_TRUE(msg.parent_header.is_object());
  EXPECT_TRUE(msg.content.is_object());
}

// fuzz_request_bodies: {"timeoutMs": 1e300} cast a double out of long long's range (UB).
TEST(fuzz_regressions, huge_numbers_are_validation_errors) {
  for (const char* body : {R"({"timeoutMs": 1e300})", R"({"timeoutMs": 18446744073709551615})"}) {
    auto r = kh::api::optional_uint(nlohmann::json::parse(body), "timeoutMs");
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, errc::validation_failed);
  }
  auto ok = kh::api::optional_uint(nlohmann::json::parse(R"({"timeoutMs": 1500.7})"), "timeoutMs");
  ASSERT_TRUE(ok);
  EXPECT_EQ(**ok, 1500);
}

// fuzz_sandbox_path: a NUL in the cwd passed the lexical checks ("/sys\0y" is not within /sys)
// and was cut at open time, reaching the refused /sys.
TEST(fuzz_regressions, nul_in_the_cwd_is_refused) {
  auto r = kh::sandbox_bridge::normalize_sandbox_path("x", std::string_view("/sys\0y", 6));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::validation_failed);
}

// fuzz_ipynb_reader: metadata fields of another type threw from json::value(), and an attachment
// that is not an object threw from iterator::key() in the Markdown exporter.
TEST(fuzz_regressions, notebook_metadata_of_other_types) {
  auto nb = kh::renderers::notebook::parse(
      R"nb({"nbformat":4,"nbformat_minor":4,"metadata":{"kernelspec":{"name":5,"language":[]},"language_info":{"name":{}},)nb"
      R"nb("kernel_host":{"run":{"status":1,"message":2}}},)nb"
      R"nb("cells":[{"cell_type":"markdown","metadata":{},"source":"![x](attachment:a.png)","attachments":{"a.png":"s"}}]})nb");
  ASSERT_TRUE(nb) << nb.error().message;
  EXPECT_EQ(nb->kernel_name(), "");
  EXPECT_EQ(nb->language(), "");
  EXPECT_NO_THROW((void)kh::renderers::html_exporter{}.render(*nb, "t"));
  EXPECT_NO_THROW((void)kh::renderers::markdown_exporter{}.render(*nb, "t_files"));
}

}  // namespace
