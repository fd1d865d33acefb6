// The server's pure pieces: target parsing, routing, auth helpers and the error mapping.

#include <gtest/gtest.h>

#include "kernel_host/api/error_mapping.hpp"
#include "kernel_host/server/http_server.hpp"
#include "kernel_host/server/router.hpp"

namespace kh::server {
namespace {

class recording_responder final : public responder {
 public:
  void send(http_response r) override { sent = std::move(r); }
  void begin_stream(int, std::string, header_list) override {}
  void write(std::string) override {}
  bool write_and_wait(std::string) override { return true; }
  void end() override {}
  void on_disconnect(std::function<void()>) override {}
  http_response sent;
};

request_context make_ctx(std::string method, std::string target) {
  request_context ctx;
  ctx.request.method = std::move(method);
  ctx.request.target = std::move(target);
  parse_target(ctx.request.target, ctx.request.path, ctx.request.query);
  ctx.out = std::make_shared<recording_responder>();
  return ctx;
}

TEST(parse_target, decodes_path_and_query) {
  std::string path;
  std::map<std::string, std::string> query;
  parse_target("/api/a%20b?token=x%2Fy&flag&q=1+2", path, query);
  EXPECT_EQ(path, "/api/a b");
  EXPECT_EQ(query["token"], "x/y");
  EXPECT_EQ(query["flag"], "");
  EXPECT_EQ(query["q"], "1 2");
  EXPECT_EQ(percent_decode("%zz%4"), "%zz%4");  // malformed escapes are kept
}

TEST(router, matches_parameters_and_the_sandbox_prefix) {
  router r;
  std::string seen;
  r.add("POST", "/api/contexts/{id}/interrupt", [&](request_context& c) { seen = c.params["id"] + "@" + c.sandbox_id; });
  auto plain = make_ctx("POST", "/api/contexts/abc/interrupt");
  r.dispatch(plain);
  EXPECT_EQ(seen, "abc@default");
  auto prefixed = make_ctx("POST", "/sandboxes/sb-7/api/contexts/xyz/interrupt");
  r.dispatch(prefixed);
  EXPECT_EQ(seen, "xyz@sb-7");
}

TEST(router, answers_404_405_and_options) {
  router r;
  r.add("GET", "/api/ping", [](request_context& c) { c.out->send({}); });
  auto unknown = make_ctx("GET", "/api/none");
  r.dispatch(unknown);
  EXPECT_EQ(static_cast<recording_responder&>(*unknown.out).sent.status, 404);
  auto wrong = make_ctx("DELETE", "/api/ping");
  r.dispatch(wrong);
  auto& sent = static_cast<recording_responder&>(*wrong.out).sent;
  EXPECT_EQ(sent.status, 405);
  EXPECT_EQ(nl::json::parse(sent.body)["code"], "METHOD_NOT_ALLOWED");
  auto preflight = make_ctx("OPTIONS", "/anything");
  r.dispatch(preflight);
  EXPECT_EQ(static_cast<recording_responder&>(*preflight.out).sent.status, 204);
}

TEST(auth, tokens_and_loopback) {
  EXPECT_TRUE(token_matches("abc", "abc"));
  EXPECT_FALSE(token_matches("abd", "abc"));
  EXPECT_FALSE(token_matches("abcd", "abc"));
  EXPECT_FALSE(token_matches("", "abc"));
  http_request req;
  req.headers = {{"authorization", "Bearer t1"}};
  EXPECT_EQ(presented_token(req), "t1");
  req.headers = {{"authorization", "token t2"}};
  EXPECT_EQ(presented_token(req), "t2");
  req.headers = {};
  req.query["token"] = "t3";
  EXPECT_EQ(presented_token(req), "t3");
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("::1"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
}

TEST(error_mapping, statuses_follow_the_contract) {
  EXPECT_EQ(api::http_status(errc::validation_failed), 400);
  EXPECT_EQ(api::http_status(errc::unauthorized), 401);
  EXPECT_EQ(api::http_status(errc::permission_denied), 403);
  EXPECT_EQ(api::http_status(errc::context_not_found), 404);
  EXPECT_EQ(api::http_status(errc::file_not_found), 404);
  EXPECT_EQ(api::http_status(errc::payload_too_large), 413);
  EXPECT_EQ(api::http_status(errc::kernel_died), 500);
  EXPECT_EQ(api::http_status(errc::container_not_ready), 503);
  auto r = api::error_response(error{errc::container_not_ready, "starting", {{"sandbox", "s"}}});
  EXPECT_EQ(r.status, 503);
  ASSERT_FALSE(r.headers.empty());
  EXPECT_EQ(r.headers[0].first, "Retry-After");
  auto body = nl::json::parse(r.body);
  EXPECT_EQ(body["code"], "CONTAINER_NOT_READY");
  EXPECT_EQ(body["httpStatus"], 503);
  EXPECT_EQ(body["context"]["sandbox"], "s");
  EXPECT_TRUE(body["timestamp"].get<std::string>().ends_with("Z"));
  // Every code maps to a 4xx or 5xx; only retryable ones to 503.
  for (int c = 0; c <= static_cast<int>(errc::session_not_found); ++c) {
    const int status = api::http_status(static_cast<errc>(c));
    EXPECT_GE(status, 400);
    EXPECT_LT(status, 600);
    if (status == 503) {
      EXPECT_GT(api::retry_after_seconds(static_cast<errc>(c)), 0);
    }
  }
}

}  // namespace
}  // namespace kh::server
