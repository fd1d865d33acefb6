#include "renderers/markdown_exporter.hpp"

#include <fmt/format.h>

#include "renderers/ansi.hpp"
#include "renderers/base64.hpp"
#include "renderers/typed_result.hpp"

namespace kh::renderers {
namespace {

std::string fenced(std::string text, std::string_view lang = "") {
  if (!text.empty() && text.back() != '\n') text += '\n';
  std::string fence = "```";
  while (text.find(fence) != std::string::npos) fence += '`';
  return fence + std::string(lang) + "\n" + text + fence + "\n\n";
}

}  // namespace

markdown_exporter::rendered markdown_exporter::render(const notebook& nb, const std::string& files_dir) const {
  rendered out;
  const std::string language = nb.language();
  auto add_image = [&](std::size_t cell, std::size_t k, std::string_view mime, const std::string& payload, bool base64) {
    const std::string ext = mime == "image/png" ? "png" : mime == "image/jpeg" ? "jpg" : "svg";
    const std::string name = fmt::format("{}/output_{}_{}.{}", files_dir, cell, k, ext);
    if (base64) {
      auto bytes = base64_decode(payload);
      if (!bytes) return std::string("*[image could not be decoded]*\n\n");
      out.files[name] = std::move(*bytes);
    } else {
      out.files[name] = payload;
    }
    return fmt::format("![{}]({})\n\n", ext, name);
  };
  for (std::size_t i = 0; i < nb.size(); ++i) {
    const auto& cell = nb.cells()[i];
    const std::string type = cell.value("cell_type", "");
    std::string source = nb.source(i);
    if (type == "markdown") {
      if (cell.contains("attachments") && cell["attachments"].is_object())
        for (auto it = cell["attachments"].begin(); it != cell["attachments"].end(); ++it) {
          if (!it->is_object()) continue;  // key() of a non-object's iterator throws
          for (auto m = it->begin(); m != it->end(); ++m) {
            if (!m.key().starts_with("image/")) continue;
            auto bytes = base64_decode(mime_text(m.value()));
            if (!bytes) continue;
            const std::string name = fmt::format("{}/attachment_{}_{}", files_dir, i, it.key());
            out.files[name] = std::move(*bytes);
            for (std::size_t p; (p = source.find("attachment:" + it.key())) != std::string::npos;)
              source.replace(p, 11 + it.key().size(), name);
            break;
          }
        }
      out.markdown += source + "\n\n";
      continue;
    }
    if (type != "code") {
      out.markdown += source + "\n\n";
      continue;
    }
    out.markdown += fenced(source, language);
    std::size_t k = 0;
    for (const auto& o : cell.value("outputs", nl::json::array())) {
      const std::string otype = o.value("output_type", "");
      if (otype == "stream") {
        out.markdown += fenced(strip_ansi(mime_text(o.value("text", nl::json("")))));
      } else if (otype == "error") {
        std::string tb;
        for (const auto& line : o.value("traceback", nl::json::array()))
          if (line.is_string()) tb += strip_ansi(line.get<std::string>()) + "\n";
        if (tb.empty()) tb = o.value("ename", "") + ": " + o.value("evalue", "");
        out.markdown += fenced(tb);
      } else if (otype == "display_data" || otype == "execute_result") {
        const auto r = typed_result::from_mime_bundle(o.value("data", nl::json::object()));
        if (r.png) out.markdown += add_image(i, k, "image/png", *r.png, true);
        else if (r.jpeg) out.markdown += add_image(i, k, "image/jpeg", *r.jpeg, true);
        else if (r.svg) out.markdown += add_image(i, k, "image/svg+xml", *r.svg, false);
        else if (r.markdown) out.markdown += *r.markdown + "\n\n";
        else if (r.html) out.markdown += *r.html + "\n\n";
        else if (r.latex) out.markdown += *r.latex + "\n\n";
        else if (r.json) out.markdown += fenced(r.json->dump(2, ' ', false, nl::json::error_handler_t::replace), "json");
        else if (r.text) out.markdown += fenced(*r.text);
      }
      ++k;
    }
  }
  return out;
}

result<void> markdown_exporter::write(const notebook& nb, const std::filesystem::path& path) const {
  const std::string dir_name = path.stem().string() + "_files";
  auto r = render(nb, dir_name);
  const auto base = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  if (!r.files.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(base / dir_name, ec);
    if (ec) return fail(errc::io_error, fmt::format("cannot create {}: {}", (base / dir_name).string(), ec.message()));
  }
  for (const auto& [name, bytes] : r.files)
    if (auto w = write_file_atomic(base / name, bytes); !w) return w;
  return write_file_atomic(path, r.markdown);
}

}  // namespace kh::renderers
