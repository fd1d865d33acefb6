#pragma once
// The notebook subcommands of the command line:
//   kernel-host run IN.ipynb [-o OUT.ipynb] [-p NAME=VALUE ...] [--kernel NAME] [--timeout S]
//                            [--allow-errors] [--cwd DIR]
//   kernel-host export IN.ipynb --to html|markdown [-o OUT]
// They bind renderers::notebook_runner to a contexts::kernel_manager. Each subcommand runs as
// its CLI11 callback and ends by throwing CLI::RuntimeError(exit_code), which App::exit returns.

namespace CLI {
class App;
}

namespace kh::host {

// Registers `run` and `export` on the application.
void add_notebook_commands(CLI::App& app);

}  // namespace kh::host
