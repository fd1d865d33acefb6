#pragma once
// Shared set-up for integration tests: where kernelspecs are, one reactor, a temp runtime folder.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "contexts/kernel_manager.hpp"
#include "contexts/kernelspec.hpp"
#include "contexts/reactor.hpp"

namespace kh::test {

// The test kernels (tests/support/kernels), the build tree's specs, the project-local Deno,
// then the Jupyter path (Debian's ipykernel "python3").
std::vector<std::filesystem::path> data_path();

// One reactor for the whole test binary.
contexts::reactor& shared_reactor();

// A fresh temporary folder, removed at exit.
std::filesystem::path temp_dir(const std::string& stem);

// Looks the spec up or fails the current test.
contexts::kernelspec spec(const std::string& name);

// Options with a private runtime folder and short ladder waits suited to tests.
contexts::kernel_options test_options();

// Starts a kernel or returns nullptr after recording a test failure.
std::unique_ptr<contexts::kernel_manager> start_kernel(const std::string& name,
                                                       contexts::kernel_options options = test_options());

// The concatenated text of every stream output of one name.
std::string stream_text(const contexts::execution_result& r, const std::string& name = "stdout");

// The repository's root folder.
std::filesystem::path repo_root();

// kernel-host-python when this build has it, Debian's ipykernel ("python3") otherwise.
std::string python_kernel_name();

// A whole file's bytes ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);

// True when no process with this pid exists (or it is a zombie awaiting reaping elsewhere).
bool process_gone(int pid);

// True when no process with this pid exists, not even a zombie: it exited and was reaped.
bool process_reaped(int pid);

}  // namespace kh::test
