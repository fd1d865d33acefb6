// kh::client::sse_parser: events split anywhere, every line ending, comments and malformed frames.

#include <gtest/gtest.h>

#include "kernel_host/client/sse_parser.hpp"

namespace kh::client {
namespace {

std::vector<sse_event> feed_in_pieces(std::string_view stream, std::size_t piece) {
  sse_parser p;
  std::vector<sse_event> out;
  for (std::size_t i = 0; i < stream.size(); i += piece)
    for (auto& e : p.feed(stream.substr(i, piece))) out.push_back(std::move(e));
  return out;
}

TEST(sse_parser, one_event_per_blank_line) {
  sse_parser p;
  auto events = p.feed("data: {\"type\":\"start\"}\n\ndata: {\"type\":\"complete\"}\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data, R"({"type":"start"})");
  EXPECT_EQ(events[0].event, "message");
  EXPECT_EQ(events[1].data, R"({"type":"complete"})");
}

TEST(sse_parser, an_event_split_at_every_byte_is_the_same_event) {
  const std::string stream = "event: stdout\r\nid: 7\r\ndata: line one\r\ndata: line two\r\n\r\ndata: x\n\n";
  for (std::size_t piece = 1; piece <= stream.size(); ++piece) {
    auto events = feed_in_pieces(stream, piece);
    ASSERT_EQ(events.size(), 2u) << "pieces of " << piece;
    EXPECT_EQ(events[0].event, "stdout");
    EXPECT_EQ(events[0].id, "7");
    EXPECT_EQ(events[0].data, "line one\nline two") << "pieces of " << piece;
    EXPECT_EQ(events[1].data, "x");
    EXPECT_EQ(events[1].id, "7") << "the last id persists";
  }
}

TEST(sse_parser, an_event_is_delivered_only_once_its_blank_line_arrives) {
  sse_parser p;
  EXPECT_TRUE(p.feed("data: {\"a\":1}\n").empty());
  EXPECT_EQ(p.feed("\r").size(), 1u);  // a lone CR is a line end: the event is complete
  EXPECT_TRUE(p.feed("\n").empty()) << "the LF of a CRLF split across pieces is not a second blank line";
  EXPECT_TRUE(p.feed("data: b").empty());
  auto events = p.feed("\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "b");
}

TEST(sse_parser, lone_cr_crlf_and_lf_line_ends_mix) {
  sse_parser p;
  auto events = p.feed("data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\r");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data, "a\nb\nc");
  EXPECT_EQ(events[1].data, "d");
}

TEST(sse_parser, comments_are_counted_and_never_delivered) {
  sse_parser p;
  auto events = p.feed(": keep-alive\n\n:another\ndata: x\n: inside\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "x");
  EXPECT_EQ(p.comments(), 3u);
}

TEST(sse_parser, malformed_lines_are_ignored_as_the_standard_says) {
  sse_parser p;
  // A field without a colon has an empty value; unknown fields and bad retry values are ignored;
  // "data" without a space keeps the rest verbatim; only one leading space is removed.
  auto events = p.feed("bogus line\nfoo: bar\nretry: 12x\ndata\ndata:no-space\ndata:  two spaces\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "\nno-space\n two spaces");
  EXPECT_FALSE(events[0].retry);
  auto next = p.feed("retry: 1500\ndata: r\n\n");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].retry, 1500);
}

TEST(sse_parser, frames_without_data_dispatch_nothing) {
  sse_parser p;
  EXPECT_TRUE(p.feed("event: ping\n\nid: 3\n\n\n\n").empty());
  auto events = p.feed("data: after\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "message") << "an event name does not leak into the next event";
  EXPECT_EQ(events[0].id, "3");
}

TEST(sse_parser, an_unterminated_event_is_dropped_at_the_end_of_the_stream) {
  sse_parser p;
  EXPECT_TRUE(p.feed("data: complete\n\ndata: cut off in the midd").size() == 1);
  EXPECT_TRUE(p.finish());
  EXPECT_FALSE(p.finish());
  auto events = p.feed("data: fresh\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "fresh");
}

TEST(sse_parser, a_leading_bom_is_skipped_even_when_split) {
  const std::string stream = "\xEF\xBB\xBF" "data: x\n\n";
  for (std::size_t piece = 1; piece <= 4; ++piece) {
    auto events = feed_in_pieces(stream, piece);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].data, "x");
  }
  sse_parser p;  // a stream that merely starts like a BOM keeps its bytes
  auto events = p.feed("\xEF" "data: y\n\n");
  EXPECT_TRUE(events.empty()) << "the line is field \"\\xEFdata\", unknown, so nothing is dispatched";
}

TEST(sse_parser, utf8_and_nul_bytes_pass_through_data) {
  sse_parser p;
  const std::string text = "data: h\xC3\xA9llo \xE2\x9C\x93 ";
  auto events = p.feed(text + std::string(1, '\0') + "\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, std::string("h\xC3\xA9llo \xE2\x9C\x93 ") + std::string(1, '\0'));
}

TEST(sse_parser, an_endless_line_is_refused_at_the_limit) {
  sse_parser p(64);
  EXPECT_THROW(p.feed("data: " + std::string(100, 'x')), std::length_error);
  sse_parser q(64);
  EXPECT_THROW(for (int i = 0; i < 10; ++i) q.feed("data: 0123456789\n"), std::length_error);
}

TEST(sse_parser, the_callback_runs_for_each_event_as_it_completes) {
  sse_parser p;
  std::vector<std::string> seen;
  p.feed("data: 1\n\ndata: 2\n\ndata: 3", [&](sse_event&& e) { seen.push_back(e.data); });
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "2"}));
  p.feed("\n\n", [&](sse_event&& e) { seen.push_back(e.data); });
  EXPECT_EQ(seen.size(), 3u);
}

}  // namespace
}  // namespace kh::client
