// The Jupyter wire decoder with HMAC signatures (contexts/wire_codec + message_signer): what a
// kernel sends over ZeroMQ. Frames are separated by "\n|\n" in the input; the first byte picks
// the key (none, a fixed key). Properties: decode_message never throws or crashes; a decoded
// message re-encodes and decodes to the same message; with a key, a message whose signature is
// not the HMAC of its four frames is refused, and re-signed frames are accepted.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "contexts/wire_codec.hpp"
#include "fuzz/fuzz_common.hpp"

namespace ctx = kh::contexts;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const ctx::message_signer keyed("fuzz-key-0123456789abcdef");
  static const ctx::message_signer unkeyed("");
  const bool use_key = data[0] & 1;
  const ctx::message_signer& signer = use_key ? keyed : unkeyed;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto frames = kh::fuzz::split(input, "\n|\n");
  if (frames.size() > 64) return 0;

  // The seeds carry the placeholder signature "SIGN": replace it with the true one so the
  // fuzzer gets past the check and reaches the JSON frames.
  for (std::size_t i = 0; i + 5 < frames.size(); ++i)
    if (frames[i] == ctx::wire_delimiter && frames[i + 1] == "SIGN")
      frames[i + 1] = signer.sign(frames[i + 2], frames[i + 3], frames[i + 4], frames[i + 5]);

  auto decoded = ctx::decode_message(frames, signer);
  if (!decoded) {
    KH_FUZZ_CHECK(decoded.error().code == kh::errc::protocol_error);
    return 0;
  }
  // A decoded message was signed correctly: its signature frame is the HMAC (case-insensitive).
  const auto delim = std::find(frames.begin(), frames.end(), ctx::wire_delimiter);
  KH_FUZZ_CHECK(delim != frames.end());
  const std::size_t first = static_cast<std::size_t>(delim - frames.begin()) + 1;
  if (use_key) {
    auto tampered = frames;
    tampered[first + 4] += " ";
    KH_FUZZ_CHECK(!ctx::decode_message(tampered, signer));
    auto unsigned_frames = frames;
    unsigned_frames[first] = "";
    KH_FUZZ_CHECK(!ctx::decode_message(unsigned_frames, signer));
  }

  // Round trip: encode what was decoded, decode again, compare.
  auto encoded = ctx::encode_message(*decoded, signer);
  auto again = ctx::decode_message(encoded, signer);
  KH_FUZZ_CHECK(again.has_value());
  KH_FUZZ_CHECK(again->identities == decoded->identities);
  KH_FUZZ_CHECK(again->header == decoded->header);
  KH_FUZZ_CHECK(again->parent_header == decoded->parent_header);
  KH_FUZZ_CHECK(again->metadata == decoded->metadata);
  KH_FUZZ_CHECK(again->content == decoded->content);
  KH_FUZZ_CHECK(again->buffers == decoded->buffers);
  (void)decoded->msg_id();
  (void)decoded->parent_msg_id();
  return 0;
}
