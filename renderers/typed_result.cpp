#include "renderers/typed_result.hpp"

#include "renderers/ansi.hpp"

namespace kh::renderers {

std::string mime_text(const nl::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    std::string out;
    for (const auto& part : value)
      if (part.is_string()) out += part.get_ref<const std::string&>();
    return out;
  }
  return value.dump();
}

typed_result typed_result::from_mime_bundle(const nl::json& data, const nl::json& metadata, bool is_main_result) {
  typed_result r;
  r.is_main_result = is_main_result;
  if (metadata.is_object()) r.metadata = metadata;
  if (!data.is_object()) return r;
  for (auto it = data.begin(); it != data.end(); ++it) {
    const std::string& mime = it.key();
    const nl::json& value = it.value();
    if (mime == "text/plain") {
      std::string raw = mime_text(value);
      if (has_ansi(raw)) {
        r.text = strip_ansi(raw);
        r.text_raw = std::move(raw);
      } else {
        r.text = std::move(raw);
      }
    } else if (mime == "text/html") r.html = mime_text(value);
    else if (mime == "text/markdown") r.markdown = mime_text(value);
    else if (mime == "image/svg+xml") r.svg = mime_text(value);
    else if (mime == "image/png") r.png = mime_text(value);
    else if (mime == "image/jpeg") r.jpeg = mime_text(value);
    else if (mime == "application/pdf") r.pdf = mime_text(value);
    else if (mime == "text/latex") r.latex = mime_text(value);
    else if (mime == "application/json") r.json = value;
    else if (mime == "application/javascript" || mime == "text/javascript") r.javascript = mime_text(value);
    else if (mime == chart_mime) r.chart = value.is_string() ? nl::json::parse(value.get<std::string>(), nullptr, false) : value;
    else r.extra[mime] = value;
  }
  if (r.chart && r.chart->is_discarded()) {
    r.extra[std::string(chart_mime)] = data[std::string(chart_mime)];
    r.chart.reset();
  }
  return r;
}

typed_result typed_result::from_message(std::string_view msg_type, const nl::json& content) {
  const nl::json empty = nl::json::object();
  const auto& data = content.contains("data") ? content["data"] : empty;
  const auto& metadata = content.contains("metadata") ? content["metadata"] : empty;
  return from_mime_bundle(data, metadata, msg_type == "execute_result");
}

nl::json typed_result::to_json() const {
  nl::json j = nl::json::object();
  auto put = [&](const char* key, const auto& field) {
    if (field) j[key] = *field;
  };
  put("text", text);
  put("rawText", text_raw);
  put("html", html);
  put("markdown", markdown);
  put("svg", svg);
  put("png", png);
  put("jpeg", jpeg);
  put("pdf", pdf);
  put("latex", latex);
  put("json", json);
  put("javascript", javascript);
  put("chart", chart);
  if (!extra.empty()) j["extra"] = extra;
  if (!metadata.empty()) j["metadata"] = metadata;
  j["isMainResult"] = is_main_result;
  return j;
}

std::vector<std::string> typed_result::formats() const {
  std::vector<std::string> out;
  auto add = [&](const char* name, bool present) {
    if (present) out.emplace_back(name);
  };
  add("html", html.has_value());
  add("markdown", markdown.has_value());
  add("svg", svg.has_value());
  add("png", png.has_value());
  add("jpeg", jpeg.has_value());
  add("pdf", pdf.has_value());
  add("latex", latex.has_value());
  add("json", json.has_value());
  add("javascript", javascript.has_value());
  add("chart", chart.has_value());
  for (auto it = extra.begin(); it != extra.end(); ++it) out.push_back(it.key());
  return out;
}

}  // namespace kh::renderers
