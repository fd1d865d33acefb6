#pragma once
// The kernel-host command line: one function per subcommand, parsed with CLI11.

#include <filesystem>
#include <vector>

namespace kh::host {

// Runs the command line; returns the process exit code.
int run_cli(int argc, char** argv);

// Where kernelspecs are looked up: the Jupyter path plus kernel-host's own folders
// (the build tree's specs and the project-local Deno), and KH_DATA_PATH entries.
std::vector<std::filesystem::path> kernel_data_path();

}  // namespace kh::host
