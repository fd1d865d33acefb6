// The kernel client and manager against Deno's Jupyter kernel (JavaScript and TypeScript).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_env.hpp"

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class deno : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { kernel_ = test::start_kernel("deno").release(); }
  static void TearDownTestSuite() {
    delete kernel_;
    kernel_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(kernel_, nullptr); }
  static result<execution_result> run(const std::string& code) { return kernel_->execute_blocking({.code = code}, 30s); }
  static kernel_manager* kernel_;
};
kernel_manager* deno::kernel_ = nullptr;

TEST_F(deno, kernel_info_names_typescript) {
  auto info = kernel_->kernel_info();
  EXPECT_EQ(info["language_info"]["name"], "typescript");
}

TEST_F(deno, console_output_and_result) {
  auto r = run("console.log('from js'); console.error('to stderr'); 40 + 2");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->ok());
  EXPECT_THAT(test::stream_text(*r), HasSubstr("from js"));
  EXPECT_THAT(test::stream_text(*r, "stderr"), HasSubstr("to stderr"));
  bool found = false;
  for (const auto& msg : r->outputs)
    if (msg.msg_type() == "execute_result") found = msg.content["data"]["text/plain"].get<std::string>().find("42") != std::string::npos;
  EXPECT_TRUE(found);
}

TEST_F(deno, typescript_types_and_state_persist) {
  ASSERT_TRUE(run("const double = (x: number): number => x * 2;"));
  auto r = run("double(21)");
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->outputs.empty());
  EXPECT_THAT(r->outputs.back().content["data"]["text/plain"].get<std::string>(), HasSubstr("42"));
}

TEST_F(deno, thrown_error_is_reported) {
  auto r = run("throw new TypeError('nope')");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->reply.content["status"], "error");
  bool error_output = false;
  for (const auto& msg : r->outputs)
    if (msg.msg_type() == "error") {
      error_output = true;
      EXPECT_THAT(msg.content.dump(), HasSubstr("nope"));
    }
  EXPECT_TRUE(error_output);
}

TEST_F(deno, rich_display_through_jupyter_helpers) {
  auto r = run("Deno.jupyter.html`<b>bold</b>`");
  ASSERT_TRUE(r) << r.error().to_string();
  bool html = false;
  for (const auto& msg : r->outputs)
    if (msg.content.contains("data") && msg.content["data"].contains("text/html")) html = true;
  EXPECT_TRUE(html);
}

TEST(deno_lifecycle, shutdown_by_request) {
  auto kernel = test::start_kernel("deno");
  ASSERT_TRUE(kernel);
  const int pid = kernel->pid();
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_TRUE(test::process_gone(pid));
  RecordProperty("deno_shutdown_rung", std::string(shutdown_rung_name(kernel->last_shutdown_rung())));
  EXPECT_NE(kernel->last_shutdown_rung(), shutdown_rung::none);
}

}  // namespace
}  // namespace kh::contexts
