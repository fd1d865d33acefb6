#pragma once
// typed_result: one display_data / execute_result mime bundle as typed fields, the model that
// the HTTP API serves (E2B's and Cloudflare's result shapes are both subsets of it).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kh::renderers {

namespace nl = nlohmann;

// Our chart mime type (a description of a matplotlib figure, as E2B's "e2b/chart").
inline constexpr std::string_view chart_mime = "application/vnd.kernel-host.chart+json";

struct typed_result {
  std::optional<std::string> text;      // text/plain without ANSI sequences
  std::optional<std::string> text_raw;  // text/plain as the kernel sent it (set only when it had ANSI)
  std::optional<std::string> html;      // text/html
  std::optional<std::string> markdown;  // text/markdown
  std::optional<std::string> svg;       // image/svg+xml
  std::optional<std::string> png;       // image/png, base64
  std::optional<std::string> jpeg;      // image/jpeg, base64
  std::optional<std::string> pdf;       // application/pdf, base64
  std::optional<std::string> latex;     // text/latex
  std::optional<nl::json> json;         // application/json
  std::optional<std::string> javascript;  // application/javascript (or text/javascript)
  std::optional<nl::json> chart;        // application/vnd.kernel-host.chart+json
  nl::json extra = nl::json::object();  // every other mime type, keyed by mime type
  nl::json metadata = nl::json::object();
  bool is_main_result = false;  // true for execute_result

  // From a bundle (`data`) and its metadata. Strings given as lists of lines (as in .ipynb
  // files) are joined.
  static typed_result from_mime_bundle(const nl::json& data, const nl::json& metadata = nl::json::object(),
                                       bool is_main_result = false);
  // From the content of a display_data / execute_result / update_display_data message.
  static typed_result from_message(std::string_view msg_type, const nl::json& content);

  // {"text":..., "html":..., ..., "extra":{...}, "metadata":{...}, "isMainResult":bool}; absent
  // fields are left out, "extra" and "metadata" only when not empty, "rawText" when text had ANSI.
  nl::json to_json() const;
  // The names of the formats present, as E2B's formats(): "html", "png", ... and the extra mime types.
  std::vector<std::string> formats() const;
};

// A mime value as a string: joins a list of lines, returns a string as is, dumps other JSON.
std::string mime_text(const nl::json& value);

}  // namespace kh::renderers
