#include "kernel_host/client/detail/client_state.hpp"
#include "kernel_host/client/sandbox.hpp"

namespace kh::client {

namespace nl = nlohmann;
using detail::http::verb;

namespace {

constexpr const char* kStringFields[] = {"text", "html", "markdown", "svg", "png", "jpeg", "pdf", "latex", "javascript"};

std::optional<std::string>& string_field(result& r, std::string_view name) {
  if (name == "text") return r.text;
  if (name == "html") return r.html;
  if (name == "markdown") return r.markdown;
  if (name == "svg") return r.svg;
  if (name == "png") return r.png;
  if (name == "jpeg") return r.jpeg;
  if (name == "pdf") return r.pdf;
  if (name == "latex") return r.latex;
  return r.javascript;
}

result result_from_event(const nl::json& e) {
  result r;
  for (const char* name : kStringFields)
    if (auto it = e.find(name); it != e.end() && it->is_string()) string_field(r, name) = it->get<std::string>();
  if (auto it = e.find("json"); it != e.end() && !it->is_null()) r.json = *it;
  if (auto it = e.find("chart"); it != e.end() && !it->is_null()) r.chart = *it;
  r.extra = e.value("extra", nl::json::object());
  r.is_main_result = e.value("isMainResult", false);
  r.raw = e;
  return r;
}

// The reference's {type, content} view of a result: its richest format.
output output_of(const result& r) {
  if (r.png) return {output_type::image, *r.png, "image/png", ""};
  if (r.jpeg) return {output_type::image, *r.jpeg, "image/jpeg", ""};
  if (r.html) return {output_type::html, *r.html, "text/html", ""};
  if (r.svg) return {output_type::svg, *r.svg, "image/svg+xml", ""};
  if (r.markdown) return {output_type::markdown, *r.markdown, "text/markdown", ""};
  if (r.latex) return {output_type::latex, *r.latex, "text/latex", ""};
  if (r.json) return {output_type::json, r.json->dump(), "application/json", ""};
  if (r.javascript) return {output_type::javascript, *r.javascript, "application/javascript", ""};
  if (r.pdf) return {output_type::pdf, *r.pdf, "application/pdf", ""};
  return {output_type::text, r.text.value_or(""), "text/plain", ""};
}

}  // namespace

std::vector<std::string> result::formats() const {
  std::vector<std::string> out;
  for (const char* name : kStringFields)
    if (string_field(const_cast<result&>(*this), name)) out.emplace_back(name);
  if (json) out.emplace_back("json");
  if (chart) out.emplace_back("chart");
  return out;
}

execution code_context::run_code(const std::string& code, const run_options& options) const {
  nl::json body{{"context_id", id_}, {"code", code}};
  if (options.timeout) body["timeout_ms"] = options.timeout->count();
  execution x;
  bool clear_pending = false;  // clear_output(wait=True): clear when the next output arrives
  auto before_output = [&] {
    if (!clear_pending) return;
    x.outputs.clear();
    x.results.clear();
    clear_pending = false;
  };
  bool ended = false;
  state_->stream(verb::post, state_->sandbox_target("/api/execute/code"), body, [&](const nl::json& e) {
    const std::string type = detail::text_field(e, "type", "");
    if (type == "stdout" || type == "stderr") {
      before_output();
      const std::string text = detail::text_field(e, "text", "");
      (type == "stdout" ? x.stdout_data : x.stderr_data) += text;
      x.outputs.push_back({output_type::text, text, "text/plain", type});
      const auto& cb = type == "stdout" ? options.on_stdout : options.on_stderr;
      if (cb) cb(text);
    } else if (type == "result") {
      before_output();
      x.results.push_back(result_from_event(e));
      x.outputs.push_back(output_of(x.results.back()));
      if (options.on_result) options.on_result(x.results.back());
    } else if (type == "clear_output") {
      if (e.value("wait", false)) {
        clear_pending = true;
      } else {
        x.outputs.clear();
        x.results.clear();
      }
    } else if (type == "error") {
      execution_error err;
      err.name = detail::text_field(e, "ename", detail::text_field(e, "code", "Error"));
      err.value = detail::text_field(e, "evalue", detail::text_field(e, "error", ""));
      for (const auto& line : e.value("traceback", nl::json::array()))
        if (line.is_string()) err.traceback.push_back(line.get<std::string>());
      x.error = err;
      if (options.on_error) options.on_error(err);
      ended = true;
      return false;
    } else if (type == "execution_complete") {
      if (auto it = e.find("execution_count"); it != e.end() && it->is_number_integer()) x.execution_count = it->get<int>();
      ended = true;
      return false;
    }
    return true;
  });
  if (!ended) throw sandbox_error("CONNECTION_ERROR", "the execution stream ended before the cell finished", 0, {{"contextId", id_}});
  return x;
}

}  // namespace kh::client
