#pragma once
// `kernel-host run-code --server URL [--token T] [--context ID | --language L] CODE`: runs one
// cell through a running host (POST /api/execute/code, SSE) and prints its events as they
// arrive: stdout/stderr as text, results as their text (or a note for images and HTML), errors
// with their traceback. Without --context a context of --language is created and deleted after.
// input() is answered from the terminal through POST /api/contexts/{id}/input.
// Exit code: 0 the cell succeeded, 1 it raised an error, 2 the server could not be used.

#include <string>

namespace CLI {
class App;
}

namespace kh::host {

struct remote_run_options {
  std::string server;  // http://host:port[/sandboxes/ID]; empty: run-code starts a local kernel
  std::string token;
  std::string context;
  std::string language = "python";
  double timeout_s = 0;  // 0: the context's default
};

// Adds --server, --token, --context and --language to the run-code subcommand.
void add_remote_run_options(CLI::App& run_cmd, remote_run_options& options);

int run_code_remote(const remote_run_options& options, std::string code);

}  // namespace kh::host
