#include "contexts/kernelspec.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

namespace kh::contexts {
namespace fs = std::filesystem;
namespace {

std::string to_lower(std::string s) {
  std::ranges::transform(s, s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Jupyter's rule for kernel names (jupyter_client.kernelspec._is_valid_kernel_name).
bool is_valid_name(std::string_view name) {
  if (name.empty()) return false;
  return std::ranges::all_of(name, [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '.' || c == '_' || c == '-';
  });
}

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

// $HOME, or the passwd entry when HOME is unset (daemons started by init often have no HOME).
std::string home_dir() {
  if (auto home = env_or_empty("HOME"); !home.empty()) return home;
  std::string buffer(4096, '\0');
  passwd entry{};
  passwd* found = nullptr;
  if (getpwuid_r(getuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found && found->pw_dir) {
    return found->pw_dir;
  }
  return {};
}

std::unexpected<error> spec_error(const fs::path& file, std::string_view field, std::string_view reason) {
  std::string message = "kernel.json at " + file.string() + ": field " + std::string(field) + ": " + std::string(reason);
  return fail(errc::invalid_kernelspec, std::move(message), {{"path", file.string()}, {"field", field}});
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// The entries of <folder>/kernels that hold a kernel.json, in a stable order (directory order is not).
std::vector<fs::path> spec_dirs_in(const fs::path& folder) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(folder / "kernels", ec);
  if (ec) return out;  // a missing folder in the path is normal
  for (const auto& entry : it) {
    std::error_code entry_ec;
    if (entry.is_directory(entry_ec) && fs::is_regular_file(entry.path() / "kernel.json", entry_ec)) {
      out.push_back(entry.path());
    }
  }
  std::ranges::sort(out);
  return out;
}

}  // namespace

nl::json kernelspec::to_json() const {
  return {
      {"argv", argv},
      {"display_name", display_name},
      {"language", language},
      {"interrupt_mode", interrupt_mode == interrupt_mode::message ? "message" : "signal"},
      {"env", env},
      {"metadata", metadata},
  };
}

result<kernelspec> load_kernelspec(const fs::path& dir_in) {
  // "…/kernels/python3/" has an empty filename(); the name is the folder's own.
  fs::path dir = dir_in.lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();
  const fs::path file = dir / "kernel.json";

  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return fail(errc::invalid_kernelspec, "kernel.json at " + file.string() + ": cannot be read",
                {{"path", file.string()}});
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  nl::json j;
  try {
    j = nl::json::parse(buffer.str());
  } catch (const nl::json::exception& e) {
    return fail(errc::invalid_kernelspec, "kernel.json at " + file.string() + ": not valid JSON: " + e.what(),
                {{"path", file.string()}});
  }
  if (!j.is_object()) return spec_error(file, "(root)", "must be a JSON object");

  kernelspec spec;
  spec.resource_dir = dir;
  spec.name = to_lower(dir.filename().string());
  if (!is_valid_name(spec.name)) {
    return spec_error(file, "name", "the folder name '" + dir.filename().string() +
                                        "' may only hold ASCII letters, digits, '.', '_' and '-'");
  }

  const auto argv = j.find("argv");
  if (argv == j.end() || !argv->is_array() || argv->empty() ||
      !std::ranges::all_of(*argv, [](const nl::json& a) { return a.is_string(); })) {
    return spec_error(file, "argv", "must be a non-empty array of strings");
  }
  spec.argv = argv->get<std::vector<std::string>>();

  const auto display_name = j.find("display_name");
  if (display_name == j.end() || !display_name->is_string()) {
    return spec_error(file, "display_name", "must be a string");
  }
  spec.display_name = display_name->get<std::string>();

  const auto language = j.find("language");
  if (language == j.end() || !language->is_string()) return spec_error(file, "language", "must be a string");
  spec.language = language->get<std::string>();

  if (const auto mode = j.find("interrupt_mode"); mode != j.end()) {
    if (*mode == "signal") {
      spec.interrupt_mode = interrupt_mode::signal;
    } else if (*mode == "message") {
      spec.interrupt_mode = interrupt_mode::message;
    } else {
      return spec_error(file, "interrupt_mode", "must be \"signal\" or \"message\"");
    }
  }

  if (const auto env = j.find("env"); env != j.end()) {
    if (!env->is_object()) return spec_error(file, "env", "must be an object of strings");
    for (const auto& [key, value] : env->items()) {
      if (!value.is_string()) return spec_error(file, "env", "value of '" + key + "' must be a string");
      spec.env[key] = value.get<std::string>();
    }
  }

  if (const auto metadata = j.find("metadata"); metadata != j.end()) {
    if (!metadata->is_object()) return spec_error(file, "metadata", "must be an object");
    spec.metadata = *metadata;
  }
  return spec;
}

std::vector<fs::path> jupyter_data_path(const std::vector<fs::path>& extra) {
  std::vector<fs::path> out;
  std::set<std::string> seen;
  auto add = [&](const fs::path& p) {
    if (p.empty()) return;
    fs::path normal = p.lexically_normal();
    if (!normal.has_filename() && normal != normal.root_path()) normal = normal.parent_path();
    if (seen.insert(normal.string()).second) out.push_back(std::move(normal));
  };

  std::stringstream jupyter_path(env_or_empty("JUPYTER_PATH"));
  for (std::string entry; std::getline(jupyter_path, entry, ':');) add(entry);
  for (const auto& p : extra) add(p);

  if (auto data_dir = env_or_empty("JUPYTER_DATA_DIR"); !data_dir.empty()) {
    add(data_dir);
  } else if (auto xdg = env_or_empty("XDG_DATA_HOME"); !xdg.empty()) {
    add(fs::path(xdg) / "jupyter");
  } else if (auto home = home_dir(); !home.empty()) {
    add(fs::path(home) / ".local/share/jupyter");
  }
  add("/usr/local/share/jupyter");
  add("/usr/share/jupyter");
  return out;
}

std::vector<kernelspec> find_kernelspecs(const std::vector<fs::path>& data_path, std::vector<error>* invalid) {
  std::vector<kernelspec> out;
  // Like jupyter_client, the first folder holding a name wins even when its spec is invalid:
  // silently falling back to a lower-priority spec would hide the user's broken override.
  std::set<std::string> seen;
  for (const auto& folder : data_path) {
    for (const auto& dir : spec_dirs_in(folder)) {
      if (!seen.insert(to_lower(dir.filename().string())).second) continue;
      auto spec = load_kernelspec(dir);
      if (spec) {
        out.push_back(std::move(*spec));
      } else if (invalid) {
        invalid->push_back(std::move(spec.error()));
      }
    }
  }
  std::ranges::sort(out, {}, &kernelspec::name);
  return out;
}

result<kernelspec> find_kernelspec(const std::string& name, const std::vector<fs::path>& data_path) {
  const std::string wanted = to_lower(name);
  for (const auto& folder : data_path) {
    for (const auto& dir : spec_dirs_in(folder)) {
      if (to_lower(dir.filename().string()) == wanted) return load_kernelspec(dir);
    }
  }

  std::vector<std::string> available;
  for (const auto& spec : find_kernelspecs(data_path)) available.push_back(spec.name);
  std::vector<std::string> searched;
  for (const auto& folder : data_path) searched.push_back((folder / "kernels").string());

  auto join = [](const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out.empty() ? std::string("(none)") : out;
  };
  return fail(errc::kernel_not_found,
              "no kernelspec named '" + name + "'; available: " + join(available) + "; searched: " + join(searched),
              {{"name", name}, {"available", available}, {"searched", searched}});
}

std::vector<std::string> expand_argv(const kernelspec& spec, const fs::path& connection_file,
                                     const std::string& python) {
  std::vector<std::string> out = spec.argv;
  for (auto& arg : out) {
    replace_all(arg, "{connection_file}", connection_file.string());
    replace_all(arg, "{resource_dir}", spec.resource_dir.string());
  }
  // Kernelspecs such as ipykernel's say just "python3"; run the interpreter we were configured
  // with instead of whatever comes first on PATH (pyenv shims, virtualenvs without ipykernel).
  if (!out.empty() && (out[0] == "python" || out[0] == "python3")) out[0] = python;
  return out;
}

std::map<std::string, std::string> expand_env(const kernelspec& spec,
                                              const std::map<std::string, std::string>& base) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : spec.env) {
    std::string expanded;
    std::size_t at = 0;
    while (at < value.size()) {
      const std::size_t open = value.find("${", at);
      const std::size_t close = open == std::string::npos ? std::string::npos : value.find('}', open + 2);
      if (close == std::string::npos) {  // no (complete) reference left: keep the rest as written
        expanded.append(value, at, std::string::npos);
        break;
      }
      expanded.append(value, at, open - at);
      if (auto found = base.find(value.substr(open + 2, close - open - 2)); found != base.end()) {
        expanded += found->second;
      }
      at = close + 1;
    }
    out[key] = std::move(expanded);
  }
  return out;
}

}  // namespace kh::contexts
