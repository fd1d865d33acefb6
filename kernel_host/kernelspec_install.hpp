#pragma once
// `kernel-host install-kernelspec [--user | --prefix P] [--name N]`: installs the kernelspec of
// kernel-host-python (the kernel binary beside this executable) where Jupyter tools find it.

#include <filesystem>
#include <string>

#include "common/error.hpp"

namespace CLI {
class App;
}

namespace kh::host {

struct kernelspec_install_options {
  bool user = false;                // ~/.local/share/jupyter (or JUPYTER_DATA_DIR)
  std::filesystem::path prefix;     // <prefix>/share/jupyter; default /usr/local/share/jupyter
  std::string name = "kernel-host-python";
  std::filesystem::path kernel_binary;  // default: kernel-host-python beside this executable
};

// Writes <data dir>/kernels/<name>/kernel.json and returns its folder.
kh::result<std::filesystem::path> install_kernelspec(const kernelspec_install_options& options);

// Registers the subcommand (it runs as its callback, like the notebook commands).
void add_install_kernelspec_command(CLI::App& app);

}  // namespace kh::host
