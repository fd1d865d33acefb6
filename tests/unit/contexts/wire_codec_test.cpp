// Unit tests of the Jupyter wire layer: HMAC-SHA256 signing, encoding and decoding of frames.

#include <gtest/gtest.h>

#include <set>

#include "contexts/message.hpp"
#include "contexts/message_signer.hpp"
#include "contexts/wire_codec.hpp"

namespace kh::contexts {
namespace {

// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
TEST(message_signer, matches_rfc4231_vector) {
  message_signer signer("Jefe");
  EXPECT_EQ(signer.sign("what do ya ", "want ", "for ", "nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// RFC 4231 test case 1: 20 bytes of 0x0b, data "Hi There".
TEST(message_signer, matches_rfc4231_binary_key_vector) {
  message_signer signer(std::string(20, '\x0b'));
  EXPECT_EQ(signer.sign("Hi There", "", "", ""), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

// The signature covers the concatenation, so how the bytes are split across frames must not matter.
TEST(message_signer, signs_concatenation_of_frames) {
  message_signer signer("secret");
  EXPECT_EQ(signer.sign("ab", "cd", "", ""), signer.sign("a", "b", "c", "d"));
  EXPECT_NE(signer.sign("ab", "cd", "", ""), signer.sign("ab", "ce", "", ""));
}

TEST(message_signer, verify_accepts_correct_and_uppercase_rejects_others) {
  message_signer signer("secret");
  const std::string sig = signer.sign("h", "p", "m", "c");
  EXPECT_TRUE(signer.verify(sig, "h", "p", "m", "c"));
  std::string upper = sig;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_TRUE(signer.verify(upper, "h", "p", "m", "c"));
  EXPECT_FALSE(signer.verify(sig, "h", "p", "m", "x"));
  EXPECT_FALSE(signer.verify(sig.substr(1), "h", "p", "m", "c"));
  EXPECT_FALSE(signer.verify("", "h", "p", "m", "c"));
}

TEST(message_signer, empty_key_disables_signing) {
  message_signer signer("");
  EXPECT_FALSE(signer.enabled());
  EXPECT_EQ(signer.sign("h", "p", "m", "c"), "");
  EXPECT_TRUE(signer.verify("anything", "h", "p", "m", "c"));
}

message sample_message() {
  message msg = make_message("execute_request", {{"code", "1+1"}, {"silent", false}}, "session-1");
  msg.identities = {"peer-identity"};
  msg.parent_header = {{"msg_id", "parent-1"}};
  msg.metadata = {{"k", "v"}};
  msg.buffers = {std::string("\x00\x01\x02", 3), "second"};
  return msg;
}

TEST(wire_codec, round_trips_every_part) {
  message_signer signer("key");
  const message msg = sample_message();
  auto frames = encode_message(msg, signer);
  ASSERT_EQ(frames.size(), 1u + 1 + 1 + 4 + 2);
  EXPECT_EQ(frames[0], "peer-identity");
  EXPECT_EQ(frames[1], "<IDS|MSG>");
  auto decoded = decode_message(frames, signer);
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  EXPECT_EQ(decoded->identities, msg.identities);
  EXPECT_EQ(decoded->header, msg.header);
  EXPECT_EQ(decoded->parent_header, msg.parent_header);
  EXPECT_EQ(decoded->metadata, msg.metadata);
  EXPECT_EQ(decoded->content, msg.content);
  EXPECT_EQ(decoded->buffers, msg.buffers);
  EXPECT_EQ(decoded->msg_type(), "execute_request");
  EXPECT_EQ(decoded->parent_msg_id(), "parent-1");
}

TEST(wire_codec, header_has_protocol_fields) {
  const message msg = sample_message();
  for (const char* key : {"msg_id", "session", "username", "date", "msg_type", "version"})
    EXPECT_TRUE(msg.header.contains(key)) << key;
  EXPECT_EQ(msg.header["version"], "5.3");
  EXPECT_EQ(msg.header["session"], "session-1");
  const std::string date = msg.header["date"];
  EXPECT_EQ(date.size(), 27u) << date;  // 2026-11-26T23:53:03.123456Z
  EXPECT_EQ(date.back(), 'Z');
}

TEST(wire_codec, msg_ids_are_unique) {
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.insert(new_msg_id());
  EXPECT_EQ(ids.size(), 10000u);
}

TEST(wire_codec, rejects_tampered_content) {
  message_signer signer("key");
  auto frames = encode_message(sample_message(), signer);
  frames[6] = R"j({"code":"import os; os.system('rm -rf /')","silent":false})j";
  auto decoded = decode_message(frames, signer);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().code, errc::protocol_error);
  EXPECT_NE(decoded.error().message.find("signature"), std::string::npos);
}

TEST(wire_codec, rejects_wrong_key) {
  auto frames = encode_message(sample_message(), message_signer("key-a"));
  EXPECT_FALSE(decode_message(frames, message_signer("key-b")));
}

TEST(wire_codec, rejects_truncated_and_undelimited_frames) {
  message_signer signer("key");
  auto frames = encode_message(sample_message(), signer);
  for (std::size_t keep = 0; keep < 7; ++keep) {  // identity + delimiter + signature + 4 JSON frames
    std::vector<std::string> truncated(frames.begin(), frames.begin() + static_cast<std::ptrdiff_t>(keep));
    auto decoded = decode_message(truncated, signer);
    EXPECT_FALSE(decoded) << "kept " << keep << " frames";
  }
  std::vector<std::string> no_delimiter = frames;
  no_delimiter.erase(no_delimiter.begin() + 1);
  EXPECT_FALSE(decode_message(no_delimiter, signer));
}

TEST(wire_codec, rejects_invalid_json_even_when_signed) {
  message_signer signer("key");
  std::vector<std::string> frames = {"<IDS|MSG>", "", "{not json", "{}", "{}", "{}"};
  frames[1] = signer.sign(frames[2], frames[3], frames[4], frames[5]);
  auto decoded = decode_message(frames, signer);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error().message.find("header"), std::string::npos);
  frames = {"<IDS|MSG>", "", "[1,2]", "{}", "{}", "{}"};
  frames[1] = signer.sign(frames[2], frames[3], frames[4], frames[5]);
  EXPECT_FALSE(decode_message(frames, signer));
}

TEST(wire_codec, rejects_header_without_msg_type) {
  message_signer signer("key");
  std::vector<std::string> frames = {"<IDS|MSG>", "", R"({"msg_id":"x"})", "{}", "{}", "{}"};
  frames[1] = signer.sign(frames[2], frames[3], frames[4], frames[5]);
  EXPECT_FALSE(decode_message(frames, signer));
}

TEST(wire_codec, invalid_utf8_is_replaced_not_thrown) {
  message_signer signer("key");
  message msg = make_message("stream", {{"name", "stdout"}, {"text", std::string("ok \xff\xfe bad")}}, "s");
  std::vector<std::string> frames;
  ASSERT_NO_THROW(frames = encode_message(msg, signer));
  auto decoded = decode_message(frames, signer);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->content["text"].get<std::string>().substr(0, 3), "ok ");
}

}  // namespace
}  // namespace kh::contexts
