#pragma once
// One Server-Sent Event carrying a JSON value: "data: <json>\n\n". The JSON is dumped on one line
// (control characters escaped, invalid UTF-8 replaced by U+FFFD), so no value can end the event
// early or start a field of its own. Checked by fuzz/fuzz_sse_event.cpp.

#include <string>

#include <nlohmann/json.hpp>

#include "common/fast_json.hpp"

namespace kh::api {

inline std::string sse_event(const nlohmann::json& event) {
  std::string out = "data: ";
  fast_json::dump_to(out, event);
  out += "\n\n";
  return out;
}

}  // namespace kh::api
