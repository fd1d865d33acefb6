#pragma once
// Kernelspecs: discovery in the Jupyter data path, validation of kernel.json, argv substitution.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace kh::contexts {

enum class interrupt_mode { signal, message };

struct kernelspec {
  std::string name;                    // folder name, lower-case ("python3", "deno")
  std::filesystem::path resource_dir;  // the folder holding kernel.json
  std::vector<std::string> argv;       // with "{connection_file}" still in it
  std::string display_name;
  std::string language;
  kh::contexts::interrupt_mode interrupt_mode = interrupt_mode::signal;
  std::map<std::string, std::string> env;  // values may hold ${VAR}, expanded at launch
  nl::json metadata = nl::json::object();

  nl::json to_json() const;  // the kernel.json model, as jupyter_server shows it
};

// Parses and validates <dir>/kernel.json. Errors (errc::invalid_kernelspec) name the file,
// the field and the reason: "kernel.json at /x: field argv: must be a non-empty array of strings".
result<kernelspec> load_kernelspec(const std::filesystem::path& dir);

// The folders searched for "<folder>/kernels/<name>/kernel.json", highest priority first:
// JUPYTER_PATH entries, the extra folders given (kernel-host's own data), the user folder
// (JUPYTER_DATA_DIR, else $XDG_DATA_HOME/jupyter or ~/.local/share/jupyter),
// /usr/local/share/jupyter, /usr/share/jupyter.
std::vector<std::filesystem::path> jupyter_data_path(const std::vector<std::filesystem::path>& extra = {});

// Every valid kernelspec in the path; the first folder holding a name wins. Invalid specs are
// skipped and returned in `invalid` when given, so callers can report them.
std::vector<kernelspec> find_kernelspecs(const std::vector<std::filesystem::path>& data_path,
                                         std::vector<error>* invalid = nullptr);

// The kernelspec with this name (case-insensitive), or errc::kernel_not_found naming the folders searched.
result<kernelspec> find_kernelspec(const std::string& name, const std::vector<std::filesystem::path>& data_path);

// argv with "{connection_file}" (and "{resource_dir}") substituted; "python"/"python3" as argv[0]
// replaced by `python` (Debian's /usr/bin/python3 by default, as jupyter_client does with sys.executable).
std::vector<std::string> expand_argv(const kernelspec& spec, const std::filesystem::path& connection_file,
                                     const std::string& python = "/usr/bin/python3");

// env values with ${VAR} replaced from `base` (missing variables become empty).
std::map<std::string, std::string> expand_env(const kernelspec& spec,
                                              const std::map<std::string, std::string>& base);

}  // namespace kh::contexts
