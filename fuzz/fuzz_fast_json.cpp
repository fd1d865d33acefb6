// common/fast_json against nlohmann, the reference it stands in for. The input is a request body
// (any bytes). Properties: fast_json::parse accepts exactly what nlohmann accepts and yields the
// same value; fast_json::dump writes the same bytes as nlohmann's dump (replace handler), also for
// strings of raw bytes (invalid UTF-8 included).
#include "common/fast_json.hpp"
#include "fuzz/fuzz_common.hpp"

namespace nl = nlohmann;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto reference = nl::json::parse(text, nullptr, false);
  const auto fast = kh::fast_json::parse(text);
  KH_FUZZ_CHECK(fast.is_discarded() == reference.is_discarded());
  if (!reference.is_discarded()) {
    KH_FUZZ_CHECK(fast == reference);
    KH_FUZZ_CHECK(kh::fast_json::dump(fast) == reference.dump(-1, ' ', false, nl::json::error_handler_t::replace));
  }
  // The raw bytes as one string value and as an object key.
  const nl::json raw = {{"data", std::string(text)}, {std::string(text), 1}};
  KH_FUZZ_CHECK(kh::fast_json::dump(raw) == raw.dump(-1, ' ', false, nl::json::error_handler_t::replace));
  return 0;
}
