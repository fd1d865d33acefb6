// The SSE writer's escaping (kernel_host/api/sse_event.hpp, the "data: <json>\n\n" events of
// execute/stream, files/stream, process logs, port-watch and execute/code). The input becomes a
// JSON event whose strings and keys are raw bytes (command output, file chunks, kernel text may be
// any bytes, invalid UTF-8 included). Properties: the event is "data: " + one line + "\n\n"; the
// line holds no CR or LF (the SSE line breaks) and no NUL; it parses back as JSON, with the same
// shape and, for valid UTF-8, the same strings.
#include "fuzz/fuzz_common.hpp"
#include "kernel_host/api/sse_event.hpp"

namespace nl = nlohmann;

namespace {

nl::json build(kh::fuzz::reader& in, int depth) {
  switch (depth > 3 ? in.byte() % 4 : in.byte() % 7) {
    case 0: return in.string(200);
    case 1: return static_cast<std::int64_t>(in.byte()) - 128;
    case 2: return in.byte() & 1;
    case 3: return nullptr;
    case 4: {
      nl::json a = nl::json::array();
      for (int n = in.byte() % 5; n > 0 && !in.empty(); --n) a.push_back(build(in, depth + 1));
      return a;
    }
    default: {
      nl::json o = nl::json::object();
      for (int n = in.byte() % 5; n > 0 && !in.empty(); --n) {
        std::string key = in.string(16);
        o[key] = build(in, depth + 1);
      }
      return o;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kh::fuzz::reader in(data, size);
  // As the handlers build them: {"type": ..., "data": <bytes>, ...}.
  nl::json event = {{"type", "chunk"}, {"data", std::string(in.string(255))}};
  event["extra"] = build(in, 0);
  event["rest"] = std::string(in.rest());

  const std::string sse = kh::api::sse_event(event);
  KH_FUZZ_CHECK(sse.starts_with("data: "));
  KH_FUZZ_CHECK(sse.ends_with("\n\n"));
  const std::string_view line = std::string_view(sse).substr(6, sse.size() - 8);
  KH_FUZZ_CHECK(line.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
  auto back = nl::json::parse(line, nullptr, false);
  KH_FUZZ_CHECK(!back.is_discarded());
  KH_FUZZ_CHECK(back.is_object() && back.size() == event.size());
  KH_FUZZ_CHECK(back["type"] == "chunk");
  // Valid UTF-8 survives unchanged; invalid bytes become U+FFFD.
  bool valid = true;
  try {
    (void)event.dump();
  } catch (const nl::json::type_error&) {
    valid = false;
  }
  if (valid) KH_FUZZ_CHECK(back == event);
  return 0;
}
