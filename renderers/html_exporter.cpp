#include "renderers/html_exporter.hpp"

#include <fmt/format.h>

#include "renderers/ansi.hpp"
#include "renderers/base64.hpp"
#include "renderers/code_highlighter.hpp"
#include "renderers/markdown_renderer.hpp"
#include "renderers/typed_result.hpp"

namespace kh::renderers {
namespace {

constexpr std::string_view page_style = R"css(
:root { --fg:#1f2328; --muted:#656d76; --border:#d0d7de; --code-bg:#f6f8fa; --err-bg:#fff0f0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg); background: #fff; }
main.notebook { max-width: 1100px; margin: 0 auto; padding: 24px 16px 64px; }
header.report { border-bottom: 1px solid var(--border); margin-bottom: 16px; color: var(--muted); font-size: 13px; }
header.report h1 { color: var(--fg); font-size: 22px; margin: 0 0 4px; }
.cell { display: grid; grid-template-columns: 72px minmax(0, 1fr); gap: 0 8px; margin: 10px 0; }
.prompt { color: var(--muted); font: 12px/1.6 ui-monospace, SFMono-Regular, Menlo, monospace; text-align: right; padding-top: 6px; }
.cell-body { min-width: 0; }
.markdown-cell .cell-body { padding: 0 4px; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre.code { background: var(--code-bg); border: 1px solid var(--border); border-radius: 6px; padding: 8px 10px; }
.outputs { margin-top: 4px; }
.output { padding: 4px 2px; overflow-x: auto; }
pre.stream-stderr { background: #fff8e6; }
.output-error { background: var(--err-bg); border-left: 3px solid #cf222e; padding: 6px 8px; }
.output-error .ename { font-weight: 600; color: #cf222e; margin-bottom: 4px; }
.output img { max-width: 100%; height: auto; }
iframe.html-output { width: 100%; border: 0; height: 60px; display: block; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid var(--border); padding: 3px 8px; }
.tok-keyword { color: #cf222e; } .tok-string { color: #0a3069; } .tok-comment { color: #6e7781; font-style: italic; }
.tok-number { color: #0550ae; } .tok-builtin { color: #8250df; } .tok-decorator { color: #953800; }
.run-status { border: 1px solid #cf222e; background: var(--err-bg); padding: 8px 12px; border-radius: 6px; margin: 8px 0; }
.unsupported { color: var(--muted); font-style: italic; }
)css";

// In every HTML frame: reports its height to the page.
constexpr std::string_view frame_script =
    "<script>(function(){var id=%ID%;function post(){parent.postMessage({khFrame:id,height:"
    "Math.ceil(document.documentElement.scrollHeight)},'*');}"
    "addEventListener('load',post);if(window.ResizeObserver){new ResizeObserver(post).observe(document.documentElement);}"
    "setTimeout(post,50);})();</script>";

constexpr std::string_view frame_style =
    "<style>body{margin:0;padding:2px;font:14px/1.45 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1f2328}"
    "table{border-collapse:collapse}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}"
    "thead th{background:#f6f8fa}</style>";

constexpr std::string_view page_script = R"js(
addEventListener('message', function (e) {
  if (!e.data || typeof e.data.khFrame !== 'number') return;
  var frame = document.querySelector('iframe[data-kh-frame="' + e.data.khFrame + '"]');
  if (frame && e.source === frame.contentWindow) frame.style.height = Math.min(Math.max(e.data.height, 20), 5000) + 'px';
});
)js";

std::string iframe(const std::string& body, int& frame_id) {
  const int id = ++frame_id;
  std::string script(frame_script);
  script.replace(script.find("%ID%"), 4, std::to_string(id));
  const std::string doc = "<!DOCTYPE html><html><head><meta charset=\"utf-8\">" + std::string(frame_style) + "</head><body>" +
                          body + script + "</body></html>";
  return fmt::format("<iframe class=\"html-output\" data-kh-frame=\"{}\" sandbox=\"allow-scripts\" title=\"HTML output\" srcdoc=\"{}\"></iframe>",
                     id, html_escape(doc));
}

std::string image(std::string_view mime, std::string base64, const nl::json& metadata, std::string_view key) {
  std::erase_if(base64, [](char c) { return c == '\n' || c == '\r' || c == ' '; });
  std::string size;
  if (metadata.is_object() && metadata.contains(key) && metadata[key].is_object()) {
    const auto& m = metadata[key];
    if (m.contains("width") && m["width"].is_number()) size += fmt::format(" width=\"{}\"", m["width"].dump());
    if (m.contains("height") && m["height"].is_number()) size += fmt::format(" height=\"{}\"", m["height"].dump());
  }
  return fmt::format("<img src=\"data:{};base64,{}\" alt=\"{} output\"{}>", mime, base64, mime, size);
}

}  // namespace

std::string html_exporter::render_output(const nl::json& output, int& frame_id) const {
  const std::string type = output.value("output_type", "");
  if (type == "stream") {
    const std::string name = output.value("name", "stdout");
    return fmt::format("<div class=\"output output-stream\"><pre class=\"stream-{}\">{}</pre></div>\n", html_escape(name),
                       ansi_to_html(mime_text(output.value("text", nl::json("")))));
  }
  if (type == "error") {
    std::string tb;
    for (const auto& line : output.value("traceback", nl::json::array()))
      if (line.is_string()) tb += line.get<std::string>() + "\n";
    return fmt::format("<div class=\"output output-error\"><div class=\"ename\">{}: {}</div><pre>{}</pre></div>\n",
                       html_escape(output.value("ename", "")), ansi_to_html(output.value("evalue", "")), ansi_to_html(tb));
  }
  if (type != "display_data" && type != "execute_result") return {};
  const auto r = typed_result::from_mime_bundle(output.value("data", nl::json::object()), output.value("metadata", nl::json::object()));
  std::string body;
  if (r.html) body = iframe(*r.html, frame_id);
  else if (r.svg) body = fmt::format("<img src=\"data:image/svg+xml;base64,{}\" alt=\"image/svg+xml output\">", base64_encode(*r.svg));
  else if (r.png) body = image("image/png", *r.png, r.metadata, "image/png");
  else if (r.jpeg) body = image("image/jpeg", *r.jpeg, r.metadata, "image/jpeg");
  else if (r.markdown) body = "<div class=\"markdown\">" + markdown_renderer().to_html(*r.markdown) + "</div>";
  else if (r.javascript) body = iframe("<script>" + *r.javascript + "</script>", frame_id);
  else if (r.latex) body = "<pre class=\"latex\">" + html_escape(*r.latex) + "</pre>";
  else if (r.json) body = "<pre class=\"json\">" + html_escape(r.json->dump(2, ' ', false, nl::json::error_handler_t::replace)) + "</pre>";
  else if (r.pdf) body = fmt::format("<a download=\"output.pdf\" href=\"data:application/pdf;base64,{}\">PDF output</a>", *r.pdf);
  else if (r.text) body = "<pre>" + html_escape(*r.text) + "</pre>";
  else if (!r.extra.empty()) body = "<div class=\"unsupported\">[output of type " + html_escape(r.extra.begin().key()) + " not shown]</div>";
  return "<div class=\"output output-" + type + "\">" + body + "</div>\n";
}

std::string html_exporter::render(const notebook& nb, std::string_view title) const {
  std::string language = nb.language();
  code_highlighter highlighter(language);
  int frame_id = 0;
  std::string cells;
  for (std::size_t i = 0; i < nb.size(); ++i) {
    const auto& cell = nb.cells()[i];
    const std::string type = cell.value("cell_type", "");
    const std::string id = cell.contains("id") && cell["id"].is_string() ? cell["id"].get<std::string>() : std::to_string(i);
    const std::string source = nb.source(i);
    if (type == "markdown") {
      cells += fmt::format("<section class=\"cell markdown-cell\" id=\"cell-{}\"><div class=\"prompt\"></div><div class=\"cell-body\">{}</div></section>\n",
                           html_escape(id), markdown_renderer(cell.value("attachments", nl::json::object())).to_html(source));
    } else if (type == "code") {
      const auto& count = cell.contains("execution_count") ? cell["execution_count"] : nl::json();
      std::string outputs;
      for (const auto& o : cell.value("outputs", nl::json::array())) outputs += render_output(o, frame_id);
      cells += fmt::format(
          "<section class=\"cell code-cell\" id=\"cell-{}\"><div class=\"prompt\">In&nbsp;[{}]:</div><div class=\"cell-body\">"
          "<pre class=\"code\"><code class=\"language-{}\">{}</code></pre><div class=\"outputs\">{}</div></div></section>\n",
          html_escape(id), count.is_number() ? count.dump() : " ", html_escape(language), highlighter.to_html(source), outputs);
    } else {
      cells += fmt::format("<section class=\"cell raw-cell\" id=\"cell-{}\"><div class=\"prompt\"></div><div class=\"cell-body\"><pre>{}</pre></div></section>\n",
                           html_escape(id), html_escape(source));
    }
  }
  std::string status;
  const auto& md = nb.json().at("metadata");
  if (auto kh = md.find("kernel_host"); kh != md.end() && kh->is_object()) {
    if (auto run = kh->find("run"); run != kh->end() && string_member(*run, "status", "completed") != "completed")
      status = fmt::format("<div class=\"run-status\">The run stopped: {}</div>", html_escape(string_member(*run, "message")));
  }
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"kernel-host\">\n"
      "<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n<main class=\"notebook\">\n"
      "<header class=\"report\"><h1>{}</h1><div>kernel: {} &middot; language: {}</div></header>\n{}{}</main>\n<script>{}</script>\n</body>\n</html>\n",
      html_escape(title), page_style, html_escape(title), html_escape(nb.kernel_name()), html_escape(language), status, cells, page_script);
}

}  // namespace kh::renderers
