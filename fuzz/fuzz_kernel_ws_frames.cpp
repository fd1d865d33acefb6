// The Jupyter kernel WebSocket frames a client sends (kernel_host/api/kernel_wire, used by
// kernel_channels): v1.kernel.websocket.jupyter.org binary frames, legacy JSON text frames and
// legacy binary frames with buffers. The first byte picks the decoder. Properties: no decoder
// throws or crashes; a decoded message has an object header; what we encode for a decoded
// message decodes back to the same channel and message.
#include "fuzz/fuzz_common.hpp"
#include "kernel_host/api/kernel_wire.hpp"

namespace ctx = kh::contexts;
namespace nl = nlohmann;

namespace {

void check_same(const ctx::message& a, const ctx::message& b) {
  KH_FUZZ_CHECK(a.header == b.header);
  KH_FUZZ_CHECK(a.parent_header == b.parent_header);
  KH_FUZZ_CHECK(a.metadata == b.metadata);
  KH_FUZZ_CHECK(a.content == b.content);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string frame(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string channel;
  ctx::message msg;
  bool ok = false;
  switch (data[0] % 3) {
    case 0: ok = kh::api::from_wire_v1(frame, channel, msg); break;
    case 1: ok = kh::api::from_wire_legacy_text(frame, channel, msg); break;
    default: ok = kh::api::from_wire_legacy_binary(frame, channel, msg); break;
  }
  if (!ok) return 0;
  KH_FUZZ_CHECK(msg.header.is_object());
  (void)msg.msg_type();
  (void)msg.msg_id();

  // Round trips through both encoders (the server sends these to clients).
  {
    std::string ch2;
    ctx::message back;
    KH_FUZZ_CHECK(kh::api::from_wire_v1(kh::api::to_wire_v1(msg, channel), ch2, back) || msg.header.empty());
    if (!msg.header.empty()) {
      KH_FUZZ_CHECK(ch2 == channel);
      check_same(msg, back);
    }
  }
  {
    auto [wire, binary] = kh::api::to_wire_legacy(msg, channel);
    std::string ch2;
    ctx::message back;
    const bool decoded = binary ? kh::api::from_wire_legacy_binary(wire, ch2, back)
                                : kh::api::from_wire_legacy_text(wire, ch2, back);
    // Legacy JSON replaces invalid UTF-8 in the channel name (buffers stay raw bytes).
    KH_FUZZ_CHECK(decoded);
    const auto replaced = nl::json::parse(nl::json(channel).dump(-1, ' ', false, nl::json::error_handler_t::replace));
    KH_FUZZ_CHECK(ch2 == replaced.get<std::string>());
    check_same(msg, back);
    KH_FUZZ_CHECK(back.buffers == msg.buffers);
  }
  return 0;
}
