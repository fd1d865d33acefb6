// The Jupyter Server REST API over the same contexts, with a raw HTTP client and real kernels.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration/server/raw_http_client.hpp"
#include "kernel_host/host_app.hpp"
#include "support/test_env.hpp"

namespace kh::host {
namespace {

using test::raw_http_client;
using test::raw_response;

class jupyter_api : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    host_config c;
    c.server.port = 0;
    c.data_dir = test::temp_dir("jupyter-api");
    c.contexts.data_path = test::data_path();
    c.contexts.pool_sizes = {};
    app_ = new host_app(c);
    ASSERT_TRUE(app_->start());
  }
  static void TearDownTestSuite() {
    delete app_;
    app_ = nullptr;
  }
  static raw_response req(const std::string& method, const std::string& target, const std::string& body = "") {
    return raw_http_client::request(app_->port(), method, target, body);
  }
  static host_app* app_;
};
host_app* jupyter_api::app_ = nullptr;

TEST_F(jupyter_api, api_status_and_kernelspecs) {
  EXPECT_EQ(req("GET", "/api").status, 200);
  auto status = req("GET", "/api/status");
  EXPECT_EQ(status.status, 200);
  EXPECT_TRUE(status.json().contains("kernels"));
  auto specs = req("GET", "/api/kernelspecs");
  ASSERT_EQ(specs.status, 200);
  auto j = specs.json();
  ASSERT_TRUE(j["kernelspecs"].contains("python3")) << specs.body;
  EXPECT_TRUE(j["kernelspecs"].contains(j["default"].get<std::string>()));
  EXPECT_EQ(j["kernelspecs"]["python3"]["spec"]["language"], "python");
  auto one = req("GET", "/api/kernelspecs/python3");
  EXPECT_EQ(one.status, 200);
  EXPECT_EQ(one.json()["name"], "python3");
  EXPECT_EQ(req("GET", "/api/kernelspecs/no-such-kernel").json()["code"], "KERNEL_NOT_FOUND");
  auto file = req("GET", "/kernelspecs/python3/kernel.json");
  EXPECT_EQ(file.status, 200);
  EXPECT_EQ(file.headers["content-type"], "application/json");
  EXPECT_EQ(req("GET", "/kernelspecs/python3/missing.png").status, 404);
  EXPECT_EQ(req("GET", "/kernelspecs/python3/..").status, 400);
}

TEST_F(jupyter_api, kernels_crud_interrupt_restart) {
  auto created = req("POST", "/api/kernels", R"({"name": "python3"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.json()["id"];
  EXPECT_EQ(created.headers["location"], "/api/kernels/" + id);
  EXPECT_EQ(created.json()["name"], "python3");
  auto listed = req("GET", "/api/kernels").json();
  ASSERT_TRUE(listed.is_array());
  bool found = false;
  for (const auto& k : listed) found = found || k["id"] == id;
  EXPECT_TRUE(found);
  EXPECT_EQ(req("GET", "/api/kernels/" + id).json()["id"], id);
  EXPECT_EQ(req("POST", "/api/kernels/" + id + "/interrupt").status, 204);
  auto restarted = req("POST", "/api/kernels/" + id + "/restart");
  EXPECT_EQ(restarted.status, 200) << restarted.body;
  EXPECT_EQ(req("DELETE", "/api/kernels/" + id).status, 204);
  EXPECT_EQ(req("GET", "/api/kernels/" + id).status, 404);
  EXPECT_EQ(req("POST", "/api/kernels", R"({"name": "no-such-kernel"})").status, 404);
  EXPECT_EQ(req("POST", "/api/kernels", R"({"name": 3})").status, 400);
}

TEST_F(jupyter_api, contexts_and_kernels_are_one_thing) {
  auto ctx = req("POST", "/api/contexts", R"({"language": "python"})");
  ASSERT_EQ(ctx.status, 200) << ctx.body;
  const std::string id = ctx.json()["contextId"];
  EXPECT_EQ(req("GET", "/api/kernels/" + id).status, 200);
  auto kernel = req("POST", "/api/kernels", "{}");
  ASSERT_EQ(kernel.status, 201) << kernel.body;
  const std::string kid = kernel.json()["id"];
  auto run = req("POST", "/api/execute/code", nl::json{{"context_id", kid}, {"code", "print(6*7)"}}.dump());
  EXPECT_EQ(run.status, 200);
  EXPECT_THAT(run.body, ::testing::HasSubstr("42"));
  EXPECT_EQ(req("DELETE", "/api/contexts/" + kid).status, 200);
  EXPECT_EQ(req("DELETE", "/api/kernels/" + id).status, 204);
}

TEST_F(jupyter_api, sessions_crud_and_errors) {
  auto created = req("POST", "/api/sessions", R"({"path": "x.ipynb", "type": "notebook", "kernel": {"name": "python3"}})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.json()["id"];
  const std::string kernel_id = created.json()["kernel"]["id"];
  EXPECT_EQ(created.headers["location"], "/api/sessions/" + id);
  // The same path gives the same session.
  EXPECT_EQ(req("POST", "/api/sessions", R"({"path": "x.ipynb"})").json()["id"], id);
  auto patched = req("PATCH", "/api/sessions/" + id, R"({"path": "y.ipynb"})");
  EXPECT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.json()["path"], "y.ipynb");
  EXPECT_EQ(patched.json()["kernel"]["id"], kernel_id);
  EXPECT_EQ(req("PATCH", "/api/sessions/" + id, R"({"path": 5})").status, 400);
  EXPECT_EQ(req("GET", "/api/sessions/nope").json()["code"], "SESSION_NOT_FOUND");
  EXPECT_EQ(req("DELETE", "/api/sessions/" + id).status, 204);
  EXPECT_EQ(req("GET", "/api/sessions/" + id).status, 404);
  EXPECT_EQ(req("GET", "/api/kernels/" + kernel_id).status, 404);
}

}  // namespace
}  // namespace kh::host
