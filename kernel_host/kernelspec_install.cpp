#include "kernel_host/kernelspec_install.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace kh::host {
namespace {

namespace fs = std::filesystem;

fs::path user_data_dir() {
  if (const char* dir = std::getenv("JUPYTER_DATA_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return fs::path(xdg) / "jupyter";
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : "/root") / ".local/share/jupyter";
}

}  // namespace

kh::result<fs::path> install_kernelspec(const kernelspec_install_options& options) {
  if (options.user && !options.prefix.empty())
    return kh::fail(kh::errc::invalid_request, "--user and --prefix cannot be used together");
  if (options.name.empty() ||
      options.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos)
    return kh::fail(kh::errc::invalid_request, "kernel name '" + options.name + "' may hold only letters, digits, '.', '_' and '-'");

  fs::path binary = options.kernel_binary;
  if (binary.empty()) {
    std::error_code ec;
    binary = fs::read_symlink("/proc/self/exe", ec).parent_path() / "kernel-host-python";
  }
  if (::access(binary.c_str(), X_OK) != 0)
    return kh::fail(kh::errc::file_not_found, "no kernel-host-python executable at " + binary.string() +
                                                  " (build it first, or pass --kernel-binary)");

  const fs::path data = options.user ? user_data_dir()
                        : options.prefix.empty() ? fs::path("/usr/local/share/jupyter")
                                                 : options.prefix / "share/jupyter";
  const fs::path dir = data / "kernels" / options.name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return kh::fail(kh::errc::io_error, "cannot create " + dir.string() + ": " + ec.message());

  const nl::json spec = {{"argv", {fs::absolute(binary).string(), "-f", "{connection_file}"}},
                         {"display_name", "Python 3 (kernel-host)"},
                         {"language", "python"},
                         {"interrupt_mode", "signal"},
                         {"metadata", {{"debugger", false}}}};
  const fs::path tmp = dir / "kernel.json.tmp";
  {
    std::ofstream out(tmp);
    out << spec.dump(2) << "\n";
    if (!out) return kh::fail(kh::errc::io_error, "cannot write " + tmp.string());
  }
  fs::rename(tmp, dir / "kernel.json", ec);
  if (ec) return kh::fail(kh::errc::io_error, "cannot write " + (dir / "kernel.json").string() + ": " + ec.message());
  return dir;
}

void add_install_kernelspec_command(CLI::App& app) {
  auto options = std::make_shared<kernelspec_install_options>();
  auto* cmd = app.add_subcommand("install-kernelspec",
                                 "Install the kernelspec of kernel-host-python so Jupyter tools (and other hosts) can launch it.\n"
                                 "Default folder: /usr/local/share/jupyter/kernels/<name>.");
  auto* user = cmd->add_flag("--user", options->user, "Install for the current user (~/.local/share/jupyter, or JUPYTER_DATA_DIR)");
  cmd->add_option("--prefix", options->prefix, "Install under PREFIX/share/jupyter")->excludes(user);
  cmd->add_option("--name", options->name, "Kernelspec name")->capture_default_str();
  cmd->add_option("--kernel-binary", options->kernel_binary, "The kernel executable (default: beside kernel-host)");
  cmd->callback([options] {
    auto dir = install_kernelspec(*options);
    if (!dir) {
      std::fprintf(stderr, "error: %s\n", dir.error().to_string().c_str());
      throw CLI::RuntimeError(2);
    }
    std::printf("Installed kernelspec %s in %s\n", options->name.c_str(), dir->c_str());
    throw CLI::RuntimeError(0);
  });
}

}  // namespace kh::host
