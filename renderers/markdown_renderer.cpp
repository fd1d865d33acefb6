#include "renderers/markdown_renderer.hpp"

#include <vector>

#include <fmt/format.h>

#include "renderers/ansi.hpp"
#include "renderers/code_highlighter.hpp"
#include "renderers/typed_result.hpp"

namespace kh::renderers {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool safe_url(std::string_view url) {
  const auto colon = url.find(':');
  if (colon == std::string_view::npos) return true;  // relative or fragment
  const auto slash = url.find_first_of("/?#");
  if (slash != std::string_view::npos && slash < colon) return true;
  std::string scheme(url.substr(0, colon));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return scheme == "http" || scheme == "https" || scheme == "mailto";
}

std::vector<std::string_view> split_row(std::string_view line) {
  line = trim(line);
  if (line.starts_with('|')) line.remove_prefix(1);
  if (line.ends_with('|')) line.remove_suffix(1);
  std::vector<std::string_view> cells;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size() || (line[i] == '|' && (i == 0 || line[i - 1] != '\\'))) {
      cells.push_back(trim(line.substr(start, i - start)));
      start = i + 1;
    }
  }
  return cells;
}

bool is_table_separator(std::string_view line) {
  line = trim(line);
  if (line.find('-') == std::string_view::npos || line.find('|') == std::string_view::npos) return false;
  return line.find_first_not_of("|:- ") == std::string_view::npos;
}

bool is_rule(std::string_view line) {
  line = trim(line);
  if (line.size() < 3) return false;
  const char c = line[0];
  if (c != '-' && c != '*' && c != '_') return false;
  std::size_t n = 0;
  for (char x : line) {
    if (x == c) ++n;
    else if (x != ' ') return false;
  }
  return n >= 3;
}

// "- item", "* item", "+ item" -> 2; "12. item" -> 4; else 0 (length of the marker + space).
std::size_t list_marker(std::string_view line, bool& ordered) {
  line = trim(line);
  if (line.size() >= 2 && (line[0] == '-' || line[0] == '*' || line[0] == '+') && line[1] == ' ') {
    ordered = false;
    return 2;
  }
  std::size_t i = 0;
  while (i < line.size() && i < 9 && line[i] >= '0' && line[i] <= '9') ++i;
  if (i > 0 && i + 1 < line.size() && (line[i] == '.' || line[i] == ')') && line[i + 1] == ' ') {
    ordered = true;
    return i + 2;
  }
  return 0;
}

}  // namespace

markdown_renderer::markdown_renderer(nl::json attachments) : attachments_(std::move(attachments)) {}

std::string markdown_renderer::image_source(std::string_view url) const {
  if (url.starts_with("attachment:")) {
    const std::string name(url.substr(11));
    if (attachments_.is_object() && attachments_.contains(name) && attachments_[name].is_object())
      for (auto it = attachments_[name].begin(); it != attachments_[name].end(); ++it)
        if (it.key().starts_with("image/")) {
          std::string data = mime_text(it.value());
          std::erase(data, '\n');
          return fmt::format("data:{};base64,{}", it.key(), data);
        }
    return {};
  }
  return safe_url(url) || url.starts_with("data:image/") ? std::string(url) : std::string();
}

std::string markdown_renderer::inline_html(std::string_view text) const {
  std::string out;
  std::size_t i = 0;
  auto find_close = [&](std::string_view marker, std::size_t from) { return text.find(marker, from); };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size() && std::string_view("\\`*_{}[]()#+-.!|<>").find(text[i + 1]) != std::string_view::npos) {
      out += html_escape(text.substr(i + 1, 1));
      i += 2;
      continue;
    }
    if (c == '`') {
      std::size_t n = 0;
      while (i + n < text.size() && text[i + n] == '`') ++n;
      const std::string marker(n, '`');
      const std::size_t close = find_close(marker, i + n);
      if (close != std::string_view::npos) {
        out += "<code>" + html_escape(trim(text.substr(i + n, close - i - n))) + "</code>";
        i = close + n;
        continue;
      }
    }
    if ((c == '!' && i + 1 < text.size() && text[i + 1] == '[') || c == '[') {
      const bool image = c == '!';
      const std::size_t label_start = i + (image ? 2 : 1);
      const std::size_t label_end = text.find("](", label_start);
      const std::size_t url_end = label_end == std::string_view::npos ? label_end : text.find(')', label_end + 2);
      if (label_end != std::string_view::npos && url_end != std::string_view::npos &&
          text.substr(label_start, label_end - label_start).find(']') == std::string_view::npos) {
        const std::string_view label = text.substr(label_start, label_end - label_start);
        std::string_view url = trim(text.substr(label_end + 2, url_end - label_end - 2));
        if (auto sp = url.find(' '); sp != std::string_view::npos) url = url.substr(0, sp);  // drop a title
        if (image) {
          const std::string src = image_source(url);
          out += src.empty() ? html_escape(label) : "<img src=\"" + html_escape(src) + "\" alt=\"" + html_escape(label) + "\">";
        } else if (safe_url(url)) {
          out += "<a href=\"" + html_escape(url) + "\">" + inline_html(label) + "</a>";
        } else {
          out += inline_html(label);
        }
        i = url_end + 1;
        continue;
      }
    }
    if (c == '*' || c == '_') {
      const bool strong = i + 1 < text.size() && text[i + 1] == c;
      const std::string marker(strong ? 2 : 1, c);
      const std::size_t from = i + marker.size();
      const bool word_inside = c == '_' && i > 0 && std::isalnum(static_cast<unsigned char>(text[i - 1]));
      const std::size_t close = find_close(marker, from);
      if (!word_inside && close != std::string_view::npos && close > from && text[from] != ' ') {
        const char* tag = strong ? "strong" : "em";
        out += fmt::format("<{}>{}</{}>", tag, inline_html(text.substr(from, close - from)), tag);
        i = close + marker.size();
        continue;
      }
    }
    out += html_escape(text.substr(i, 1));
    ++i;
  }
  return out;
}

std::string markdown_renderer::to_html(std::string_view markdown) const {
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start <= markdown.size();) {
    std::size_t end = markdown.find('\n', start);
    if (end == std::string_view::npos) end = markdown.size();
    std::string_view line = markdown.substr(start, end - start);
    if (line.ends_with('\r')) line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  std::string out;
  std::string paragraph;
  auto flush = [&] {
    if (!paragraph.empty()) out += "<p>" + inline_html(paragraph) + "</p>\n";
    paragraph.clear();
  };
  for (std::size_t i = 0; i < lines.size();) {
    const std::string_view line = lines[i];
    const std::string_view t = trim(line);
    if (t.empty()) {
      flush();
      ++i;
      continue;
    }
    if (t.starts_with("```") || t.starts_with("~~~")) {
      flush();
      const std::string fence(t.substr(0, 3));
      const std::string lang(trim(t.substr(3)));
      std::string code;
      ++i;
      while (i < lines.size() && !trim(lines[i]).starts_with(fence)) code += std::string(lines[i++]) + "\n";
      ++i;
      out += "<pre class=\"code\"><code>" + code_highlighter(lang).to_html(code) + "</code></pre>\n";
      continue;
    }
    if (t.starts_with('#')) {
      std::size_t level = 0;
      while (level < t.size() && t[level] == '#') ++level;
      if (level <= 6 && (level == t.size() || t[level] == ' ')) {
        flush();
        std::string_view title = trim(t.substr(level));
        while (title.ends_with('#')) title.remove_suffix(1);
        title = trim(title);
        std::string anchor;
        for (char c : title)
          if (std::isalnum(static_cast<unsigned char>(c))) anchor += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          else if (c == ' ' || c == '-') anchor += '-';
        out += fmt::format("<h{} id=\"{}\">{}</h{}>\n", level, html_escape(anchor), inline_html(title), level);
        ++i;
        continue;
      }
    }
    if (is_rule(t) && paragraph.empty()) {
      out += "<hr>\n";
      ++i;
      continue;
    }
    if (t.starts_with('>')) {
      flush();
      std::string quoted;
      while (i < lines.size() && trim(lines[i]).starts_with('>')) {
        std::string_view q = trim(lines[i]).substr(1);
        if (q.starts_with(' ')) q.remove_prefix(1);
        quoted += std::string(q) + "\n";
        ++i;
      }
      out += "<blockquote>\n" + to_html(quoted) + "</blockquote>\n";
      continue;
    }
    if (t.find('|') != std::string_view::npos && i + 1 < lines.size() && is_table_separator(lines[i + 1])) {
      flush();
      const auto head = split_row(t);
      out += "<table>\n<thead><tr>";
      for (auto cell : head) out += "<th>" + inline_html(cell) + "</th>";
      out += "</tr></thead>\n<tbody>\n";
      i += 2;
      while (i < lines.size() && trim(lines[i]).find('|') != std::string_view::npos) {
        out += "<tr>";
        for (auto cell : split_row(lines[i])) out += "<td>" + inline_html(cell) + "</td>";
        out += "</tr>\n";
        ++i;
      }
      out += "</tbody>\n</table>\n";
      continue;
    }
    bool ordered = false;
    if (list_marker(t, ordered) && paragraph.empty()) {
      const bool kind = ordered;
      out += kind ? "<ol>\n" : "<ul>\n";
      while (i < lines.size()) {
        bool o = false;
        const std::size_t m = list_marker(lines[i], o);
        if (!m || o != kind) break;
        std::string item(trim(lines[i]).substr(m));
        ++i;
        while (i < lines.size() && !trim(lines[i]).empty() && !list_marker(lines[i], o) &&
               (lines[i].starts_with("  ") || lines[i].starts_with('\t')))
          item += " " + std::string(trim(lines[i++]));
        out += "<li>" + inline_html(item) + "</li>\n";
      }
      out += kind ? "</ol>\n" : "</ul>\n";
      continue;
    }
    if (!paragraph.empty()) paragraph += line.ends_with("  ") ? "\n" : " ";
    paragraph += std::string(t);
    ++i;
  }
  flush();
  return out;
}

}  // namespace kh::renderers
