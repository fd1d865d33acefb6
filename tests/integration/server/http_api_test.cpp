// The daemon over real HTTP with real kernels: the server's edge cases (raw client) and the
// code-interpreter API (SSE). The host runs in-process on port 0.

#include <chrono>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration/server/raw_http_client.hpp"
#include "kernel_host/host_app.hpp"
#include "support/test_env.hpp"

namespace kh::host {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using test::raw_http_client;
using test::raw_response;

host_config test_config(const std::string& stem) {
  host_config c;
  c.server.host = "127.0.0.1";
  c.server.port = 0;
  c.server.body_limit = 64 * 1024;
  c.server.header_timeout = 500ms;
  c.data_dir = test::temp_dir(stem);
  c.contexts.data_path = test::data_path();
  c.contexts.pool_sizes = {{"python", 1}};
  return c;
}

// Every SSE event of a finished stream body.
std::vector<nl::json> sse_events(const std::string& body) {
  std::vector<nl::json> out;
  std::size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const auto end = body.find("\n\n", pos);
    out.push_back(nl::json::parse(body.substr(pos + 6, end - pos - 6)));
    pos = end;
  }
  return out;
}

void expect_error_shape(const raw_response& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = r.json();
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j.value("code", ""), code) << r.body;
  EXPECT_EQ(j.value("httpStatus", 0), status);
  EXPECT_FALSE(j.value("message", "").empty());
  EXPECT_TRUE(j["context"].is_object());
  EXPECT_TRUE(j["timestamp"].is_string());
  EXPECT_EQ(r.headers.at("access-control-allow-origin"), "*");
}

class http_api : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    app_ = new host_app(test_config("http-api"));
    auto started = app_->start();
    ASSERT_TRUE(started) << started.error().to_string();
  }
  static void TearDownTestSuite() {
    delete app_;
    app_ = nullptr;
  }
  static int port() { return app_->port(); }
  static raw_response req(const std::string& method, const std::string& target, const std::string& body = "") {
    return raw_http_client::request(port(), method, target, body);
  }
  static std::string create_context(const nl::json& body = {{"language", "python"}}) {
    auto r = req("POST", "/api/contexts", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().value("contextId", "");
  }
  static std::vector<nl::json> run(const std::string& id, const std::string& code) {
    auto r = req("POST", "/api/execute/code", nl::json{{"context_id", id}, {"code", code}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers["content-type"], "text/event-stream");
    return sse_events(r.body);
  }
  static std::string stdout_of(const std::vector<nl::json>& events) {
    std::string out;
    for (const auto& e : events)
      if (e["type"] == "stdout") out += e.value("text", "");
    return out;
  }
  static host_app* app_;
};
host_app* http_api::app_ = nullptr;

TEST_F(http_api, ping_version_and_health) {
  for (const char* path : {"/api/ping", "/api/interpreter/health"}) {
    auto r = req("GET", path);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.json()["status"], "healthy");
    EXPECT_EQ(r.json()["success"], true);
  }
  auto v = req("GET", "/api/version");
  EXPECT_EQ(v.status, 200);
  EXPECT_FALSE(v.json().value("version", "").empty());
  EXPECT_EQ(v.headers["access-control-allow-origin"], "*");
}

TEST_F(http_api, sandbox_prefix_routes_to_the_same_handlers) {
  auto r = req("GET", "/sandboxes/sb-1/api/ping");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["status"], "healthy");
}

TEST_F(http_api, unknown_route_is_404) { expect_error_shape(req("GET", "/api/nope"), 404, "NOT_FOUND"); }

TEST_F(http_api, wrong_method_is_405_with_allow) {
  auto r = req("PUT", "/api/contexts");
  expect_error_shape(r, 405, "METHOD_NOT_ALLOWED");
  EXPECT_THAT(r.headers["allow"], HasSubstr("POST"));
}

TEST_F(http_api, options_preflight_is_204_with_cors) {
  auto r = req("OPTIONS", "/api/contexts");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.headers["access-control-allow-origin"], "*");
  EXPECT_THAT(r.headers["access-control-allow-methods"], HasSubstr("DELETE"));
}

TEST_F(http_api, malformed_json_is_400) {
  expect_error_shape(req("POST", "/api/contexts", "{not json"), 400, "VALIDATION_FAILED");
  expect_error_shape(req("POST", "/api/execute/code", "[1,2]"), 400, "VALIDATION_FAILED");
}

TEST_F(http_api, wrong_types_are_400_naming_the_field) {
  auto r = req("POST", "/api/contexts", R"({"language": 5})");
  expect_error_shape(r, 400, "VALIDATION_FAILED");
  EXPECT_EQ(r.json()["context"]["field"], "language");
  expect_error_shape(req("POST", "/api/contexts", R"({"language": "cobol"})"), 400, "VALIDATION_FAILED");
  expect_error_shape(req("POST", "/api/execute/code", R"({"context_id": "x", "code": 12})"), 400, "VALIDATION_FAILED");
  expect_error_shape(req("POST", "/api/execute/code", R"({"code": "1"})"), 400, "VALIDATION_FAILED");
}

TEST_F(http_api, unknown_ids_are_404) {
  expect_error_shape(req("DELETE", "/api/contexts/no-such-id"), 404, "CONTEXT_NOT_FOUND");
  expect_error_shape(req("POST", "/api/execute/code", R"({"context_id": "no-such-id", "code": "1"})"), 404,
                     "CONTEXT_NOT_FOUND");
  expect_error_shape(req("POST", "/api/contexts/no-such-id/interrupt"), 404, "CONTEXT_NOT_FOUND");
}

TEST_F(http_api, oversized_body_is_413_and_the_server_keeps_serving) {
  auto r = req("POST", "/api/contexts", std::string(200 * 1024, 'x'));
  expect_error_shape(r, 413, "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(req("GET", "/api/ping").status, 200);
}

TEST_F(http_api, slow_headers_are_cut_and_the_server_keeps_serving) {
  raw_http_client slow(port());
  slow.send_raw("GET /api/ping HTTP/1.1\r\nHost: x\r\n");  // never finishes its header
  EXPECT_TRUE(slow.server_closed());
  EXPECT_EQ(req("GET", "/api/ping").status, 200);
}

TEST_F(http_api, garbage_request_line_is_400) {
  raw_http_client c(port());
  c.send_raw("HELLO\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(req("GET", "/api/ping").status, 200);
}

TEST_F(http_api, keep_alive_serves_several_requests_on_one_connection) {
  raw_http_client c(port());
  for (int i = 0; i < 3; ++i) {
    c.send_request("GET", "/api/ping");
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
}

TEST_F(http_api, python_context_streams_stdout_results_and_completion) {
  const auto id = create_context();
  ASSERT_FALSE(id.empty());
  auto events = run(id, "print('hello')\n1+1");
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front()["type"], "stdout");
  // print() may reach the client as two stdout events ("hello", "\n"): join them.
  EXPECT_EQ(stdout_of(events), "hello\n");
  bool saw_result = false;
  for (const auto& e : events)
    if (e["type"] == "result") {
      saw_result = true;
      EXPECT_EQ(e["text"], "2");
      EXPECT_EQ(e["isMainResult"], true);
    }
  EXPECT_TRUE(saw_result);
  EXPECT_EQ(events.back()["type"], "execution_complete");
  EXPECT_GE(events.back()["execution_count"].get<int>(), 1);

  // State persists; an error ends the cell: `error` is the last event, no execution_complete.
  run(id, "x = 41");
  EXPECT_EQ(stdout_of(run(id, "print(x + 1)")), "42\n");
  auto failed = run(id, "1/0");
  bool saw_error = false;
  for (const auto& e : failed)
    if (e["type"] == "error") {
      saw_error = true;
      EXPECT_EQ(e["ename"], "ZeroDivisionError");
    }
  EXPECT_TRUE(saw_error);
  EXPECT_EQ(failed.back()["type"], "error");
  for (const auto& e : failed) EXPECT_NE(e["type"], "execution_complete");

  auto listed = req("GET", "/api/contexts").json();
  bool found = false;
  for (const auto& c : listed["contexts"]) found = found || c["id"] == id;
  EXPECT_TRUE(found);
  EXPECT_EQ(req("DELETE", "/api/contexts/" + id).status, 200);
  expect_error_shape(req("DELETE", "/api/contexts/" + id), 404, "CONTEXT_NOT_FOUND");
}

TEST_F(http_api, language_mismatch_is_400) {
  const auto id = create_context();
  auto r = req("POST", "/api/execute/code", nl::json{{"context_id", id}, {"code", "1"}, {"language", "javascript"}}.dump());
  expect_error_shape(r, 400, "VALIDATION_FAILED");
  req("DELETE", "/api/contexts/" + id);
}

TEST_F(http_api, variables_are_injected_and_read_back) {
  const auto id = create_context({{"language", "python"}, {"variables", {{"data", {1, 2, 3}}, {"cfg", {{"v", true}}}}}});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(stdout_of(run(id, "print(sum(data), cfg['v'])")), "6 True\n");
  auto r = req("POST", "/api/contexts/" + id + "/variables", R"({"set": {"y": "hi"}, "get": ["y", "data", "missing"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["variables"], (nl::json{{"y", "hi"}, {"data", {1, 2, 3}}}));
  expect_error_shape(req("POST", "/api/contexts/" + id + "/variables", R"({"set": {"not an id": 1}})"), 400,
                     "VALIDATION_FAILED");
  req("DELETE", "/api/contexts/" + id);
}

TEST_F(http_api, cwd_and_env_are_applied) {
  std::filesystem::create_directories(app_->config().contexts.workspace / "sub");
  const auto id = create_context({{"language", "python"}, {"cwd", "/workspace/sub"}, {"envVars", {{"KH_X", "y1"}}}});
  ASSERT_FALSE(id.empty());
  auto out = stdout_of(run(id, "import os; print(os.path.basename(os.getcwd()), os.environ['KH_X'])"));
  EXPECT_EQ(out, "sub y1\n");
  expect_error_shape(req("POST", "/api/contexts", R"({"cwd": "/definitely/not/here"})"), 400, "VALIDATION_FAILED");
  req("DELETE", "/api/contexts/" + id);
}

TEST_F(http_api, input_request_is_answered_through_the_input_api) {
  const auto id = create_context();
  raw_http_client c(port());
  c.send_request("POST", "/api/execute/code",
                 nl::json{{"context_id", id}, {"code", "name = input('who? ')\nprint('hi', name)"}, {"allow_stdin", true}}.dump());
  auto head = c.read_head();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  std::string seen;
  while (seen.find("input_request") == std::string::npos) {
    auto more = c.read_some();
    ASSERT_FALSE(more.empty()) << seen;
    seen += more;
  }
  EXPECT_THAT(seen, HasSubstr("who? "));
  auto answered = req("POST", "/api/contexts/" + id + "/input", R"({"value": "ada"})");
  EXPECT_EQ(answered.status, 200) << answered.body;
  auto complete = [&seen] {
    const auto at = seen.find("execution_complete");
    return at != std::string::npos && seen.find("\n\n", at) != std::string::npos;
  };
  while (!complete()) {
    auto more = c.read_some();
    ASSERT_FALSE(more.empty()) << seen;
    seen += more;
  }
  // print() may reach the client as several stdout events (one per write): join them.
  EXPECT_THAT(stdout_of(sse_events(seen)), HasSubstr("hi ada")) << seen;
  expect_error_shape(req("POST", "/api/contexts/" + id + "/input", R"({"value": "x"})"), 409, "RESOURCE_BUSY");
  req("DELETE", "/api/contexts/" + id);
}

TEST_F(http_api, client_disconnect_mid_cell_interrupts_and_the_context_stays_usable) {
  const auto id = create_context();
  {
    raw_http_client c(port());
    c.send_request("POST", "/api/execute/code",
                   nl::json{{"context_id", id},
                            {"code", "import time\nprint('started', flush=True)\nfor i in range(600): time.sleep(0.1)\nflag = 'finished'"}}
                       .dump());
    auto head = c.read_head();
    ASSERT_TRUE(head);
    std::string seen;
    while (seen.find("started") == std::string::npos) {
      auto more = c.read_some();
      ASSERT_FALSE(more.empty());
      seen += more;
    }
  }  // the client goes away mid-cell
  // Had the cell not been interrupted, this would wait for it and print 'finished'.
  auto events = run(id, "print(globals().get('flag', 'interrupted'))");
  EXPECT_EQ(stdout_of(events), "interrupted\n") << nl::json(events).dump();
  req("DELETE", "/api/contexts/" + id);
}

TEST_F(http_api, interrupt_and_restart_routes) {
  const auto id = create_context();
  run(id, "z = 1");
  EXPECT_EQ(req("POST", "/api/contexts/" + id + "/interrupt").status, 200);
  auto r = req("POST", "/api/contexts/" + id + "/restart");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(stdout_of(run(id, "print('z' in globals())")), "False\n");
  req("DELETE", "/api/contexts/" + id);
}

TEST(http_auth, token_is_required_when_set) {
  auto config = test_config("auth");
  config.server.token = "s3cret-token";
  config.contexts.pool_sizes = {};
  host_app app(config);
  ASSERT_TRUE(app.start());
  const int port = app.port();
  expect_error_shape(raw_http_client::request(port, "GET", "/api/ping"), 401, "UNAUTHORIZED");
  expect_error_shape(raw_http_client::request(port, "GET", "/api/ping", "", {{"Authorization", "Bearer wrong"}}), 403,
                     "PERMISSION_DENIED");
  EXPECT_EQ(raw_http_client::request(port, "GET", "/api/ping", "", {{"Authorization", "Bearer s3cret-token"}}).status, 200);
  EXPECT_EQ(raw_http_client::request(port, "GET", "/api/ping", "", {{"Authorization", "token s3cret-token"}}).status, 200);
  EXPECT_EQ(raw_http_client::request(port, "GET", "/api/ping?token=s3cret-token").status, 200);
  EXPECT_EQ(raw_http_client::request(port, "OPTIONS", "/api/ping").status, 204);
  EXPECT_EQ(app.server().counters().auth_failures, 2u);
}

TEST(http_shutdown, stop_cuts_open_streams_and_shuts_kernels_down) {
  auto config = test_config("shutdown");
  config.contexts.pool_sizes = {};
  auto app = std::make_unique<host_app>(config);
  ASSERT_TRUE(app->start());
  auto created = raw_http_client::request(app->port(), "POST", "/api/contexts", R"({"language":"python"})");
  ASSERT_EQ(created.status, 200) << created.body;
  auto ctx = app->contexts().get(created.json()["contextId"]);
  ASSERT_TRUE(ctx);
  const int pid = (*ctx)->kernel().pid();
  ctx->reset();
  raw_http_client c(app->port());
  c.send_request("POST", "/api/execute/code",
                 nl::json{{"context_id", created.json()["contextId"]}, {"code", "import time; time.sleep(600)"}}.dump());
  ASSERT_TRUE(c.read_head());
  app->stop(200ms);
  EXPECT_TRUE(c.server_closed());
  EXPECT_TRUE(test::process_gone(pid));
  app.reset();
}

// Idle contexts are culled; a context running a cell is not. A culled context's id says why.
TEST(http_cull_idle, idle_contexts_are_culled_and_say_so_busy_ones_stay) {
  auto config = test_config("cull-idle");
  config.contexts.cull_idle = 400ms;
  host_app app(config);
  ASSERT_TRUE(app.start());
  const int port = app.port();
  const auto make = [&] {
    auto created = raw_http_client::request(port, "POST", "/api/contexts", R"({"language": "python"})");
    EXPECT_EQ(created.status, 200) << created.body;
    return created.json().value("contextId", "");
  };
  const std::string idle = make(), busy = make();
  raw_http_client running(port);
  running.send_request("POST", "/api/execute/code", nl::json{{"context_id", busy}, {"code", "import time; time.sleep(3); print('done')"}}.dump());
  ASSERT_TRUE(running.read_head());
  raw_response gone;
  for (int i = 0; i < 100; ++i) {  // culled within a few periods of 100 ms
    gone = raw_http_client::request(port, "GET", "/api/contexts/" + idle);
    if (gone.status == 404) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(gone.status, 404) << gone.body;
  EXPECT_EQ(gone.json()["code"], "CONTEXT_NOT_FOUND");
  EXPECT_EQ(gone.json()["context"]["reason"], "idle");
  EXPECT_EQ(raw_http_client::request(port, "GET", "/api/contexts/" + busy).status, 200);  // its cell still runs
  EXPECT_GE(app.contexts().counters().culled, 1u);
  app.stop();
}

// A client that stops reading a stream is cut after the write timeout; its cell is interrupted
// (the disconnect path) and the context serves the next cell.
TEST(http_write_timeout, a_client_that_never_reads_does_not_hold_the_connection) {
  auto config = test_config("write-timeout");
  config.server.write_timeout = std::chrono::milliseconds(300);
  host_app app(config);
  ASSERT_TRUE(app.start());
  const int port = app.port();
  auto created = raw_http_client::request(port, "POST", "/api/contexts", R"({"language": "python"})");
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id = created.json().value("contextId", "");
  {
    raw_http_client stalled(port);
    // Endless output that fills the socket buffers; we never read it.
    stalled.send_request("POST", "/api/execute/code",
                         nl::json{{"context_id", id}, {"code", "while True: print('x' * 65536)"}}.dump());
    // The next cell runs only once the endless one was interrupted, i.e. after the server gave up
    // on the stalled client.
    auto next = raw_http_client::request(port, "POST", "/api/execute/code",
                                         nl::json{{"context_id", id}, {"code", "print('after')"}}.dump());
    EXPECT_EQ(next.status, 200);
    // Stdout may arrive in pieces ("after", "\n"): join the stream before looking.
    std::string out;
    for (const auto& e : sse_events(next.body))
      if (e["type"] == "stdout") out += e.value("text", "");
    EXPECT_NE(out.find("after\n"), std::string::npos) << next.body.substr(0, 500);
  }
  EXPECT_GE(app.server().counters().write_timeouts, 1u);
  app.stop();
}

}  // namespace
}  // namespace kh::host
