#include "kernel_host/client/sse_parser.hpp"

#include <stdexcept>

namespace kh::client {

void sse_parser::feed(std::string_view bytes, const handler& on_event) {
  if (at_start_ && !bytes.empty()) {
    // The BOM may itself arrive split; keep the bytes in line_ until it is decided.
    static constexpr std::string_view bom = "\xEF\xBB\xBF";
    const std::size_t have = line_.size();
    const std::size_t take = std::min(bytes.size(), bom.size() - have);
    if (bom.substr(have, take) == bytes.substr(0, take)) {
      line_.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      if (line_.size() < bom.size()) return;
      line_.clear();
    } else {
      // Not a BOM: what was held back is ordinary text.
    }
    at_start_ = false;
  }
  std::size_t start = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char ch = bytes[i];
    if (ch != '\n' && ch != '\r') {
      after_cr_ = false;
      continue;
    }
    if (ch == '\n' && after_cr_ && i == start && line_.empty()) {
      // The LF of a CRLF whose CR ended the previous line.
      after_cr_ = false;
      start = i + 1;
      continue;
    }
    after_cr_ = ch == '\r';
    if (line_.empty()) {
      process_line(bytes.substr(start, i - start), on_event);
    } else {
      line_.append(bytes.substr(start, i - start));
      std::string whole = std::move(line_);
      line_.clear();
      process_line(whole, on_event);
    }
    start = i + 1;
  }
  if (start < bytes.size()) {
    line_.append(bytes.substr(start));
    if (line_.size() > max_event_bytes_) throw std::length_error("server-sent event line exceeds the size limit");
  }
}

std::vector<sse_event> sse_parser::feed(std::string_view bytes) {
  std::vector<sse_event> out;
  feed(bytes, [&](sse_event&& e) { out.push_back(std::move(e)); });
  return out;
}

bool sse_parser::finish() {
  const bool dropped = has_data_ || !line_.empty() || !event_.empty();
  line_.clear();
  data_.clear();
  event_.clear();
  retry_.reset();
  has_data_ = false;
  after_cr_ = false;
  at_start_ = true;
  return dropped;
}

void sse_parser::process_line(std::string_view line, const handler& on_event) {
  if (line.empty()) return dispatch(on_event);
  if (line.front() == ':') {
    ++comments_;
    return;
  }
  std::string_view field = line, value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (data_.size() + value.size() + 1 > max_event_bytes_) throw std::length_error("server-sent event exceeds the size limit");
    data_.append(value);
    data_.push_back('\n');
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  } else if (field == "retry") {
    if (!value.empty() && value.size() < 16 && value.find_first_not_of("0123456789") == std::string_view::npos)
      retry_ = std::stol(std::string(value));
  }
  // Any other field is ignored.
}

void sse_parser::dispatch(const handler& on_event) {
  if (!has_data_) {  // a blank line after comments or fields only: nothing to deliver
    event_.clear();
    retry_.reset();
    return;
  }
  sse_event e;
  if (!event_.empty()) e.event = std::move(event_);
  data_.pop_back();  // the newline after the last data line
  e.data = std::move(data_);
  e.id = last_id_;
  e.retry = retry_;
  data_.clear();
  event_.clear();
  retry_.reset();
  has_data_ = false;
  on_event(std::move(e));
}

}  // namespace kh::client
