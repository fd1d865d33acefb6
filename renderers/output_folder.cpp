#include "renderers/output_folder.hpp"

namespace kh::renderers {
namespace {

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

std::string apply_carriage_returns(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    const bool last = end == std::string_view::npos;
    if (last) end = text.size();
    std::string_view line = text.substr(start, end - start);
    // Drop up to the last '\r' that has a character after it on this line.
    if (line.size() >= 2) {
      const std::size_t cr = line.substr(0, line.size() - 1).rfind('\r');
      if (cr != std::string_view::npos) line.remove_prefix(cr + 1);
    }
    out.append(line);
    if (last) break;
    out += '\n';
    start = end + 1;
  }
  return out;
}

std::string apply_backspaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\b' && !out.empty() && out.back() != '\n' && out.back() != '\b') {
      while (!out.empty() && is_utf8_continuation(out.back())) out.pop_back();
      if (!out.empty()) out.pop_back();
    } else {
      out += c;
    }
  }
  return out;
}

std::string transient_display_id(const nl::json& content) {
  if (auto t = content.find("transient"); t != content.end() && t->is_object())
    if (auto id = t->find("display_id"); id != t->end() && id->is_string()) return id->get<std::string>();
  return {};
}

nl::json object_or_empty(const nl::json& content, const char* key) {
  if (auto it = content.find(key); it != content.end() && it->is_object()) return *it;
  return nl::json::object();
}

}  // namespace

std::string apply_control_characters(std::string_view text) {
  if (text.find('\r') == std::string_view::npos && text.find('\b') == std::string_view::npos) return std::string(text);
  return apply_backspaces(apply_carriage_returns(text));
}

std::size_t output_folder::begin_cell() {
  cells_.emplace_back();
  changed_.insert(cells_.size() - 1);
  return cells_.size() - 1;
}

void output_folder::clear_current() {
  auto& cell = cells_.back();
  cell.outputs = nl::json::array();
  cell.display_ids.clear();
  cell.clear_pending = false;
}

void output_folder::update_display(const std::string& display_id, const nl::json& content) {
  for (std::size_t c = 0; c < cells_.size(); ++c) {
    auto& cell = cells_[c];
    for (std::size_t i = 0; i < cell.display_ids.size(); ++i) {
      if (cell.display_ids[i] != display_id) continue;
      cell.outputs[i]["data"] = object_or_empty(content, "data");
      cell.outputs[i]["metadata"] = object_or_empty(content, "metadata");
      changed_.insert(c);
    }
  }
}

void output_folder::add(std::string_view msg_type, const nl::json& content) {
  if (cells_.empty()) begin_cell();
  changed_.insert(cells_.size() - 1);
  if (msg_type == "clear_output") {
    if (content.value("wait", false)) cells_.back().clear_pending = true;
    else clear_current();
    return;
  }
  const bool displayish = msg_type == "display_data" || msg_type == "execute_result" || msg_type == "update_display_data";
  const std::string display_id = displayish ? transient_display_id(content) : std::string();
  if (!display_id.empty()) update_display(display_id, content);
  if (msg_type == "update_display_data") return;

  nl::json output;
  if (msg_type == "stream") {
    const std::string name = content.value("name", "stdout");
    const std::string text = content.contains("text") ? content["text"].is_string() ? content["text"].get<std::string>() : std::string() : std::string();
    if (cells_.back().clear_pending) clear_current();
    auto& cell = cells_.back();
    if (!cell.outputs.empty()) {
      auto& last = cell.outputs.back();
      if (last.value("output_type", "") == "stream" && last.value("name", "") == name) {
        last["text"] = apply_control_characters(last["text"].get<std::string>() + text);
        return;
      }
    }
    output = {{"output_type", "stream"}, {"name", name}, {"text", apply_control_characters(text)}};
  } else if (msg_type == "display_data") {
    output = {{"output_type", "display_data"}, {"data", object_or_empty(content, "data")},
              {"metadata", object_or_empty(content, "metadata")}};
  } else if (msg_type == "execute_result") {
    output = {{"output_type", "execute_result"}, {"data", object_or_empty(content, "data")},
              {"metadata", object_or_empty(content, "metadata")},
              {"execution_count", content.contains("execution_count") ? content["execution_count"] : nl::json()}};
  } else if (msg_type == "error") {
    output = {{"output_type", "error"}, {"ename", content.value("ename", "")}, {"evalue", content.value("evalue", "")},
              {"traceback", content.contains("traceback") && content["traceback"].is_array() ? content["traceback"] : nl::json::array()}};
  } else {
    return;  // status, execute_input, comms: not outputs
  }
  if (cells_.back().clear_pending) clear_current();
  cells_.back().outputs.push_back(std::move(output));
  cells_.back().display_ids.push_back(display_id);
}

std::set<std::size_t> output_folder::take_changed() { return std::exchange(changed_, {}); }

nl::json output_folder::fold(const std::vector<nl::json>& messages) {
  output_folder folder;
  folder.begin_cell();
  for (const auto& msg : messages) {
    std::string type = msg.value("msg_type", "");
    if (type.empty() && msg.contains("header")) type = msg["header"].value("msg_type", "");
    folder.add(type, msg.contains("content") ? msg["content"] : nl::json::object());
  }
  return folder.outputs(0);
}

}  // namespace kh::renderers
