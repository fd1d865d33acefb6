#include "renderers/notebook.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>

namespace kh::renderers {
namespace {

// Length of a Python str.splitlines() boundary starting at text[i], or 0.
std::size_t line_boundary(std::string_view text, std::size_t i) {
  const unsigned char c = static_cast<unsigned char>(text[i]);
  if (c == '\r') return i + 1 < text.size() && text[i + 1] == '\n' ? 2 : 1;
  if (c == '\n' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e) return 1;
  if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x85) return 2;  // U+0085
  if (c == 0xe2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
      (static_cast<unsigned char>(text[i + 2]) == 0xa8 || static_cast<unsigned char>(text[i + 2]) == 0xa9))
    return 3;  // U+2028, U+2029
  return 0;
}

bool is_multiline(const nl::json& v) {
  if (v.is_string()) return true;
  if (!v.is_array()) return false;
  for (const auto& part : v)
    if (!part.is_string()) return false;
  return true;
}

std::string joined(const nl::json& v) {
  if (v.is_string()) return v.get<std::string>();
  std::string out;
  if (v.is_array())
    for (const auto& part : v)
      if (part.is_string()) out += part.get_ref<const std::string&>();
  return out;
}

bool splits_mime(std::string_view mime) {
  return mime.starts_with("text/") || mime == "application/javascript" || mime == "image/svg+xml";
}

void split_bundle(nl::json& bundle) {
  if (!bundle.is_object()) return;
  for (auto it = bundle.begin(); it != bundle.end(); ++it)
    if (it->is_string() && splits_mime(it.key())) *it = notebook::split_lines(it->get<std::string>());
}

// Validation of one notebook; collects the first error with its JSON path.
class validator {
 public:
  explicit validator(const nl::json& doc) : doc_(doc) {}

  std::optional<std::string> run() {
    if (!doc_.is_object()) return "the notebook: expected a JSON object";
    if (!doc_.contains("nbformat") || !doc_["nbformat"].is_number_integer()) return "nbformat: missing or not an integer";
    if (doc_["nbformat"].get<int>() != 4)
      return fmt::format("nbformat: version {} is not supported (only nbformat 4)", doc_["nbformat"].dump());
    if (!doc_.contains("nbformat_minor") || !doc_["nbformat_minor"].is_number_integer())
      return "nbformat_minor: missing or not an integer";
    if (!doc_.contains("metadata") || !doc_["metadata"].is_object()) return "metadata: missing or not an object";
    if (!doc_.contains("cells") || !doc_["cells"].is_array()) return "cells: missing or not an array";
    const auto& cells = doc_["cells"];
    for (std::size_t i = 0; i < cells.size(); ++i)
      if (auto e = cell(i, cells[i])) return e;
    return std::nullopt;
  }

 private:
  std::optional<std::string> cell(std::size_t i, const nl::json& c) {
    std::string label = fmt::format("cells[{}]", i);
    if (!c.is_object()) return label + ": expected an object";
    if (auto id = c.find("id"); id != c.end()) {
      if (!id->is_string()) return label + ".id: expected a string";
      label += fmt::format(" (id '{}')", id->get<std::string>());
      const auto& s = id->get_ref<const std::string&>();
      if (s.empty() || s.size() > 64 ||
          s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != std::string::npos)
        return label + ".id: must be 1-64 characters of letters, digits, '-' and '_'";
    }
    if (!c.contains("cell_type") || !c["cell_type"].is_string()) return label + ".cell_type: missing or not a string";
    const std::string type = c["cell_type"];
    if (type != "code" && type != "markdown" && type != "raw")
      return fmt::format("{}.cell_type: '{}' is not one of code, markdown, raw", label, type);
    if (!c.contains("metadata") || !c["metadata"].is_object()) return label + ".metadata: missing or not an object";
    if (!c.contains("source") || !is_multiline(c["source"]))
      return label + ".source: missing, or not a string or a list of strings";
    if (c.contains("attachments") && !c["attachments"].is_object()) return label + ".attachments: expected an object";
    if (type != "code") return std::nullopt;
    if (!c.contains("execution_count") || !(c["execution_count"].is_null() || c["execution_count"].is_number_integer()))
      return label + ".execution_count: missing, or not an integer or null";
    if (!c.contains("outputs") || !c["outputs"].is_array()) return label + ".outputs: missing or not an array";
    const auto& outs = c["outputs"];
    for (std::size_t k = 0; k < outs.size(); ++k)
      if (auto e = output(fmt::format("{}.outputs[{}]", label, k), outs[k])) return e;
    return std::nullopt;
  }

  std::optional<std::string> output(const std::string& label, const nl::json& o) {
    if (!o.is_object()) return label + ": expected an object";
    if (!o.contains("output_type") || !o["output_type"].is_string()) return label + ".output_type: missing or not a string";
    const std::string type = o["output_type"];
    if (type == "stream") {
      if (!o.contains("name") || !o["name"].is_string()) return label + ".name: missing or not a string";
      if (!o.contains("text") || !is_multiline(o["text"])) return label + ".text: missing, or not a string or a list of strings";
    } else if (type == "display_data" || type == "execute_result") {
      if (!o.contains("data") || !o["data"].is_object()) return label + ".data: missing or not an object";
      if (!o.contains("metadata") || !o["metadata"].is_object()) return label + ".metadata: missing or not an object";
      if (type == "execute_result" &&
          (!o.contains("execution_count") || !(o["execution_count"].is_null() || o["execution_count"].is_number_integer())))
        return label + ".execution_count: missing, or not an integer or null";
    } else if (type == "error") {
      if (!o.contains("ename") || !o["ename"].is_string()) return label + ".ename: missing or not a string";
      if (!o.contains("evalue") || !o["evalue"].is_string()) return label + ".evalue: missing or not a string";
      if (!o.contains("traceback") || !o["traceback"].is_array()) return label + ".traceback: missing or not an array";
    } else {
      return fmt::format("{}.output_type: '{}' is not one of stream, display_data, execute_result, error", label, type);
    }
    return std::nullopt;
  }

  const nl::json& doc_;
};

}  // namespace

std::string new_cell_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:08x}", static_cast<std::uint32_t>(rng()));
}

nl::json notebook::split_lines(std::string_view text) {
  nl::json lines = nl::json::array();
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (const std::size_t n = line_boundary(text, i)) {
      lines.push_back(std::string(text.substr(start, i + n - start)));
      i += n;
      start = i;
    } else {
      ++i;
    }
  }
  if (start < text.size()) lines.push_back(std::string(text.substr(start)));
  return lines;
}

result<notebook> notebook::parse(std::string_view text) {
  notebook nb;
  nb.doc_ = nl::json::parse(text, nullptr, false);
  if (nb.doc_.is_discarded()) {
    // Parse again with exceptions to get the position of the problem.
    try {
      auto again = nl::json::parse(text);
      (void)again;
    } catch (const nl::json::parse_error& e) {
      return fail(errc::invalid_request, fmt::format("the notebook is not valid JSON: {}", e.what()),
                  {{"byte", e.byte}});
    } catch (const nl::json::exception& e) {  // e.g. out_of_range: a number too large ("555e555551")
      return fail(errc::invalid_request, fmt::format("the notebook is not valid JSON: {}", e.what()));
    }
    return fail(errc::invalid_request, "the notebook is not valid JSON");
  }
  if (auto problem = validator(nb.doc_).run())
    return fail(errc::invalid_request, "invalid notebook: " + *problem, {{"problem", *problem}});
  if (nb.minor() >= 5)
    for (auto& c : nb.cells())
      if (!c.contains("id")) c["id"] = new_cell_id();
  return nb;
}

result<notebook> notebook::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(errc::file_not_found, fmt::format("cannot open notebook {}", path.string()), {{"path", path.string()}});
  std::ostringstream buf;
  buf << in.rdbuf();
  auto nb = parse(buf.str());
  if (!nb) {
    nb.error().message = path.string() + ": " + nb.error().message;
    nb.error().details["path"] = path.string();
  }
  return nb;
}

notebook notebook::make(std::string_view kernel_name, std::string_view language) {
  notebook nb;
  nb.doc_ = {{"cells", nl::json::array()},
             {"metadata",
              {{"kernelspec", {{"name", kernel_name}, {"display_name", kernel_name}, {"language", language}}},
               {"language_info", {{"name", language}}}}},
             {"nbformat", 4},
             {"nbformat_minor", 5}};
  return nb;
}

std::string notebook::dump() const {
  return doc_.dump(1, ' ', false, nl::json::error_handler_t::replace) + "\n";
}

result<void> notebook::save(const std::filesystem::path& path) const { return write_file_atomic(path, dump()); }

std::string string_member(const nl::json& object, std::string_view key, std::string fallback) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

std::string notebook::kernel_name() const {
  const auto& md = doc_.at("metadata");
  if (auto ks = md.find("kernelspec"); ks != md.end()) return string_member(*ks, "name");
  return {};
}

std::string notebook::language() const {
  const auto& md = doc_.at("metadata");
  if (auto li = md.find("language_info"); li != md.end()) {
    if (auto name = string_member(*li, "name"); !name.empty()) return name;
  }
  if (auto ks = md.find("kernelspec"); ks != md.end()) return string_member(*ks, "language");
  return {};
}

std::string notebook::source(std::size_t cell) const { return joined(cells().at(cell).at("source")); }

void notebook::set_source(std::size_t cell, std::string_view text) { cells().at(cell)["source"] = split_lines(text); }

std::vector<std::string> notebook::tags(std::size_t cell) const {
  std::vector<std::string> out;
  const auto& md = cells().at(cell).at("metadata");
  if (auto t = md.find("tags"); t != md.end() && t->is_array())
    for (const auto& tag : *t)
      if (tag.is_string()) out.push_back(tag.get<std::string>());
  return out;
}

bool notebook::has_tag(std::size_t cell, std::string_view tag) const {
  for (const auto& t : tags(cell))
    if (t == tag) return true;
  return false;
}

std::string notebook::cell_label(std::size_t cell) const {
  const auto& c = cells().at(cell);
  if (auto id = c.find("id"); id != c.end() && id->is_string()) return fmt::format("cells[{}] (id '{}')", cell, id->get<std::string>());
  return fmt::format("cells[{}]", cell);
}

nl::json notebook::make_cell(std::string_view cell_type, std::string_view source) const {
  nl::json c = {{"cell_type", cell_type}, {"metadata", nl::json::object()}, {"source", split_lines(source)}};
  if (cell_type == "code") {
    c["execution_count"] = nullptr;
    c["outputs"] = nl::json::array();
  }
  if (minor() >= 5) c["id"] = new_cell_id();
  return c;
}

void notebook::insert_cell(std::size_t at, nl::json cell) {
  auto& cs = cells();
  cs.insert(cs.begin() + static_cast<std::ptrdiff_t>(std::min(at, cs.size())), std::move(cell));
}

nl::json notebook::outputs_for_disk(const nl::json& outputs) {
  nl::json out = outputs;
  for (auto& o : out) {
    const std::string type = o.value("output_type", "");
    if (type == "stream" && o.contains("text") && o["text"].is_string()) o["text"] = split_lines(o["text"].get<std::string>());
    if ((type == "display_data" || type == "execute_result") && o.contains("data")) split_bundle(o["data"]);
  }
  return out;
}

result<void> write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return fail_errno("create a temporary file beside " + path.string(), errno);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmpl.c_str());
      return fail_errno("write " + tmpl, err);
    }
    done += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, 0644);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    return fail_errno("flush " + tmpl, err);
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    return fail_errno("rename onto " + path.string(), err);
  }
  return {};
}

}  // namespace kh::renderers
