// `kernel-host run-code --server URL ...`: the command line as a client of a running host.

#include <sys/wait.h>

#include <cstdio>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kernel_host/host_app.hpp"
#include "support/test_env.hpp"
#include "integration/server/raw_http_client.hpp"

namespace kh::host {
namespace {

using ::testing::HasSubstr;

struct cli_result {
  int code = -1;
  std::string output;  // stdout and stderr together
};

cli_result run_cli(const std::string& args) {
  const std::string cmd = std::string(KH_BIN_DIR) + "/kernel-host run-code " + args + " 2>&1 </dev/null";
  cli_result r;
  std::FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class run_code_client : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    host_config c;
    c.server.host = "127.0.0.1";
    c.server.port = 0;
    c.server.token = "sesame";
    c.data_dir = test::temp_dir("run-code-client");
    c.contexts.data_path = test::data_path();
    c.contexts.pool_sizes = {{"python", 1}};
    app_ = new host_app(c);
    ASSERT_TRUE(app_->start());
  }
  static void TearDownTestSuite() {
    delete app_;
    app_ = nullptr;
  }
  static std::string server() { return "--server http://127.0.0.1:" + std::to_string(app_->port()) + " --token sesame "; }
  static host_app* app_;
};
host_app* run_code_client::app_ = nullptr;

TEST_F(run_code_client, streams_output_and_results_and_exits_0) {
  auto r = run_cli(server() + "'print(6 * 7)\n\"done\"'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "42\n'done'\n");
  EXPECT_TRUE(app_->contexts().list().empty()) << "the temporary context was not deleted";
}

TEST_F(run_code_client, an_error_prints_the_traceback_and_exits_1) {
  auto r = run_cli(server() + "'1/0'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ZeroDivisionError"));
}

TEST_F(run_code_client, an_existing_context_keeps_its_state) {
  auto made = test::raw_http_client::request(app_->port(), "POST", "/api/contexts", R"({"language": "python"})",
                                             {{"Authorization", "Bearer sesame"}});
  ASSERT_EQ(made.status, 200) << made.body;
  const std::string id = made.json().value("contextId", "");
  EXPECT_EQ(run_cli(server() + "--context " + id + " 'x = 20'").code, 0);
  auto r = run_cli(server() + "--context " + id + " 'print(x + 1)'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "21\n");
  auto missing = run_cli(server() + "--context no-such-context 'print(1)'");
  EXPECT_EQ(missing.code, 2) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("CONTEXT_NOT_FOUND"));
}

TEST_F(run_code_client, a_missing_token_or_a_dead_server_exits_2) {
  auto r = run_cli("--server http://127.0.0.1:" + std::to_string(app_->port()) + " 'print(1)'");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("UNAUTHORIZED"));
  auto dead = run_cli("--server http://127.0.0.1:1 'print(1)'");
  EXPECT_EQ(dead.code, 2) << dead.output;
  EXPECT_THAT(dead.output, HasSubstr("cannot connect"));
}

}  // namespace
}  // namespace kh::host
