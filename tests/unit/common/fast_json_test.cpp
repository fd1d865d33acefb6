// common/fast_json must give nlohmann's results exactly (fuzz/fuzz_fast_json.cpp checks the same
// property on arbitrary bytes); these are the cases the sandbox routes rely on.
#include "common/fast_json.hpp"

#include <gtest/gtest.h>

namespace nl = nlohmann;

namespace {

std::string reference_dump(const nl::json& j) { return j.dump(-1, ' ', false, nl::json::error_handler_t::replace); }

void expect_same_parse(std::string_view text) {
  const auto want = nl::json::parse(text, nullptr, false);
  const auto got = kh::fast_json::parse(text);
  ASSERT_EQ(got.is_discarded(), want.is_discarded()) << text;
  if (!want.is_discarded()) EXPECT_EQ(got, want) << text;
}

}  // namespace

TEST(fast_json, parses_a_big_write_body_as_nlohmann_does) {
  std::string content;
  for (int i = 0; i < 70000; ++i) content += "line \"" + std::to_string(i) + "\"\t\\ caf\u00e9 \U0001F600\n";
  const nl::json body = {{"path", "/workspace/big.txt"}, {"content", content}, {"encoding", "utf-8"}};
  const std::string text = reference_dump(body);
  ASSERT_GT(text.size(), 1u << 20);
  const auto parsed = kh::fast_json::parse(text);
  ASSERT_TRUE(parsed.is_object());
  EXPECT_EQ(parsed["content"].get<std::string>(), content);
  EXPECT_EQ(kh::fast_json::dump(parsed), text);
}

TEST(fast_json, refuses_and_accepts_exactly_what_nlohmann_does) {
  for (std::string_view text :
       {"{}", " {\"a\" : [1, -0, 2.5e3, 1e400, 18446744073709551615, -9223372036854775809, true, false, null]} ",
        "{\"a\":1,\"a\":2}", "\xef\xbb\xbf{\"bom\":1}", "{\"k\":\"\\ud83d\\ude00 \\u00E9 \\u0000\"}", "{\"k\":\"\\ud800\"}",
        "{\"k\":\"\\udc00\"}", "{\"k\":\"\xc3\x28\"}", "{\"k\":\"\xed\xa0\x80\"}", "{\"k\":\"tab\there\"}", "{\"a\":1,}",
        "[1,2", "{\"a\":01}", "{\"a\":tru}", "nul", "\"\\x\"", "{} {}", "{\"n\":555e555551}", "[[[[[[[[[[]]]]]]]]]]"})
    expect_same_parse(text);
  std::string deep(5000, '[');
  deep += std::string(5000, ']');
  expect_same_parse(deep);
}

TEST(fast_json, dumps_the_bytes_nlohmann_dumps) {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  for (const std::string& s : {std::string("plain ascii"), std::string("\x01\x1f\x7f\"\\/\b\f\n\r\t", 11),
                               std::string("caf\u00e9 \U0001F600"), std::string("\xc3\x28 cut \xe2\x82", 8), all_bytes}) {
    const nl::json j = {{"data", s}, {s, {1, 2.5, nullptr, true, "x"}}, {"n", -7}};
    EXPECT_EQ(kh::fast_json::dump(j), reference_dump(j));
  }
}
